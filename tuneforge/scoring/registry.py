"""Loading the network's scorer set from the table in `weights.py`, once, at start-up.

The one row whose activity depends on the network is `preference`: it is active exactly when
the consensus rule `weights.preference_inactive_reason` says so for the network and the head
loaded at start-up (D42). That is decided here, with the rest of the set; a head that training
installs later counts from the validator's next start, never from one clip to the next.

Every validator on a real network must run the same active set: a scorer that cannot be set up
here (its module fails to import, its model is missing, its constructor raises) makes the set
incomplete, and `ScorerSet.require_complete` refuses the start unless the operator explicitly
allows a degraded validator (localnet, experiments). Exclusion happens here and only here; while
scoring, a failure scores the clip 0 (clip_score.py), it never removes a scorer.
"""

from __future__ import annotations

import dataclasses
import importlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from loguru import logger

from tuneforge.core.errors import TuneForgeError
from tuneforge.scoring.base import Scorer, ScorerUnavailable
from tuneforge.scoring.weights import (
    CHECKS,
    PENALTIES,
    PREFERENCE,
    REQUIRED_MODELS,
    SCORERS,
    CheckSpec,
    preference_inactive_reason,
)

if TYPE_CHECKING:
    from tuneforge.scoring.neural import NeuralModels


class IncompleteScorerSet(TuneForgeError, RuntimeError):
    """This validator cannot run the network's whole active scorer set; the message says what."""

    status = 503
    code = "incomplete_scorer_set"


@dataclass
class Loaded:
    """A scorer or penalty instance, or why it does not run on this validator."""

    name: str
    instance: Scorer | None
    not_run_reason: str = ""  # set when instance is None
    inactive: bool = False  # not run on any validator (the table says so), vs excluded here


@dataclass
class ScorerSet:
    """The scorers and penalties this validator runs, in report order, and what it lacks."""

    scorers: dict[str, Loaded]
    penalties: dict[str, Loaded]
    missing_models: dict[str, str] = field(default_factory=dict)  # required model -> status

    @property
    def excluded(self) -> dict[str, str]:
        """Active checks that could not be set up on this validator: name -> reason."""
        entries = {**self.scorers, **self.penalties}
        return {
            n: e.not_run_reason for n, e in entries.items() if e.instance is None and not e.inactive
        }

    @property
    def inactive(self) -> dict[str, str]:
        """Checks inactive network-wide: name -> reason."""
        entries = {**self.scorers, **self.penalties}
        return {n: e.not_run_reason for n, e in entries.items() if e.inactive}

    @property
    def degraded(self) -> bool:
        """True when this validator lacks part of the network's set (its results say so)."""
        return bool(self.excluded or self.missing_models)

    def problems(self) -> list[str]:
        found = [f"scorer {n}: {why}" for n, why in self.excluded.items()]
        found += [f"model {n}: {why}" for n, why in self.missing_models.items()]
        return found

    def require_complete(self) -> None:
        """Raise IncompleteScorerSet naming everything this validator lacks."""
        if self.degraded:
            raise IncompleteScorerSet("; ".join(self.problems()))


def _model_status(models: NeuralModels | None, name: str) -> str | None:
    """None when model `name` is loaded, else why not."""
    if models is None:
        return "not configured"
    return None if models.has(name) else models.reason(name)


def load(spec: CheckSpec, models: NeuralModels | None = None) -> Loaded:
    """Import and construct one check; what cannot be set up is excluded with the reason."""
    if not spec.active:
        return Loaded(spec.name, None, spec.inactive, inactive=True)
    module_name, class_name = spec.implementation.split(":")
    try:
        module = importlib.import_module(module_name)
        cls = getattr(module, class_name)
        if not (isinstance(cls, type) and issubclass(cls, Scorer)) or cls.name != spec.name:
            raise TypeError(f"{spec.implementation} is not the Scorer named {spec.name!r}")
        return Loaded(spec.name, cls(models=models))
    except ScorerUnavailable as exc:
        reason = str(exc) or "unavailable"
    except ModuleNotFoundError as exc:
        reason = f"module {exc.name} not found"
    except Exception as exc:  # an import-time crash: the set is incomplete, and says why
        reason = f"failed to load: {type(exc).__name__}: {exc}"
        logger.opt(exception=exc).warning("scorer {} failed to load", spec.name)
    logger.warning("{} cannot run on this validator: {}", spec.name, reason)
    return Loaded(spec.name, None, reason)


def network_spec(spec: CheckSpec, network: str, models: NeuralModels | None = None) -> CheckSpec:
    """The row as it holds on `network`: the preference row follows the consensus rule."""
    if spec.name != PREFERENCE:
        return spec
    head = getattr(models, "preference", None)
    config = getattr(head, "config", None)
    reason = preference_inactive_reason(
        network,
        getattr(config, "embedding", None),
        getattr(config, "heldout_accuracy", None),
        int(getattr(config, "num_train_pairs", 0) or 0),
        int(getattr(config, "num_heldout_pairs", 0) or 0),
    )
    return dataclasses.replace(spec, inactive=reason)


def load_scorer_set(models: NeuralModels | None = None, network: str = "") -> ScorerSet:
    """Every scorer and penalty of the table as it holds on `network` (no network: the table
    as written), plus the required models this validator lacks."""
    missing = {
        name: status
        for name in REQUIRED_MODELS
        if (status := _model_status(models, name)) is not None
    }
    return ScorerSet(
        scorers={spec.name: load(network_spec(spec, network, models), models) for spec in SCORERS},
        penalties={spec.name: load(spec, models) for spec in PENALTIES},
        missing_models=missing,
    )


def spec_of(name: str) -> CheckSpec:
    return CHECKS[name]

"""Where each scorer and penalty lives, and loading them with visible exclusion.

Adding a scorer is one file in `tuneforge/scoring/scorers/` plus one row here and one weight in
`weights.py`. A scorer whose module fails to import, or whose constructor raises
`ScorerUnavailable`, is EXCLUDED with its reason (weight 0, breakdown 0.0 + "excluded: ..."):
never a silent neutral score.
"""

from __future__ import annotations

import importlib
import inspect
from dataclasses import dataclass
from typing import Any

from loguru import logger

from tuneforge.scoring.base import ScorerUnavailable
from tuneforge.scoring.weights import PENALTY_NAMES, SCORER_NAMES

_SCORERS = "tuneforge.scoring.scorers"

SCORER_SPECS: dict[str, str] = {
    "clap": f"{_SCORERS}.clap:ClapScorer",
    "attribute": f"{_SCORERS}.attribute:AttributeScorer",
    "musicality": f"{_SCORERS}.musicality:MusicalityScorer",
    "melody": f"{_SCORERS}.melody:MelodyScorer",
    "structural": f"{_SCORERS}.structural:StructuralScorer",
    "production": f"{_SCORERS}.production:ProductionScorer",
    "neural_quality": f"{_SCORERS}.neural_quality:NeuralQualityScorer",
    "vocal": f"{_SCORERS}.vocal:VocalScorer",
    "quality": f"{_SCORERS}.quality:QualityScorer",
    "vocal_lyrics": f"{_SCORERS}.vocal_lyrics:VocalLyricsScorer",
    "mix_separation": f"{_SCORERS}.mix_separation:MixSeparationScorer",
    "timbral": f"{_SCORERS}.timbral:TimbralScorer",
    "learned_mos": f"{_SCORERS}.learned_mos:LearnedMosScorer",
    "diversity": f"{_SCORERS}.diversity:DiversityScorer",
    "speed": f"{_SCORERS}.speed:SpeedScorer",
    "preference": f"{_SCORERS}.preference:PreferenceScorer",
}

PENALTY_SPECS: dict[str, str] = {
    "duration_penalty": "tuneforge.scoring.penalties:DurationPenalty",
    "artifact_penalty": "tuneforge.scoring.penalties:ArtifactPenalty",
    "fad_penalty": "tuneforge.scoring.fad:FadPenalty",
    "fingerprint_penalty": "tuneforge.scoring.penalties:FingerprintPenalty",
}

assert tuple(SCORER_SPECS) == SCORER_NAMES, "registry and weight table disagree"
assert tuple(PENALTY_SPECS) == PENALTY_NAMES, "registry and penalty names disagree"


@dataclass
class Loaded:
    """A scorer or penalty instance, or the reason it is excluded."""

    name: str
    instance: Any | None
    excluded_reason: str = ""


def _find_class(module: Any, class_name: str, name: str, method: str) -> type:
    """The named class, else the one class in the module whose `name` attribute is `name`
    (so a scorer author's class name need not match the convention exactly)."""
    found = getattr(module, class_name, None)
    if inspect.isclass(found):
        return found
    for _, candidate in inspect.getmembers(module, inspect.isclass):
        if getattr(candidate, "name", None) == name and hasattr(candidate, method):
            return candidate
    raise ScorerUnavailable(f"{module.__name__} has no class {class_name} with name={name!r}")


def _instantiate(cls: type, models: Any) -> Any:
    """Construct with `models=` when the constructor takes it (neural scorers), else no args."""
    try:
        parameters = inspect.signature(cls).parameters
    except (TypeError, ValueError):
        parameters = {}
    if "models" in parameters:
        return cls(models=models)
    return cls()


def load(name: str, spec: str, method: str, models: Any = None) -> Loaded:
    """Import and construct one scorer/penalty; any failure becomes an excluded entry."""
    module_name, class_name = spec.split(":")
    try:
        module = importlib.import_module(module_name)
        cls = _find_class(module, class_name, name, method)
        return Loaded(name, _instantiate(cls, models))
    except ScorerUnavailable as exc:
        reason = str(exc) or "unavailable"
    except ModuleNotFoundError as exc:
        reason = f"module {exc.name} not found"
    except Exception as exc:  # an import-time crash in a scorer must not stop scoring
        reason = f"failed to load: {type(exc).__name__}: {exc}"
        logger.opt(exception=exc).warning("scorer {} failed to load", name)
    logger.info("{} excluded: {}", name, reason)
    return Loaded(name, None, reason)


def load_scorers(models: Any = None) -> dict[str, Loaded]:
    """All 16 scorers in report order."""
    return {name: load(name, SCORER_SPECS[name], "score", models) for name in SCORER_NAMES}


def load_penalties(models: Any = None) -> dict[str, Loaded]:
    """All 4 penalties in report order."""
    return {name: load(name, PENALTY_SPECS[name], "penalty", models) for name in PENALTY_NAMES}

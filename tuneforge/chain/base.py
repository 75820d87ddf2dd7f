"""The one small interface every role uses to read and write the chain (DESIGN.md §2)."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol, runtime_checkable

from tuneforge.core.errors import TuneForgeError


@dataclass(frozen=True)
class Neuron:
    uid: int
    hotkey: str
    coldkey: str
    stake: float  # the subnet's stake units (alpha on a dynamic-TAO subnet), not TAO
    validator_permit: bool
    axon: str | None  # "ip:port", None when not serving
    last_update: int  # block of the neuron's last weight update


@dataclass(frozen=True)
class Metagraph:
    """A frozen snapshot of one subnet's neurons at one block."""

    netuid: int
    block: int
    neurons: tuple[Neuron, ...]
    _by_hotkey: dict[str, Neuron] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_hotkey", {n.hotkey: n for n in self.neurons})

    def by_hotkey(self, hotkey: str) -> Neuron | None:
        return self._by_hotkey.get(hotkey)

    def by_uid(self, uid: int) -> Neuron | None:
        return next((n for n in self.neurons if n.uid == uid), None)

    def serving(self) -> list[Neuron]:
        """Neurons that published an axon address."""
        return [n for n in self.neurons if n.axon]


class ChainErrorCode(StrEnum):
    RATE_LIMITED = "RATE_LIMITED"
    NOT_REGISTERED = "NOT_REGISTERED"
    NO_PERMIT = "NO_PERMIT"
    INVALID = "INVALID"
    UNAVAILABLE = "UNAVAILABLE"


class ChainError(TuneForgeError):
    """A chain operation refused or failed; `code` says which, `remediation` what to do."""

    status = 503

    def __init__(self, code: ChainErrorCode, message: str, remediation: str = "") -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.remediation = remediation


@dataclass(frozen=True)
class SetWeightsResult:
    """What the chain accepted. With commit-reveal on, the weights were committed (hidden) and
    the chain itself reveals them at `reveal_round` (a drand round on Bittensor, a block on
    LocalChain); nothing more has to be sent for them to count."""

    block: int
    uids: tuple[int, ...]
    weights: tuple[float, ...]
    committed: bool = False
    reveal_round: int | None = None


@runtime_checkable
class ChainView(Protocol):
    """Chain access bound to one netuid and (for writes) one wallet."""

    netuid: int

    @property
    def block(self) -> int: ...

    @property
    def weights_rate_limit(self) -> int: ...

    @property
    def weights_version(self) -> int:
        """The subnet's `weights_version` hyperparameter: weights set with a lower
        `version_key` are refused by the chain."""
        ...

    def metagraph(self) -> Metagraph: ...

    def uid_of(self, hotkey: str) -> int | None: ...

    def blocks_since_last_update(self, uid: int) -> int: ...

    def set_weights(self, weights: dict[int, float], version_key: int) -> SetWeightsResult:
        """Normalise and set weights; raises ChainError (RATE_LIMITED, NOT_REGISTERED, ...)."""
        ...

    def serve(self, ip: str, port: int) -> None:
        """Publish this wallet's axon address (rate-limited by the chain: RATE_LIMITED)."""
        ...

    def close(self) -> None: ...

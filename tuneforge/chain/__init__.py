"""Chain access: `ChainView` and its two implementations (real Bittensor, LocalChain test double)."""

from tuneforge.chain.base import (
    ChainError,
    ChainErrorCode,
    ChainView,
    Metagraph,
    Neuron,
    SetWeightsResult,
)

__all__ = [
    "ChainError",
    "ChainErrorCode",
    "ChainView",
    "Metagraph",
    "Neuron",
    "SetWeightsResult",
]

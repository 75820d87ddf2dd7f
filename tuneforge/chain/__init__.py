"""Chain access: `ChainView` and its implementations (real Bittensor, LocalChain double)."""

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

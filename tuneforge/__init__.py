"""TuneForge: decentralized AI music generation on Bittensor (subnet 234)."""

__version__ = "0.1.0"

"""Password-less temporary wallets for tests (real sr25519 keys, nothing mocked)."""

from __future__ import annotations

from pathlib import Path

import bittensor as bt

from tuneforge.core.wallets import create_wallet


def make_wallet(tmp_path: Path, name: str) -> bt.Wallet:
    """A fresh wallet `name` (coldkey + hotkey "default") under `tmp_path/wallets`."""
    return create_wallet(name, "default", str(tmp_path / "wallets"))

"""Open the operator's Bittensor wallet, or make a password-less one for localnet and tests."""

from __future__ import annotations

from pathlib import Path

import bittensor as bt
from loguru import logger

from tuneforge.core.config import expand_path
from tuneforge.core.errors import TuneForgeError


class WalletError(TuneForgeError):
    """A wallet could not be opened; the message names the file and how to fix it."""

    code = "wallet"


def _wallet_dir(name: str, path: str) -> Path:
    return expand_path(path) / name


def load_wallet(name: str, hotkey: str, path: str) -> bt.Wallet:
    """Open an existing wallet and unlock its hotkey (the key every role signs with).

    The coldkey stays locked: roles only need the hotkey, and registration is done with btcli.
    Raises WalletError when the hotkey file is missing, unreadable or password-protected.
    """
    wallet = bt.Wallet(name=name, hotkey=hotkey, path=str(expand_path(path)))
    hotkey_file = wallet.hotkey_file
    if not hotkey_file.exists_on_device():
        raise WalletError(
            f"hotkey {hotkey!r} of wallet {name!r} not found at {hotkey_file.path}; create it "
            f"with `btcli wallet new-hotkey -w {name} -H {hotkey} "
            f"--wallet-path {path}` or pass the right --wallet.name/--wallet.hotkey/--wallet.path"
        )
    if not hotkey_file.is_readable():
        raise WalletError(f"hotkey file {hotkey_file.path} is not readable by this user")
    if hotkey_file.is_encrypted():
        raise WalletError(
            f"hotkey file {hotkey_file.path} is password-protected; a long-running neuron needs "
            "an unencrypted hotkey (the coldkey may stay encrypted)"
        )
    try:
        keypair = wallet.hotkey
    except Exception as exc:  # keyfile decoding errors come in several SDK types
        raise WalletError(f"hotkey file {hotkey_file.path} could not be decoded: {exc}") from exc
    logger.info("wallet {}/{} loaded, hotkey {}", name, hotkey, keypair.ss58_address)
    return wallet


def create_wallet(name: str, hotkey: str, path: str) -> bt.Wallet:
    """A password-less coldkey + hotkey for localnet and tests (never for real funds).

    Idempotent: keys that already exist are kept, so a restarted localnet keeps its hotkeys and
    therefore its uids. Mnemonics are never printed.
    """
    wallet = bt.Wallet(name=name, hotkey=hotkey, path=str(expand_path(path)))
    if not wallet.coldkeypub_file.exists_on_device():
        wallet.create_new_coldkey(use_password=False, suppress=True, overwrite=False)
    if not wallet.hotkey_file.exists_on_device():
        wallet.create_new_hotkey(use_password=False, suppress=True, overwrite=False)
    logger.debug(
        "password-less wallet {}/{} at {} (hotkey {})",
        name,
        hotkey,
        _wallet_dir(name, path),
        wallet.hotkey.ss58_address,
    )
    return wallet

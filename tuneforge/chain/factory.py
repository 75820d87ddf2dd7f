"""Pick the ChainView for a network name: LocalChain for "localnet", Bittensor otherwise."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tuneforge.chain.base import ChainError, ChainErrorCode, ChainView
from tuneforge.core.config import expand_path

if TYPE_CHECKING:
    import bittensor as bt

LOCALNET = "localnet"


def open_chain(
    network: str,
    netuid: int,
    wallet: bt.Wallet | None = None,
    localnet_path: str = "",
) -> ChainView:
    """Open chain access for `netuid`; writes (weights, serve) act as the wallet's hotkey.

    "localnet" opens the LocalChain test double at `localnet_path` (which must have been
    initialised with `tuneforge chain init`); any other name (finney, test, local, ws://...)
    opens the real chain through the Bittensor SDK.
    """
    hotkey = wallet.hotkey.ss58_address if wallet is not None else None
    if network == LOCALNET:
        from tuneforge.chain.local import LocalChain

        if not localnet_path:
            raise ChainError(
                ChainErrorCode.INVALID,
                "network 'localnet' needs a LocalChain file",
                "pass --localnet.path FILE (create it with `tuneforge chain init`)",
            )
        return LocalChain(expand_path(localnet_path), netuid=netuid, hotkey=hotkey)
    from tuneforge.chain.bittensor_chain import BittensorChain

    return BittensorChain(network, netuid=netuid, wallet=wallet)

"""localnet's LocalChain: its file, the wallets registered on it, and the weights set there."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import bittensor as bt

# Blocks of 0.5 s and a 4-block weights rate limit: weights are set after the first round and
# again about every round, so a two-round demo shows the rate limit working, not blocking.
BLOCK_TIME_S = 0.5
WEIGHTS_RATE_LIMIT = 4
VALIDATOR_STAKE = 10_000.0


@dataclass
class Registered:
    """Who is on the chain for this run: the validator's wallet and uid, the miners' hotkeys."""

    validator_wallet: bt.Wallet
    validator_uid: int
    miner_hotkeys: list[str]


# With --commit-reveal: weights are revealed 4 blocks (2 s) after their commit.
REVEAL_PERIOD_BLOCKS = 4


def register_network(
    path: Path, netuid: int, wallets_path: str, miners: int, commit_reveal: bool = False
) -> Registered:
    """Create (or reopen) the LocalChain at `path` and register a validator and `miners` miners;
    `commit_reveal` switches the subnet to commit-reveal weights (kept off otherwise)."""
    from tuneforge.chain.local import LocalChain
    from tuneforge.core.wallets import create_wallet

    # An existing chain file (a reused --workdir) keeps its genesis and hence its block
    # numbers; register() below is idempotent, so uids survive restarts.
    chain = LocalChain.create(
        path,
        netuid=netuid,
        block_time_s=BLOCK_TIME_S,
        weights_rate_limit=WEIGHTS_RATE_LIMIT,
    )
    try:
        chain.set_commit_reveal(commit_reveal, REVEAL_PERIOD_BLOCKS)
        validator = create_wallet("validator", "default", wallets_path)
        validator_uid = chain.register(
            validator.hotkey.ss58_address,
            validator.coldkeypub.ss58_address,
            stake=VALIDATOR_STAKE,
            validator_permit=True,
        )
        miner_hotkeys: list[str] = []
        for index in range(miners):
            wallet = create_wallet(f"miner{index}", "default", wallets_path)
            chain.register(wallet.hotkey.ss58_address, wallet.coldkeypub.ss58_address)
            miner_hotkeys.append(wallet.hotkey.ss58_address)
        # A reused --workdir may hold miners of an earlier, larger run: their axons point at
        # dead ports, so they stop serving (re-registering without an axon) and are not asked.
        current = {validator.hotkey.ss58_address, *miner_hotkeys}
        for neuron in chain.metagraph().neurons:
            if neuron.hotkey not in current and neuron.axon:
                chain.register(neuron.hotkey, neuron.coldkey, neuron.stake, neuron.validator_permit)
    finally:
        chain.close()
    return Registered(validator, validator_uid, miner_hotkeys)


def chain_weights(
    chain_path: Path, netuid: int, validator_uid: int, reveal_wait_s: float = 0.0
) -> dict[str, Any]:
    """The weights `validator_uid` has on chain, how often it set them and when last. With
    commit-reveal, waits up to `reveal_wait_s` for a pending commit to be revealed first."""
    from tuneforge.chain.local import LocalChain

    with LocalChain(chain_path, netuid=netuid) as chain:
        deadline = time.monotonic() + reveal_wait_s
        while validator_uid in chain.pending_commits() and time.monotonic() < deadline:
            time.sleep(0.1)
        pending = chain.pending_commits().get(validator_uid)
        weights = chain.weights().get(validator_uid, {})
        count = chain.weight_set_count(validator_uid)
        neuron = chain.metagraph().by_uid(validator_uid)
        commit_reveal = chain.commit_reveal
    return {
        "validator_uid": validator_uid,
        "count": count,
        "last_update_block": neuron.last_update if neuron else None,
        "weights": {str(uid): w for uid, w in weights.items()},
        "commit_reveal": commit_reveal,
        "pending_reveal_block": pending,
    }

"""`tuneforge chain ...`: create, administer and inspect LocalChain files (the chain test double).

The real chain is administered with `btcli`; these commands exist for the local network demo
and tests.
"""

from __future__ import annotations

import json
from typing import Any

import typer

from tuneforge.core.config import DEFAULT_NETUID

app = typer.Typer(no_args_is_help=True)

PATH_OPTION = typer.Option(..., "--localnet.path", help="LocalChain SQLite file")
NETUID_OPTION = typer.Option(DEFAULT_NETUID, "--netuid", help="subnet uid")


@app.callback()
def quiet_library_logs() -> None:
    """These commands print their own results: LocalChain's DEBUG/INFO logs (e.g. "opened …
    as reader") would only interleave with them, so only warnings and errors are logged."""
    import sys

    from loguru import logger

    logger.remove()
    logger.add(sys.stderr, level="WARNING")


def _fail(exc: Exception) -> typer.Exit:
    from tuneforge.chain.base import ChainError

    typer.echo(f"error: {exc}", err=True)
    if isinstance(exc, ChainError) and exc.remediation:
        typer.echo(f"hint: {exc.remediation}", err=True)
    return typer.Exit(code=1)


@app.command("init")
def init_command(
    path: str = PATH_OPTION,
    netuid: int = NETUID_OPTION,
    block_time: float = typer.Option(12.0, "--block-time", help="seconds per block"),
    weights_rate_limit: int = typer.Option(
        100, "--weights-rate-limit", help="blocks between two weight sets of one validator"
    ),
    commit_reveal: bool = typer.Option(
        False, "--commit-reveal", metavar="", help="weights are committed, revealed later"
    ),
    reveal_period: int = typer.Option(
        10, "--reveal-period", help="blocks from a commit to its reveal", min=1
    ),
) -> None:
    """Create a LocalChain file (an existing one is kept as is)."""
    from tuneforge.chain.base import ChainError
    from tuneforge.chain.local import LocalChain
    from tuneforge.core.config import expand_path

    try:
        chain = LocalChain.create(
            expand_path(path),
            netuid=netuid,
            block_time_s=block_time,
            weights_rate_limit=weights_rate_limit,
            commit_reveal=commit_reveal,
            reveal_period_blocks=reveal_period,
        )
    except ChainError as exc:
        raise _fail(exc) from None
    typer.echo(
        f"LocalChain (test double) {chain.path}: netuid {chain.netuid}, "
        f"{chain.block_time_s:g}s blocks, weights rate limit {chain.weights_rate_limit} blocks, "
        f"commit-reveal {'on' if chain.commit_reveal else 'off'}, block {chain.block}"
    )
    chain.close()


@app.command("register")
def register_command(
    path: str = PATH_OPTION,
    hotkey: str = typer.Option(..., "--hotkey", help="hotkey ss58 address"),
    coldkey: str = typer.Option("", "--coldkey", help="coldkey ss58 address"),
    stake: float = typer.Option(0.0, "--stake", help="stake (the subnet's alpha)"),
    validator_permit: bool = typer.Option(
        False, "--validator-permit", metavar="", help="grant a validator permit"
    ),
    axon: str | None = typer.Option(None, "--axon", help="published axon IP:PORT"),
    netuid: int = NETUID_OPTION,
) -> None:
    """Register (or update) a hotkey on a LocalChain file; prints its uid."""
    from tuneforge.chain.base import ChainError
    from tuneforge.chain.local import LocalChain
    from tuneforge.core.config import expand_path

    try:
        with LocalChain(expand_path(path), netuid=netuid) as chain:
            uid = chain.register(
                hotkey,
                coldkey=coldkey,
                stake=stake,
                validator_permit=validator_permit,
                axon=axon,
            )
    except ChainError as exc:
        raise _fail(exc) from None
    typer.echo(f"registered {hotkey} as uid {uid}")


def _snapshot(chain: Any) -> dict[str, Any]:
    graph = chain.metagraph()
    weights = chain.weights()
    return {
        "netuid": graph.netuid,
        "block": graph.block,
        "block_time_s": chain.block_time_s,
        "weights_rate_limit": chain.weights_rate_limit,
        "neurons": [
            {
                "uid": n.uid,
                "hotkey": n.hotkey,
                "coldkey": n.coldkey,
                "stake": n.stake,
                "validator_permit": n.validator_permit,
                "axon": n.axon,
                "last_update": n.last_update,
                "weight_sets": chain.weight_set_count(n.uid),
            }
            for n in graph.neurons
        ],
        "weights": {str(v): {str(uid): w for uid, w in row.items()} for v, row in weights.items()},
    }


@app.command("show")
def show_command(
    path: str = PATH_OPTION,
    netuid: int = NETUID_OPTION,
    as_json: bool = typer.Option(False, "--json", metavar="", help="print JSON"),
) -> None:
    """Show neurons (stake, permit, axon) and the weights each validator set."""
    from tuneforge.chain.base import ChainError
    from tuneforge.chain.local import LocalChain
    from tuneforge.core.config import expand_path

    try:
        with LocalChain(expand_path(path), netuid=netuid) as chain:
            snapshot = _snapshot(chain)
    except ChainError as exc:
        raise _fail(exc) from None
    if as_json:
        typer.echo(json.dumps(snapshot, indent=2))
        return
    typer.echo(
        f"LocalChain (test double) netuid {snapshot['netuid']} at block {snapshot['block']} "
        f"({snapshot['block_time_s']:g}s blocks, weights rate limit "
        f"{snapshot['weights_rate_limit']})"
    )
    typer.echo(f"{'uid':>4}  {'hotkey':<48}  {'stake':>12}  vp  {'axon':<22}  last_update  sets")
    for n in snapshot["neurons"]:
        typer.echo(
            f"{n['uid']:>4}  {n['hotkey']:<48}  {n['stake']:>12.3f}  "
            f"{'Y' if n['validator_permit'] else '-':<2}  {n['axon'] or '-':<22}  "
            f"{n['last_update']:>11}  {n['weight_sets']:>4}"
        )
    for validator_uid, row in snapshot["weights"].items():
        pairs = ", ".join(f"{uid}: {w:.4f}" for uid, w in row.items())
        typer.echo(f"weights of uid {validator_uid}: {pairs}")

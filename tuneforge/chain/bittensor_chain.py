"""BittensorChain: ChainView over the real chain through the Bittensor SDK 11 (DESIGN.md §2).

One blocking `bt.Subtensor(network)` is opened per instance and reused for the life of the
process (the SDK keeps its connection on a private event-loop thread, and its transport
reconnects and resubmits plain requests by itself). When the transport gives up (the endpoint
stayed down past its retries), that client is dead: the next call opens a fresh one, so a
long-running neuron outlives an endpoint restart. SDK failures are translated into
`ChainError` with a code and an operator-facing remediation at this one edge.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from typing import TypeVar

import bittensor as bt
from bittensor.error_map import ErrorCode
from bittensor.result import BittensorError, ConnectionNotReady, RpcConnectionError
from loguru import logger

from tuneforge.chain.base import (
    ChainError,
    ChainErrorCode,
    Metagraph,
    Neuron,
    SetWeightsResult,
)
from tuneforge.chain.rules import format_axon, normalize_weights
from tuneforge.core.config import DEFAULT_NETUID

T = TypeVar("T")

REGISTER_HINT = (
    "register the hotkey with scripts/register.sh or "
    "`btcli subnets register --netuid {netuid} --wallet.name NAME --wallet.hotkey HOTKEY`"
)
_RETRY_BLOCKS = re.compile(r"Retry in ~(\d+) blocks")

_CODE_MAP: dict[ErrorCode, ChainErrorCode] = {
    ErrorCode.RATE_LIMITED: ChainErrorCode.RATE_LIMITED,
    ErrorCode.NOT_REGISTERED: ChainErrorCode.NOT_REGISTERED,
    ErrorCode.NOT_AUTHORIZED: ChainErrorCode.NO_PERMIT,
    ErrorCode.INVALID_ARGUMENT: ChainErrorCode.INVALID,
    ErrorCode.SUBNET_NOT_EXISTS: ChainErrorCode.INVALID,
    ErrorCode.UNIT_MISMATCH: ChainErrorCode.INVALID,
    ErrorCode.LIMIT_EXCEEDED: ChainErrorCode.RATE_LIMITED,
    ErrorCode.TOO_EARLY: ChainErrorCode.RATE_LIMITED,
}


# Failures that say the connection itself is gone (not that the chain refused something); the
# SDK turns its transport's "gave up after retries" into RpcConnectionError at its boundary.
_TRANSPORT_ERRORS = (RpcConnectionError, ConnectionNotReady, OSError, TimeoutError)


def translate_sdk_error(exc: BaseException, netuid: int) -> ChainError:
    """The ChainError (code + remediation) for an SDK or transport failure."""
    if isinstance(exc, ChainError):
        return exc
    if isinstance(exc, _TRANSPORT_ERRORS):
        return ChainError(
            ChainErrorCode.UNAVAILABLE,
            f"chain endpoint unreachable: {exc}",
            "check --network (finney | test | local | ws://host:port) and connectivity",
        )
    if isinstance(exc, bt.ChainError):
        code = _CODE_MAP.get(exc.code, ChainErrorCode.UNAVAILABLE)
        remediation = exc.remediation
        if code == ChainErrorCode.RATE_LIMITED:
            match = _RETRY_BLOCKS.search(exc.message)
            if match:
                remediation = f"wait {match.group(1)} blocks, then set weights again"
        elif code == ChainErrorCode.NOT_REGISTERED:
            remediation = REGISTER_HINT.format(netuid=netuid)
        elif code == ChainErrorCode.NO_PERMIT:
            remediation = "the hotkey needs a validator permit (more stake) on this subnet"
        return ChainError(code, exc.message, remediation)
    if isinstance(exc, BittensorError):
        # Client-side refusals: all-zero or negative weights, malformed arguments.
        return ChainError(ChainErrorCode.INVALID, str(exc))
    return ChainError(ChainErrorCode.UNAVAILABLE, f"{type(exc).__name__}: {exc}")


class BittensorChain:
    """ChainView over a Bittensor network; writes are signed by `wallet`'s hotkey."""

    def __init__(
        self,
        network: str,
        netuid: int = DEFAULT_NETUID,
        wallet: bt.Wallet | None = None,
        *,
        subtensor: bt.Subtensor | None = None,
        connect: Callable[[], bt.Subtensor] | None = None,
    ) -> None:
        """`connect` opens a client (default `bt.Subtensor(network)`); it is called again after
        the transport gave up. Tests pass `lambda: bt.Subtensor("local", substrate=<fake>)`, or
        one `subtensor` to use as is."""
        self.network = network
        self.netuid = netuid
        self.wallet = wallet
        if connect is None:
            connect = (lambda: subtensor) if subtensor is not None else _opener(network)
        self._connect: Callable[[], bt.Subtensor] = connect
        self.reconnects = 0
        # The SDK's blocking client connects lazily on first use; one caller at a time keeps
        # concurrent first calls (e.g. from worker threads) from racing that connect.
        self._lock = threading.RLock()
        self._sub: bt.Subtensor | None = self._open()

    def _open(self) -> bt.Subtensor:
        try:
            return self._connect()
        except (BittensorError, ValueError) as exc:
            raise ChainError(
                ChainErrorCode.INVALID,
                f"unknown network {self.network!r}: {exc}",
                "use finney, test, local or a ws:// / wss:// endpoint",
            ) from exc

    def _client(self) -> bt.Subtensor:
        """The live client, opening a fresh one when the last one's transport gave up."""
        if self._sub is None:
            self._sub = self._open()
            self.reconnects += 1
            logger.info(
                "chain client reopened for {} (reconnect {})", self.network, self.reconnects
            )
        return self._sub

    def _drop_client(self) -> None:
        sub, self._sub = self._sub, None
        if sub is not None:
            try:
                sub.close()
            except Exception as exc:  # a dead connection may fail to close; it is dropped anyway
                logger.debug("closing the dead chain client: {}", exc)

    def _call(self, what: str, fn: Callable[[bt.Subtensor], T]) -> T:
        try:
            with self._lock:
                return fn(self._client())
        except ChainError:
            raise
        except Exception as exc:  # translated into a typed ChainError right here
            error = translate_sdk_error(exc, self.netuid)
            if isinstance(exc, _TRANSPORT_ERRORS):
                with self._lock:
                    self._drop_client()
            logger.warning("chain {} failed on netuid {}: {}", what, self.netuid, error)
            raise error from exc

    def _signer(self, action: str) -> bt.Wallet:
        if self.wallet is None:
            raise ChainError(
                ChainErrorCode.INVALID,
                f"cannot {action}: chain opened without a wallet",
                "open it with a wallet (open_chain(..., wallet=...))",
            )
        return self.wallet

    @property
    def block(self) -> int:
        return int(self._call("block", lambda sub: sub.block))

    @property
    def weights_rate_limit(self) -> int:
        value = self._call(
            "weights_rate_limit", lambda sub: sub.hyperparameters.weights_rate_limit(self.netuid)
        )
        return int(value or 0)

    @property
    def weights_version(self) -> int:
        """The subnet's WeightsVersionKey (the SDK has no named read for it)."""
        item = bt.storage.SubtensorModule.WeightsVersionKey
        value = self._call("weights_version", lambda sub: sub.query(item, [self.netuid]))
        return int(value or 0)

    def metagraph(self) -> Metagraph:
        """The subnet's neurons; `stake` is the SDK's total_stake (the subnet's stake units)."""
        graph = self._call(
            "metagraph", lambda sub: sub.subnets.metagraph(self.netuid, commitments=False)
        )
        if graph is None:
            raise ChainError(
                ChainErrorCode.INVALID,
                f"subnet {self.netuid} does not exist on {self.network}",
                "check --netuid and --network",
            )
        neurons = tuple(
            Neuron(
                uid=int(n.uid),
                hotkey=str(n.hotkey),
                coldkey=str(n.coldkey),
                stake=float(n.total_stake.amount),
                validator_permit=bool(n.validator_permit),
                axon=n.axon,
                last_update=int(n.last_update),
            )
            for n in graph.neurons
        )
        return Metagraph(netuid=self.netuid, block=int(graph.block), neurons=neurons)

    def uid_of(self, hotkey: str) -> int | None:
        uid = self._call("uid", lambda sub: sub.neurons.uid(hotkey, self.netuid))
        return None if uid is None else int(uid)

    def blocks_since_last_update(self, uid: int) -> int:
        value = self._call(
            "blocks_since_last_update",
            lambda sub: sub.epochs.blocks_since_last_update(self.netuid, uid),
        )
        if value is None:
            raise ChainError(
                ChainErrorCode.NOT_REGISTERED, f"uid {uid} does not exist on netuid {self.netuid}"
            )
        return int(value)

    def set_weights(self, weights: dict[int, float], version_key: int) -> SetWeightsResult:
        """Set weights through `bt.SetWeights`, which clips, u16-quantises, picks plain or
        commit-reveal submission and preflights registration and the rate limit."""
        wallet = self._signer("set weights")
        normalized = normalize_weights(weights)
        intent = bt.SetWeights(netuid=self.netuid, weights=normalized, version_key=version_key)
        block = self.block
        result = self._call("set_weights", lambda sub: self._execute(sub, intent, wallet))
        self._raise_unless_success(result, "set_weights")
        # With commit-reveal on, the SDK sent a timelocked commit and says when the chain will
        # reveal it (a drand round); the chain reveals it itself, so a restart loses nothing.
        reveal_round = result.data.get("reveal_round") if result.data else None
        logger.info(
            "{} weights on {} uids, netuid {}, block ~{}{}",
            "committed" if reveal_round is not None else "set",
            len(normalized),
            self.netuid,
            block,
            f", revealed at drand round {reveal_round}" if reveal_round is not None else "",
        )
        return SetWeightsResult(
            block=block,
            uids=tuple(normalized),
            weights=tuple(normalized.values()),
            committed=reveal_round is not None,
            reveal_round=int(reveal_round) if reveal_round is not None else None,
        )

    def serve(self, ip: str, port: int) -> None:
        wallet = self._signer("serve an axon")
        format_axon(ip, port)  # validates before anything is signed
        intent = bt.ServeAxon(netuid=self.netuid, ip=ip, port=int(port))
        result = self._call("serve_axon", lambda sub: self._execute(sub, intent, wallet))
        self._raise_unless_success(result, "serve_axon")
        logger.info("published axon {}:{} on netuid {}", ip, port, self.netuid)

    @staticmethod
    def _execute(
        sub: bt.Subtensor, intent: bt.SetWeights | bt.ServeAxon, wallet: bt.Wallet
    ) -> bt.ExtrinsicResult:
        # Inclusion in a block is enough to know the call succeeded; waiting for finality
        # would hold the validator loop ~2 more blocks for nothing it uses.
        # The SDK leaves `execute` unannotated; its documented return is an ExtrinsicResult.
        result: bt.ExtrinsicResult = sub.execute(  # type: ignore[no-untyped-call]
            intent, wallet, wait_for_inclusion=True, wait_for_finalization=False
        )
        return result

    def _raise_unless_success(self, result: bt.ExtrinsicResult, what: str) -> None:
        if result.success:
            return
        if result.error is not None:
            raise translate_sdk_error(result.error, self.netuid)
        raise ChainError(ChainErrorCode.UNAVAILABLE, f"{what} failed: {result.message}")

    def close(self) -> None:
        with self._lock:
            self._drop_client()


def _opener(network: str) -> Callable[[], bt.Subtensor]:
    return lambda: bt.Subtensor(network)

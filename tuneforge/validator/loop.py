"""The validator loop: refresh the metagraph, run rounds, set weights when the chain allows.

Chain calls run on the loop's own thread: a ChainView is one reused client that is not promised
to be thread-safe, and each call is short (scoring, the long part, runs in a worker thread).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from loguru import logger

from tuneforge.chain.base import ChainError, ChainErrorCode, ChainView, Metagraph
from tuneforge.chain.metagraph import MetagraphCache
from tuneforge.core.protocol import SPEC_VERSION_KEY
from tuneforge.validator.config import ValidatorSettings
from tuneforge.validator.metrics import ValidatorMetrics
from tuneforge.validator.round import RoundReport, RoundRunner
from tuneforge.validator.state import ValidatorState
from tuneforge.validator.weight_rule import compute_weights

if TYPE_CHECKING:
    from tuneforge.validator.jobs import JobWorker


class ValidatorLoop:
    def __init__(
        self,
        settings: ValidatorSettings,
        hotkey: str,
        chain: ChainView,
        state: ValidatorState,
        runner: RoundRunner,
        jobs: JobWorker | None = None,
        on_round: Callable[[], None] = lambda: None,
    ) -> None:
        self.settings = settings
        self.hotkey = hotkey
        self.chain = chain
        self.state = state
        self.runner = runner
        self.metrics = runner.metrics if runner is not None else ValidatorMetrics()
        # Customer jobs are served between rounds, never during one: the engine's history
        # buffer belongs to the round in flight.
        self.jobs = jobs
        self.on_round = on_round  # e.g. wake the publisher: a round just queued publications
        # Refreshed on the loop's thread (the view is the caller's, see the module docstring).
        self._metagraph = MetagraphCache(chain, on_refresh=self._on_metagraph)
        self._warned_permit = False
        # Only the latest round is kept, without its audio (`RoundReport.without_audio`).
        self.last_report: RoundReport | None = None
        pending = state.weights.pending_commit()
        if pending is not None:
            # Timelocked commits are revealed by the chain itself: a restart has nothing to
            # resend, and the recorded block keeps the rate limit honoured.
            logger.info(
                "weights committed at block {} are pending; the chain reveals them at round {}",
                pending.get("block"),
                pending.get("reveal_round"),
            )

    # -- metagraph --------------------------------------------------------------------------

    def metagraph(self, force: bool = False) -> Metagraph:
        """The cached snapshot, refreshed every `metagraph_refresh_blocks` blocks."""
        if force:
            return self._metagraph.refresh()
        return self._metagraph.get(max_age_blocks=self.settings.neuron.metagraph_refresh_blocks)

    def _on_metagraph(self, metagraph: Metagraph) -> None:
        """A fresh snapshot: drop EMAs of miners that left, and say why weights may not count."""
        dropped = self.state.sync_registrations({(n.uid, n.hotkey) for n in metagraph.neurons})
        for uid, hotkey in dropped:
            logger.info("uid {} hotkey {} left the subnet: its EMA is dropped", uid, hotkey)
        self.metrics.set_emas(self.state.miners.emas())
        me = metagraph.by_hotkey(self.hotkey)
        if me is None:
            logger.warning(
                "validator hotkey {} is not registered on netuid {}: rounds still run, but "
                "weights cannot be set (register it: scripts/register.sh)",
                self.hotkey,
                metagraph.netuid,
            )
        elif not me.validator_permit and not self._warned_permit:
            self._warned_permit = True
            logger.warning(
                "uid {} has no validator permit: scoring continues, but weights will not "
                "count until the permit is granted (more stake)",
                me.uid,
            )

    # -- weights ----------------------------------------------------------------------------

    def current_weights(self) -> dict[int, float]:
        """The weight rule over EMAs of miners still registered under the same hotkey."""
        metagraph = self.metagraph()
        emas: dict[int, float] = {}
        for (uid, hotkey), ema in self.state.miners.emas().items():
            neuron = metagraph.by_uid(uid)
            if neuron is not None and neuron.hotkey == hotkey and hotkey != self.hotkey:
                emas[uid] = ema
        neuron_settings = self.settings.neuron
        return compute_weights(
            emas, neuron_settings.weights_exponent, neuron_settings.weights_top_k
        )

    def weights_due(self, uid: int) -> tuple[bool, str]:
        """Whether the rate limit allows setting weights now (checked fresh, never cached)."""
        limit = self.chain.weights_rate_limit
        block = self.chain.block
        since = self.chain.blocks_since_last_update(uid)
        never_set = block - since <= 0  # last_update 0: the chain has no weights from us yet
        last = self.state.weights.last_outcome() or {}
        our_block = last.get("block") if last.get("ok") else None
        if our_block is not None and block - int(our_block) < limit:
            return False, f"set at block {our_block}, limit {limit} blocks (now {block})"
        if never_set or since >= limit:
            return True, ""
        return False, f"{since} blocks since last update, limit {limit}"

    def maybe_set_weights(self) -> dict[str, Any] | None:
        """Set weights when due; every outcome except 'not due yet' is recorded in the state."""
        uid = self.chain.uid_of(self.hotkey)
        if uid is None:
            return self._record(
                False,
                code=ChainErrorCode.NOT_REGISTERED,
                message=f"hotkey {self.hotkey} is not registered",
                remediation="register the validator hotkey (scripts/register.sh), then restart",
            )
        due, why = self.weights_due(uid)
        if not due:
            logger.debug("weights not due: {}", why)
            return None
        stale = self.version_refusal()
        if stale is not None:
            return stale
        weights = self.current_weights()
        if not weights:
            return self._record(False, code="NO_WEIGHTS", message="no miner has a positive EMA")
        rounds = self.state.rounds.completed()
        last = self.state.weights.last_outcome() or {}
        if last.get("ok") and last.get("round") == rounds and _same(last.get("weights"), weights):
            # Nothing was learned since: re-sending frozen weights (e.g. while every round
            # fails) only spends fees and hides that this validator has stopped scoring.
            logger.debug("weights unchanged since block {}: not re-set", last.get("block"))
            return None
        try:
            result = self.chain.set_weights(weights, version_key=SPEC_VERSION_KEY)
        except ChainError as exc:
            remediation = exc.remediation or {
                ChainErrorCode.RATE_LIMITED: "wait for the weights rate limit to pass",
                ChainErrorCode.NOT_REGISTERED: "register the validator hotkey",
                ChainErrorCode.NO_PERMIT: "stake more to earn a validator permit",
            }.get(exc.code, "check the chain endpoint and the wallet")
            return self._record(
                False, code=str(exc.code), message=exc.message, remediation=remediation
            )
        weights_set = {str(u): w for u, w in zip(result.uids, result.weights, strict=True)}
        if result.committed:
            pending = {
                "block": result.block,
                "reveal_round": result.reveal_round,
                "round": rounds,
                "weights": weights_set,
            }
            return self._record(
                True,
                pending=pending,
                block=result.block,
                round=rounds,
                weights=weights_set,
                committed=True,
                reveal_round=result.reveal_round,
            )
        if self.state.weights.pending_commit() is not None:
            # commit-reveal was switched off on the subnet
            self.state.weights.clear_pending_commit()
        return self._record(True, block=result.block, round=rounds, weights=weights_set)

    def version_refusal(self) -> dict[str, Any] | None:
        """A recorded refusal while our `version_key` is below the subnet's `weights_version`.

        The chain would drop such weights (IncorrectWeightVersionKey) — with commit-reveal,
        silently at reveal time — so none are sent and the operator is told to upgrade.
        """
        required = self.chain.weights_version
        if required <= SPEC_VERSION_KEY:
            self.metrics.version_stale.set(0)
            return None
        self.metrics.version_stale.set(1)
        logger.error(
            "this validator is out of date: version_key {} < the subnet's weights_version {}; "
            "weights are NOT set until it is upgraded",
            SPEC_VERSION_KEY,
            required,
        )
        return self._record(
            False,
            code="STALE_VERSION",
            message=f"version_key {SPEC_VERSION_KEY} is below the subnet's weights_version "
            f"{required}",
            remediation="upgrade TuneForge (git pull && pip install -e .), then restart the "
            "validator",
            version_key=SPEC_VERSION_KEY,
            weights_version=required,
        )

    def _record(
        self, ok: bool, pending: dict[str, Any] | None = None, **fields: Any
    ) -> dict[str, Any]:
        outcome = {"ok": ok, "at": time.time(), **fields}
        if "code" in outcome:
            outcome["code"] = str(outcome["code"])
        self.metrics.weights.labels(outcome="ok" if ok else outcome.get("code", "error")).inc()
        if pending is not None:
            self.state.weights.record_outcome(outcome, pending)
        else:
            self.state.weights.record_outcome(outcome)
        if ok:
            logger.info(
                "weights {} on {} uids at block {}",
                "committed" if pending is not None else "set",
                len(outcome["weights"]),
                fields["block"],
            )
        else:
            logger.warning(
                "weights not set: {} {} — {}",
                outcome.get("code"),
                outcome.get("message"),
                outcome.get("remediation", ""),
            )
        return outcome

    # -- the loop ---------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Rounds until `stop` is set or `max_rounds` rounds have completed in this process."""
        neuron_settings = self.settings.neuron
        done = 0
        while not stop.is_set():
            try:
                metagraph = self.metagraph()
            except ChainError as exc:
                logger.warning("metagraph unavailable: {} ({})", exc, exc.remediation)
                await self._pause(stop, max(1.0, neuron_settings.round_interval_s))
                continue
            round_task = asyncio.ensure_future(self.runner.run_round(metagraph))
            stop_task = asyncio.ensure_future(stop.wait())
            await asyncio.wait({round_task, stop_task}, return_when=asyncio.FIRST_COMPLETED)
            stop_task.cancel()
            if not round_task.done():
                # Stopping mid-round: nothing of it was committed, so dropping it loses nothing.
                round_task.cancel()
                await asyncio.gather(round_task, return_exceptions=True)
                logger.info("stopping: the unfinished round was abandoned (not counted)")
                break
            report = await self._round_result(round_task)
            if report is not None:
                self.last_report = report.without_audio()
                done += 1
                self.on_round()
            try:
                self.maybe_set_weights()
            except ChainError as exc:
                logger.warning("chain unavailable while setting weights: {}", exc)
            if neuron_settings.max_rounds and done >= neuron_settings.max_rounds:
                break
            # An empty or failed round waits at least a second: no busy loop on an empty subnet.
            pause = neuron_settings.round_interval_s
            await self._idle(stop, pause if report is not None else max(1.0, pause))

    async def _idle(self, stop: asyncio.Event, seconds: float) -> None:
        """The pause between rounds; with customer jobs on, poll them at least once in it and
        then every `jobs_poll_interval_s` until the next round is due."""
        if self.jobs is None:
            await self._pause(stop, seconds)
            return
        end = time.monotonic() + seconds
        while not stop.is_set():
            await self.serve_jobs()
            remaining = end - time.monotonic()
            if remaining <= 0:
                return
            await self._pause(stop, min(remaining, self.settings.api.jobs_poll_interval_s))

    async def serve_jobs(self) -> int:
        """One claim-and-serve pass; failures are logged, never fatal to the loop."""
        if self.jobs is None:
            return 0
        try:
            return await self.jobs.poll_once(self.metagraph())
        except ChainError as exc:
            logger.warning("jobs skipped, chain error: {} ({})", exc, exc.remediation)
        except Exception:
            logger.exception("serving customer jobs failed")
        return 0

    @staticmethod
    async def _pause(stop: asyncio.Event, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=seconds)

    @staticmethod
    async def _round_result(task: asyncio.Future[RoundReport | None]) -> RoundReport | None:
        try:
            return task.result()
        except ChainError as exc:
            logger.warning("round skipped, chain error: {} ({})", exc, exc.remediation)
        except Exception:
            # A scoring bug must not kill a validator; the round is not counted and retried.
            logger.exception("round failed; nothing of it was stored")
        return None


def _same(recorded: Any, weights: dict[int, float]) -> bool:
    """Whether the uids recorded as set are the ones about to be set. With no round in between,
    EMAs are unchanged, so equal uids mean equal weights; a miner that left changes the set."""
    return isinstance(recorded, dict) and set(recorded) == {str(u) for u in weights}

"""Localnet's rounds: wait for the validator to score `--rounds` rounds and set weights,
saying each round and weight outcome as it happens, then let its publications drain."""

from __future__ import annotations

import time
from typing import Any

from tuneforge.localnet.observe import current_status, validator_running, validator_status
from tuneforge.localnet.options import POLL_S, LocalnetError
from tuneforge.localnet.report import fmt_score
from tuneforge.localnet.runtime import Runtime


def run_rounds(rt: Runtime) -> None:
    first = rt.wait_for(
        "the validator's status endpoint",
        lambda: validator_status(rt) or not validator_running(rt),
        180.0,
    )
    # A reused --workdir keeps the validator's state: count this run's rounds only.
    if isinstance(first, dict):
        rt.rounds_before = int(first.get("rounds_completed") or 0)
    rt.say(f"validator up; running {rt.options.rounds} rounds")
    rt.wait_for(f"{rt.options.rounds} rounds", _RoundWatch(rt).done)


class _RoundWatch:
    """One poll of the rounds: says what is new, True once the rounds and a weight outcome are
    in, LocalnetError if the validator stopped short."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self.target = rt.rounds_before + rt.options.rounds
        self.seen = rt.rounds_before
        self.last_outcome_at: Any = None

    def done(self) -> bool:
        rt = self.rt
        running = validator_running(rt)
        # Once it has finished its rounds and exited, its own CLI reads the state it left.
        status = current_status(rt, running)
        done = int(status.get("rounds_completed") or 0)
        if done > self.seen:
            scores = ", ".join(
                f"uid {m['uid']} {fmt_score(m.get('last_final_score'))}"
                for m in status.get("miners", [])
            )
            rt.say(f"round {done} scored: {scores}")
            self.seen = done
        outcome = status.get("last_weights") or {}
        self._say_weights(outcome)
        if done >= self.target and outcome:
            return True
        if not running:
            raise LocalnetError(
                f"the validator stopped after {done - rt.rounds_before} of "
                f"{rt.options.rounds} rounds; see {rt.workdir / 'logs' / 'validator.log'}"
            )
        return False

    def _say_weights(self, outcome: dict[str, Any]) -> None:
        if not outcome or outcome.get("at") == self.last_outcome_at:
            return
        self.last_outcome_at = outcome.get("at")
        if outcome.get("ok"):
            verb = "committed" if outcome.get("committed") else "set on chain"
            self.rt.say(f"weights {verb} at block {outcome.get('block')}")
        else:
            self.rt.say(f"weights not set: {outcome.get('code')} {outcome.get('message')}")


def settle_publications(rt: Runtime, limit_s: float = 20.0, stall_s: float = 5.0) -> None:
    """Give a working validator→API publisher time to drain its outbox (bounded).

    Returns at once when the validator has exited or its outbox is empty, and as soon as the
    outbox stops shrinking for `stall_s` (nothing is sending, or it is behind).
    """
    stop = time.monotonic() + min(limit_s, rt.remaining())
    smallest, since = None, time.monotonic()
    while validator_running(rt) and time.monotonic() < stop:
        status = validator_status(rt) or {}
        size = int(status.get("outbox_size") or 0)
        if size == 0:
            return
        if smallest is None or size < smallest:
            smallest, since = size, time.monotonic()
        elif time.monotonic() - since >= stall_s:
            return
        time.sleep(POLL_S * 2)

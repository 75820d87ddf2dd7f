"""`tuneforge localnet --votes N` end to end: a scripted customer votes, the validator trains
its preference head on the votes, and is restarted with it until a round is scored with it."""

from __future__ import annotations

import math
import signal
from typing import Any

from tuneforge.localnet.launch import start_validator
from tuneforge.localnet.observe import current_status, final_status, validator_running
from tuneforge.localnet.options import LocalnetError
from tuneforge.localnet.processes import STOP_GRACE_S
from tuneforge.localnet.report import active_scorers
from tuneforge.localnet.runtime import Runtime
from tuneforge.localnet.votes import VOTE_CLIP_SECONDS, scripted_votes, train_on_votes


def votes_and_training(rt: Runtime) -> dict[str, Any]:
    """`--votes N`: a scripted customer votes, then the validator trains on the votes."""
    variants = min(3, rt.options.miners)
    jobs = math.ceil(rt.options.votes / math.comb(variants, 2))
    needed = jobs * variants * math.ceil(VOTE_CLIP_SECONDS / 3)
    rt.tuneforge_cli(
        "api", "add-credits", rt.customer["account_id"], str(needed),
        "--database-url", f"sqlite:///{rt.workdir / 'api.db'}",
    )  # fmt: skip
    cast = scripted_votes(
        rt.net.api_url,
        rt.customer["api_key"],
        votes=rt.options.votes,
        variants=variants,
        wait_s=max(60.0, 20.0 * jobs),
        wait_for=rt.wait_for,
        say=rt.say,
    )
    clap = rt.net.models_found.get("clap")
    embedding = ["--embedding", "clap", "--scoring.clap", clap] if clap else ["--embedding", "dsp"]
    rt.say("validator: training the preference head on the votes")
    trained = train_on_votes(
        rt.tuneforge_cli,
        [
            "--api.url", rt.net.api_url,
            "--wallet.name", "validator", "--wallet.hotkey", "default",
            "--wallet.path", str(rt.workdir / "wallets"),
            "--out", str(rt.workdir / "validator" / "preference"),
            "--cache", str(rt.workdir / "validator" / "preference-audio"),
            *embedding,
        ],
    )  # fmt: skip
    return {**cast, "training": trained, "scoring": score_with_preference(rt, trained)}


def score_with_preference(rt: Runtime, trained: dict[str, Any]) -> dict[str, Any]:
    """Restart the validator with the head it trained and wait for a round scored with it.

    The scorer set (the preference row included, by the consensus rule of D42) is decided when
    the validator starts, never per clip: a newly installed head counts from a start.
    """
    checkpoint = trained.get("checkpoint")
    if not trained.get("active") or not checkpoint:
        return {"active": False, "reason": "no head was trained, the validator is unchanged"}
    if not rt.net.validator_has("--scoring.preference"):
        return {"active": False, "reason": "the validator has no --scoring.preference"}
    done_before = _restart_validator_with(rt, str(checkpoint))

    def scored() -> dict[str, Any] | None:
        running = validator_running(rt)
        status = current_status(rt, running)
        if int(status.get("rounds_completed") or 0) > done_before:
            return status
        if not running:
            raise LocalnetError(
                "the validator stopped before scoring a round with the preference head; "
                f"see {rt.workdir / 'logs' / 'validator.log'}"
            )
        return None

    status = rt.wait_for("a round scored with the preference head", scored, 240.0)
    return _preference_outcome(rt, status)


def _restart_validator_with(rt: Runtime, preference_dir: str) -> int:
    """Stop the validator and start it again loading `preference_dir`; the rounds it had done."""
    old = next(c for c in rt.supervisor.children if c.name == "validator")
    rt.say("validator: restarting with the trained preference head (--scoring.preference)")
    old.signal_group(signal.SIGTERM)
    old.reap(STOP_GRACE_S)
    done_before = int(final_status(rt).get("rounds_completed") or 0)  # its state file
    rt.supervisor.children.remove(old)
    rt.net.preference_dir = preference_dir
    start_validator(rt)
    return done_before


def _preference_outcome(rt: Runtime, status: dict[str, Any]) -> dict[str, Any]:
    """Whether every answering miner got a preference score in this round, and its values."""
    miners = [m for m in status.get("miners", []) if m["hotkey"] in rt.net.miner_hotkeys]
    values = {
        int(m["uid"]): (m.get("score_breakdown") or {}).get("preference")
        for m in miners
        if m.get("error") is None
    }
    active = bool(values) and all(v is not None for v in values.values())
    reasons = {str((m.get("reasons") or {}).get("preference", "")) for m in miners}
    rt.say(
        "round {} scored with preference {}".format(
            status.get("rounds_completed"), "active" if active else "NOT active"
        )
    )
    return {
        "active": active,
        "round": status.get("rounds_completed"),
        "values": values,
        "active_scorers": active_scorers(miners),
        "reason": "" if active else "; ".join(sorted(r for r in reasons if r)),
    }

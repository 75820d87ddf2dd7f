"""Localnet's report: what the run produced, gathered from the validator's status, the chain's
weights, the API's publications and the run itself into one dict (report.py formats it)."""

from __future__ import annotations

from typing import Any

from tuneforge.localnet.api_client import published
from tuneforge.localnet.chain_setup import BLOCK_TIME_S, REVEAL_PERIOD_BLOCKS
from tuneforge.localnet.chain_setup import chain_weights as read_chain_weights
from tuneforge.localnet.models import MODEL_SCORERS
from tuneforge.localnet.observe import final_status
from tuneforge.localnet.report import (
    active_scorers,
    curl_snippet,
    excluded_reasons,
    leaderboard,
    network_commands,
)
from tuneforge.localnet.runtime import Runtime


def build_report(rt: Runtime, customer: dict[str, Any]) -> dict[str, Any]:
    status = final_status(rt)
    weights = _weights_set(rt, status)
    chain_weights = {int(u): w for u, w in weights["weights"].items()}
    ours = [m for m in status.get("miners", []) if m["hotkey"] in rt.net.miner_hotkeys]
    api = rt.net.api_url
    return {
        "rounds": int(status.get("rounds_completed") or 0) - rt.rounds_before,
        "rounds_total": int(status.get("rounds_completed") or 0),
        "miners": rt.options.miners,
        "backend": rt.options.backend,
        "leaderboard": leaderboard(ours, chain_weights),
        "weights_set": weights,
        "published": published(
            api, rt.wallet_validator, status, rt.net.validator_has("--api.publish")
        ),
        "customer_job": customer,
        # Pages a person can open (the API root and /api/v1 are no pages: 404).
        "urls": {
            "leaderboard": f"{api}/leaderboard",
            "docs": f"{api}/docs",
            "redoc": f"{api}/redoc",
            "health": f"{api}/health",
            "validator_status": rt.net.status_url,
            "api": api,
        },
        "customer": dict(rt.customer),
        "curl": curl_snippet(api, rt.customer.get("api_key", ""), rt.options.duration),
        "commands": [] if rt.own_workdir else network_commands(str(rt.workdir)),
        "active_scorers": active_scorers(ours),
        "excluded_scorers": _excluded_scorers(rt, status),
        "scoring_models": {
            **{n: f"loaded from {p}" for n, p in rt.net.models_found.items()},
            **{n: r for n, r in rt.net.models_missing.items()},
        },
        "processes": rt.supervisor.pids(),
        "miner_variants": rt.net.miner_has("--generation.variant"),
        "workdir": str(rt.workdir),
        "workdir_removed": rt.own_workdir,  # a temp dir goes when the network stops
        "running": rt.options.keep_running,
        "wall_s": round(rt.elapsed(), 2),
    }


def _weights_set(rt: Runtime, status: dict[str, Any]) -> dict[str, Any]:
    """The weights the chain holds from this validator (else its last outcome, why not)."""
    # A commit is revealed REVEAL_PERIOD_BLOCKS after it was made: wait for that (bounded).
    reveal_wait = (REVEAL_PERIOD_BLOCKS + 2) * BLOCK_TIME_S if rt.options.commit_reveal else 0
    weights = read_chain_weights(
        rt.net.chain_path,
        rt.options.netuid,
        rt.net.validator_uid,
        reveal_wait_s=min(reveal_wait, max(0.0, rt.remaining())),
    )
    if not weights["count"]:
        weights["last_outcome"] = status.get("last_weights")
    return weights


def _excluded_scorers(rt: Runtime, status: dict[str, Any]) -> dict[str, str]:
    """Scorers that did not run, with the engine's reason and, for a model not found, why."""
    excluded = excluded_reasons(status.get("miners", []))
    for model, reason in rt.net.models_missing.items():
        for scorer in MODEL_SCORERS[model]:
            engine_reason = excluded.get(scorer)
            if engine_reason is not None or not excluded:
                why = f"{model} model {reason}"
                excluded[scorer] = f"{engine_reason} ({why})" if engine_reason else why
    return excluded

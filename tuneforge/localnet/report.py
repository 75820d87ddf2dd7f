"""Reading results: the leaderboard, excluded scorers and the human-readable report."""

from __future__ import annotations

import shlex
import textwrap
from collections.abc import Mapping
from typing import Any

from tuneforge.scoring.weights import SCORER_NAMES

TOP_BOTTOM = 3
# Polls of the customer's curl loop, 2 s apart: longer than any localnet job takes.
CURL_POLLS = 150
COLUMNS_LEGEND = (
    "columns: ema = the validator's moving average of final scores (weights follow it); "
    "weight = this miner's share of the weights on chain; last = its final score in the last "
    "round (composite × penalties, 0–1); top/bottom = its best and worst scorers in that answer"
)


def excluded_reasons(miners: list[dict[str, Any]]) -> dict[str, str]:
    """{scorer or penalty: reason} for everything that did not run (null) in the last results."""
    excluded: dict[str, str] = {}
    for miner in miners:
        values = {**(miner.get("score_breakdown") or {}), **(miner.get("penalties") or {})}
        reasons = miner.get("reasons") or {}
        for name, value in values.items():
            if value is None and miner.get("error") is None:
                why = str(reasons.get(name, "not measured"))
                excluded.setdefault(name, why.removeprefix("not measured on this validator: "))
    return dict(sorted(excluded.items()))


def active_scorers(miners: list[dict[str, Any]]) -> list[str]:
    """Scorers that gave a value (non-null) to some answer of the last results, in table order."""
    ran = {
        name
        for miner in miners
        if miner.get("error") is None
        for name, value in (miner.get("score_breakdown") or {}).items()
        if value is not None
    }
    return [name for name in SCORER_NAMES if name in ran]


def preference_lines(preference: Mapping[str, Any]) -> list[str]:
    """The `--votes` outcome: votes cast, the head's accuracy and weight, and whether the
    validator then scored a round with it."""
    lines = [f"scripted votes: {preference.get('votes')} over {preference.get('jobs')} requests"]
    training = preference.get("training") or {}
    lines.append(f"  {training.get('summary') or training.get('error') or 'not trained'}")
    scoring = preference.get("scoring")
    if not scoring:
        return lines
    if scoring.get("active"):
        accuracy, weight = training.get("heldout_accuracy"), training.get("weight")
        share = float(training.get("share") or 0.0) * 100
        values = ", ".join(
            f"uid {uid} {fmt_score(value)}" for uid, value in (scoring.get("values") or {}).items()
        )
        lines.append(
            f"  preference scorer ACTIVE in round {scoring.get('round')}: held-out accuracy "
            f"{fmt_score(accuracy)}, weight {fmt_score(weight, 2)} ({share:.1f}% of the score); "
            f"values: {values}"
        )
    else:
        lines.append(f"  preference scorer not active: {scoring.get('reason') or 'unknown'}")
    return lines


def leaderboard(
    miners: list[dict[str, Any]], chain_weights: Mapping[int, float]
) -> list[dict[str, Any]]:
    """Rows sorted by EMA: on-chain weight, last result, and the best and worst scorers of the
    breakdown (scorers that did not run are null and left out of both lists)."""
    rows = []
    for miner in miners:
        breakdown: dict[str, float | None] = miner.get("score_breakdown") or {}
        ranked = sorted(
            ((name, float(value)) for name, value in breakdown.items() if value is not None),
            key=lambda item: (-item[1], item[0]),
        )
        rows.append(
            {
                "uid": int(miner["uid"]),
                "hotkey": miner["hotkey"],
                "ema": float(miner.get("ema") or 0.0),
                "weight": float(chain_weights.get(int(miner["uid"]), 0.0)),
                "last_final_score": miner.get("last_final_score"),
                "top_scorers": dict(ranked[:TOP_BOTTOM]),
                "bottom_scorers": dict(ranked[::-1][:TOP_BOTTOM]),
                "score_breakdown": breakdown,
                "penalties": miner.get("penalties") or {},
                "rounds_queried": miner.get("rounds_queried"),
                "error": miner.get("error"),
            }
        )
    return sorted(rows, key=lambda r: (-r["ema"], r["uid"]))


def curl_snippet(api_url: str, api_key: str, duration_s: float) -> str:
    """Shell lines a customer can paste: request a track, wait for it, save it as track.wav.

    Plain curl plus python3 (already needed for TuneForge) to read JSON; the poll is bounded
    so a stopped network ends the loop instead of hanging the shell."""
    auth = '-H "Authorization: Bearer $TF_KEY"'
    body = shlex.quote(
        '{"prompt": "Calm lo-fi beat with warm piano and soft drums", '
        f'"duration_seconds": {duration_s:g}}}'
    )
    read_id = "python3 -c 'import json,sys; print(json.load(sys.stdin)[\"request_id\"])'"
    read_url = (
        'python3 -c \'import json; print(json.load(open("status.json"))'
        '["tracks"][0]["audio_url"])\''
    )
    return "\n".join(
        [
            f"export TF_API={api_url} TF_KEY={api_key}",
            f'ID=$(curl -fsS "$TF_API/api/v1/music/generate" {auth} '
            f'-H "Content-Type: application/json" -d {body} | {read_id})',
            f"for i in $(seq {CURL_POLLS}); do "
            f'curl -fsS "$TF_API/api/v1/music/status/$ID" {auth} -o status.json && '
            'grep -Eq \'"status": ?"(completed|failed)"\' status.json && break; '
            "sleep 2; done",
            f'curl -fsS "$TF_API$({read_url})" {auth} -o track.wav && echo "saved track.wav"',
        ]
    )


def network_commands(workdir: str) -> list[str]:
    """`tuneforge` commands that address this localnet's database, state and chain."""
    quoted = shlex.quote(workdir)
    return [
        f"tuneforge validator status --workdir {quoted}",
        f"tuneforge api list-accounts --workdir {quoted}",
        f"tuneforge api create-account --email you@example.com --credits 100 --workdir {quoted}",
        f"tuneforge api create-key ACCOUNT_ID --workdir {quoted}",
        f"tuneforge chain show --localnet.path {shlex.quote(workdir + '/chain.db')}",
    ]


def fmt_score(value: Any, digits: int = 3) -> str:
    return "-" if value is None else f"{float(value):.{digits}f}"


def format_report(report: dict[str, Any]) -> str:
    """The human-readable leaderboard, weights, API facts and URLs."""
    lines = [
        f"TuneForge localnet: {report['miners']} miner(s) ({report['backend']}), "
        f"{report['rounds']} rounds in {report['wall_s']:.1f}s",
        "",
        f"{'uid':>4}  {'hotkey':<14}  {'ema':>6}  {'weight':>6}  {'last':>6}  "
        "top scorers / bottom scorers",
    ]
    for row in report["leaderboard"]:
        hotkey = row["hotkey"]
        short = f"{hotkey[:6]}…{hotkey[-6:]}" if len(hotkey) > 14 else hotkey
        top = ", ".join(f"{n} {v:.2f}" for n, v in row["top_scorers"].items())
        bottom = ", ".join(f"{n} {v:.2f}" for n, v in row["bottom_scorers"].items())
        lines.append(
            f"{row['uid']:>4}  {short:<14}  {fmt_score(row['ema'])}  {fmt_score(row['weight'])}  "
            f"{fmt_score(row['last_final_score'])}  top: {top}"
        )
        lines.append(f"{'':>46}bottom: {bottom}")
        if row.get("error"):
            lines.append(f"{'':>46}error: {row['error']}")
    lines.extend(textwrap.wrap(COLUMNS_LEGEND, width=100, subsequent_indent="  "))
    weights = report["weights_set"]
    if weights.get("count"):
        lines.append(
            f"\nweights: set {weights['count']} time(s) by validator uid {weights['validator_uid']}"
            f" on {len(weights['weights'])} uids (LocalChain test double)"
        )
        if weights.get("commit_reveal"):
            pending = weights.get("pending_reveal_block")
            lines.append(
                "weights: commit-reveal — shown as revealed by the chain"
                + (f"; the latest commit reveals at block {pending}" if pending else "")
            )
    else:
        outcome = weights.get("last_outcome") or {}
        why = f"{outcome.get('code')}: {outcome.get('message')}" if outcome else "never attempted"
        lines.append(f"\nweights: not set — {why}")
    if not report.get("miner_variants", True):
        lines.append(
            "note: the miners' backend has no --generation.variant, so all miners return the "
            "same audio and the copy (fingerprint) penalty zeroes every one of them"
        )
    published = report["published"]
    lines.append(
        f"published to the API: {published['count']} results"
        + (f" — {published['note']}" if published.get("note") else "")
    )
    job = report["customer_job"]
    if job.get("status") == "skipped":
        lines.append(f"customer job: skipped — {job.get('reason')}")
    else:
        tracks = job.get("tracks") or []
        lines.append(
            f"customer job {job.get('request_id')}: {job.get('status')}, "
            f"{job.get('credits_charged')} credits, {len(tracks)} track(s)"
            + (f" — {job['error']}" if job.get("error") else "")
        )
    preference = report.get("preference")
    if preference is not None:
        lines.extend(preference_lines(preference))
    if report.get("active_scorers"):
        lines.append(
            f"active scorers ({len(report['active_scorers'])}): "
            + ", ".join(report["active_scorers"])
        )
    if report["excluded_scorers"]:
        lines.append("excluded scorers (never pretended):")
        for name, reason in report["excluded_scorers"].items():
            lines.append(f"  {name}: {reason}")
    lines.extend(usage_lines(report))
    return "\n".join(lines)


def usage_lines(report: dict[str, Any]) -> list[str]:
    """Where to look and what to run: the URLs, the customer key, the curl, the commands —
    with a re-run hint when the network is already gone."""
    running = bool(report.get("running"))
    workdir = str(report["workdir"])
    removed = bool(report.get("workdir_removed")) and not running
    lines = [""]
    if running:
        lines.append("The network is up until Ctrl-C:")
    else:
        again = "--keep-running" + ("" if not removed else " --workdir ./localnet")
        lines.append(
            f"The network has stopped. To use these, run it again with {again} "
            "(it stays up until Ctrl-C):"
        )
    labels = {
        "leaderboard": "leaderboard",
        "docs": "API docs",
        "redoc": "ReDoc",
        "health": "API health",
        "validator_status": "validator",
        "api": "API base",
    }
    for name, url in report["urls"].items():
        lines.append(f"  {labels.get(name, name):<12} {url}")
    customer = report.get("customer") or {}
    if customer.get("api_key") and not removed:  # a removed database holds no key
        lines.append(
            f"  {'API key':<12} {customer['api_key']}  (account {customer.get('account_id')}, "
            f"in {workdir}/api.db)"
        )
    if running and report.get("curl"):
        lines += ["", "Generate and download a track (paste into a shell):", report["curl"]]
    if not removed:
        lines += ["", "Commands for this network:"]
        lines += [f"  {command}" for command in network_commands(workdir)]
    lines.append("")
    lines.append(f"{'workdir':<12} {workdir}" + ("  (removed)" if removed else ""))
    return lines

"""Reading results: the leaderboard, excluded scorers and the human-readable report."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

TOP_BOTTOM = 3


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
    weights = report["weights_set"]
    if weights.get("count"):
        lines.append(
            f"\nweights: set {weights['count']} time(s) by validator uid {weights['validator_uid']}"
            f" on {len(weights['weights'])} uids (LocalChain test double)"
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
    if report["excluded_scorers"]:
        lines.append("excluded scorers (never pretended):")
        for name, reason in report["excluded_scorers"].items():
            lines.append(f"  {name}: {reason}")
    lines.append("")
    state = "up" if report.get("running") else "stopped now"
    for name, url in report["urls"].items():
        lines.append(f"{name:<12} {url}  ({state})")
    removed = report.get("workdir_removed") and not report.get("running")
    lines.append(f"{'workdir':<12} {report['workdir']}" + ("  (removed)" if removed else ""))
    return "\n".join(lines)

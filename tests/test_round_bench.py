"""`tuneforge bench round` runs whole validator rounds against loopback miners and reports
their cost and the state they leave."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from tuneforge.tools.cli import app


def test_bench_round_queries_every_miner_and_reports_cost_and_state_growth() -> None:
    args = ["bench", "round", "--miners", "2", "--duration", "6", "--rounds", "1"]
    result = CliRunner().invoke(app, [*args, "--scoring.workers", "1", "--publish", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout.strip().splitlines()[-1])
    [measured] = report["rounds"]
    assert measured["round"] == 2 and measured["answered"] == 2
    assert measured["wall_s"] > 0 and measured["cpu_s"] > 0 and measured["peak_pss_mb"] > 0
    # the kernel's peak RSS of the round is at least what the sampler saw of the same process
    assert measured["peak_rss_validator_mb"] >= 0.9 * measured["peak_pss_validator_mb"] > 0
    assert measured["history_growth_kb"] > 0  # each answer left its memory in the state
    # each miner sends its own clip again: a replay of the first round, caught by the history
    assert measured["copies_flagged"] == 2
    assert report["state_bytes_per_miner"] > 0
    # publishing: two rounds of two results and their answers (6 s of 32 kHz stereo) queued
    assert report["publish"] and report["outbox_bytes"] > 4 * 6 * 32_000 * 2 * 2

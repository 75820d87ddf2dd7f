"""`tuneforge bench api` runs a real API process and reports both endpoints and their ratio."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from tuneforge.tools.cli import app


@pytest.mark.slow
def test_bench_api_reports_signed_and_health_throughput_and_latency() -> None:
    result = CliRunner().invoke(
        app, ["bench", "api", "--seconds", "0.5", "--concurrency", "4", "--json"]
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout.strip().splitlines()[-1])
    for name in ("health", "scores_best_signed"):
        stats = report[name]
        assert stats["requests"] > 0 and stats["errors"] == 0, stats
        assert 0 < stats["p50_ms"] <= stats["p99_ms"]
    assert report["rps_ratio_signed_over_health"] == pytest.approx(
        report["scores_best_signed"]["rps"] / report["health"]["rps"], rel=0.01
    )

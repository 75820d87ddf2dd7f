"""End to end over loopback: LocalChain, three real synth miners, one validator, two rounds."""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import resource
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from tests.helpers.state_tools import peek
from tests.helpers.validator_net import ValidatorNet, make_validator_net, synth_miners
from tuneforge.scoring.weights import PENALTIES
from tuneforge.tools.cli import app as tuneforge_cli
from tuneforge.validator.loop import ValidatorLoop
from tuneforge.validator.state import ValidatorState

pytestmark = pytest.mark.slow


@dataclass
class Run:
    net: ValidatorNet
    loop: ValidatorLoop
    state: ValidatorState
    miner_hotkeys: list[str]
    emas_after_round: list[dict[tuple[int, str], float]]
    weight_counts_after_round: list[int]
    round_seconds: list[float]
    peak_rss_mb: float


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    net = make_validator_net(tmp_path_factory.mktemp("e2e"), weights_rate_limit=500)
    with synth_miners(net, 3) as wallets:
        settings = net.settings(publish=True, max_rounds=1, sample_size=16)
        loop, state, client = net.build(settings)
        emas, counts, seconds = [], [], []

        async def two_rounds() -> None:
            try:
                for _ in range(2):
                    await loop.run(asyncio.Event())
                    assert loop.last_report is not None
                    seconds.append(round(loop.last_report.seconds, 2))
                    emas.append(state.miners.emas())
                    counts.append(net.chain.weight_set_count(net.uid))
            finally:
                await client.aclose()

        asyncio.run(two_rounds())
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"\nround wall time with 3 synth miners: {seconds} s; process peak RSS {peak:.0f} MB")
        yield Run(
            net, loop, state, [w.hotkey.ss58_address for w in wallets], emas, counts, seconds, peak
        )
        state.close()


def test_every_miner_gets_a_result_with_the_full_breakdown(run: Run) -> None:
    assert run.state.rounds.completed() == 2
    miners = {m.hotkey: m for m in run.state.miners.all()}
    assert set(miners) == set(run.miner_hotkeys)
    for miner in miners.values():
        result = miner.last_result or {}
        assert result["error"] is None
        assert len(result["score_breakdown"]) == 16
        assert set(result["penalties"]) == {p.name for p in PENALTIES}
        assert 0.0 < result["final_score"] <= 1.0
        assert result["query"]["code"] is None and result["query"]["bytes_read"] > 0
        assert miner.rounds_queried == 2


def test_emas_move_with_each_round(run: Run) -> None:
    first, second = run.emas_after_round
    assert set(first) == set(second) and len(first) == 3
    for key in first:
        assert 0.0 < first[key] < second[key] <= 1.0  # newcomers start at 0 and climb


def test_weights_are_set_once_and_not_retried_inside_the_rate_limit(run: Run) -> None:
    weights = run.net.chain.weights()[run.net.uid]
    miner_uids = {run.net.chain.uid_of(h) for h in run.miner_hotkeys}
    assert set(weights) == miner_uids
    assert math.isclose(sum(weights.values()), 1.0, rel_tol=1e-6)
    # Round 2 ran inside the 500-block limit: no second attempt, no RATE_LIMITED outcome.
    assert run.weight_counts_after_round == [1, 1]
    outcome = run.state.weights.last_outcome() or {}
    assert outcome["ok"] is True
    assert {int(u) for u in outcome["weights"]} == miner_uids


def test_each_round_is_queued_for_publication_with_its_audio(run: Run) -> None:
    items = peek(run.state, limit=100)
    rounds = [i for i in items if i.kind == "round_result"]
    audio = {i.payload["track_id"]: i for i in items if i.kind == "track_audio"}
    assert len(rounds) == 2 and len(audio) == 6
    assert rounds[0].payload["round_id"] != rounds[1].payload["round_id"]
    for item in rounds:
        results = item.payload["results"]
        assert {r["miner_hotkey"] for r in results} == set(run.miner_hotkeys)
        for result in results:
            assert len(result["score_breakdown"]) == 16
            blob = audio[result["track_id"]].blob or b""
            assert hashlib.sha256(blob).hexdigest() == result["audio_sha256"]
            assert blob[:4] == b"RIFF"


def test_status_cli_shows_each_miner_and_the_weight_outcome(run: Run) -> None:
    runner = CliRunner()
    result = runner.invoke(
        tuneforge_cli, ["validator", "status", "--state", str(run.net.state_path), "--json"]
    )
    assert result.exit_code == 0, result.output
    snapshot: dict[str, Any] = json.loads(result.output)
    assert snapshot["rounds_completed"] == 2
    assert snapshot["last_weights"]["ok"] is True
    assert {m["hotkey"] for m in snapshot["miners"]} == set(run.miner_hotkeys)
    assert math.isclose(sum(m["weight"] for m in snapshot["miners"]), 1.0, rel_tol=1e-6)
    for miner in snapshot["miners"]:
        assert len(miner["score_breakdown"]) == 16 and miner["ema"] > 0
    text = runner.invoke(tuneforge_cli, ["validator", "status", "--state", str(run.net.state_path)])
    assert text.exit_code == 0
    assert "rounds completed: 2" in text.output and "last weights: set at block" in text.output
    assert all(h in text.output for h in run.miner_hotkeys)


def test_status_cli_refuses_a_missing_state_file(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        tuneforge_cli, ["validator", "status", "--state", str(tmp_path / "nope.db")]
    )
    assert result.exit_code == 2

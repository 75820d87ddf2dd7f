"""Prometheus /metrics on the validator's status port, scraped after a real round."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.helpers.metrics_scrape import label_values, parse, scrape, value
from tests.helpers.miner_server import serve_app
from tests.helpers.validator_fake_miners import (
    fake_miner_app,
    make_fake_miners,
    register_fake_miners,
)
from tests.helpers.validator_net import make_validator_net, run_one_round
from tuneforge.core.metrics import render
from tuneforge.scoring.base import (
    Challenge,
    RoundContext,
    Scorer,
    ScoreResult,
    ScoringHistory,
)
from tuneforge.scoring.clip import Clip
from tuneforge.scoring.engine import ScoringEngine
from tuneforge.scoring.registry import Loaded
from tuneforge.validator.status import StatusServer


def test_metrics_after_a_round_count_outcomes_emas_weights_and_the_outbox(tmp_path: Path) -> None:
    net = make_validator_net(tmp_path)
    miners = make_fake_miners(tmp_path, ["good", "error_500"])
    with serve_app(fake_miner_app(miners)) as miner_url:
        uids = register_fake_miners(net.chain, miners, miner_url.removeprefix("http://"))
        # Publishing on, API unreachable and no publisher running: the round stays queued.
        loop, state, client = net.build(net.settings(publish=True, max_rounds=1))
        loop.metrics.watch_outbox(state.outbox.depth)
        status = StatusServer(net.state_path, 0, loop.metrics.registry)
        port = status.start()
        try:
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
                before = scrape(http)
                assert value(before, "tuneforge_validator_rounds_total") == 0

                run_one_round(loop, client)
                m = scrape(http)
                assert value(m, "tuneforge_validator_rounds_total") == 1
                assert value(m, "tuneforge_validator_round_seconds_count") == 1
                assert value(m, "tuneforge_validator_round_seconds_sum") > 0
                assert value(m, "tuneforge_validator_scoring_seconds_count", purpose="round") == 1
                queries = "tuneforge_validator_queries_total"
                assert value(m, queries, purpose="round", outcome="ok") == 1
                assert value(m, queries, purpose="round", outcome="http_status") == 1
                good, bad = miners.hotkey("good"), miners.hotkey("error_500")
                ema = "tuneforge_validator_miner_ema"
                assert value(m, ema, uid=str(uids["good"]), hotkey=good) > 0
                assert value(m, ema, uid=str(uids["error_500"]), hotkey=bad) == 0
                assert label_values(m, ema, "hotkey") == {good, bad}
                assert value(m, "tuneforge_validator_weights_set_total", outcome="ok") == 1
                depth = "tuneforge_validator_outbox_depth"
                assert value(m, depth, kind="round_result") == 1
                assert value(m, depth, kind="track_audio") == 1  # only the good miner's audio
                assert value(m, depth, kind="job_result") == 0

                # The good miner's uid changes hands: its EMA series disappears.
                net.chain.replace_hotkey(uids["good"], "5NewcomerHotkeyThatTookTheUid")
                loop.metagraph(force=True)
                after = scrape(http)
                assert label_values(after, ema, "hotkey") == {bad}
                assert http.get("/status").json()["rounds_completed"] == 1
        finally:
            status.stop()
            state.close()


class _AlwaysRaises(Scorer):
    name = "timbral"

    def measure(
        self, clip: Clip, challenge: Challenge, context: RoundContext, index: int
    ) -> ScoreResult:
        raise ArithmeticError("crafted to break this check")


def _engine_with_a_broken_check(history: ScoringHistory, models: object) -> ScoringEngine:
    engine = ScoringEngine.create(history, None)
    engine.scorer_set.scorers["timbral"] = Loaded("timbral", _AlwaysRaises())
    return engine


def test_a_check_that_raises_is_counted_and_scores_zero(tmp_path: Path) -> None:
    net = make_validator_net(tmp_path)
    miners = make_fake_miners(tmp_path, ["good"])
    with serve_app(fake_miner_app(miners)) as miner_url:
        register_fake_miners(net.chain, miners, miner_url.removeprefix("http://"))
        loop, state, client = net.build(net.settings(max_rounds=1), _engine_with_a_broken_check)

        run_one_round(loop, client)
    assert loop.last_report is not None
    [score] = loop.last_report.scores
    assert score.score_breakdown["timbral"] == 0.0 and score.final_score > 0.0
    assert score.reasons["timbral"] == "failed: ArithmeticError: crafted to break this check"
    samples = parse(render(loop.metrics.registry).decode())
    assert value(samples, "tuneforge_validator_check_failures_total", check="timbral") == 1

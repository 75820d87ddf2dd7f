"""Whole rounds against misbehaving miners: zeros with reasons, and no way to game the prompt."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.helpers.miner_server import serve_app
from tests.helpers.validator_fake_miners import (
    EXPECTED_CODES,
    HOSTILE_SAMPLES,
    fake_miner_app,
    make_fake_miners,
    register_fake_miners,
)
from tests.helpers.validator_net import make_validator_net, run_one_round
from tuneforge.chain.base import Metagraph, Neuron
from tuneforge.core.audio import WavAudio, decode_wav
from tuneforge.core.protocol import MusicGenerationSynapse
from tuneforge.scoring.base import Submission
from tuneforge.scoring.engine import ScoringEngine
from tuneforge.scoring.history import InMemoryHistory
from tuneforge.validator.round import RoundReport
from tuneforge.validator.spool import spool_root

pytestmark = pytest.mark.slow

LIMIT = 12 * 1024 * 1024  # above the 9.6 MB ten-minute WAV: that one must fail on its length


def _one_round(
    tmp_path: Path,
    behaviours: list[str],
    answers: dict[str, bytes] | None = None,
    **neuron: object,
) -> RoundReport:
    """One round; `answers` gets each checked answer's bytes by hotkey (the round itself keeps
    them only in its spool, removed with the round)."""
    net = make_validator_net(tmp_path)
    miners = make_fake_miners(tmp_path, behaviours)
    miners.timeout_s = 4.0
    with serve_app(fake_miner_app(miners)) as url:
        register_fake_miners(net.chain, miners, url.removeprefix("http://"))
        settings = net.settings(max_rounds=1, timeout=2.5, max_response_bytes=LIMIT, **neuron)
        loop, state, client = net.build(settings)
        reports: list[RoundReport | None] = []
        run_round = loop.runner.run_round

        async def keep(metagraph: Metagraph) -> RoundReport | None:
            reports.append(await run_round(metagraph))  # the runner's report, audio included
            return reports[-1]

        loop.runner.run_round = keep  # type: ignore[method-assign]
        query_many = client.query_many

        async def recording(neurons: list[Neuron], *args: Any, **kwargs: Any) -> Any:
            spooled = kwargs.pop("keep")

            def kept(index: int, audio: WavAudio) -> WavAudio:
                if answers is not None:
                    answers[neurons[index].hotkey] = audio.wav
                return spooled(index, audio)  # type: ignore[no-any-return]

            return await query_many(neurons, *args, keep=kept, **kwargs)

        client.query_many = recording  # type: ignore[method-assign]

        run_one_round(loop, client)
        state.close()
    [report] = reports
    assert report is not None and loop.last_report is not None
    # What the loop keeps between rounds holds no audio.
    assert all(o.audio is None and o.wav is None for o in loop.last_report.outcomes)
    assert loop.last_report.scores == report.scores
    # The round's spooled answers went with it.
    spool = spool_root(settings.neuron.state_path)
    assert spool.is_dir() and list(spool.iterdir()) == []
    assert all(o.wav is None for o in report.outcomes)
    return report


def test_a_round_with_misbehaving_miners_completes_with_reasons(tmp_path: Path) -> None:
    report = _one_round(tmp_path, list(EXPECTED_CODES), sample_size=32)
    assert len(report.outcomes) == len(EXPECTED_CODES)
    by_hotkey = {o.hotkey: (o, s) for o, s in zip(report.outcomes, report.scores, strict=True)}
    miners = make_fake_miners(tmp_path, list(EXPECTED_CODES))  # same wallets (idempotent)
    for behaviour, code in EXPECTED_CODES.items():
        outcome, score = by_hotkey[miners.hotkey(behaviour)]
        assert outcome.code == code, (behaviour, outcome.reason)
        assert len(score.score_breakdown) == 16
        if code is None and behaviour in HOSTILE_SAMPLES:
            # decodable but degenerate: scored like any clip (that no such clip outscores music
            # is the property tests/test_fuzz_scoring.py checks), and the round went on
            assert 0.0 <= score.final_score <= 1.0 and score.error is None, behaviour
        elif code is None:
            assert score.final_score > 0.0
            assert report.emas[(outcome.uid, outcome.hotkey)] > 0.0
        else:
            assert score.final_score == 0.0
            assert score.error is not None and code in score.error
            assert report.emas[(outcome.uid, outcome.hotkey)] == 0.0


def test_an_echoed_challenge_cannot_change_what_a_miner_is_scored_against(
    tmp_path: Path,
) -> None:
    answers: dict[str, bytes] = {}
    report = _one_round(tmp_path, ["echo"], answers)
    [outcome], [score] = report.outcomes, report.scores
    audio = decode_wav(answers[outcome.hotkey])
    submission = [Submission(outcome.hotkey, audio, outcome.elapsed_ms)]
    # The same audio scored afresh against the validator's own challenge: the same number.
    own = ScoringEngine.create(InMemoryHistory(), None).score_round(report.challenge, submission)
    assert own[0].final_score == pytest.approx(score.final_score, abs=1e-9)
    assert own[0].score_breakdown == pytest.approx(score.score_breakdown, abs=1e-9)
    # Scoring against what the miner claimed would have given another number.
    claimed = MusicGenerationSynapse(
        challenge_id=report.challenge.challenge_id,
        prompt="silence",
        genre="ambient",
        tempo_bpm=60,
        key="C major",
        duration_seconds=2.0,
        seed=report.challenge.seed,
    )
    echoed = ScoringEngine.create(InMemoryHistory(), None).score_round(claimed, submission)
    assert echoed[0].final_score != pytest.approx(score.final_score, abs=1e-6)


def test_speed_is_scored_on_the_validators_measured_time_not_the_miners_claim(
    tmp_path: Path,
) -> None:
    report = _one_round(tmp_path, ["echo"])
    [outcome], [score] = report.outcomes, report.scores
    measured_factor = outcome.elapsed_ms / 1000.0 / report.challenge.duration_seconds
    assert score.details["speed"]["realtime_factor"] == pytest.approx(measured_factor, abs=1e-3)
    # The fake miner claims 12 ms in its header; the score uses the round trip measured here.
    assert outcome.generation_ms == 12.0
    assert score.details["speed"]["generation_ms"] == pytest.approx(outcome.elapsed_ms, abs=0.1)

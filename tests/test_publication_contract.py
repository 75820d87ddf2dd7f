"""The publication contract holds both ends of the validator -> API wire together (D51): what
the validator builds validates against what the API accepts, the customer's content fields are
the protocol's, and the validator sends to the paths the API serves."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.helpers.api_server import make_chain, make_settings
from tuneforge.api.app import create_app
from tuneforge.api.schemas import GenerateRequest, JobResult, PublishRound
from tuneforge.core import publication
from tuneforge.core.audio import Audio, encode_wav
from tuneforge.core.protocol import MusicGenerationSynapse
from tuneforge.scoring.base import ClipScore
from tuneforge.scoring.clip import ANALYSIS_RATE
from tuneforge.scoring.fingerprint import encode as encode_fingerprint
from tuneforge.scoring.fingerprint import extract
from tuneforge.validator.challenges import challenge_for_job, job_seed
from tuneforge.validator.query import QueryOutcome
from tuneforge.validator.round import track_id
from tuneforge.validator.tracks import answer_track

# What a customer request carries beyond the content it shares with the protocol (API.md).
CUSTOMER_EXTENSIONS = {"seed", "variants", "callback_url"}


def _answer(uid: int) -> tuple[QueryOutcome, ClipScore, str]:
    rate = ANALYSIS_RATE  # what the fingerprint is taken at
    t = np.arange(rate * 2) / rate
    samples = (0.3 * np.sin(2 * np.pi * 220.0 * (1 + uid) * t)).astype(np.float32)[None, :]
    audio = Audio(samples, rate)
    wav = encode_wav(audio)
    digest = hashlib.sha256(wav).hexdigest()
    outcome = QueryOutcome(uid, f"5Hotkey{uid}", audio=audio, wav=wav, audio_sha256=digest)
    outcome.elapsed_ms = 1234.5
    score = ClipScore(
        final_score=0.42,
        composite=0.6,
        score_breakdown={"clap": 0.7, "learned_mos": None},
        penalties={"duration_penalty": 1.0, "fad_penalty": None},
        effective_weights={"clap": 1.0},
        reasons={"learned_mos": "inactive network-wide", "fad_penalty": "x" * 500},
        details={},
        timings_ms={},
    )
    return outcome, score, encode_fingerprint(extract(samples[0], rate))


def test_a_round_the_validator_builds_is_accepted_by_the_api_schema() -> None:
    challenge = MusicGenerationSynapse(prompt="a calm piano piece", tempo_bpm=80, seed=3)
    tracks = []
    for uid in (0, 1):
        outcome, score, fingerprint = _answer(uid)
        track = publication.published_track(
            track_id("round-1", outcome.hotkey), answer_track(outcome, score, fingerprint)
        )
        tracks.append(track)
    body = publication.round_result("round-1", 17, challenge, tracks)

    parsed = PublishRound.model_validate(body)

    assert list(PublishRound.model_fields) == list(body)
    for sent, accepted in zip(tracks, parsed.results, strict=True):
        # Every key the validator sends is a field of the API's model, and none is lost.
        assert set(sent) <= set(type(accepted).model_fields)
        assert accepted.model_dump(include=set(sent), exclude={"generation_ms"}) == {
            k: v for k, v in sent.items() if k != "generation_ms"
        }
        assert accepted.generation_ms == round(sent["generation_ms"])
    assert parsed.challenge == challenge.model_dump()


def test_a_job_result_the_validator_builds_is_accepted_by_the_api_schema() -> None:
    outcome, score, fingerprint = _answer(2)
    served = publication.job_result([answer_track(outcome, score, None)])
    assert "fingerprint" not in served["tracks"][0]  # none is sent rather than null

    parsed = JobResult.model_validate(served)
    assert parsed.tracks[0].audio_sha256 == hashlib.sha256(outcome.wav or b"").hexdigest()
    failed = JobResult.model_validate(publication.job_failure("no miner answered " * 500))
    assert failed.tracks == [] and failed.error is not None
    assert len(failed.error) == publication.MAX_JOB_ERROR_CHARS


def test_the_wire_track_keeps_its_shape() -> None:
    """API.md's `POST /scores` results, key for key and in order (the JSON the outbox stores)."""
    outcome, score, fingerprint = _answer(3)
    track = publication.published_track("trk_1", answer_track(outcome, score, fingerprint))
    assert list(track) == [
        "track_id", "miner_uid", "miner_hotkey", "final_score", "composite", "score_breakdown",
        "penalties", "excluded", "degraded", "generation_ms", "audio_sha256", "duration_seconds",
        "sample_rate", "fingerprint",
    ]  # fmt: skip
    assert track["excluded"] == {"learned_mos": "inactive network-wide", "fad_penalty": "x" * 300}
    assert track["generation_ms"] == 1234.5  # the float the validator measured, not rounded


def test_the_content_fields_are_the_protocol_fields_a_customer_sends() -> None:
    protocol_fields = set(MusicGenerationSynapse.model_fields)
    assert set(publication.CONTENT_FIELDS) == protocol_fields - {"challenge_id", "seed"}
    customer_fields = set(GenerateRequest.model_fields) - CUSTOMER_EXTENSIONS
    assert set(publication.CONTENT_FIELDS) == customer_fields


def test_every_content_field_a_customer_sets_reaches_the_miner() -> None:
    body = GenerateRequest.model_validate(
        {
            "prompt": "slow blues",
            "genre": "blues",
            "mood": "longing",
            "tempo_bpm": 70,
            "key": "E minor",
            "instruments": ["harmonica"],
            "vocals": True,
            "lyrics": "la la",
            "duration_seconds": 12.0,
        }
    )
    request = body.model_dump()
    job = challenge_for_job(job_seed("5Validator", "req_x", b"s" * 32), request)
    for name in publication.CONTENT_FIELDS:
        assert getattr(job, name) == request[name], name


@pytest.fixture(scope="module")
def routes(tmp_path_factory: pytest.TempPathFactory) -> set[tuple[str, str]]:
    """(method, path) of every operation the API serves, as its OpenAPI schema lists them."""
    tmp: Path = tmp_path_factory.mktemp("contract")
    chain_path, _ = make_chain(tmp)
    schema = create_app(make_settings(tmp, chain_path)).openapi()
    return {(method.upper(), path) for path, item in schema["paths"].items() for method in item}


@pytest.mark.parametrize(
    ("method", "template"),
    [
        ("POST", publication.SCORES_PATH),
        ("PUT", publication.TRACK_AUDIO_PATH),
        ("POST", publication.JOB_CLAIM_PATH),
        ("PUT", publication.JOB_AUDIO_PATH),
        ("POST", publication.JOB_RESULT_PATH),
    ],
)
def test_the_validator_sends_to_paths_the_api_serves(
    routes: set[tuple[str, str]], method: str, template: str
) -> None:
    assert (method, publication.API_PREFIX + template) in routes


def test_the_contract_is_a_foundation_both_roles_can_stand_on() -> None:
    """Importing it loads no role and no service: neither side drags the other in."""
    probe = (
        "import sys, tuneforge.core.publication; "
        "print(sorted(m for m in sys.modules if m.startswith(('tuneforge.validator', "
        "'tuneforge.api', 'tuneforge.miner', 'tuneforge.scoring', 'tuneforge.generation'))))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout
    assert loaded.strip() == "[]"

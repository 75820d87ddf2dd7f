"""Scoring in worker processes gives the serial result bit for bit, and returns the round's
memory instead of writing it anywhere."""

from __future__ import annotations

import copy
import os
import pickle
import signal
from concurrent.futures import Future
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import numpy as np
import pytest

from tests.helpers import signals
from tuneforge.core.audio import Audio, WavAudio, encode_wav
from tuneforge.core.protocol import MusicGenerationSynapse
from tuneforge.scoring.base import ClipScore, Submission
from tuneforge.scoring.engine import ScoredRound, ScoringEngine
from tuneforge.scoring.history import InMemoryHistory
from tuneforge.scoring.shared import Peek
from tuneforge.validator.spool import RoundSpool, SpooledWav

CHALLENGE = MusicGenerationSynapse(
    prompt="calm piano", genre="pop", tempo_bpm=100, key="C major", duration_seconds=6.0
)


def _round(seconds: float = 6.0) -> list[Submission]:
    a = signals.tonal_piece("C major", tempo_bpm=100, seconds=seconds)
    b = signals.tonal_piece("E minor", tempo_bpm=132, seconds=seconds)
    drums = signals.drum_pattern(tempo_bpm=90, seconds=seconds)
    return [
        Submission("hk-a", a, generation_ms=4000.0),
        Submission("hk-b", b, generation_ms=9000.0),
        Submission("hk-copy", signals.scaled(a, 0.7), generation_ms=5000.0),  # a copy of a
        Submission("hk-drums", drums, generation_ms=6000.0),
        Submission("hk-gone", None, error="timeout"),
        Submission("hk-short", Audio(a.samples[:, :800], a.sample_rate), generation_ms=1.0),
        Submission("hk-noise", signals.white_noise(seconds=seconds), generation_ms=3000.0),
    ]


def _encoded(submissions: list[Submission]) -> list[Submission]:
    """The answers as a validator receives them: checked WAV bytes (float: the same samples)."""
    out = []
    for s in submissions:
        if isinstance(s.audio, Audio):
            wav = encode_wav(s.audio, subtype="FLOAT")
            audio = WavAudio.checked(wav, max_bytes=2**25, max_seconds=60.0)
            s = Submission(s.miner_hotkey, audio, s.generation_ms, s.error)
        out.append(s)
    return out


def _spooled(submissions: list[Submission], spool: RoundSpool) -> list[Submission]:
    """The same answers as a round holds them: their bytes in the round's spool, not here."""
    out = []
    for index, s in enumerate(submissions):
        if isinstance(s.audio, WavAudio):
            kept = spool.keep(index, s.audio)
            assert isinstance(kept, SpooledWav) and kept.wav == b""
            assert len(pickle.dumps(kept)) < 1024  # a worker's task carries a path, not bytes
            s = Submission(s.miner_hotkey, kept, s.generation_ms, s.error)
        out.append(s)
    return out


def _comparable(score: ClipScore) -> dict[str, object]:
    facts = score.to_dict()
    facts.pop("timings_ms")  # wall/CPU time differs between processes, nothing else may
    return facts


def _assert_same(serial: ScoredRound, parallel: ScoredRound) -> None:
    assert [_comparable(s) for s in parallel.scores] == [_comparable(s) for s in serial.scores]
    assert len(parallel.memory.clips) == len(serial.memory.clips)
    # The fingerprints the copy check publishes come from the passes too, the same in both.
    assert [None if f is None else f.tobytes() for f in parallel.fingerprints] == [
        None if f is None else f.tobytes() for f in serial.fingerprints
    ]
    for ours, theirs in zip(parallel.memory.clips, serial.memory.clips, strict=True):
        assert ours.hotkey == theirs.hotkey
        assert ours.diversity.tobytes() == theirs.diversity.tobytes()
        assert ours.fingerprint.tobytes() == theirs.fingerprint.tobytes()
        assert (ours.fad_frames is None) == (theirs.fad_frames is None)
        if ours.fad_frames is not None and theirs.fad_frames is not None:
            assert ours.fad_frames.tobytes() == theirs.fad_frames.tobytes()


def _start(engine: ScoringEngine, submissions: list[Submission]) -> dict[int, Future[Peek]]:
    """First passes begun for every other answer, the way a round begins them on arrival."""
    started = {}
    for index, submission in enumerate(submissions):
        if submission.audio is not None and index % 2 == 0:
            future = engine.start_first_pass(submission.audio)
            assert future is not None  # signal-only engines score in passes
            started[index] = future
    return started


def test_two_worker_processes_score_a_round_exactly_like_one_process(tmp_path: Path) -> None:
    history = InMemoryHistory()
    # An earlier round fills the history: diversity, the FAD window and the copy index read it.
    earlier = ScoringEngine.create(history).score_round(CHALLENGE, _round())
    assert len(history.fingerprints(100)) == 5 and earlier[2].penalties["fingerprint_penalty"] == 0
    serial_engine = ScoringEngine.create(copy.deepcopy(history))
    parallel_engine = ScoringEngine.create(copy.deepcopy(history), workers=2)
    try:
        assert parallel_engine.workers == 2
        submissions = _round()
        serial = serial_engine.score(CHALLENGE, submissions)
        parallel = parallel_engine.score(CHALLENGE, submissions)
        # First passes started clip by clip (as answers arrive) change nothing either, in the
        # workers or in this process; the clips not started then are peeked when scored.
        streamed = parallel_engine.score(
            CHALLENGE, submissions, _start(parallel_engine, submissions)
        )
        in_process = ScoringEngine.create(copy.deepcopy(history))
        streamed_here = in_process.score(CHALLENGE, submissions, _start(in_process, submissions))
        in_process.close()
        again = parallel_engine.score(CHALLENGE, submissions)  # workers keep no round state
        # Answers whose bytes wait in the round's spool: the workers read them from there.
        encoded = _encoded(submissions)
        serial_wav = serial_engine.score(CHALLENGE, encoded)
        with RoundSpool(tmp_path) as spool:
            spooled = _spooled(encoded, spool)
            from_spool = parallel_engine.score(CHALLENGE, spooled, _start(parallel_engine, spooled))
        assert list(tmp_path.iterdir()) == []  # the round's folder went with it
        # A worker that dies (killed for memory, a native crash) fails that round only.
        os.kill(parallel_engine.worker_pids()[0], signal.SIGKILL)
        with pytest.raises(BrokenProcessPool):
            parallel_engine.score(CHALLENGE, submissions)
        recovered = parallel_engine.score(CHALLENGE, submissions)
    finally:
        parallel_engine.close()
    _assert_same(serial, parallel)
    _assert_same(serial, streamed)
    _assert_same(serial, streamed_here)
    _assert_same(serial, again)
    _assert_same(serial, recovered)
    _assert_same(serial_wav, from_spool)
    copied = serial.scores[2]
    assert copied.penalties["fingerprint_penalty"] == 0.0  # the round's copy is caught in workers
    assert serial.scores[4].error == "timeout" and "shorter than" in (serial.scores[5].error or "")
    assert [c.hotkey for c in serial.memory.clips] == [
        "hk-a",
        "hk-b",
        "hk-copy",
        "hk-drums",
        "hk-noise",
    ]


def test_score_writes_nothing_to_the_history_and_score_round_records_the_memory() -> None:
    history = InMemoryHistory()
    engine = ScoringEngine.create(history)
    scored = engine.score(CHALLENGE, _round()[:2])
    assert history.fingerprints(10) == [] and history.recent_embeddings("hk-a", 10) == []
    scored.memory.record_into(history)
    assert [h for h, _ in history.fingerprints(10)] == ["hk-b", "hk-a"]
    (vector, frames) = reversed(history.recent_embeddings("hk-a", 10))
    assert vector.ndim == 1 and frames.ndim == 2 and frames.dtype == np.float16


def test_a_round_larger_than_its_snapshot_is_refused_not_silently_truncated() -> None:
    from tuneforge.scoring.history import SnapshotHistory

    snapshot = SnapshotHistory.take(InMemoryHistory(), ["a"], 4, 4)
    assert snapshot.recent_embeddings("a", 4) == []
    for ask in (lambda: snapshot.recent_embeddings("a", 5), lambda: snapshot.fingerprints(5)):
        try:
            ask()
        except ValueError:
            continue
        raise AssertionError("a read past the snapshot must fail")


def test_a_peer_clip_in_a_worker_refuses_features_the_round_does_not_share() -> None:
    from tuneforge.scoring.clip import Clip, NeuralFeatures, PeerClip
    from tuneforge.scoring.features import rms
    from tuneforge.scoring.fingerprint import fingerprint
    from tuneforge.scoring.shared import decode_and_share

    audio = signals.tonal_piece("C major", seconds=6.0)
    peek = decode_and_share(audio)
    peer = PeerClip(peek.shared, NeuralFeatures())
    assert np.array_equal(fingerprint(peer), fingerprint(Clip(audio)))
    with pytest.raises(LookupError):
        rms(peer)


_LOADED = {name: f"loaded {name} on cuda" for name in ("clap", "mert", "whisper")}


@pytest.mark.parametrize("models", [None, _LOADED], ids=["signal scorers", "neural from features"])
def test_a_scoring_worker_never_imports_torch(models: dict[str, str] | None) -> None:
    """Every scoring worker and the validator itself pay for what they import (torch is ~570 MB
    resident): scoring a clip with the signal scorers, voice detection included, needs none, and
    neither does scoring the neural checks from features the validator's models computed (D68:
    here none were, so they fail on the clip, and nothing loads a model to make up for it)."""
    import subprocess
    import sys

    script = (
        "import sys\n"
        "from tests.helpers import signals\n"
        "from tuneforge.core.protocol import MusicGenerationSynapse\n"
        "from tuneforge.scoring.base import Submission\n"
        "from tuneforge.scoring.engine import ScoringEngine\n"
        "from tuneforge.scoring.history import InMemoryHistory\n"
        "from tuneforge.scoring.prepared_models import PreparedModels\n"
        f"models = None if {models!r} is None else PreparedModels({models!r})\n"
        "engine = ScoringEngine.create(InMemoryHistory(), models)\n"
        "audio = signals.tonal_piece('C major', tempo_bpm=100, seconds=4.0)\n"
        "challenge = MusicGenerationSynapse(prompt='song', vocals=True, duration_seconds=4.0)\n"
        "score = engine.score(challenge, [Submission('hk', audio, 1.0)]).scores[0]\n"
        "assert score.error is None, score.error\n"
        "assert models is None or score.failures.keys() >= {'clap', 'neural_quality'}\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'silero_vad')))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300, check=True
    )
    assert done.stdout.strip().splitlines()[-1] == "[]"


def test_a_scoring_process_runs_blas_on_one_thread() -> None:
    """Parallel scoring is one process per core: OpenBLAS threads beside it only spin (D65)."""
    import subprocess
    import sys

    script = (
        "from threadpoolctl import threadpool_info\n"
        "from tuneforge.scoring.engine import ScoringEngine\n"
        "from tuneforge.scoring.history import InMemoryHistory\n"
        "ScoringEngine.create(InMemoryHistory(), None)\n"
        "print(sorted({p['num_threads'] for p in threadpool_info() if p['user_api'] == 'blas'}))\n"
    )
    environment = {**os.environ, "OPENBLAS_NUM_THREADS": "4"}
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
        env=environment,
    )
    assert done.stdout.strip().splitlines()[-1] == "[1]"

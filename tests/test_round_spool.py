"""A round's answers wait in a spool folder on disk, not in the validator's memory; the folder
goes with the round, and one a crash left behind goes when the next validator starts."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest

from tuneforge.core.audio import Audio, WavAudio, encode_wav
from tuneforge.validator.spool import (
    RoundSpool,
    SpooledWav,
    clear_stale,
    spool_root,
)


def _answer(seconds: float = 1.0) -> WavAudio:
    t = np.arange(int(seconds * 32_000)) / 32_000
    tone = (0.3 * np.sin(2 * np.pi * 440.0 * t)).astype(np.float32)
    wav = encode_wav(Audio(np.stack([tone, tone]), 32_000))
    return WavAudio.checked(wav, max_bytes=2**25, max_seconds=60.0)


def test_a_spooled_answer_holds_no_bytes_and_reads_back_what_was_signed(tmp_path: Path) -> None:
    answer = _answer()
    with RoundSpool(tmp_path) as spool:
        kept = spool.keep(3, answer)
        assert isinstance(kept, SpooledWav) and kept.wav == b""
        assert Path(kept.path) == spool.folder / "3.wav" and spool.folder.parent == tmp_path
        assert kept.read() == answer.wav and answer.read() == answer.wav
        assert (kept.sample_rate, kept.channels, kept.num_samples) == (32_000, 2, 32_000)
        assert kept.duration_seconds == answer.duration_seconds
        assert np.array_equal(kept.decode().samples, answer.decode().samples)
        # What a scoring task carries: the facts and a path, not the clip.
        unpickled = pickle.loads(pickle.dumps(kept))
        assert unpickled == kept and len(pickle.dumps(kept)) < 1024
    assert not spool.folder.exists()
    with pytest.raises(FileNotFoundError):
        kept.read()


def test_an_answer_that_cannot_be_written_stays_in_memory(tmp_path: Path) -> None:
    spool = RoundSpool(tmp_path)
    spool.close()  # its folder is gone: writing fails
    answer = _answer(0.2)
    assert spool.keep(0, answer) is answer


def test_each_round_has_its_own_folder_and_stale_ones_are_cleared(tmp_path: Path) -> None:
    root = spool_root(tmp_path / "state.db")
    assert root == tmp_path / "state.db.spool"
    assert clear_stale(root) == 0  # nothing there yet
    first, second = RoundSpool(root), RoundSpool(root)
    assert first.folder != second.folder
    first.keep(0, _answer(0.2))
    (root / "not-a-round").mkdir()  # only round folders are ours to remove
    assert clear_stale(root) == 2  # a validator that stopped mid-round left these
    assert sorted(p.name for p in root.iterdir()) == ["not-a-round"]


def test_a_published_round_passes_its_answers_through_memory_one_at_a_time(
    tmp_path: Path,
) -> None:
    """With publication on, the commit queues every answer's audio for the API: each is read
    back from the spool as its outbox row is written, so the commit's memory is one answer's,
    not the round's (and the queued bytes are exactly what the miner signed)."""
    import hashlib
    import tracemalloc

    from tests.helpers.validator_net import make_validator_net
    from tuneforge.core.protocol import MusicGenerationSynapse
    from tuneforge.scoring.base import ClipScore
    from tuneforge.validator.query import QueryOutcome
    from tuneforge.validator.round import RoundRunner
    from tuneforge.validator.state import ValidatorState

    net = make_validator_net(tmp_path)
    settings = net.settings(publish=True)
    state = ValidatorState(settings.neuron.state_path)
    runner = RoundRunner(settings, net.hotkey, state, client=None, scorer=None)  # type: ignore[arg-type]
    answer = _answer(8.0)  # 2 MB of WAV
    score = ClipScore(
        final_score=0.5, composite=0.5, score_breakdown={}, penalties={}, effective_weights={},
        reasons={}, details={}, timings_ms={},
    )  # fmt: skip
    answers = 12
    digest = hashlib.sha256(answer.wav).hexdigest()  # taken as each answer was checked
    with RoundSpool(tmp_path / "spool") as spool:
        outcomes = [
            QueryOutcome(uid, f"5Hotkey{uid}", audio=spool.keep(uid, answer), audio_sha256=digest)
            for uid in range(answers)
        ]
        challenge = MusicGenerationSynapse(prompt="a calm piano piece", seed=3)
        tracemalloc.start()
        try:
            entries = runner._publications(
                "round-1", 7, challenge, outcomes, [score] * answers, [None] * answers
            )
            state.commit_round(1, challenge.model_dump(), 7, 0.0, [], {}, entries)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert peak < 3 * len(answer.wav), f"commit held {peak / len(answer.wav):.1f} answers"
    with state.db.read() as db:
        blobs = [row[0] for row in db.execute("SELECT blob FROM outbox WHERE blob IS NOT NULL")]
    assert len(blobs) == answers and all(blob == answer.wav for blob in blobs)
    state.close()

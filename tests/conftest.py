"""Test-wide setup: never reach a model hub; compile librosa's numba kernels once per session.

numba's on-disk cache is not safe when several processes compile into one cold directory at the
same time (a corrupted index made every later process segfault in `beat_track`). So each test
session gets its own fresh cache directory, and the scoring engine is warmed in this process
before any test starts the validator or localnet as subprocesses that share the directory.
"""

from __future__ import annotations

import os
import tempfile

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ["NUMBA_CACHE_DIR"] = tempfile.mkdtemp(prefix="tuneforge-numba-")

import pytest


@pytest.fixture(scope="session", autouse=True)
def _warm_scoring_kernels() -> None:
    """Score one short clip so the DSP kernels are compiled and cached before subprocesses run."""
    from tests.helpers.signals import tonal_piece
    from tuneforge.core.protocol import MusicGenerationSynapse
    from tuneforge.scoring.base import Submission
    from tuneforge.scoring.engine import ScoringEngine
    from tuneforge.scoring.history import InMemoryHistory

    challenge = MusicGenerationSynapse(prompt="warm-up", duration_seconds=6, tempo_bpm=100)
    engine = ScoringEngine.create(history=InMemoryHistory())
    engine.score_round(challenge, [Submission("warm-up", tonal_piece(seconds=6))])

"""The `vocal` scorer hears singing-like voice over music, not only speech.

Measured on espeak-ng words held on melody notes over a full accompaniment (tests/helpers/singing;
4 keys x voice level): detected in 8/8 clips at +6 and 0 dB voice-to-music, 2/4 at -6 dB,
0/4 at -12 dB; 0/17 instrumentals flagged (docs/decisions.md D25)."""

from __future__ import annotations

import pytest

from tests.helpers import singing
from tuneforge.core.protocol import MusicGenerationSynapse
from tuneforge.scoring.base import RoundContext, ScoreResult
from tuneforge.scoring.clip import Clip
from tuneforge.scoring.history import InMemoryHistory
from tuneforge.scoring.scorers.vocal import VocalScorer

pytestmark = pytest.mark.skipif(
    not singing.espeak_available(), reason="espeak-ng is not installed: no synthetic voice"
)


def _score(clip: Clip, vocals: bool) -> ScoreResult:
    context = RoundContext([clip], ["hotkey"], [None], InMemoryHistory())
    challenge = MusicGenerationSynapse(prompt="a sea song", vocals=vocals)
    return VocalScorer().run(clip, challenge, context, 0)


@pytest.mark.parametrize(
    ("level_db", "seed", "key"),
    [(6.0, 0, "C major"), (0.0, 1, "A minor"), (0.0, 3, "F major")],
    ids=["+6dB", "0dB-minor", "0dB-major"],
)
def test_singing_over_music_is_heard_and_scored_only_when_requested(
    level_db: float, seed: int, key: str
) -> None:
    clip = Clip(singing.song(level_db, seconds=12.0, seed=seed, key=key))
    wanted, unwanted = _score(clip, vocals=True), _score(clip, vocals=False)
    assert wanted.details["vocals_detected"] is True
    assert wanted.details["vocal_fraction"] > 0.3
    assert wanted.value > 0.6
    assert unwanted.value < 0.2

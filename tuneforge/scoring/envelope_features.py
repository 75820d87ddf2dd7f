"""How sounds start and stop (FluxShape), cached on the Clip: the log-mel's frame-to-frame
change, read by the timbral scorer and the artifact penalty (dead stops, reversed envelopes)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tuneforge.scoring import features
from tuneforge.scoring.clip import Clip

FLUX_RANGE_DB = 80.0  # the log-mel is floored this far under its maximum: silence is not -100 dB


# Envelope skewness counts only cells within this many dB of the clip's loudest: the floor is
# where nothing sounds, and its flicker is symmetric noise.
SKEW_RANGE_DB = 50.0


@dataclass(frozen=True)
class FluxShape:
    """How sound energy arrives and leaves, from the frame-to-frame change of the log-mel.

    decay_peakiness: 99.5th percentile of the falling flux over its median. Instruments in a room
    (and generators trained on them) decay and reverberate, so energy leaves gradually: real
    music measures ~2-11. Sounds that stop dead — dry synthesised notes cut by a short release,
    a time-reversed clip's attacks, hard edits — measure 10-150.
    envelope_skewness: skewness of every sounding band's frame-to-frame level change (dB). A
    struck, plucked, bowed or blown note rises in a frame or two and dies away over many, so the
    changes are a few large rises and many small falls: positive skew (real music of the tuning
    half 0.07-5.4, bowed strings lowest). Played backwards the same notes swell slowly and stop
    dead: the sign flips (the same clips reversed -2.5-0.65; 51 of 51 pairs lower reversed).
    release_tail_db: how far the mean log-mel level keeps falling from ~45 to ~185 ms after the
    sharpest falls (the frames at the 99.5th percentile that decay_peakiness reads), median over
    them. A note released in a room (or through a reverb) keeps decaying after it stops: real
    music of the tuning half median 5 dB, up to 12.8; a dead stop is followed at once by
    whatever else sounds, flat or rising (the `synth` fakes of the tuning half -12.4-3.4 dB,
    reversed clips -22.8-1.6 dB)."""

    decay_peakiness: float
    envelope_skewness: float
    release_tail_db: float = 0.0


def flux_shape(clip: Clip) -> FluxShape:
    def compute(c: Clip) -> FluxShape:
        level = features.log_mel(c)
        if level.shape[1] < 3:
            return FluxShape(0.0, 0.0)
        top = float(level.max())
        level = np.maximum(level, top - FLUX_RANGE_DB)
        change = np.diff(level, axis=1)
        falling = np.maximum(-change, 0.0).mean(axis=0)
        sharpest = float(np.percentile(falling, 99.5))
        peakiness = sharpest / (float(np.median(falling)) + 1e-3)
        tail = _release_tail_db(level.mean(axis=0), falling, sharpest)
        sounding = change[level[:, 1:] > top - SKEW_RANGE_DB]
        skewness = 0.0
        if sounding.size >= 16:
            centred = sounding - sounding.mean()
            spread = float(centred.std())
            skewness = float((centred**3).mean() / spread**3) if spread > 1e-6 else 0.0
        return FluxShape(peakiness, skewness, tail)

    return clip.feature(compute)


RELEASE_TAIL_FRAMES = (2, 8)  # ~45-185 ms after a fall at HOP 512 / 22.05 kHz: past the STFT's
# own smearing of a step (its 93 ms window), inside a room's reverberation


def _release_tail_db(mix_level: np.ndarray, falling: np.ndarray, sharpest: float) -> float:
    """Median further fall (dB) of the mean log-mel level from 2 to 8 frames after each frame
    whose falling flux reaches `sharpest`; 0 when no such frame has 8 frames after it."""
    first, last = RELEASE_TAIL_FRAMES
    frames = np.flatnonzero(falling >= sharpest)
    frames = frames[frames + last < len(mix_level)]
    if len(frames) == 0:
        return 0.0
    return float(np.median(mix_level[frames + first] - mix_level[frames + last]))

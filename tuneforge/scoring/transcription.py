"""Which notes sound, frame by frame: Spotify's Basic Pitch note model (Apache-2.0, shipped in
`reference/` as ONNX, 230 kB) run on the clip's 22.05 kHz mono analysis signal.

Key finding reads pitch classes from these note activations instead of from a spectrum: a
spectrum's pitch classes include every note's overtones (a tonic's third harmonic is its
dominant), which pulls a key estimate towards its dominant; a transcription names the notes
themselves (D69). The model is a real trained network that ships with the package, so every
validator runs it alike; the whole of a 30 s clip costs ~0.7 CPU-s, the key reads ~0.4.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tuneforge.scoring.base import ScorerUnavailable
from tuneforge.scoring.clip import ANALYSIS_RATE, Clip
from tuneforge.scoring.onnx_model import OnnxModel

MODEL_PATH = Path(__file__).parent / "reference" / "basic_pitch_nmp.onnx"
MODEL_RATE = 22_050  # the model's input rate: the analysis rate, so no resampling
HOP = 256  # input samples per output frame
WINDOW_SAMPLES = 2 * MODEL_RATE - HOP  # one model input: 2 s less a hop
WINDOW_FRAMES = 172  # frames out per window
OVERLAP_FRAMES = 30  # neighbouring windows overlap; half of it is cut from each side
LOWEST_MIDI = 21  # the 88 note bins are the piano's, A0 first
NOTE_BINS = 88
NOTE_ACTIVE = 0.5  # a note posterior above this counts as sounding
# A key needs ~15 s of notes: a longer clip is read at this many windows (~17 s) spread over it,
# so a 30 s clip costs ~0.4 CPU-s, not 0.75. On the calibration renders (12-17 s, read whole) and
# fresh scores, 10 windows read every key the whole clip did; 8 lost 3 of 79 (D69).
KEY_WINDOWS = 10
# Windows per model call: the model's working memory grows with the batch (10 windows kept
# ~200 MB in onnxruntime's arena, 5 keep ~70 MB) and 5 ran no slower.
BATCH_WINDOWS = 5
_INPUT = "serving_default_input_2:0"
_NOTE_OUTPUT = "StatefulPartitionedCall:1"  # [windows, 172, 88]; :2 is onsets, :0 contours

assert ANALYSIS_RATE == MODEL_RATE, "the model reads the clip's analysis signal as it is"


class TranscriberUnavailable(ScorerUnavailable):
    """onnxruntime is missing or the shipped note model cannot be loaded: a scorer that needs
    it is excluded at start-up (registry.load), which a real network refuses."""

    status = 503
    code = "transcriber_unavailable"


def _model_path() -> str:
    if not MODEL_PATH.is_file():
        raise TranscriberUnavailable(f"note model missing at {MODEL_PATH}")
    return str(MODEL_PATH)


_MODEL = OnnxModel(_model_path, TranscriberUnavailable)


def ensure_available() -> None:
    """Load the model now, from a scorer's constructor: a validator that cannot run it learns
    so at start-up, not clip by clip. Raises TranscriberUnavailable."""
    _MODEL.session()


def note_posteriors(y: np.ndarray, max_windows: int | None = None) -> np.ndarray:
    """Note activation [frames, 88] (0..1, A0 first, 86 frames/s) of mono audio at MODEL_RATE.
    The signal is cut into overlapping 2 s windows, run BATCH_WINDOWS at a time, and the
    windows' inner frames are joined, as the model was trained to be used. With `max_windows`,
    a longer signal is read at that many windows spread evenly over it, first and last
    included; their frames are returned in time order (no longer contiguous)."""
    n_frames = len(y) // HOP
    if n_frames == 0:
        return np.zeros((0, NOTE_BINS), dtype=np.float32)
    lead = np.zeros(OVERLAP_FRAMES * HOP // 2, dtype=np.float32)
    padded = np.concatenate([lead, np.asarray(y, dtype=np.float32)])
    inner_frames = WINDOW_FRAMES - OVERLAP_FRAMES  # each window's own frames, once joined
    count = -(-n_frames // inner_frames)
    chosen = np.arange(count)
    if max_windows is not None and count > max_windows:
        chosen = np.unique(np.round(np.linspace(0, count - 1, max_windows)).astype(int))
    windows = np.zeros((len(chosen), WINDOW_SAMPLES, 1), dtype=np.float32)
    for row, index in enumerate(chosen):
        start = int(index) * inner_frames * HOP
        piece = padded[start : start + WINDOW_SAMPLES]
        windows[row, : len(piece), 0] = piece
    session = _MODEL.session()
    notes = np.concatenate(
        [
            session.run([_NOTE_OUTPUT], {_INPUT: windows[at : at + BATCH_WINDOWS]})[0]
            for at in range(0, len(windows), BATCH_WINDOWS)
        ]
    )
    half = OVERLAP_FRAMES // 2
    inner = notes[:, half : half + inner_frames, :]
    frame = chosen[:, None] * inner_frames + np.arange(inner_frames)[None, :]
    kept: np.ndarray = inner[frame < n_frames]  # the last window runs past the end
    return kept


def pitch_class_shares(clip: Clip) -> np.ndarray:
    """How much each pitch class sounds [12] (C first, summing to 1; all zero when no note
    does): the posteriors of sounding notes, summed over time and octaves, read at KEY_WINDOWS
    windows at most. Raises TranscriberUnavailable."""

    def compute(c: Clip) -> np.ndarray:
        notes = note_posteriors(c.y, KEY_WINDOWS)
        per_note = np.where(notes > NOTE_ACTIVE, notes, 0.0).sum(axis=0, dtype=np.float64)
        classes = (LOWEST_MIDI + np.arange(NOTE_BINS)) % 12
        shares = np.bincount(classes, weights=per_note, minlength=12)
        total = float(shares.sum())
        return shares / total if total > 0.0 else shares

    return clip.feature(compute)

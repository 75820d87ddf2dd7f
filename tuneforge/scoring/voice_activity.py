"""Voice activity (sung or spoken) for the vocal and attribute scorers, cached on the Clip:
silero-vad's ONNX model at 16 kHz, run as parallel streams so a 30 s clip costs one batched call
per 32 ms step."""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass

import numpy as np

from tuneforge.core.audio import Audio, resample
from tuneforge.core.errors import TuneForgeError
from tuneforge.scoring.clip import Clip
from tuneforge.scoring.onnx_model import OnnxModel

VAD_RATE = 16_000
VAD_CHUNK = 512  # samples per silero step at 16 kHz (32 ms)
VAD_CONTEXT = 64
VAD_STREAMS_SECONDS = 8.0  # one parallel stream per this much audio
VAD_WARMUP_CHUNKS = 32  # ~1 s of overlap so each stream's state settles before it counts
VOICE_PROBABILITY = 0.5
VOCAL_PRESENT_FRACTION = 0.08  # of the clip: below this, isolated blips are not "vocals"


class VoiceDetectorUnavailable(TuneForgeError, RuntimeError):
    """silero-vad or onnxruntime is missing or its model cannot be loaded."""

    status = 503
    code = "voice_detector_unavailable"


def _silero_model_path() -> str:
    """The ONNX model inside the silero-vad wheel, found without importing the package: its
    `__init__` imports torch (~570 MB resident), which a signal-only scoring worker never needs."""
    spec = importlib.util.find_spec("silero_vad")
    if spec is None or not spec.submodule_search_locations:
        raise VoiceDetectorUnavailable("silero-vad not installed")
    folder = next(iter(spec.submodule_search_locations))
    path = os.path.join(folder, "data", "silero_vad.onnx")
    if not os.path.exists(path):
        raise VoiceDetectorUnavailable(f"silero-vad model missing at {path}")
    return path


_SILERO = OnnxModel(_silero_model_path, VoiceDetectorUnavailable)


def speech_probabilities(y16: np.ndarray) -> np.ndarray:
    """silero-vad speech probability per 32 ms chunk of 16 kHz mono audio. The clip is split into
    parallel streams (one batched ONNX call per step) that overlap by ~1 s of warm-up."""
    session = _SILERO.session()
    n_chunks = int(np.ceil(len(y16) / VAD_CHUNK))
    if n_chunks == 0:
        return np.zeros(0, dtype=np.float32)
    padded = np.zeros(n_chunks * VAD_CHUNK, dtype=np.float32)
    padded[: len(y16)] = y16
    chunks = padded.reshape(n_chunks, VAD_CHUNK)
    n_streams = max(1, int(len(y16) / VAD_RATE / VAD_STREAMS_SECONDS))
    per_stream = int(np.ceil(n_chunks / n_streams))
    steps = per_stream + VAD_WARMUP_CHUNKS
    # stream s covers chunks [s*per_stream - warmup, (s+1)*per_stream); index -1 = silence
    index = np.arange(n_streams)[:, None] * per_stream - VAD_WARMUP_CHUNKS + np.arange(steps)
    valid = (index >= 0) & (index < n_chunks)
    state = np.zeros((2, n_streams, 128), dtype=np.float32)
    context = np.zeros((n_streams, VAD_CONTEXT), dtype=np.float32)
    rate = np.array(VAD_RATE, dtype=np.int64)
    out = np.zeros(n_chunks, dtype=np.float32)
    zeros = np.zeros(VAD_CHUNK, dtype=np.float32)
    for step in range(steps):
        batch = np.stack(
            [chunks[index[s, step]] if valid[s, step] else zeros for s in range(n_streams)]
        )
        inputs = np.concatenate([context, batch], axis=1)
        prob, state = session.run(None, {"input": inputs, "state": state, "sr": rate})
        context = inputs[:, -VAD_CONTEXT:]
        if step >= VAD_WARMUP_CHUNKS:
            for s in range(n_streams):
                if valid[s, step]:
                    out[index[s, step]] = prob[s, 0]
    return out


@dataclass(frozen=True)
class VocalActivity:
    probabilities: np.ndarray  # speech probability per 32 ms chunk
    fraction: float  # share of the clip with voice (smoothed probability > 0.5)
    mean_voiced_probability: float  # confidence inside voiced chunks (0 when none)
    longest_run_seconds: float
    present: bool


def vocal_activity(clip: Clip) -> VocalActivity:
    """Sung/spoken voice detection with silero-vad. Raises VoiceDetectorUnavailable."""

    def compute(c: Clip) -> VocalActivity:
        y16 = resample(Audio(c.y, c.sr), VAD_RATE).samples[0]
        probabilities = speech_probabilities(y16)
        if probabilities.size == 0:
            return VocalActivity(probabilities, 0.0, 0.0, 0.0, False)
        smoothed = probabilities
        if probabilities.size >= 5:
            from scipy.ndimage import median_filter

            smoothed = median_filter(probabilities, size=5, mode="nearest")
        voiced = smoothed > VOICE_PROBABILITY
        fraction = float(voiced.mean())
        mean_voiced = float(probabilities[voiced].mean()) if voiced.any() else 0.0
        longest = _longest_run(voiced) * VAD_CHUNK / VAD_RATE
        return VocalActivity(
            probabilities, fraction, mean_voiced, longest, fraction >= VOCAL_PRESENT_FRACTION
        )

    return clip.feature(compute)


def _longest_run(mask: np.ndarray) -> int:
    best = run = 0
    for value in mask:
        run = run + 1 if value else 0
        best = max(best, run)
    return best

"""The neural models scoring uses (CLAP, MERT, Whisper, a learned MOS head, a preference head),
loaded once per process and run batched over all clips of a round.

Every model is given as a hub id or a local directory and loaded with `from_pretrained`. A model
that cannot be loaded raises `ModelLoadError` at load time, unless `allow_missing=True`: then it
is recorded as missing with its reason (shown by `describe()`) and the scorers that need it raise
`ScorerUnavailable`, so the engine excludes them with that reason.

Features written into each clip's typed `clip.neural` slots by `prepare_round`:
  clap_embedding   [D] L2-normalised CLAP audio embedding (mean over 10 s windows)
  mert_embedding   [D] MERT frames mean-pooled over time, averaged over encoder layers
  mert_layer_means [L, D] per-layer time means
  mert_segments    [L, K, D] per-layer means of ~1 s segments (for neural_quality)
  mert_fad_frames  [T', D] last-layer frames, subsampled (for FAD against fadtk's statistics)
  mos              float in [1, 5] from the learned MOS head (when loaded and its input exists)
`transcript` (a `Transcript`) is computed lazily: Whisper runs only when a scorer asks.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
from loguru import logger

from tuneforge.core.audio import Audio, resample, split_windows
from tuneforge.core.errors import TuneForgeError
from tuneforge.scoring.base import ScorerUnavailable
from tuneforge.scoring.whisper import (
    WHISPER_RATE,
    Transcript,
    WhisperReader,
    WhisperTokenError,
)

T = TypeVar("T")

if TYPE_CHECKING:
    from tuneforge.scoring.clip import Clip
    from tuneforge.scoring.mos_model import MosHead
    from tuneforge.scoring.preference_model import PreferenceModel

DEFAULT_CLAP = "laion/clap-htsat-fused"
DEFAULT_MERT = "m-a-p/MERT-v1-95M"
DEFAULT_WHISPER = "openai/whisper-base"

CLAP_RATE = 48_000
CLAP_WINDOW_S = 10.0  # CLAP-HTSAT's input window
MERT_RATE = 24_000
MERT_SEGMENT_S = 1.0
MERT_FAD_MAX_FRAMES = 256  # per clip: keeps history rows small; frames are highly correlated
BATCH_SIZE = 8
MODEL_NAMES = ("clap", "mert", "whisper", "mos", "preference")


class ModelLoadError(TuneForgeError, RuntimeError):
    """A configured neural model could not be loaded (the message names it and says why)."""

    status = 503
    code = "model_load_failed"


def resolve_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


class NeuralModels:
    """Loaded models plus what is missing and why. Thread-safe: one lock per model family."""

    def __init__(self, device: str = "cpu") -> None:
        import torch

        self.device = device
        self.dtype = torch.float16 if device.startswith("cuda") else torch.float32
        self._status: dict[str, str] = {name: "not configured" for name in MODEL_NAMES}
        self._clap: Any = None
        self._clap_processor: Any = None
        self._mert: Any = None
        self._mert_processor: Any = None
        self.whisper: WhisperReader | None = None
        self.mos_head: MosHead | None = None
        self.preference: PreferenceModel | None = None
        self._text_cache: dict[str, np.ndarray] = {}
        self._lock = threading.RLock()

    # ---- loading -------------------------------------------------------------------------
    @classmethod
    def load(
        cls,
        clap: str | None,
        mert: str | None,
        whisper: str | None,
        mos: str | None,
        device: str = "auto",
        allow_missing: bool = False,
        preference: str | None = None,
    ) -> NeuralModels:
        """Load each configured model (None = not configured). See the module docstring."""
        models = cls(resolve_device(device))
        loaders = (
            ("clap", clap, models._load_clap),
            ("mert", mert, models._load_mert),
            ("whisper", whisper, models._load_whisper),
            ("mos", mos, models._load_mos),
            ("preference", preference, models._load_preference),
        )
        for name, source, loader in loaders:
            if not source:
                continue
            try:
                loader(source)
            except Exception as exc:  # any loader failure has one meaning: this model is absent
                reason = f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
                if not allow_missing:
                    raise ModelLoadError(f"cannot load {name} from {source!r}: {reason}") from exc
                models._status[name] = f"missing: {reason}"
                logger.warning("neural model {} from {} unavailable: {}", name, source, reason)
                continue
            models._status[name] = f"loaded {source} on {models.device}"
            logger.info("neural model {} loaded from {} on {}", name, source, models.device)
        return models

    def _load_clap(self, source: str) -> None:
        from transformers import ClapModel, ClapProcessor

        self._clap_processor = ClapProcessor.from_pretrained(source)
        model = ClapModel.from_pretrained(source, dtype=self.dtype)
        # transformers types `to` through a decorator that mypy reads as taking the model.
        self._clap = model.to(self.device).eval()  # type: ignore[arg-type]

    def _load_mert(self, source: str) -> None:
        from transformers import AutoFeatureExtractor, AutoModel

        # MERT ships remote code; a local HubertModel directory loads through the same call.
        self._mert_processor = AutoFeatureExtractor.from_pretrained(  # type: ignore[no-untyped-call]
            source, trust_remote_code=True
        )
        model = AutoModel.from_pretrained(source, trust_remote_code=True, dtype=self.dtype)
        if not hasattr(model, "encoder") or not hasattr(model.encoder, "layers"):
            raise ModelLoadError(f"{type(model).__name__} has no encoder.layers to hook")
        self._mert = model.to(self.device).eval()

    def _load_whisper(self, source: str) -> None:
        self.whisper = WhisperReader.load(source, self.device, self.dtype)

    def _load_mos(self, source: str) -> None:
        from tuneforge.scoring.mos_model import MosHead

        self.mos_head = MosHead.from_pretrained(source)

    def _load_preference(self, source: str) -> None:
        from tuneforge.scoring.preference_model import PreferenceModel

        self.preference = PreferenceModel.from_pretrained(source)

    # ---- status --------------------------------------------------------------------------
    def has(self, name: str) -> bool:
        """Whether model `name` ("clap", "mert", "whisper", "mos", "preference") is loaded."""
        return self._status.get(name, "").startswith("loaded")

    def reason(self, name: str) -> str:
        return self._status.get(name, f"unknown model {name!r}")

    def describe(self) -> dict[str, str]:
        """{model: "loaded <source> on <device>" | "missing: <reason>" | "not configured"}."""
        return dict(self._status)

    @property
    def preference_heldout_accuracy(self) -> float | None:
        """Held-out accuracy of the loaded preference head (None when absent): the engine feeds
        it to the preference weight rule."""
        return self.preference.heldout_accuracy if self.preference is not None else None

    # ---- per-round batched embeddings ------------------------------------------------------
    def prepare_round(self, clips: list[Clip]) -> None:
        """Compute CLAP and MERT embeddings (and MOS) for every clip of a round, batched."""
        with self._lock:
            todo = [c for c in clips if c.neural.clap_embedding is None]
            if self._clap is not None and todo:
                for clip, emb in zip(todo, self._clap_audio_embeddings(todo), strict=True):
                    clip.neural.clap_embedding = emb
            todo = [c for c in clips if c.neural.mert_embedding is None]
            if self._mert is not None and todo:
                self._mert_features(todo)
            if self.mos_head is not None:
                source = self.mos_head.config.embedding
                ready = [
                    (c, e)
                    for c in clips
                    if (e := c.neural.embedding(source)) is not None and c.neural.mos is None
                ]
                if ready:
                    stacked = np.stack([e for _, e in ready])
                    ratings = self.mos_head.predict(stacked)
                    for (clip, _), rating in zip(ready, ratings, strict=True):
                        clip.neural.mos = float(rating)

    def _clap_audio_embeddings(self, clips: list[Clip]) -> list[np.ndarray]:
        import torch

        extractor = self._clap_processor.feature_extractor
        features, owners = [], []
        for index, clip in enumerate(clips):
            y = _mono_at(clip, CLAP_RATE)
            for window in split_windows(y, int(CLAP_WINDOW_S * CLAP_RATE), CLAP_RATE * 2):
                # One call per window: the extractor picks fusion crops with np.random and flags a
                # random item when none is longer than 10 s; alone, a window always gets
                # is_longer=True and no random crop, so embeddings never depend on the batch.
                out = extractor(window, sampling_rate=CLAP_RATE, return_tensors="np")
                features.append(out["input_features"][0])
                owners.append(index)
        embs = []
        for start in range(0, len(features), BATCH_SIZE):
            batch = torch.from_numpy(np.stack(features[start : start + BATCH_SIZE]))
            longer = torch.ones((len(batch), 1), dtype=torch.bool)
            with torch.inference_mode():
                out = self._clap.get_audio_features(
                    input_features=batch.to(self.device, self.dtype),
                    is_longer=longer.to(self.device),
                )
            embs.append(_pooled(out).float().cpu().numpy())
        rows = np.concatenate(embs)
        result = []
        for index in range(len(clips)):
            mean = rows[[i for i, o in enumerate(owners) if o == index]].mean(axis=0)
            result.append(_l2(mean))
        return result

    def _mert_features(self, clips: list[Clip]) -> None:
        import torch

        captured: list[Any] = []

        def hook(_module: Any, _inputs: Any, output: Any) -> None:
            captured.append(output[0] if isinstance(output, tuple) else output)

        # transformers v5 returns None for MERT's output_hidden_states: hook every encoder layer.
        handles = [layer.register_forward_hook(hook) for layer in self._mert.encoder.layers]
        try:
            # Same-length clips are batched together; padding would change a conv front end's
            # output, so batches never mix lengths.
            by_length: dict[int, list[tuple[Clip, np.ndarray]]] = {}
            for clip in clips:
                y = _mono_at(clip, MERT_RATE)
                by_length.setdefault(len(y), []).append((clip, y))
            for group in by_length.values():
                for start in range(0, len(group), BATCH_SIZE):
                    part = group[start : start + BATCH_SIZE]
                    inputs = self._mert_processor(
                        [y for _, y in part], sampling_rate=MERT_RATE, return_tensors="pt"
                    )
                    values = inputs["input_values"].to(self.device, self.dtype)
                    captured.clear()
                    with torch.inference_mode():
                        self._mert(input_values=values)
                    layers = torch.stack(captured, dim=1).float().cpu().numpy()  # [B, L, T, D]
                    for (clip, y), item in zip(part, layers, strict=True):
                        _store_mert(clip, item, len(y) / MERT_RATE)
        finally:
            for handle in handles:
                handle.remove()

    # ---- text ----------------------------------------------------------------------------
    def clap_text_embeddings(self, texts: list[str]) -> np.ndarray:
        """L2-normalised CLAP text embeddings, one row per text (cached per text)."""
        import torch

        if self._clap is None:
            raise ModelLoadError(f"clap: {self.reason('clap')}")
        with self._lock:
            missing = [t for t in dict.fromkeys(texts) if t not in self._text_cache]
            if missing:
                inputs = self._clap_processor.tokenizer(
                    missing, padding=True, truncation=True, max_length=77, return_tensors="pt"
                )
                with torch.inference_mode():
                    out = self._clap.get_text_features(
                        input_ids=inputs["input_ids"].to(self.device),
                        attention_mask=inputs["attention_mask"].to(self.device),
                    )
                for text, row in zip(missing, _pooled(out).float().cpu().numpy(), strict=True):
                    self._text_cache[text] = _l2(row)
            return np.stack([self._text_cache[t] for t in texts])

    # ---- speech --------------------------------------------------------------------------
    def transcript(self, clip: Clip, round_clips: list[Clip] | None = None) -> Transcript:
        """Whisper's transcript of `clip`; the first ask transcribes all of `round_clips` in
        one batch and caches each result in its clip."""
        whisper = self.whisper
        if whisper is None:
            raise ModelLoadError(f"whisper: {self.reason('whisper')}")
        with self._lock:
            if clip.neural.transcript is None:
                batch = [c for c in (round_clips or [clip]) if c.neural.transcript is None]
                if clip not in batch:
                    batch.append(clip)
                for item, result in zip(batch, self.transcribe_batch(batch), strict=True):
                    item.neural.transcript = result
            transcript = clip.neural.transcript
            assert transcript is not None  # set just above
            return transcript

    def transcribe_batch(self, clips: list[Clip]) -> list[Transcript]:
        """Transcribe `clips` in one batch, uncached (what `transcript` and the bench call)."""
        if self.whisper is None:
            raise ModelLoadError(f"whisper: {self.reason('whisper')}")
        try:
            return self.whisper.transcribe([_mono_at(c, WHISPER_RATE) for c in clips])
        except WhisperTokenError as exc:
            raise ModelLoadError(str(exc)) from exc


def _pooled(out: Any) -> Any:
    """transformers v5 returns an output object from get_*_features; v4 returned the tensor."""
    return getattr(out, "pooler_output", out)


def _l2(v: np.ndarray) -> np.ndarray:
    v = np.asarray(v, dtype=np.float32)
    norm = float(np.linalg.norm(v))
    return v / norm if norm > 0 else v


def _mono_at(clip: Clip, rate: int) -> np.ndarray:
    """The clip's original audio, mono, at `rate` (resampled from the original, not the 22 kHz
    analysis copy, so 48 kHz models see the full band)."""

    def compute(c: Clip, rate: int) -> np.ndarray:
        result: np.ndarray = resample(
            Audio(c.original.mono(), c.original.sample_rate), rate
        ).samples[0]
        return result

    return clip.feature(compute, rate)


def _store_mert(clip: Clip, layers: np.ndarray, seconds: float) -> None:
    """Pool one clip's [L, T, D] MERT layer outputs into the features listed in the docstring."""
    n_layers, n_frames, _ = layers.shape
    layer_means = layers.mean(axis=1)
    per_segment = max(1, int(round(n_frames / max(seconds, 1e-6) * MERT_SEGMENT_S)))
    n_segments = max(1, n_frames // per_segment)
    segments = (
        layers[:, : n_segments * per_segment]
        .reshape(n_layers, n_segments, per_segment, -1)
        .mean(axis=2)
    )
    step = max(1, int(np.ceil(n_frames / MERT_FAD_MAX_FRAMES)))
    clip.neural.mert_layer_means = layer_means.astype(np.float32)
    clip.neural.mert_embedding = layer_means.mean(axis=0).astype(np.float32)
    clip.neural.mert_segments = segments.astype(np.float32)
    clip.neural.mert_fad_frames = layers[-1, ::step].astype(np.float32)


def require_model(models: NeuralModels | None, name: str) -> NeuralModels:
    """The loaded models, or ScorerUnavailable naming the missing model and why (scorers call
    this in their constructor and again per clip, as the engine may pass other models)."""
    if models is None:
        raise ScorerUnavailable("no neural models configured")
    if not models.has(name):
        raise ScorerUnavailable(f"{name} model {models.reason(name)}")
    return models


def ensure_feature(
    models: NeuralModels, clip: Clip, round_clips: list[Clip], read: Callable[[Clip], T | None]
) -> T:
    """`read(clip)` (e.g. `lambda c: c.neural.clap_embedding`). The engine normally runs
    prepare_round first; if it did not, prepare now (batched over the round when the clip belongs
    to it), and fail visibly if the feature is still absent."""
    value = read(clip)
    if value is None:
        models.prepare_round(round_clips if any(c is clip for c in round_clips) else [clip])
        value = read(clip)
    if value is None:
        raise ScorerUnavailable("its neural feature could not be computed for this clip")
    return value

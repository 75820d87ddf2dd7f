"""Preference training on the validator: customer votes -> pairs -> own embeddings -> the
Bradley-Terry head, deterministically (docs/decisions.md D37).

The API only relays votes and audio; it never ships a model. Each validator reads the public
feed (`GET /preferences`), downloads the voted tracks (checking each against its published
SHA-256), embeds them with its own scoring models, and fits the head with the fixed recipe in
`scoring/preference_model.py`. Same pairs + same embeddings -> the same checkpoint bytes, so
validators that read the same feed agree on the head, its held-out accuracy and hence the
preference weight. Runs off the scoring path (a CLI command, or a periodic task in a thread).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
from loguru import logger

from tuneforge.core.publication import API_PREFIX
from tuneforge.scoring import preference_model as pm
from tuneforge.scoring.weights import preference_share, preference_weight
from tuneforge.validator.api_client import ApiClient, ApiUnavailable

if TYPE_CHECKING:
    from tuneforge.scoring.clip import Clip


class EmbeddingModels(Protocol):
    """What this job needs of the validator's scoring models (`scoring.neural.NeuralModels`)."""

    def has(self, name: str) -> bool: ...

    def prepare_round(self, clips: list[Clip]) -> None: ...


MAX_AUDIO_BYTES = 32 * 1024 * 1024
MAX_FEED_PAGES = 1000  # 1000 pages x 1000 votes: far beyond what one training run should read
EMBEDDING = "clap_embedding"  # what the network's recipe reads (D37)
DSP_EMBEDDING = "dsp_embedding"  # model-free: localnet and machines without CLAP
# The API limits each hotkey per minute (API.md): a long download waits rather than skips.
RATE_LIMIT_TRIES = 7
RATE_LIMIT_WAIT_S = 10.0


@dataclass(frozen=True)
class TrackRef:
    track_id: str
    audio_url: str
    audio_sha256: str


@dataclass(frozen=True)
class Pair:
    """The customer preferred `winner` over `loser`; `order` sorts pairs as the feed grew."""

    order: tuple[int, int]
    winner: TrackRef
    loser: TrackRef

    @property
    def key(self) -> str:
        return f"{self.order[0]}:{self.order[1]}:{self.winner.track_id}:{self.loser.track_id}"


@dataclass(frozen=True)
class TrainingReport:
    pairs_available: int
    pairs_needed: int
    pairs_used: int
    heldout_accuracy: float | None = None
    share: float = 0.0
    weight: float = 0.0
    checkpoint: str | None = None

    @property
    def active(self) -> bool:
        return self.heldout_accuracy is not None

    def describe(self) -> str:
        if not self.active:
            return (
                f"preference scorer inactive: {self.pairs_available} usable pairs, needs "
                f"{self.pairs_needed}"
            )
        return (
            f"preference scorer trained on {self.pairs_used} pairs: held-out accuracy "
            f"{self.heldout_accuracy:.3f}, weight {self.weight:.2f} "
            f"({self.share * 100:.1f}% of the score)"
        )


def _vote_number(vote_id: Any) -> int:
    return int(str(vote_id).removeprefix("vote_"))


def _ref(item: Any) -> TrackRef | None:
    if not isinstance(item, Mapping):
        return None
    track_id, url, sha = item.get("track_id"), item.get("audio_url"), item.get("audio_sha256")
    if not (isinstance(track_id, str) and isinstance(url, str) and isinstance(sha, str)):
        return None
    if not url.startswith(API_PREFIX + "/music/audio/") or len(sha) != 64:
        return None
    return TrackRef(track_id, url, sha)


def pairs_from_feed(items: Iterable[Mapping[str, Any]]) -> list[Pair]:
    """Pairs in feed order: each comparison, and each up x down of one voter on one request.

    Sorted by (newest vote, oldest vote) of each pair, so pairs only ever append as votes
    arrive: a prefix of the list is the same for every validator that has read that far."""
    pairs: list[Pair] = []
    thumbs: dict[tuple[str, str], dict[str, list[tuple[int, TrackRef]]]] = {}
    for item in items:
        try:
            number = _vote_number(item.get("vote_id"))
        except ValueError:
            continue
        kind = item.get("kind")
        if kind == "compare":
            winner, loser = _ref(item.get("winner")), _ref(item.get("loser"))
            if winner and loser and winner.track_id != loser.track_id:
                pairs.append(Pair((number, number), winner, loser))
        elif kind in ("up", "down"):
            track = _ref(item.get("track"))
            if track is not None:
                group = (str(item.get("voter")), str(item.get("request_id")))
                thumbs.setdefault(group, {"up": [], "down": []})[kind].append((number, track))
    for votes in thumbs.values():
        for up_number, up in votes["up"]:
            for down_number, down in votes["down"]:
                order = (max(up_number, down_number), min(up_number, down_number))
                pairs.append(Pair(order, up, down))
    pairs.sort(key=lambda p: p.key)
    return pairs


def oriented(pairs: list[Pair]) -> tuple[list[TrackRef], list[TrackRef], np.ndarray]:
    """(a, b, a_won): the winner goes to a or b by a hash of the pair, so the labels are
    balanced without any randomness that could differ between validators."""
    a, b, won = [], [], []
    for pair in pairs:
        winner_first = hashlib.sha256(pair.key.encode()).digest()[0] & 1 == 1
        a.append(pair.winner if winner_first else pair.loser)
        b.append(pair.loser if winner_first else pair.winner)
        won.append(winner_first)
    return a, b, np.asarray(won, dtype=bool)


async def read_feed(api: ApiClient) -> list[dict[str, Any]]:
    """Every vote in the feed, oldest first."""
    items: list[dict[str, Any]] = []
    cursor: str | None = None
    for _ in range(MAX_FEED_PAGES):
        path = "/preferences?limit=1000" + (f"&cursor={cursor}" if cursor else "")
        answer = await api.request("GET", path)
        if answer.status != 200:
            raise ApiUnavailable(f"GET /preferences: HTTP {answer.status} {answer.detail}")
        page = answer.json()
        items.extend(i for i in page.get("preferences", []) if isinstance(i, dict))
        cursor = page.get("next_cursor")
        if not cursor:
            break
    return items


async def fetch_audio(api: ApiClient, tracks: Iterable[TrackRef], cache: Path) -> dict[str, Path]:
    """{sha256: WAV path} for every track, downloaded once into `cache` and checked against the
    published hash (a track whose bytes do not match is left out)."""
    cache.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    for track in {t.audio_sha256: t for t in tracks}.values():
        target = cache / f"{track.audio_sha256}.wav"
        if not target.is_file():
            answer = await _download(api, track.audio_url.removeprefix(API_PREFIX))
            if answer.status != 200 or hashlib.sha256(answer.body).hexdigest() != (
                track.audio_sha256
            ):
                logger.warning(
                    "preference audio {} unusable (HTTP {})", track.track_id, answer.status
                )
                continue
            fd, tmp = tempfile.mkstemp(dir=cache, suffix=".tmp")
            with os.fdopen(fd, "wb") as handle:
                handle.write(answer.body)
            os.replace(tmp, target)
        paths[track.audio_sha256] = target
    return paths


async def _download(api: ApiClient, path: str) -> Any:
    """One track; waits out the API's per-hotkey rate limit (429) a few times."""
    for _ in range(RATE_LIMIT_TRIES):
        answer = await api.request("GET", path, max_bytes=MAX_AUDIO_BYTES)
        if answer.status != 429:
            return answer
        await asyncio.sleep(RATE_LIMIT_WAIT_S)
    return answer


def embed(
    paths: Mapping[str, Path], models: EmbeddingModels | None, name: str = EMBEDDING
) -> dict[str, np.ndarray]:
    """{sha256: embedding} with this validator's own models, one clip at a time (so no batch
    composition enters); the DSP embedding needs no model (`models` may be None)."""
    from tuneforge.core.audio import decode_wav
    from tuneforge.scoring.clip import Clip
    from tuneforge.scoring.features import dsp_embedding

    result: dict[str, np.ndarray] = {}
    for sha in sorted(paths):
        clip = Clip(decode_wav(paths[sha].read_bytes()))
        value: np.ndarray | None
        if name == DSP_EMBEDDING:
            value = dsp_embedding(clip)
        elif models is None:
            raise ValueError(f"the {name!r} embedding needs the scoring models")
        else:
            models.prepare_round([clip])
            value = clip.neural.embedding(name)
        if value is not None:
            result[sha] = np.asarray(value, dtype=np.float32)
    return result


def train_from_pairs(
    pairs: list[Pair], embeddings: Mapping[str, np.ndarray], out_dir: Path, name: str = EMBEDDING
) -> TrainingReport:
    """Fit the head on the usable prefix of `pairs` and install it at `out_dir` atomically."""
    known = [
        p
        for p in pairs
        if p.winner.audio_sha256 in embeddings and p.loser.audio_sha256 in embeddings
    ]
    used = pm.usable_pair_count(len(known))
    if used == 0:
        return TrainingReport(len(known), pm.MIN_PAIRS, 0)
    a, b, won = oriented(known[:used])
    emb_a = np.stack([embeddings[t.audio_sha256] for t in a])
    emb_b = np.stack([embeddings[t.audio_sha256] for t in b])
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{out_dir.name}-"))
    model = pm.train(emb_a, emb_b, won, staging, embedding=name)
    _install(staging, out_dir)
    accuracy = model.heldout_accuracy
    return TrainingReport(
        len(known),
        pm.MIN_PAIRS,
        used,
        accuracy,
        preference_share(accuracy),
        preference_weight(accuracy),
        str(out_dir),
    )


def _install(staging: Path, out_dir: Path) -> None:
    """Swap the new checkpoint in: a reader sees the old head or the new one, never a mix."""
    old = out_dir.with_name(f".{out_dir.name}-old")
    shutil.rmtree(old, ignore_errors=True)
    if out_dir.exists():
        os.replace(out_dir, old)
    os.replace(staging, out_dir)
    shutil.rmtree(old, ignore_errors=True)


async def train_preference(
    api: ApiClient,
    models: EmbeddingModels | None,
    out_dir: Path,
    cache: Path,
    name: str = EMBEDDING,
) -> TrainingReport:
    """Read the feed, fetch and embed the audio, train; what `train-preference` runs."""
    pairs = pairs_from_feed(await read_feed(api))
    if pm.usable_pair_count(len(pairs)) == 0:
        return TrainingReport(len(pairs), pm.MIN_PAIRS, 0)
    paths = await fetch_audio(api, [t for p in pairs for t in (p.winner, p.loser)], cache)

    def fit() -> TrainingReport:
        return train_from_pairs(pairs, embed(paths, models, name), out_dir, name)

    # Embedding and fitting are CPU work: off the event loop, so rounds and jobs go on.
    report = await asyncio.to_thread(fit)
    logger.info("{}", report.describe())
    return report


class PreferenceTrainer:
    """The validator's periodic retraining (`--api.preference_train_interval_s`), beside the
    round loop and never inside it; `last` is the latest report."""

    def __init__(
        self,
        api: ApiClient,
        models: EmbeddingModels | None,
        out_dir: Path,
        cache: Path,
        interval_s: float,
    ) -> None:
        self.api = api
        self.models = models
        self.out_dir = out_dir
        self.cache = cache
        self.interval_s = interval_s
        # The network's recipe reads CLAP; a validator without it (localnet) uses the DSP one.
        has_clap = models is not None and models.has("clap")
        self.embedding = EMBEDDING if has_clap else DSP_EMBEDDING
        self.last: TrainingReport | None = None

    async def run_once(self) -> TrainingReport | None:
        try:
            self.last = await train_preference(
                self.api, self.models, self.out_dir, self.cache, self.embedding
            )
        except ApiUnavailable as exc:
            logger.warning("preference training skipped: {}", exc)
        except Exception:  # a failed pass is retried next period; the validator goes on
            logger.exception("preference training failed")
        return self.last

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await self.run_once()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self.interval_s)

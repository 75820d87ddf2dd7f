"""Scoring models present on this machine: a --models-dir copy or the Hugging Face cache."""

from __future__ import annotations

import os
from pathlib import Path

from tuneforge.scoring.weights import SCORERS

# Scoring models localnet looks for, with the hub id whose Hugging Face cache entry is used
# when no --models-dir copy exists (None: only a local directory can provide it).
MODEL_HUB_IDS: dict[str, str | None] = {
    "clap": "laion/clap-htsat-fused",
    "mert": "m-a-p/MERT-v1-95M",
    "whisper": "openai/whisper-base",
    "mos": None,
    "preference": None,
}
# Scorers that need each model (DESIGN.md §5); shown when the model is absent.
# model -> the scorers whose table row needs it (the scoring table is the one source).
MODEL_SCORERS: dict[str, tuple[str, ...]] = {
    model: tuple(spec.name for spec in SCORERS if model in spec.models)
    for model in ("clap", "mert", "whisper", "mos", "preference")
}


def _hf_hub_cache() -> Path:
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    home = os.environ.get("HF_HOME") or str(Path("~/.cache/huggingface").expanduser())
    return Path(home).expanduser() / "hub"


def _cached_snapshot(hub_id: str, cache: Path) -> Path | None:
    """The snapshot directory of `hub_id` in the HF cache (refs/main first), if complete."""
    repo = cache / ("models--" + hub_id.replace("/", "--"))
    snapshots = repo / "snapshots"
    if not snapshots.is_dir():
        return None
    ref = repo / "refs" / "main"
    candidates: list[Path] = []
    if ref.is_file():
        candidates.append(snapshots / ref.read_text().strip())
    candidates += sorted(snapshots.iterdir(), key=lambda p: p.stat().st_mtime, reverse=True)
    return next((c for c in candidates if (c / "config.json").is_file()), None)


def discover_models(
    models_dir: str, hub_cache: Path | None = None
) -> tuple[dict[str, str], dict[str, str]]:
    """Scoring models present on this machine: ({model: local dir}, {model: why absent}).

    A model comes from `models_dir/<name>` (or `models_dir/<hub repo name>`), else from the
    Hugging Face cache for its hub id. Nothing is ever downloaded.
    """
    cache = hub_cache or _hf_hub_cache()
    base = Path(models_dir).expanduser() if models_dir else None
    found: dict[str, str] = {}
    missing: dict[str, str] = {}
    for name, hub_id in MODEL_HUB_IDS.items():
        local: list[Path] = []
        if base is not None:
            local.append(base / name)
            if hub_id:
                local.append(base / hub_id.split("/")[-1])
        hit = next((d for d in local if d.is_dir() and any(d.iterdir())), None)
        if hit is None and hub_id:
            hit = _cached_snapshot(hub_id, cache)
        if hit is not None:
            found[name] = str(hit.resolve())
            continue
        where = [str(d) for d in local]
        if hub_id:
            where.append(f"{hub_id} in the Hugging Face cache {cache}")
        looked = "looked in " + ", ".join(where) if where else "give it with --models-dir"
        missing[name] = f"not found locally ({looked}); localnet never downloads models"
    return found, missing

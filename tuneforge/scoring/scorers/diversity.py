"""`diversity`: is this clip new, compared with the same miner's recent clips and with the
round's other clips? Measured as cosine distance between clip embeddings (CLAP or MERT when a
neural model stored one, else the DSP embedding)."""

from __future__ import annotations

import numpy as np

from tuneforge.scoring.base import Challenge, RoundContext, Scorer, ScoreResult
from tuneforge.scoring.clip import Clip
from tuneforge.scoring.features import dsp_embedding

HISTORY_LIMIT = 16
# Cosine distance at which a clip counts as fully distinct. Neural embeddings of different
# pieces sit ~0.2-0.6 apart; the DSP embedding is denser (synthesised pieces in other keys and
# tempi ≈ 0.03-0.11; one piece at half gain or shifted ≈ 0.001), so its scale is smaller.
FULL_DISTANCE = {"clap_embedding": 0.25, "mert_embedding": 0.25, "dsp_embedding": 0.05}


def diversity_embedding(clip: Clip) -> tuple[str, np.ndarray]:
    """(kind, L2-normalised 1-D embedding): CLAP, else MERT, else DSP."""
    for kind in ("clap_embedding", "mert_embedding"):
        prepared = clip.neural.embedding(kind)
        if prepared is not None:
            vector = np.asarray(prepared, dtype=np.float32)
            if vector.ndim == 1 and vector.size:
                norm = float(np.linalg.norm(vector))
                return kind, vector / norm if norm > 0 else vector
    return "dsp_embedding", dsp_embedding(clip)


def _min_distance(vector: np.ndarray, others: list[np.ndarray]) -> float | None:
    same = [o for o in others if o.ndim == 1 and o.shape == vector.shape]
    if not same:
        return None
    stacked = np.stack(same).astype(np.float64)
    norms = np.linalg.norm(stacked, axis=1) * max(float(np.linalg.norm(vector)), 1e-12)
    cosine = stacked @ vector.astype(np.float64) / np.maximum(norms, 1e-12)
    return float(np.clip(1.0 - cosine.max(), 0.0, 2.0))


class DiversityScorer(Scorer):
    """Mean of two novelties, each min cosine distance / FULL_DISTANCE clamped to 1: against the
    miner's recent clips, and against the other clips of this round."""

    name = "diversity"

    def measure(
        self, clip: Clip, challenge: Challenge, context: RoundContext, index: int
    ) -> ScoreResult:
        kind, vector = diversity_embedding(clip)
        scale = FULL_DISTANCE[kind]
        hotkey = context.miner_hotkeys[index]
        own = _min_distance(vector, context.history.recent_embeddings(hotkey, HISTORY_LIMIT))
        round_others = [
            diversity_embedding(other)[1] for i, other in enumerate(context.clips) if i != index
        ]
        peers = _min_distance(vector, round_others)
        if own is None and peers is None:
            # The first clip this validator ever sees, alone in its round: nothing like it yet.
            return ScoreResult(1.0, "nothing earlier to compare with", {"embedding": kind})
        details: dict[str, object] = {"embedding": kind}
        parts, complaints = [], []
        if own is not None:
            novelty = min(1.0, own / scale)
            parts.append(novelty)
            details["min_distance_own_history"] = round(own, 4)
            if novelty < 0.5:
                complaints.append("close to this miner's recent clips")
        if peers is not None:
            novelty = min(1.0, peers / scale)
            parts.append(novelty)
            details["min_distance_round"] = round(peers, 4)
            if novelty < 0.5:
                complaints.append("close to another clip of this round")
        return ScoreResult(float(np.mean(parts)), "; ".join(complaints), details)

"""The learned MOS predictor: a small regression head over a clip embedding (CLAP or MERT)
predicting a mean opinion score in [1, 5], with its training code.

A checkpoint is a directory with `config.json` and `model.safetensors`, loaded with
`MosHead.from_pretrained(dir)`. Production validators train it on human ratings of real clips
(e.g. MusicEval / listening-test MOS paired with the embeddings NeuralModels computes) and point
`learned_mos` at that directory; tests train it on synthetic ratings.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from tuneforge.core.errors import TuneForgeError
from tuneforge.scoring.head_checkpoint import (
    StandardisedMlp,
    read_head,
    save_head,
    single_thread,
)

MOS_MIN, MOS_MAX = 1.0, 5.0
EMBEDDINGS = ("clap_embedding", "mert_embedding")


class MosModelError(TuneForgeError, ValueError):
    """A MOS checkpoint or training set that cannot be used."""

    status = 500
    code = "mos_model_invalid"


@dataclass
class MosConfig:
    embedding: str  # clip feature the head reads: "clap_embedding" or "mert_embedding"
    input_dim: int
    hidden_dim: int = 64
    heldout_mae: float | None = None  # mean absolute error on the held-out split, in MOS points
    heldout_pearson: float | None = None
    num_train: int = 0


class MosHead(StandardisedMlp):
    """Standardise the embedding, one hidden layer, sigmoid to [1, 5]."""

    def __init__(self, config: MosConfig) -> None:
        super().__init__(config.input_dim, config.hidden_dim)
        self.config = config

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return MOS_MIN + (MOS_MAX - MOS_MIN) * torch.sigmoid(self.raw(x))

    def predict(self, embeddings: np.ndarray) -> np.ndarray:
        """MOS in [1, 5] for each row of `embeddings` [N, input_dim]."""
        x = np.asarray(embeddings, dtype=np.float32)
        if x.ndim != 2 or x.shape[1] != self.config.input_dim:
            raise MosModelError(
                f"expected embeddings [N, {self.config.input_dim}], got {list(x.shape)}"
            )
        with torch.inference_mode():
            result: np.ndarray = self(torch.from_numpy(x)).numpy().astype(np.float64)
            return result

    def save_pretrained(self, directory: str | Path) -> Path:
        return save_head(directory, self, self.config)

    @classmethod
    def from_pretrained(cls, directory: str | Path) -> MosHead:
        config, weights = read_head(directory, MosConfig, MosModelError, "MOS")
        if config.embedding not in EMBEDDINGS:
            raise MosModelError(f"embedding must be one of {EMBEDDINGS}, got {config.embedding}")
        head = cls(config)
        head.load_state_dict(weights)
        return head.eval()


def train(
    embeddings: np.ndarray,
    ratings: np.ndarray,
    out_dir: str | Path,
    embedding: str = "mert_embedding",
    hidden_dim: int = 64,
    epochs: int = 400,
    heldout_fraction: float = 0.2,
    seed: int = 0,
) -> MosHead:
    """Fit a MosHead to (embedding, MOS) pairs, measure it on a held-out split, save to `out_dir`.

    Full-batch AdamW with weight decay (the data sets are small: hundreds to thousands of
    ratings), deterministic for a given seed.
    """
    x = np.asarray(embeddings, dtype=np.float32)
    y = np.asarray(ratings, dtype=np.float32)
    if x.ndim != 2 or y.shape != (len(x),) or len(x) < 10:
        raise MosModelError("need embeddings [N, D] and ratings [N] with N >= 10")
    if not np.all(np.isfinite(x)) or not np.all((y >= MOS_MIN) & (y <= MOS_MAX)):
        raise MosModelError(f"embeddings must be finite and ratings within [{MOS_MIN}, {MOS_MAX}]")
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(x))
    n_test = max(2, int(round(len(x) * heldout_fraction)))
    test, fit = order[:n_test], order[n_test:]
    torch.manual_seed(seed)
    head = MosHead(MosConfig(embedding=embedding, input_dim=x.shape[1], hidden_dim=hidden_dim))
    head.input_mean.copy_(torch.from_numpy(x[fit].mean(axis=0)))
    head.input_std.copy_(torch.from_numpy(x[fit].std(axis=0) + 1e-6))
    optimiser = torch.optim.AdamW(head.parameters(), lr=1e-2, weight_decay=1e-2)
    xf, yf = torch.from_numpy(x[fit]), torch.from_numpy(y[fit])
    head.train()
    with single_thread():
        for _ in range(epochs):
            optimiser.zero_grad()
            loss = nn.functional.mse_loss(head(xf), yf)
            loss.backward()  # type: ignore[no-untyped-call]  # torch leaves it unannotated
            optimiser.step()
    head.eval()
    predicted = head.predict(x[test])
    head.config.heldout_mae = float(np.mean(np.abs(predicted - y[test])))
    head.config.heldout_pearson = float(np.corrcoef(predicted, y[test])[0, 1])
    head.config.num_train = len(fit)
    head.save_pretrained(out_dir)
    return head

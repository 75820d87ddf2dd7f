"""The preference model: a Bradley-Terry utility head over clip embeddings, trained from
pairwise human preferences, with its accuracy measured on a held-out split of the pairs.

P(a preferred over b) = sigmoid(u(a) - u(b)), u a small MLP. A checkpoint is a directory with
`config.json` (incl. `heldout_accuracy`) and `model.safetensors`. A checkpoint without a held-out
accuracy is refused: the preference weight (2% at 0.55 -> 20% at 0.80, weights.py) depends on it.
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

# The training recipe every validator follows (docs/decisions.md D37), so that validators reading
# the same public pairs fit the same head: a fixed seed and split, a fixed number of epochs, and
# only whole blocks of PAIR_STEP pairs (in feed order), so that two validators that read the feed
# a few votes apart still train on the same prefix. Below MIN_PAIRS the scorer stays inactive.
TRAINING_SEED = 0
HELDOUT_FRACTION = 0.2
TRAINING_EPOCHS = 300
MIN_PAIRS = 50
PAIR_STEP = 25


def usable_pair_count(available: int) -> int:
    """Pairs trained on: whole PAIR_STEP blocks, and none below MIN_PAIRS."""
    usable = available - available % PAIR_STEP
    return usable if usable >= MIN_PAIRS else 0


class PreferenceModelError(TuneForgeError, ValueError):
    """A preference checkpoint or training set that cannot be used."""

    status = 500
    code = "preference_model_invalid"


@dataclass
class PreferenceConfig:
    embedding: str  # clip feature the head reads, e.g. "clap_embedding" or "mert_embedding"
    input_dim: int
    hidden_dim: int = 32
    heldout_accuracy: float | None = None
    num_train_pairs: int = 0
    num_heldout_pairs: int = 0
    utility_mean: float = 0.0  # utility statistics over training clips: the score's zero point
    utility_std: float = 1.0


class _Utility(StandardisedMlp):
    def __init__(self, config: PreferenceConfig) -> None:
        super().__init__(config.input_dim, config.hidden_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.raw(x)


class PreferenceModel:
    def __init__(self, config: PreferenceConfig, utility: _Utility) -> None:
        self.config = config
        self.utility_net = utility.eval()

    @property
    def heldout_accuracy(self) -> float | None:
        """Fraction of held-out pairs whose human winner the model ranks higher."""
        return self.config.heldout_accuracy

    @property
    def embedding(self) -> str:
        return self.config.embedding

    def utility(self, embeddings: np.ndarray) -> np.ndarray:
        x = np.asarray(embeddings, dtype=np.float32)
        if x.ndim != 2 or x.shape[1] != self.config.input_dim:
            raise PreferenceModelError(
                f"expected embeddings [N, {self.config.input_dim}], got {list(x.shape)}"
            )
        with torch.inference_mode():
            result: np.ndarray = self.utility_net(torch.from_numpy(x)).numpy().astype(np.float64)
            return result

    def prob_preferred(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """P(row of `a` is preferred over the same row of `b`)."""
        result: np.ndarray = 1.0 / (1.0 + np.exp(-(self.utility(a) - self.utility(b))))
        return result

    def score(self, embeddings: np.ndarray) -> np.ndarray:
        """[0, 1]: the probability of beating a typical training clip (utility at the mean)."""
        z = (self.utility(embeddings) - self.config.utility_mean) / self.config.utility_std
        return 1.0 / (1.0 + np.exp(-z))

    def save_pretrained(self, directory: str | Path) -> Path:
        return save_head(directory, self.utility_net, self.config)

    @classmethod
    def from_pretrained(cls, directory: str | Path) -> PreferenceModel:
        config, weights = read_head(directory, PreferenceConfig, PreferenceModelError, "preference")
        if config.heldout_accuracy is None:
            raise PreferenceModelError(f"{directory} has no held-out accuracy: not trained")
        utility = _Utility(config)
        utility.load_state_dict(weights)
        return cls(config, utility)


def train(
    emb_a: np.ndarray,
    emb_b: np.ndarray,
    a_won: np.ndarray,
    out_dir: str | Path,
    embedding: str = "clap_embedding",
    hidden_dim: int = 32,
    epochs: int = TRAINING_EPOCHS,
    heldout_fraction: float = HELDOUT_FRACTION,
    seed: int = TRAINING_SEED,
) -> PreferenceModel:
    """Fit a Bradley-Terry head to pairs (emb_a[i], emb_b[i], a_won[i]), measure held-out
    accuracy on a random split of the pairs, save to `out_dir` and return the model."""
    a = np.asarray(emb_a, dtype=np.float32)
    b = np.asarray(emb_b, dtype=np.float32)
    won = np.asarray(a_won, dtype=bool)
    if a.ndim != 2 or a.shape != b.shape or won.shape != (len(a),) or len(a) < 10:
        raise PreferenceModelError("need emb_a, emb_b [N, D] and a_won [N] with N >= 10")
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        raise PreferenceModelError("embeddings must be finite")
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(a))
    n_test = max(5, int(round(len(a) * heldout_fraction)))
    test, fit = order[:n_test], order[n_test:]
    torch.manual_seed(seed)
    config = PreferenceConfig(embedding=embedding, input_dim=a.shape[1], hidden_dim=hidden_dim)
    utility = _Utility(config)
    pooled = np.concatenate([a[fit], b[fit]])
    utility.input_mean.copy_(torch.from_numpy(pooled.mean(axis=0)))
    utility.input_std.copy_(torch.from_numpy(pooled.std(axis=0) + 1e-6))
    xa, xb = torch.from_numpy(a[fit]), torch.from_numpy(b[fit])
    target = torch.from_numpy(won[fit].astype(np.float32))
    optimiser = torch.optim.AdamW(utility.parameters(), lr=1e-2, weight_decay=1e-2)
    utility.train()
    with single_thread():
        for _ in range(epochs):
            optimiser.zero_grad()
            margin = utility(xa) - utility(xb)
            loss = nn.functional.binary_cross_entropy_with_logits(margin, target)
            loss.backward()  # type: ignore[no-untyped-call]  # torch leaves it unannotated
            optimiser.step()
    model = PreferenceModel(config, utility)
    predicted = model.utility(a[test]) > model.utility(b[test])
    config.heldout_accuracy = float(np.mean(predicted == won[test]))
    config.num_train_pairs, config.num_heldout_pairs = len(fit), len(test)
    train_utils = model.utility(pooled)
    config.utility_mean = float(train_utils.mean())
    config.utility_std = float(train_utils.std() + 1e-6)
    model.save_pretrained(out_dir)
    return model

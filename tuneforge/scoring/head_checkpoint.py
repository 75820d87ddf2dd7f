"""Checkpoint directories of the small trained heads (MOS, preference): `config.json` holding a
dataclass config and `model.safetensors` holding the module's weights."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any, TypeVar

import torch
from torch import nn

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"

C = TypeVar("C")


class StandardisedMlp(nn.Module):
    """Standardise the embedding (mean/std buffers set by training), one GELU hidden layer, one
    output: the body of both trained heads, so their checkpoints share one key layout."""

    input_mean: torch.Tensor  # buffers: saved and moved with the weights
    input_std: torch.Tensor

    def __init__(self, input_dim: int, hidden_dim: int) -> None:
        super().__init__()
        self.register_buffer("input_mean", torch.zeros(input_dim))
        self.register_buffer("input_std", torch.ones(input_dim))
        self.net = nn.Sequential(
            nn.Linear(input_dim, hidden_dim), nn.GELU(), nn.Linear(hidden_dim, 1)
        )

    def raw(self, x: torch.Tensor) -> torch.Tensor:
        """The unbounded output for each row of `x` [N, input_dim]."""
        out: torch.Tensor = self.net((x - self.input_mean) / self.input_std)[:, 0]
        return out


@contextmanager
def single_thread() -> Iterator[None]:
    """Train the tiny heads on one thread: thousands of microsecond-sized steps lose far more to
    thread hand-offs than they gain (measured on the 2-core CI machines)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def save_head(directory: str | Path, module: nn.Module, config: Any) -> Path:
    """Write `config` (a dataclass) and `module`'s weights into `directory`."""
    from safetensors.torch import save_file

    path = Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous() for k, v in module.state_dict().items()}
    save_file(state, str(path / WEIGHTS_FILE))
    (path / CONFIG_FILE).write_text(json.dumps(asdict(config), indent=2))
    return path


def read_head(
    directory: str | Path, config_cls: type[C], error: type[Exception], what: str
) -> tuple[C, dict[str, torch.Tensor]]:
    """(config, weights) of a checkpoint directory; `error` with a clear message otherwise."""
    from safetensors.torch import load_file

    path = Path(directory)
    if not (path / CONFIG_FILE).is_file() or not (path / WEIGHTS_FILE).is_file():
        raise error(f"{path} is not a {what} checkpoint ({CONFIG_FILE}, {WEIGHTS_FILE})")
    try:
        config = config_cls(**json.loads((path / CONFIG_FILE).read_text()))
    except (TypeError, json.JSONDecodeError) as exc:
        raise error(f"bad {CONFIG_FILE} in {path}: {exc}") from exc
    return config, load_file(str(path / WEIGHTS_FILE))

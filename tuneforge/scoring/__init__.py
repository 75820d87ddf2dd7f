"""TuneForge scoring: clips and a challenge in, explained scores out (DESIGN.md §5)."""

import os
from pathlib import Path

# librosa's numba kernels compile on first use (seconds to tens of seconds on 2 busy cores);
# a persistent on-disk cache makes every later process start warm. Must be set before numba
# is imported, which is why it lives here rather than in a settings object.
os.environ.setdefault("NUMBA_CACHE_DIR", str(Path.home() / ".cache" / "tuneforge" / "numba"))

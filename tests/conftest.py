"""Test-wide setup: never reach a model hub; keep numba's compile cache between runs."""

from __future__ import annotations

import os
import tempfile

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("NUMBA_CACHE_DIR", os.path.join(tempfile.gettempdir(), "tuneforge-numba"))
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

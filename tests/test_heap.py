"""The validator returns freed clip arrays to the system at once (tuneforge/core/heap.py, D56)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tuneforge.core.heap import MMAP_THRESHOLD_BYTES, release_freed_memory_promptly


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator only")
def test_the_threshold_is_fixed_here_and_in_spawned_scoring_workers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("MALLOC_MMAP_THRESHOLD_", raising=False)
    assert release_freed_memory_promptly() is True  # glibc took the setting in this process
    # A scoring worker is a fresh interpreter (spawned): it sees what this process's children see.
    seen = subprocess.run(
        [sys.executable, "-c", "import os; print(os.environ.get('MALLOC_MMAP_THRESHOLD_'))"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout.strip()
    assert seen == str(MMAP_THRESHOLD_BYTES)


def test_an_operator_setting_is_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MALLOC_MMAP_THRESHOLD_", "4194304")
    release_freed_memory_promptly()
    assert os.environ["MALLOC_MMAP_THRESHOLD_"] == "4194304"

"""localnet's persistent numba cache and the lock that makes concurrent localnets take turns."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

from tuneforge.localnet.options import POLL_S, LocalnetError


def numba_cache_dir() -> Path:
    """localnet's own persistent numba cache (librosa's kernels compile once, ~25 s cold)."""
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "tuneforge" / "numba-localnet"


class CacheLock:
    """An exclusive flock on the numba cache while a validator may be compiling into it.

    Measured here: three processes compiling librosa's kernels into one cold NUMBA_CACHE_DIR at
    once left it corrupt, and every later process segfaulted in beat_track. Localnets therefore
    take turns warming their shared cache.
    """

    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / ".localnet.lock"
        self._fd: int | None = None

    def acquire(self, timeout_s: float, on_wait: Callable[[], None]) -> None:
        import fcntl

        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        deadline = time.monotonic() + timeout_s
        waited = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                self._fd = fd
                return
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    os.close(fd)
                    raise LocalnetError(
                        f"another localnet holds {self.path} (warming the numba cache) for too "
                        "long; wait for it, or set NUMBA_CACHE_DIR to a directory of your own"
                    ) from None
                if not waited:
                    waited = True
                    on_wait()
                time.sleep(POLL_S)

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = None

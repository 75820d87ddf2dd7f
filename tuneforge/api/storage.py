"""Content-addressed audio store: `<root>/ab/cd/<sha256>.wav`, written atomically."""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from pathlib import Path

_SHA256_PATTERN = re.compile(r"^[0-9a-f]{64}$")


class AudioStoreError(Exception):
    pass


def is_sha256(value: str) -> bool:
    return bool(_SHA256_PATTERN.match(value))


def looks_like_wav(data: bytes) -> bool:
    """RIFF/WAVE header check: cheap and enough to refuse non-audio uploads."""
    return len(data) >= 44 and data[:4] == b"RIFF" and data[8:12] == b"WAVE"


class AudioStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)

    def path_of(self, sha256: str) -> Path:
        if not is_sha256(sha256):
            raise AudioStoreError("not a sha256 hex digest")
        return self.root / sha256[:2] / sha256[2:4] / f"{sha256}.wav"

    def has(self, sha256: str) -> bool:
        return is_sha256(sha256) and self.path_of(sha256).is_file()

    def put(self, data: bytes) -> str:
        """Store bytes under their SHA-256 (idempotent) and return the digest."""
        digest = hashlib.sha256(data).hexdigest()
        target = self.path_of(digest)
        if target.is_file():
            return digest
        target.parent.mkdir(parents=True, exist_ok=True)
        # Temp file in the same directory, fsync, then rename: readers see all or nothing.
        fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=".upload-", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp_name, target)
        except BaseException:
            Path(tmp_name).unlink(missing_ok=True)
            raise
        return digest

    def get(self, sha256: str) -> bytes:
        path = self.path_of(sha256)
        if not path.is_file():
            raise AudioStoreError("audio not stored")
        return path.read_bytes()

"""Content-addressed audio store: `<root>/ab/cd/<sha256>.wav`, written atomically.

Uploads are streamed to a temporary file beside the store and hashed as they arrive
(`StagedUpload`), so a 32 MiB WAV never sits in memory and is only adopted once checked.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from pathlib import Path

from tuneforge.core.errors import TuneForgeError

_SHA256_PATTERN = re.compile(r"^[0-9a-f]{64}$")


class AudioStoreError(TuneForgeError):
    status = 404
    code = "audio_not_stored"
    public_detail = "Track audio not available"


def is_sha256(value: str) -> bool:
    return bool(_SHA256_PATTERN.match(value))


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


WAV_HEAD_BYTES = 12


class StagedUpload:
    """A body being received: written to a temp file in the store, hashed as it arrives.
    `commit()` moves it to its content address; `discard()` removes it."""

    def __init__(self, store: AudioStore) -> None:
        self.store = store
        fd, name = tempfile.mkstemp(dir=store.root, prefix=".upload-", suffix=".tmp")
        self.path = Path(name)
        self._handle = os.fdopen(fd, "wb")
        self._hasher = hashlib.sha256()
        self._head = b""
        self.size = 0
        self.sha256 = ""

    def write(self, chunk: bytes) -> None:
        if len(self._head) < WAV_HEAD_BYTES:
            self._head += chunk[: WAV_HEAD_BYTES - len(self._head)]
        self._hasher.update(chunk)
        self._handle.write(chunk)
        self.size += len(chunk)

    def finish(self) -> None:
        """All bytes are in: flush them to disk and fix the digest."""
        self._handle.flush()
        os.fsync(self._handle.fileno())
        self._handle.close()
        self.sha256 = self._hasher.hexdigest()

    @property
    def is_wav(self) -> bool:
        """RIFF/WAVE header and at least a minimal header's length."""
        head = self._head
        return self.size >= 44 and head[:4] == b"RIFF" and head[8:12] == b"WAVE"

    def commit(self) -> str:
        """Adopt the file under its SHA-256 (idempotent) and return the digest."""
        target = self.store.path_of(self.sha256)
        if target.is_file():
            self.discard()
            return self.sha256
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(self.path, target)
        return self.sha256

    def discard(self) -> None:
        if not self._handle.closed:
            self._handle.close()
        self.path.unlink(missing_ok=True)

"""A round's answers wait on disk, not in the validator's memory, until the round is committed.

A 64 × 30 s stereo round is ≈ 245 MB of WAV bytes. Each checked answer is written to a file of
its own in the round's spool folder (`<state file>.spool/round-…/`), and what the round passes
around is a `SpooledWav`: the answer's facts and where its bytes are. The scoring workers read
the clip from there (a task carries a path, not 4 MB of pickled bytes), the catalogue lookup
decodes it from there, and publication reads the bytes back when it builds the outbox. The
folder is removed when the round is committed or abandoned; one left by a crash is removed when
the next validator starts on the same state file. The files are never fsynced: nothing is to
survive a restart, and the kernel may keep them in its page cache, which is not this process's
memory.

This module is light on purpose: the scoring workers import it to unpickle a `SpooledWav`.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from loguru import logger

from tuneforge.core.audio import WavAudio


@dataclass(frozen=True)
class SpooledWav(WavAudio):
    """A checked answer (`WavAudio`) whose bytes are in the file `path`, not in memory (`wav`
    is empty). Valid while its round's spool exists; after that reading it fails."""

    path: str = ""

    def read(self) -> bytes:
        return Path(self.path).read_bytes()


def spool_root(state_path: str | Path) -> Path:
    """Where the rounds of the validator keeping this state file spool their answers: beside
    the state file, named after it, so two validators never share (or clean) one."""
    path = Path(state_path)
    return path.with_name(path.name + ".spool")


class RoundSpool:
    """One round's folder of answers; `close()` (or leaving the `with`) removes it."""

    def __init__(self, root: Path) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.folder = Path(tempfile.mkdtemp(prefix="round-", dir=root))

    def keep(self, index: int, audio: WavAudio) -> WavAudio:
        """Write answer `index` to the spool; the returned answer holds no bytes. Runs in the
        answer's checking thread, after the miner's timed exchange."""
        path = self.folder / f"{index}.wav"
        try:
            path.write_bytes(audio.wav)
        except OSError as exc:  # a full disk costs memory, not the miner's answer
            logger.warning("answer {} kept in memory, not spooled: {}", index, exc)
            return audio
        return SpooledWav(
            b"",
            audio.sample_rate,
            audio.channels,
            audio.num_samples,
            audio.max_bytes,
            audio.max_seconds,
            path=str(path),
        )

    def close(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)

    def __enter__(self) -> RoundSpool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def clear_stale(root: Path) -> int:
    """Remove round folders a validator that stopped mid-round left behind (call before any
    round starts). Returns how many there were."""
    if not root.is_dir():
        return 0
    stale = [p for p in root.iterdir() if p.is_dir() and p.name.startswith("round-")]
    for folder in stale:
        shutil.rmtree(folder, ignore_errors=True)
    return len(stale)

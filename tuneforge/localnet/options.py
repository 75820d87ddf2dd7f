"""What a localnet run is asked to do (LocalnetOptions), the values its modules share, and its
typed errors."""

from __future__ import annotations

from dataclasses import dataclass

from tuneforge.core.config import DEFAULT_NETUID
from tuneforge.core.errors import TuneForgeError

BACKENDS = ("synth", "musicgen")
# Seconds of audio per challenge. Shorter clips give the copy check too few fingerprint frames:
# measured with 3 synth miners (variants 0-2) over 20 challenges, different pieces were flagged
# as copies (similarity >= 0.7) in 1 of 20 rounds at 8 s and 10 s, at 4 s in half of them, and
# in none at 12 s.
DEFAULT_DURATION_S = 12.0
POLL_S = 0.25


class LocalnetError(TuneForgeError):
    """The local network could not be brought up or did not finish; the message says why."""

    code = "localnet"


class WaitTimeout(LocalnetError):
    """One wait ran past its own limit (the overall --timeout raises LocalnetError)."""


class LocalnetStopped(BaseException):
    """SIGTERM/SIGHUP reached localnet: unwind like Ctrl-C so every child is stopped."""


@dataclass
class LocalnetOptions:
    miners: int = 3
    rounds: int = 2
    backend: str = "synth"
    model: str = ""
    models_dir: str = ""
    duration: float = DEFAULT_DURATION_S
    workdir: str = ""
    keep_running: bool = False
    timeout: float = 600.0
    netuid: int = DEFAULT_NETUID
    round_interval_s: float = 1.0
    customer_wait_s: float = 120.0
    votes: int = 0  # scripted customer votes, then preference training (0 = none)
    commit_reveal: bool = False

    def validate(self) -> None:
        if not 1 <= self.miners <= 32:
            raise LocalnetError("--miners must be between 1 and 32")
        if not 1 <= self.rounds <= 1000:
            raise LocalnetError("--rounds must be between 1 and 1000")
        if self.backend not in BACKENDS:
            raise LocalnetError(f"--backend must be one of {', '.join(BACKENDS)}")
        if self.backend == "musicgen" and not self.model:
            raise LocalnetError(
                "--backend musicgen needs --model DIR (a local MusicGen directory or a model id "
                "already in the Hugging Face cache); localnet never downloads models"
            )
        if not 1.0 <= self.duration <= 60.0:
            raise LocalnetError("--duration must be between 1 and 60 seconds")
        if not 0 <= self.votes <= 1000:
            raise LocalnetError("--votes must be between 0 and 1000")
        if self.votes and self.miners < 2:
            raise LocalnetError("--votes needs at least 2 miners (a vote compares two tracks)")
        if self.timeout <= 0:
            raise LocalnetError("--timeout must be positive")

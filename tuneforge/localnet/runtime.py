"""What one localnet run shares between its steps: the options, the deadline, the work
directory, the supervised children, the network's addresses and the plumbing every step uses
(progress lines, bounded waiting, the children's environment, running a `tuneforge` CLI)."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tuneforge.localnet.numba_cache import CacheLock, numba_cache_dir
from tuneforge.localnet.options import POLL_S, LocalnetError, LocalnetOptions, WaitTimeout
from tuneforge.localnet.processes import Supervisor, die_with_parent, repo_root
from tuneforge.localnet.role_flags import flag_in

# A progress line at least this often while localnet waits on something.
STILL_WAITING_S = 30.0


@dataclass
class Net:
    """The running network as localnet knows it: addresses, identities, paths, role flags."""

    api_url: str = ""
    status_url: str = ""
    chain_path: Path = Path()
    state_path: Path = Path()
    validator_hotkey: str = ""
    validator_uid: int = -1
    miner_hotkeys: list[str] = field(default_factory=list)
    miner_ports: list[int] = field(default_factory=list)
    models_found: dict[str, str] = field(default_factory=dict)
    models_missing: dict[str, str] = field(default_factory=dict)
    validator_flags: str = ""
    miner_flags: str = ""
    preference_dir: str = ""  # a head trained on the votes: the restarted validator loads it

    def validator_has(self, flag: str) -> bool:
        return flag_in(flag, self.validator_flags)

    def miner_has(self, flag: str) -> bool:
        return flag_in(flag, self.miner_flags)


class Runtime:
    """The state and plumbing of one localnet run; the steps live in sibling modules."""

    def __init__(
        self, options: LocalnetOptions, progress: Callable[[str], None] | None = None
    ) -> None:
        options.validate()
        self.options = options
        self.supervisor = Supervisor()
        self.root = repo_root()
        self.net = Net()
        self._started = time.monotonic()
        self._deadline = self._started + options.timeout
        self._progress = progress or (lambda message: None)
        self.wallet_validator: Any = None
        self.customer: dict[str, str] = {}
        self.workdir = Path()
        self.own_workdir = False
        self.rounds_before = 0
        # Always localnet's own numba cache, taken in turns: an inherited NUMBA_CACHE_DIR
        # (importing tuneforge.scoring sets one) may be compiled into by unrelated processes.
        self.numba_lock = CacheLock(numba_cache_dir())

    def say(self, message: str) -> None:
        self._progress(f"[localnet +{self.elapsed():5.1f}s] {message}")

    def elapsed(self) -> float:
        return time.monotonic() - self._started

    def remaining(self) -> float:
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise LocalnetError(
                f"--timeout {self.options.timeout:.0f}s reached; logs are in {self.workdir}/logs"
            )
        return left

    def wait_for(self, what: str, check: Callable[[], Any], limit_s: float | None = None) -> Any:
        """Poll `check` until it returns something truthy; children must stay alive meanwhile."""
        started = time.monotonic()
        stop = started + min(limit_s or 1e9, self.remaining())
        next_note = started + STILL_WAITING_S
        while True:
            self.supervisor.check_alive()
            value = check()
            if value:
                return value
            if time.monotonic() >= next_note:
                # Never a silent minute: say what is still awaited.
                self.say(f"still waiting for {what} ({time.monotonic() - started:.0f}s so far)")
                next_note += STILL_WAITING_S
            if time.monotonic() >= stop:
                self.remaining()  # raises when the overall timeout is the reason
                raise WaitTimeout(f"timed out waiting for {what}")
            time.sleep(POLL_S)

    def child_env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            {
                "PYTHONUNBUFFERED": "1",
                # Never download: a missing model fails in seconds and is reported as excluded.
                "HF_HUB_OFFLINE": "1",
                "TRANSFORMERS_OFFLINE": "1",
                "PYTHONPATH": os.pathsep.join(
                    p for p in (str(self.root), env.get("PYTHONPATH", "")) if p
                ),
            }
        )
        env["NUMBA_CACHE_DIR"] = str(self.numba_lock.path.parent)
        return env

    def tuneforge_cli(self, *args: str, timeout: float = 120.0) -> str:
        """Run a `tuneforge ...` command (a public CLI) and return its stdout."""
        argv = [sys.executable, "-m", "tuneforge.tools.cli", *args]
        done = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            env=self.child_env(),
            cwd=str(self.root),
            timeout=min(timeout, self.remaining()),
            check=False,
            preexec_fn=die_with_parent(os.getpid()),
        )
        if done.returncode != 0:
            raise LocalnetError(
                f"`tuneforge {' '.join(args[:2])}` failed ({done.returncode}): "
                f"{(done.stderr or done.stdout).strip()[-800:]}"
            )
        return done.stdout

    def prepare(self) -> None:
        """The work directory (the given one, or a temp dir removed after a clean run)."""
        if self.options.workdir:
            self.workdir = Path(self.options.workdir).expanduser().resolve()
            self.workdir.mkdir(parents=True, exist_ok=True)
        else:
            self.workdir = Path(tempfile.mkdtemp(prefix="tuneforge-localnet-"))
            self.own_workdir = True
        (self.workdir / "logs").mkdir(exist_ok=True)
        self.supervisor.pids_file = self.workdir / "pids.json"
        self.say(f"work directory {self.workdir}")

"""Process supervision: liveness, and the children localnet starts and stops.

Every child dies with localnet: children are stopped (SIGTERM, then SIGKILL after a grace period)
by the Supervisor on completion, error, Ctrl-C or SIGTERM via try/finally + atexit, and on Linux
each child also gets PR_SET_PDEATHSIG so even a SIGKILLed localnet leaves no orphan behind.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loguru import logger

from tuneforge.localnet.options import LocalnetError

STOP_GRACE_S = 10.0
LOG_TAIL_LINES = 25


def repo_root() -> Path:
    """The checkout holding `neurons/` (the pm2 entry points localnet starts)."""
    # tuneforge/localnet/processes.py -> the checkout root, three levels up.
    root = Path(__file__).resolve().parents[2]
    if not (root / "neurons" / "miner.py").is_file():
        raise LocalnetError(
            f"neurons/miner.py not found next to the tuneforge package ({root}); localnet runs "
            "from a source checkout (pip install -e .)"
        )
    return root


def pid_alive(pid: int) -> bool:
    """Whether `pid` names a live (non-zombie) process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    # Field 3 (after the parenthesised command) is the state; Z = zombie, X = dead.
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def session_members(sid: int) -> list[int]:
    """Live pids whose session id is `sid` (a child started with start_new_session)."""
    members = []
    for entry in Path("/proc").iterdir() if Path("/proc").is_dir() else ():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # After the command: state ppid pgrp session ...
        if int(fields[3]) == sid and fields[0] not in ("Z", "X"):
            members.append(int(entry.name))
    return members


def die_with_parent(parent_pid: int) -> Callable[[], None]:
    """preexec_fn: the child gets SIGTERM when localnet dies, even by SIGKILL (Linux).

    libc's prctl is looked up here, in the parent: between fork and exec the child must not
    import or take locks another thread of the parent might have held at fork time.
    """
    prctl: Any = None
    if sys.platform.startswith("linux"):
        import ctypes

        with contextlib.suppress(OSError, AttributeError):
            prctl = ctypes.CDLL("libc.so.6", use_errno=True).prctl
    pr_set_pdeathsig = 1
    sigterm = int(signal.SIGTERM)

    def setup() -> None:
        if prctl is not None:
            prctl(pr_set_pdeathsig, sigterm, 0, 0, 0)
        if os.getppid() != parent_pid:  # the parent died before prctl took effect
            os._exit(1)

    return setup


@dataclass
class Child:
    """One role process: its own session/process group, stdout+stderr in `log_path`."""

    name: str
    argv: list[str]
    log_path: Path
    env: dict[str, str]
    cwd: Path
    popen: subprocess.Popen[bytes] | None = None
    # A child that may finish on its own (the validator after --neuron.max_rounds).
    may_finish: bool = False

    @property
    def pid(self) -> int:
        return self.popen.pid if self.popen is not None else -1

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.popen = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
                cwd=str(self.cwd),
                start_new_session=True,  # own process group: Ctrl-C reaches localnet only
                preexec_fn=die_with_parent(os.getpid()),
            )
        logger.debug("started {} (pid {}): {}", self.name, self.pid, " ".join(self.argv))

    def exited(self) -> int | None:
        return None if self.popen is None else self.popen.poll()

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def signal_group(self, signum: int) -> None:
        if self.popen is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, signum)

    def reap(self, grace_s: float) -> None:
        """Wait up to `grace_s` for the group leader, then SIGKILL whatever of the group is left."""
        if self.popen is None:
            return
        try:
            self.popen.wait(timeout=max(0.0, grace_s))
        except subprocess.TimeoutExpired:
            logger.warning("{} (pid {}) ignored SIGTERM; killing it", self.name, self.pid)
            self.signal_group(signal.SIGKILL)
            self.popen.wait(timeout=10)
        # Grandchildren share the session id; anything still in it is ours to end.
        for pid in session_members(self.popen.pid):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)


class Supervisor:
    """Owns every child; `stop_all` is idempotent and runs from finally, atexit and signals.

    `pids_file` (when set) always lists the children started so far, for operators and tests.
    """

    def __init__(self, pids_file: Path | None = None) -> None:
        self.children: list[Child] = []
        self.pids_file = pids_file
        self._stopped = False
        atexit.register(self.stop_all)

    def start(self, child: Child) -> Child:
        self.children.append(child)
        child.start()
        if self.pids_file is not None:
            tmp = self.pids_file.with_suffix(".tmp")
            tmp.write_text(json.dumps(self.pids()))
            tmp.replace(self.pids_file)
        return child

    def check_alive(self) -> None:
        """Raise with the log tail when a child has died unexpectedly."""
        for child in self.children:
            code = child.exited()
            if code is not None and not (code == 0 and child.may_finish):
                raise LocalnetError(
                    f"{child.name} exited with code {code}; last lines of {child.log_path}:\n"
                    f"{child.log_tail()}"
                )

    def stop_all(self, grace_s: float = STOP_GRACE_S) -> None:
        """Validator first (it calls the others), then miners, then the API."""
        if self._stopped:
            return
        self._stopped = True
        previous = {}
        for signum in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(ValueError):  # not the main thread
                previous[signum] = signal.signal(signum, signal.SIG_IGN)
        try:
            # The validator first, so it abandons its round instead of logging dead miners;
            # then everything else at once (each drains its own in-flight requests).
            first = [c for c in self.children if c.name == "validator"]
            rest = [c for c in self.children if c.name != "validator"]
            for group in (first, rest):
                for child in group:
                    child.signal_group(signal.SIGTERM)
                deadline = time.monotonic() + grace_s
                for child in group:
                    child.reap(deadline - time.monotonic())
        finally:
            for signum, handler in previous.items():
                with contextlib.suppress(ValueError, TypeError):
                    signal.signal(signum, handler)

    def pids(self) -> dict[str, int]:
        return {child.name: child.pid for child in self.children}

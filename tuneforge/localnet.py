"""`tuneforge localnet`: the whole subnet on 127.0.0.1 as real processes (DESIGN.md §8).

A services-floor orchestrator. It starts the roles exactly as operators do — `neurons/miner.py`,
`neurons/validator.py`, `python -m tuneforge.cli api serve` — each in its own process group with
its log in the work directory, and reads results only through public interfaces: the LocalChain
file, `tuneforge validator status --json`, the validator's status endpoint and the API over HTTP.
It never imports a role's insides, so what it shows is what an operator would see.

Every child dies with it: children are stopped (SIGTERM, then SIGKILL after a grace period) on
completion, error, Ctrl-C or SIGTERM via try/finally + atexit, and on Linux each child also gets
PR_SET_PDEATHSIG so even a SIGKILLed localnet leaves no orphan behind.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from loguru import logger

from tuneforge.config import DEFAULT_NETUID

BACKENDS = ("synth", "musicgen")
LOOPBACK = "127.0.0.1"
# Blocks of 0.5 s and a 4-block weights rate limit: weights are set after the first round and
# again about every round, so a two-round demo shows the rate limit working, not blocking.
BLOCK_TIME_S = 0.5
WEIGHTS_RATE_LIMIT = 4
VALIDATOR_STAKE = 10_000.0
STOP_GRACE_S = 10.0
# Seconds of audio per challenge. Shorter clips give the copy check too few fingerprint frames:
# measured with 3 synth miners (variants 0-2) over 20 challenges, different pieces were flagged
# as copies (similarity >= 0.7) in 1 of 20 rounds at 8 s and 10 s, at 4 s in half of them, and
# in none at 12 s.
DEFAULT_DURATION_S = 12.0
POLL_S = 0.25
CUSTOMER_CREDITS = 100
TOP_BOTTOM = 3
LOG_TAIL_LINES = 25

# Scoring models localnet looks for, with the hub id whose Hugging Face cache entry is used
# when no --models-dir copy exists (None: only a local directory can provide it).
MODEL_HUB_IDS: dict[str, str | None] = {
    "clap": "laion/clap-htsat-fused",
    "mert": "m-a-p/MERT-v1-95M",
    "whisper": "openai/whisper-base",
    "mos": None,
    "preference": None,
}
# Scorers that need each model (DESIGN.md §5); shown when the model is absent.
MODEL_SCORERS: dict[str, tuple[str, ...]] = {
    "clap": ("clap",),
    "mert": ("neural_quality",),
    "whisper": ("vocal_lyrics",),
    "mos": ("learned_mos",),
    "preference": ("preference",),
}


class LocalnetError(Exception):
    """The local network could not be brought up or did not finish; the message says why."""


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
        if self.timeout <= 0:
            raise LocalnetError("--timeout must be positive")


# ---- small helpers ---------------------------------------------------------------------------


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def repo_root() -> Path:
    """The checkout holding `neurons/` (the pm2 entry points localnet starts)."""
    root = Path(__file__).resolve().parent.parent
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


def _session_members(sid: int) -> list[int]:
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


def _die_with_parent(parent_pid: int) -> Callable[[], None]:
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


# ---- child processes -------------------------------------------------------------------------


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
                preexec_fn=_die_with_parent(os.getpid()),
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
        for pid in _session_members(self.popen.pid):
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


# ---- scoring models --------------------------------------------------------------------------


def _hf_hub_cache() -> Path:
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    home = os.environ.get("HF_HOME") or str(Path("~/.cache/huggingface").expanduser())
    return Path(home).expanduser() / "hub"


def _cached_snapshot(hub_id: str, cache: Path) -> Path | None:
    """The snapshot directory of `hub_id` in the HF cache (refs/main first), if complete."""
    repo = cache / ("models--" + hub_id.replace("/", "--"))
    snapshots = repo / "snapshots"
    if not snapshots.is_dir():
        return None
    ref = repo / "refs" / "main"
    candidates: list[Path] = []
    if ref.is_file():
        candidates.append(snapshots / ref.read_text().strip())
    candidates += sorted(snapshots.iterdir(), key=lambda p: p.stat().st_mtime, reverse=True)
    return next((c for c in candidates if (c / "config.json").is_file()), None)


def discover_models(
    models_dir: str, hub_cache: Path | None = None
) -> tuple[dict[str, str], dict[str, str]]:
    """Scoring models present on this machine: ({model: local dir}, {model: why absent}).

    A model comes from `models_dir/<name>` (or `models_dir/<hub repo name>`), else from the
    Hugging Face cache for its hub id. Nothing is ever downloaded.
    """
    cache = hub_cache or _hf_hub_cache()
    base = Path(models_dir).expanduser() if models_dir else None
    found: dict[str, str] = {}
    missing: dict[str, str] = {}
    for name, hub_id in MODEL_HUB_IDS.items():
        local: list[Path] = []
        if base is not None:
            local.append(base / name)
            if hub_id:
                local.append(base / hub_id.split("/")[-1])
        hit = next((d for d in local if d.is_dir() and any(d.iterdir())), None)
        if hit is None and hub_id:
            hit = _cached_snapshot(hub_id, cache)
        if hit is not None:
            found[name] = str(hit.resolve())
            continue
        where = [str(d) for d in local]
        if hub_id:
            where.append(f"{hub_id} in the Hugging Face cache {cache}")
        looked = "looked in " + ", ".join(where) if where else "give it with --models-dir"
        missing[name] = f"not found locally ({looked}); localnet never downloads models"
    return found, missing


# ---- reading results -------------------------------------------------------------------------


def _excluded_reasons(miners: list[dict[str, Any]]) -> dict[str, str]:
    """{scorer or penalty: reason} for everything the engine excluded in the last results."""
    excluded: dict[str, str] = {}
    for miner in miners:
        for name, reason in (miner.get("reasons") or {}).items():
            if isinstance(reason, str) and reason.startswith("excluded"):
                excluded.setdefault(name, reason.removeprefix("excluded:").strip())
    return dict(sorted(excluded.items()))


def leaderboard(
    miners: list[dict[str, Any]], chain_weights: Mapping[int, float]
) -> list[dict[str, Any]]:
    """Rows sorted by EMA: on-chain weight, last result, and the best and worst scorers of the
    breakdown (excluded scorers are left out of both lists: their 0.0 is not a judgement)."""
    rows = []
    for miner in miners:
        breakdown: dict[str, float] = miner.get("score_breakdown") or {}
        reasons: dict[str, str] = miner.get("reasons") or {}
        ranked = sorted(
            (
                (name, float(value))
                for name, value in breakdown.items()
                if not str(reasons.get(name, "")).startswith("excluded")
            ),
            key=lambda item: (-item[1], item[0]),
        )
        rows.append(
            {
                "uid": int(miner["uid"]),
                "hotkey": miner["hotkey"],
                "ema": float(miner.get("ema") or 0.0),
                "weight": float(chain_weights.get(int(miner["uid"]), 0.0)),
                "last_final_score": miner.get("last_final_score"),
                "top_scorers": dict(ranked[:TOP_BOTTOM]),
                "bottom_scorers": dict(ranked[::-1][:TOP_BOTTOM]),
                "score_breakdown": breakdown,
                "penalties": miner.get("penalties") or {},
                "rounds_queried": miner.get("rounds_queried"),
                "error": miner.get("error"),
            }
        )
    return sorted(rows, key=lambda r: (-r["ema"], r["uid"]))


def _fmt(value: Any, digits: int = 3) -> str:
    return "-" if value is None else f"{float(value):.{digits}f}"


def format_report(report: dict[str, Any]) -> str:
    """The human-readable leaderboard, weights, API facts and URLs."""
    lines = [
        f"TuneForge localnet: {report['miners']} miner(s) ({report['backend']}), "
        f"{report['rounds']} rounds in {report['wall_s']:.1f}s",
        "",
        f"{'uid':>4}  {'hotkey':<14}  {'ema':>6}  {'weight':>6}  {'last':>6}  "
        "top scorers / bottom scorers",
    ]
    for row in report["leaderboard"]:
        hotkey = row["hotkey"]
        short = f"{hotkey[:6]}…{hotkey[-6:]}" if len(hotkey) > 14 else hotkey
        top = ", ".join(f"{n} {v:.2f}" for n, v in row["top_scorers"].items())
        bottom = ", ".join(f"{n} {v:.2f}" for n, v in row["bottom_scorers"].items())
        lines.append(
            f"{row['uid']:>4}  {short:<14}  {_fmt(row['ema'])}  {_fmt(row['weight'])}  "
            f"{_fmt(row['last_final_score'])}  top: {top}"
        )
        lines.append(f"{'':>46}bottom: {bottom}")
        if row.get("error"):
            lines.append(f"{'':>46}error: {row['error']}")
    weights = report["weights_set"]
    if weights.get("count"):
        lines.append(
            f"\nweights: set {weights['count']} time(s) by validator uid {weights['validator_uid']}"
            f" on {len(weights['weights'])} uids (LocalChain test double)"
        )
    else:
        outcome = weights.get("last_outcome") or {}
        why = f"{outcome.get('code')}: {outcome.get('message')}" if outcome else "never attempted"
        lines.append(f"\nweights: not set — {why}")
    if not report.get("miner_variants", True):
        lines.append(
            "note: the miners' backend has no --generation.variant, so all miners return the "
            "same audio and the copy (fingerprint) penalty zeroes every one of them"
        )
    published = report["published"]
    lines.append(
        f"published to the API: {published['count']} results"
        + (f" — {published['note']}" if published.get("note") else "")
    )
    job = report["customer_job"]
    if job.get("status") == "skipped":
        lines.append(f"customer job: skipped — {job.get('reason')}")
    else:
        tracks = job.get("tracks") or []
        lines.append(
            f"customer job {job.get('request_id')}: {job.get('status')}, "
            f"{job.get('credits_charged')} credits, {len(tracks)} track(s)"
            + (f" — {job['error']}" if job.get("error") else "")
        )
    if report["excluded_scorers"]:
        lines.append("excluded scorers (never pretended):")
        for name, reason in report["excluded_scorers"].items():
            lines.append(f"  {name}: {reason}")
    lines.append("")
    state = "up" if report.get("running") else "stopped now"
    for name, url in report["urls"].items():
        lines.append(f"{name:<12} {url}  ({state})")
    removed = report.get("workdir_removed") and not report.get("running")
    lines.append(f"{'workdir':<12} {report['workdir']}" + ("  (removed)" if removed else ""))
    return "\n".join(lines)


# ---- the orchestrator ------------------------------------------------------------------------


class Background:
    """One call on a daemon thread, so an interrupted localnet never waits for it (a CLI it
    runs gets the parent-death signal when that thread is gone)."""

    def __init__(self, call: Callable[[], Any]) -> None:
        self._result: Any = None
        self._error: BaseException | None = None
        self._done = threading.Event()
        threading.Thread(target=self._run, args=(call,), daemon=True).start()

    def _run(self, call: Callable[[], Any]) -> None:
        try:
            self._result = call()
        except BaseException as exc:  # handed to whoever asks for the result
            self._error = exc
        finally:
            self._done.set()

    def result(self, timeout_s: float) -> Any:
        if not self._done.wait(timeout_s):
            raise LocalnetError(f"a background step did not finish in {timeout_s:.0f}s")
        if self._error is not None:
            raise self._error
        return self._result


@dataclass
class _Net:
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


class Localnet:
    """Bring the network up, run the rounds and the customer job, report, tear down."""

    def __init__(
        self, options: LocalnetOptions, progress: Callable[[str], None] | None = None
    ) -> None:
        options.validate()
        self.options = options
        self.supervisor = Supervisor()
        self.root = repo_root()
        self.net = _Net()
        self._started = time.monotonic()
        self._deadline = self._started + options.timeout
        self._progress = progress or (lambda message: None)
        self._wallet_validator: Any = None
        self.workdir = Path()
        self._own_workdir = False
        self.rounds_before = 0
        # Always localnet's own numba cache, taken in turns: an inherited NUMBA_CACHE_DIR
        # (importing tuneforge.scoring sets one) may be compiled into by unrelated processes.
        self._numba_lock = CacheLock(numba_cache_dir())

    # -- plumbing ---------------------------------------------------------------------------

    def say(self, message: str) -> None:
        self._progress(f"[localnet +{time.monotonic() - self._started:5.1f}s] {message}")

    def remaining(self) -> float:
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise LocalnetError(
                f"--timeout {self.options.timeout:.0f}s reached; logs are in {self.workdir}/logs"
            )
        return left

    def wait_for(self, what: str, check: Callable[[], Any], limit_s: float | None = None) -> Any:
        """Poll `check` until it returns something truthy; children must stay alive meanwhile."""
        stop = time.monotonic() + min(limit_s or 1e9, self.remaining())
        while True:
            self.supervisor.check_alive()
            value = check()
            if value:
                return value
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
        env["NUMBA_CACHE_DIR"] = str(self._numba_lock.path.parent)
        return env

    def tuneforge_cli(self, *args: str, timeout: float = 120.0) -> str:
        """Run a `tuneforge ...` command (a public CLI) and return its stdout."""
        argv = [sys.executable, "-m", "tuneforge.cli", *args]
        done = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            env=self.child_env(),
            cwd=str(self.root),
            timeout=min(timeout, self.remaining()),
            check=False,
            preexec_fn=_die_with_parent(os.getpid()),
        )
        if done.returncode != 0:
            raise LocalnetError(
                f"`tuneforge {' '.join(args[:2])}` failed ({done.returncode}): "
                f"{(done.stderr or done.stdout).strip()[-800:]}"
            )
        return done.stdout

    # -- steps ------------------------------------------------------------------------------

    def prepare(self) -> None:
        if self.options.workdir:
            self.workdir = Path(self.options.workdir).expanduser().resolve()
            self.workdir.mkdir(parents=True, exist_ok=True)
        else:
            self.workdir = Path(tempfile.mkdtemp(prefix="tuneforge-localnet-"))
            self._own_workdir = True
        (self.workdir / "logs").mkdir(exist_ok=True)
        self.supervisor.pids_file = self.workdir / "pids.json"
        self.say(f"work directory {self.workdir}")

    def setup_chain_and_wallets(self) -> None:
        from tuneforge.chain.local import LocalChain
        from tuneforge.wallets import create_wallet

        path = self.workdir / "chain.db"
        # An existing chain file (a reused --workdir) keeps its genesis and hence its block
        # numbers; register() below is idempotent, so uids survive restarts.
        chain = LocalChain.create(
            path,
            netuid=self.options.netuid,
            block_time_s=BLOCK_TIME_S,
            weights_rate_limit=WEIGHTS_RATE_LIMIT,
        )
        wallets_path = str(self.workdir / "wallets")
        try:
            validator = create_wallet("validator", "default", wallets_path)
            self._wallet_validator = validator
            self.net.validator_hotkey = validator.hotkey.ss58_address
            self.net.validator_uid = chain.register(
                validator.hotkey.ss58_address,
                validator.coldkeypub.ss58_address,
                stake=VALIDATOR_STAKE,
                validator_permit=True,
            )
            for index in range(self.options.miners):
                wallet = create_wallet(f"miner{index}", "default", wallets_path)
                chain.register(wallet.hotkey.ss58_address, wallet.coldkeypub.ss58_address)
                self.net.miner_hotkeys.append(wallet.hotkey.ss58_address)
            # A reused --workdir may hold miners of an earlier, larger run: their axons point at
            # dead ports, so they stop serving (re-registering without an axon) and are not asked.
            current = {self.net.validator_hotkey, *self.net.miner_hotkeys}
            for neuron in chain.metagraph().neurons:
                if neuron.hotkey not in current and neuron.axon:
                    chain.register(
                        neuron.hotkey, neuron.coldkey, neuron.stake, neuron.validator_permit
                    )
        finally:
            chain.close()
        self.net.chain_path = path
        self.say(
            f"LocalChain (test double) at {path}: validator uid {self.net.validator_uid}, "
            f"{self.options.miners} miner(s) registered, {BLOCK_TIME_S}s blocks"
        )

    def start_api(self) -> None:
        port = free_port()
        self.net.api_url = f"http://{LOOPBACK}:{port}"
        env = self.child_env()
        # The API caches the metagraph; a short refresh lets it see localnet's neurons quickly.
        env["TUNEFORGE_METAGRAPH_REFRESH_S"] = "2"
        argv = [
            sys.executable, "-m", "tuneforge.cli", "api", "serve",
            "--host", LOOPBACK, "--port", str(port), "--workers", "1",
            "--database-url", f"sqlite:///{self.workdir / 'api.db'}",
            "--network", "localnet", "--netuid", str(self.options.netuid),
            "--localnet.path", str(self.net.chain_path),
            "--audio-dir", str(self.workdir / "api-audio"),
        ]  # fmt: skip
        self.supervisor.start(Child("api", argv, self.workdir / "logs" / "api.log", env, self.root))
        self.say(f"API starting on {self.net.api_url}")

    def api_ready(self) -> bool:
        with contextlib.suppress(httpx.HTTPError):
            response = httpx.get(f"{self.net.api_url}/health", timeout=2.0)
            return response.status_code == 200
        return False

    def _miner_has(self, flag: str) -> bool:
        return self._flag_in(flag, self.net.miner_flags)

    def miner_argv(self, index: int, port: int) -> list[str]:
        """`neurons/miner.py` flags for miner `index` serving on `port`."""
        options = self.options
        argv = [
            sys.executable, str(self.root / "neurons" / "miner.py"),
            "--network", "localnet", "--netuid", str(options.netuid),
            "--localnet.path", str(self.net.chain_path),
            "--wallet.name", f"miner{index}", "--wallet.hotkey", "default",
            "--wallet.path", str(self.workdir / "wallets"),
            "--axon.ip", LOOPBACK, "--axon.port", str(port),
            "--generation.backend", options.backend,
            "--miner.metagraph_refresh_s", "2",
            "--logging.level", "INFO",
        ]  # fmt: skip
        if options.backend == "musicgen":
            argv += ["--generation.model", options.model]
            if self._miner_has("--generation.cpu_threads"):
                # N torch processes on a few cores: one pool each would oversubscribe them.
                threads = max(1, (os.cpu_count() or 1) // options.miners)
                argv += ["--generation.cpu_threads", str(threads)]
        if self._miner_has("--generation.variant"):
            # One seed, one piece: without a per-miner variant every miner would return the
            # same audio for a challenge and the copy penalty would zero them all.
            argv += ["--generation.variant", str(index)]
        return argv

    def start_miners(self) -> None:
        options = self.options
        for index, _hotkey in enumerate(self.net.miner_hotkeys):
            port = free_port()
            self.net.miner_ports.append(port)
            self.supervisor.start(
                Child(
                    f"miner{index}",
                    self.miner_argv(index, port),
                    self.workdir / "logs" / f"miner{index}.log",
                    self.child_env(),
                    self.root,
                )
            )
        variants = self._flag_in("--generation.variant", self.net.miner_flags)
        self.say(
            f"{options.miners} miner(s) starting ({options.backend} backend"
            + (", one variant each)" if variants else ", identical: no --generation.variant)")
        )

    def miners_serving(self) -> bool:
        """Every miner published its axon on LocalChain and answers a signed GET /v1/info."""
        from tuneforge.auth import sign_request
        from tuneforge.chain.local import LocalChain
        from tuneforge.protocol import HEADER_SPEC_VERSION, INFO_PATH, SPEC_VERSION

        with LocalChain(self.net.chain_path, netuid=self.options.netuid) as chain:
            axons = {n.hotkey: n.axon for n in chain.metagraph().neurons}
        for hotkey, port in zip(self.net.miner_hotkeys, self.net.miner_ports, strict=True):
            if axons.get(hotkey) != f"{LOOPBACK}:{port}":
                return False
            headers = sign_request(self._wallet_validator, "GET", INFO_PATH, b"", hotkey)
            headers[HEADER_SPEC_VERSION] = SPEC_VERSION
            try:
                response = httpx.get(f"http://{LOOPBACK}:{port}{INFO_PATH}", headers=headers)
            except httpx.HTTPError:
                return False
            if response.status_code != 200:
                logger.debug("miner {} info: {} {}", port, response.status_code, response.text)
                return False
        return True

    def probe_role_flags(self) -> None:
        """The roles' own --help: optional integrations are used only when a role has them."""
        probes = {
            role: subprocess.Popen(
                [sys.executable, str(self.root / "neurons" / f"{role}.py"), "--help"],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env=self.child_env(),
                cwd=str(self.root),
                preexec_fn=_die_with_parent(os.getpid()),
            )
            for role in ("validator", "miner")
        }
        for role, probe in probes.items():
            try:
                out, err = probe.communicate(timeout=min(60.0, self.remaining()))
            except subprocess.TimeoutExpired:
                probe.kill()
                probe.communicate()
                raise LocalnetError(f"neurons/{role}.py --help did not answer in time") from None
            if probe.returncode != 0:
                raise LocalnetError(f"neurons/{role}.py --help failed: {err.strip()[-500:]}")
            setattr(self.net, f"{role}_flags", out)

    @staticmethod
    def _flag_in(flag: str, help_text: str) -> bool:
        return any(token.strip(",[]") == flag for token in help_text.split())

    def _has_flag(self, flag: str) -> bool:
        return self._flag_in(flag, self.net.validator_flags)

    def _job_flags(self) -> set[str]:
        """Validator flags about customer jobs (a name with "job" or "claim" in it)."""
        return {
            token.strip(",[]")
            for token in self.net.validator_flags.split()
            if token.startswith("--")
            and not token.startswith("--no-")
            and ("job" in token or "claim" in token)
        }

    def claims_jobs(self) -> bool:
        """Whether this validator can claim customer jobs from the API (it has job flags)."""
        return bool(self._job_flags())

    def job_claim_flags(self) -> list[str]:
        """The validator's boolean job switches (those with a --no- form), to turn them on."""
        return sorted(f for f in self._job_flags() if self._has_flag("--no-" + f[2:]))

    def validator_argv(self, status_port: int) -> list[str]:
        """`neurons/validator.py` flags; optional integrations only when the validator has them."""
        options = self.options
        found = self.net.models_found
        # MusicGen on CPU runs slower than real time: its deadline must not cut it off.
        per_second = 20.0 if options.backend == "musicgen" else 2.0
        argv = [
            sys.executable, str(self.root / "neurons" / "validator.py"),
            "--network", "localnet", "--netuid", str(options.netuid),
            "--localnet.path", str(self.net.chain_path),
            "--wallet.name", "validator", "--wallet.hotkey", "default",
            "--wallet.path", str(self.workdir / "wallets"),
            "--neuron.state_path", str(self.net.state_path),
            "--neuron.status_port", str(status_port),
            "--neuron.sample_size", str(options.miners),
            # Rounds go on (0 = forever) when the validator must still serve the customer job
            # or --keep-running leaves a live network; otherwise it stops after --rounds.
            "--neuron.max_rounds", str(self.validator_max_rounds()),
            "--neuron.round_interval_s", str(options.round_interval_s),
            "--neuron.min_challenge_seconds", str(options.duration),
            "--neuron.max_challenge_seconds", str(options.duration),
            "--neuron.metagraph_refresh_blocks", "2",
            # Several processes share a few cores: generous deadlines, no false timeouts.
            "--neuron.timeout", "60",
            "--neuron.timeout_per_second", str(per_second),
            "--logging.level", "INFO",
        ]  # fmt: skip
        if self._has_flag("--api.url"):
            argv += ["--api.url", self.net.api_url]
        if self._has_flag("--api.publish"):
            argv += ["--api.publish"]
        argv += self.job_claim_flags()
        if self._has_flag("--api.jobs_poll_interval_s"):
            argv += ["--api.jobs_poll_interval_s", "1"]  # a waiting customer, not a busy net
        for name, path in found.items():
            if self._has_flag(f"--scoring.{name}"):
                argv += [f"--scoring.{name}", path]
        if found and self._has_flag("--scoring.allow_missing_models"):
            # A present but unloadable model is excluded with its reason, not a failed demo.
            argv += ["--scoring.allow_missing_models"]
        return argv

    def start_validator(self) -> None:
        found, missing = discover_models(self.options.models_dir)
        self.net.models_found, self.net.models_missing = found, missing
        status_port = free_port()
        self.net.status_url = f"http://{LOOPBACK}:{status_port}/status"
        self.net.state_path = self.workdir / "validator" / "state.db"
        self.supervisor.start(
            Child(
                "validator",
                self.validator_argv(status_port),
                self.workdir / "logs" / "validator.log",
                self.child_env(),
                self.root,
                may_finish=self.validator_max_rounds() > 0,
            )
        )
        models = ", ".join(f"{n} ({p})" for n, p in found.items()) or "none found locally"
        self.say(f"validator starting; scoring models: {models}")

    def validator_max_rounds(self) -> int:
        if self.options.keep_running or self.claims_jobs():
            return 0
        return self.options.rounds

    def validator_running(self) -> bool:
        validator = next(c for c in self.supervisor.children if c.name == "validator")
        return validator.exited() is None

    def validator_status(self) -> dict[str, Any] | None:
        with contextlib.suppress(httpx.HTTPError, ValueError):
            response = httpx.get(self.net.status_url, timeout=5.0)
            if response.status_code == 200:
                return response.json()
        return None

    def run_rounds(self) -> None:
        first = self.wait_for(
            "the validator's status endpoint",
            lambda: self.validator_status() or not self.validator_running(),
            180.0,
        )
        # A reused --workdir keeps the validator's state: count this run's rounds only.
        if isinstance(first, dict):
            self.rounds_before = int(first.get("rounds_completed") or 0)
        target = self.rounds_before + self.options.rounds
        self.say(f"validator up; running {self.options.rounds} rounds")
        seen = self.rounds_before
        last_outcome_at = None

        def progress() -> bool:
            nonlocal seen, last_outcome_at
            running = self.validator_running()
            # Once it has finished its rounds and exited, its own CLI reads the state it left.
            status = (self.validator_status() if running else self.final_status()) or {}
            done = int(status.get("rounds_completed") or 0)
            if done > seen:
                scores = ", ".join(
                    f"uid {m['uid']} {_fmt(m.get('last_final_score'))}"
                    for m in status.get("miners", [])
                )
                self.say(f"round {done} scored: {scores}")
                seen = done
            outcome = status.get("last_weights") or {}
            if outcome and outcome.get("at") != last_outcome_at:
                last_outcome_at = outcome.get("at")
                if outcome.get("ok"):
                    self.say(f"weights set on chain at block {outcome.get('block')}")
                else:
                    self.say(f"weights not set: {outcome.get('code')} {outcome.get('message')}")
            if done >= target and outcome:
                return True
            if not running:
                raise LocalnetError(
                    f"the validator stopped after {done - self.rounds_before} of "
                    f"{self.options.rounds} rounds; see "
                    f"{self.workdir / 'logs' / 'validator.log'}"
                )
            return False

        self.wait_for(f"{self.options.rounds} rounds", progress)

    def settle_publications(self, limit_s: float = 20.0, stall_s: float = 5.0) -> None:
        """Give a working validator→API publisher time to drain its outbox (bounded).

        Returns at once when the validator has exited or its outbox is empty, and as soon as
        the outbox stops shrinking for `stall_s` (nothing is sending, or it is behind).
        """
        stop = time.monotonic() + min(limit_s, self.remaining())
        smallest, since = None, time.monotonic()
        while self.validator_running() and time.monotonic() < stop:
            status = self.validator_status() or {}
            size = int(status.get("outbox_size") or 0)
            if size == 0:
                return
            if smallest is None or size < smallest:
                smallest, since = size, time.monotonic()
            elif time.monotonic() - since >= stall_s:
                return
            time.sleep(POLL_S * 2)

    def api_counts(self) -> dict[str, int]:
        """{miner hotkey: scored results the API holds} (GET /scores/export, signed by the
        validator hotkey, as any registered neuron may read it)."""
        from tuneforge.hotkey_auth import sign_hotkey_headers

        path = "/api/v1/scores/export"
        counts: dict[str, int] = {}
        cursor = None
        for _ in range(100):  # 100 pages of 500: far beyond any localnet run
            headers = sign_hotkey_headers(self._wallet_validator, "GET", path)
            params = {"limit": 500, **({"cursor": cursor} if cursor else {})}
            response = httpx.get(
                self.net.api_url + path, headers=headers, params=params, timeout=10.0
            )
            if response.status_code != 200:
                raise LocalnetError(f"API {path}: {response.status_code} {response.text[:200]}")
            page = response.json()
            for item in page.get("items") or []:
                hotkey = str(item.get("miner_hotkey"))
                counts[hotkey] = counts.get(hotkey, 0) + 1
            cursor = page.get("next_cursor")
            if not cursor:
                break
        return counts

    def published(self, status: dict[str, Any]) -> dict[str, Any]:
        try:
            by_miner = self.api_counts()
        except (httpx.HTTPError, LocalnetError) as exc:
            return {"count": 0, "by_miner": {}, "note": f"could not read the API: {exc}"}
        count = sum(by_miner.values())
        unsent = int(status.get("outbox_size") or 0)
        note = ""
        if count == 0 and not self._has_flag("--api.publish"):
            note = "the validator has no --api.publish flag yet: publishing is not built"
        elif count == 0 and unsent:
            note = (
                f"the validator queued {unsent} publications in its outbox, but nothing sends "
                "them to the API yet (validator→API publishing is not built)"
            )
        elif count == 0:
            note = "the validator published nothing"
        return {"count": count, "by_miner": by_miner, "outbox_unsent": unsent, "note": note}

    def create_customer(self) -> dict[str, str]:
        """A fresh account with credits and an API key, through the API's operator CLI."""
        account = json.loads(
            self.tuneforge_cli(
                "api",
                "create-account",
                "--email",
                f"customer-{secrets.token_hex(4)}@localnet.invalid",
                "--plan",
                "pro",
                "--credits",
                str(CUSTOMER_CREDITS),
                "--database-url",
                f"sqlite:///{self.workdir / 'api.db'}",
                "--json",
            )  # fmt: skip
        )
        key = json.loads(
            self.tuneforge_cli(
                "api",
                "create-key",
                account["account_id"],
                "--database-url",
                f"sqlite:///{self.workdir / 'api.db'}",
                "--json",
            )  # fmt: skip
        )
        return {"account_id": account["account_id"], "api_key": key["api_key"]}

    def customer_job(self, customer: dict[str, str]) -> dict[str, Any]:
        """As that customer: request a track through the API and wait for it."""
        auth = {"Authorization": f"Bearer {customer['api_key']}"}
        me = httpx.get(f"{self.net.api_url}/api/v1/account/me", headers=auth, timeout=10.0)
        if me.status_code != 200:
            raise LocalnetError(f"the fresh API key was refused: {me.status_code} {me.text}")
        facts = {"account_id": customer["account_id"], "credits": me.json().get("credits")}
        if not self.claims_jobs():
            return {
                "status": "skipped",
                "reason": "the validator cannot claim customer jobs yet (no job/claim flag in "
                "`neurons/validator.py --help`), so a request would never be served",
                **facts,
            }
        self.say("customer: requesting a track through the API")
        body = {
            "prompt": "Calm lo-fi beat with warm piano and soft drums",
            "genre": "lo-fi",
            "mood": "calm",
            "duration_seconds": self.options.duration,
        }
        started = time.monotonic()
        accepted = httpx.post(
            f"{self.net.api_url}/api/v1/music/generate", headers=auth, json=body, timeout=10.0
        )
        if accepted.status_code != 201:
            raise LocalnetError(
                f"POST /music/generate: {accepted.status_code} {accepted.text[:300]}"
            )
        request_id = accepted.json()["request_id"]
        status_url = f"{self.net.api_url}/api/v1/music/status/{request_id}"
        last: dict[str, Any] = {}

        def finished() -> bool:
            nonlocal last
            with contextlib.suppress(httpx.HTTPError, ValueError):
                last = httpx.get(status_url, headers=auth, timeout=10.0).json()
            return last.get("status") in ("completed", "failed")

        try:
            self.wait_for(f"customer job {request_id}", finished, self.options.customer_wait_s)
        except WaitTimeout:
            last = {**last, "error": f"not finished after {self.options.customer_wait_s:.0f}s"}
        tracks = []
        for track in last.get("tracks") or []:
            audio = httpx.get(self.net.api_url + track["audio_url"], headers=auth, timeout=30.0)
            tracks.append(
                {
                    **{k: track.get(k) for k in ("track_id", "miner_hotkey", "score")},
                    "audio_url": self.net.api_url + track["audio_url"],
                    "duration_seconds": track.get("duration_seconds"),
                    "audio_bytes": len(audio.content) if audio.status_code == 200 else 0,
                }
            )
        self.say(f"customer job {request_id}: {last.get('status')}")
        return {
            "request_id": request_id,
            "status": last.get("status", "unknown"),
            "credits_charged": accepted.json().get("credits_charged"),
            "tracks": tracks,
            "error": last.get("error"),
            "wall_s": round(time.monotonic() - started, 2),
            **facts,
        }

    def chain_weights(self) -> dict[str, Any]:
        from tuneforge.chain.local import LocalChain

        with LocalChain(self.net.chain_path, netuid=self.options.netuid) as chain:
            weights = chain.weights().get(self.net.validator_uid, {})
            count = chain.weight_set_count(self.net.validator_uid)
            neuron = chain.metagraph().by_uid(self.net.validator_uid)
        return {
            "validator_uid": self.net.validator_uid,
            "count": count,
            "last_update_block": neuron.last_update if neuron else None,
            "weights": {str(uid): w for uid, w in weights.items()},
        }

    def final_status(self) -> dict[str, Any]:
        """The validator's view: its status endpoint while it runs, else its own CLI
        (`tuneforge validator status --json`, reading the state file it left)."""
        if self.validator_running():
            status = self.validator_status()
            if status is not None:
                return status
        return json.loads(
            self.tuneforge_cli("validator", "status", "--state", str(self.net.state_path), "--json")
        )

    def report(self, customer: dict[str, Any]) -> dict[str, Any]:
        status = self.final_status()
        weights = self.chain_weights()
        if not weights["count"]:
            weights["last_outcome"] = status.get("last_weights")
        chain_weights = {int(u): w for u, w in weights["weights"].items()}
        excluded = _excluded_reasons(status.get("miners", []))
        for model, reason in self.net.models_missing.items():
            for scorer in MODEL_SCORERS[model]:
                engine_reason = excluded.get(scorer)
                if engine_reason is not None or not excluded:
                    why = f"{model} model {reason}"
                    excluded[scorer] = f"{engine_reason} ({why})" if engine_reason else why
        api = self.net.api_url
        return {
            "rounds": int(status.get("rounds_completed") or 0) - self.rounds_before,
            "rounds_total": int(status.get("rounds_completed") or 0),
            "miners": self.options.miners,
            "backend": self.options.backend,
            "leaderboard": leaderboard(
                [m for m in status.get("miners", []) if m["hotkey"] in self.net.miner_hotkeys],
                chain_weights,
            ),
            "weights_set": weights,
            "published": self.published(status),
            "customer_job": customer,
            "urls": {
                "api": f"{api}/api/v1",
                "docs": f"{api}/docs",
                "leaderboard": f"{api}/api/v1/scores/miners",
                "validator_status": self.net.status_url,
            },
            "excluded_scorers": excluded,
            "scoring_models": {
                **{n: f"loaded from {p}" for n, p in self.net.models_found.items()},
                **{n: r for n, r in self.net.models_missing.items()},
            },
            "processes": self.supervisor.pids(),
            "miner_variants": self._flag_in("--generation.variant", self.net.miner_flags),
            "workdir": str(self.workdir),
            "workdir_removed": self._own_workdir,  # a temp dir goes when the network stops
            "running": self.options.keep_running,
            "wall_s": round(time.monotonic() - self._started, 2),
        }

    # -- the whole run ----------------------------------------------------------------------

    def run(self, on_report: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
        """Up, rounds, customer job, report (handed to `on_report`), then down (or kept up)."""
        previous = {
            signum: signal.signal(signum, _raise_stopped)
            for signum in (signal.SIGTERM, signal.SIGHUP)
        }
        # Ctrl-C must work even when started with SIGINT ignored (e.g. `cmd &` in a script).
        previous[signal.SIGINT] = signal.signal(signal.SIGINT, signal.default_int_handler)
        ok = False
        try:
            self.prepare()
            self.setup_chain_and_wallets()
            self.probe_role_flags()
            # The API and the miners do not need each other: they start together.
            self.start_api()
            self.start_miners()
            self.wait_for("the API's /health", self.api_ready, 120.0)
            self.say("API up")
            # The customer's account and key are made (two CLI runs) while the network works.
            customer = Background(self.create_customer)
            self.wait_for("the miners to serve", self.miners_serving, 180.0)
            self.say("miners serving")
            self._numba_lock.acquire(
                self.remaining(),
                lambda: self.say("waiting for another localnet to finish its rounds"),
            )
            self.start_validator()
            self.run_rounds()
            self._numba_lock.release()
            job = self.customer_job(customer.result(self.remaining()))
            self.settle_publications()
            report = self.report(job)
            on_report(report)
            if self.options.keep_running:
                self.say("network left running; Ctrl-C stops every process")
                try:
                    while True:
                        self.supervisor.check_alive()
                        time.sleep(1.0)
                except (KeyboardInterrupt, LocalnetStopped):
                    self.say("stop requested")
            ok = True
            return report
        finally:
            self.say("stopping every process")
            self.supervisor.stop_all()
            self._numba_lock.release()
            for signum, handler in previous.items():
                signal.signal(signum, handler)
            if self._own_workdir and ok:
                shutil.rmtree(self.workdir, ignore_errors=True)
            elif self.workdir != Path():
                self.say(f"logs kept in {self.workdir / 'logs'}")


def _raise_stopped(signum: int, frame: object) -> None:
    raise LocalnetStopped(signal.Signals(signum).name)


@contextlib.contextmanager
def quiet_logs() -> Iterator[None]:
    """Localnet's own library logs (LocalChain, wallets) would drown the progress lines."""
    logger.remove()
    handler = logger.add(sys.stderr, level="WARNING")
    try:
        yield
    finally:
        logger.remove(handler)

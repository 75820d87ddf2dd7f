"""`tuneforge localnet`'s orchestrator: the Localnet class brings the network up (LocalChain,
wallets, API, miners, validator), runs the rounds and the customer job, reports and tears down.

It starts the roles exactly as operators do and reads results only through public interfaces
(see the package docstring); each step's details live in the sibling modules.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from loguru import logger

from tuneforge.localnet.api_client import create_customer, customer_job, published
from tuneforge.localnet.chain_setup import BLOCK_TIME_S, REVEAL_PERIOD_BLOCKS, register_network
from tuneforge.localnet.chain_setup import chain_weights as read_chain_weights
from tuneforge.localnet.models import MODEL_SCORERS, discover_models
from tuneforge.localnet.numba_cache import CacheLock, numba_cache_dir
from tuneforge.localnet.options import (
    LOOPBACK,
    POLL_S,
    LocalnetError,
    LocalnetOptions,
    LocalnetStopped,
    WaitTimeout,
)
from tuneforge.localnet.processes import (
    STOP_GRACE_S,
    Child,
    Supervisor,
    die_with_parent,
    free_port,
    repo_root,
)
from tuneforge.localnet.report import (
    active_scorers,
    curl_snippet,
    excluded_reasons,
    fmt_score,
    leaderboard,
    network_commands,
)
from tuneforge.localnet.role_flags import flag_in, job_claim_flags, job_flags, probe_role_flags

# A progress line at least this often while localnet waits on something.
STILL_WAITING_S = 30.0


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
    preference_dir: str = ""  # a head trained on the votes: the restarted validator loads it


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
        self._customer: dict[str, str] = {}
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
            preexec_fn=die_with_parent(os.getpid()),
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
        path = self.workdir / "chain.db"
        registered = register_network(
            path,
            self.options.netuid,
            str(self.workdir / "wallets"),
            self.options.miners,
            commit_reveal=self.options.commit_reveal,
        )
        self._wallet_validator = registered.validator_wallet
        self.net.validator_hotkey = registered.validator_wallet.hotkey.ss58_address
        self.net.validator_uid = registered.validator_uid
        self.net.miner_hotkeys.extend(registered.miner_hotkeys)
        self.net.chain_path = path
        self.say(
            f"LocalChain (test double) at {path}: validator uid {self.net.validator_uid}, "
            f"{self.options.miners} miner(s) registered, {BLOCK_TIME_S}s blocks"
            + (", commit-reveal weights" if self.options.commit_reveal else "")
        )

    def start_api(self) -> None:
        port = free_port()
        self.net.api_url = f"http://{LOOPBACK}:{port}"
        env = self.child_env()
        # The API caches the metagraph; a short refresh lets it see localnet's neurons quickly.
        env["TUNEFORGE_METAGRAPH_REFRESH_S"] = "2"
        # Local only: callbacks may target 127.0.0.1, and the scripted voter may vote quickly.
        env["TUNEFORGE_WEBHOOK_ALLOW_PRIVATE"] = "true"
        env["TUNEFORGE_VOTES_PER_MINUTE"] = "1000"
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
        return flag_in(flag, self.net.miner_flags)

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
        variants = flag_in("--generation.variant", self.net.miner_flags)
        self.say(
            f"{options.miners} miner(s) starting ({options.backend} backend"
            + (", one variant each)" if variants else ", identical: no --generation.variant)")
        )

    def miners_serving(self) -> bool:
        """Every miner published its axon on LocalChain and answers a signed GET /v1/info."""
        from tuneforge.btauth import BtAuth
        from tuneforge.chain.local import LocalChain
        from tuneforge.protocol import HEADER_SPEC_VERSION, INFO_PATH, SPEC_VERSION

        with LocalChain(self.net.chain_path, netuid=self.options.netuid) as chain:
            axons = {n.hotkey: n.axon for n in chain.metagraph().neurons}
        for hotkey, port in zip(self.net.miner_hotkeys, self.net.miner_ports, strict=True):
            if axons.get(hotkey) != f"{LOOPBACK}:{port}":
                return False
            try:
                response = httpx.get(
                    f"http://{LOOPBACK}:{port}{INFO_PATH}",
                    headers={HEADER_SPEC_VERSION: SPEC_VERSION},
                    auth=BtAuth(self._wallet_validator, hotkey),
                )
            except httpx.HTTPError:
                return False
            if response.status_code != 200:
                logger.debug("miner {} info: {} {}", port, response.status_code, response.text)
                return False
        return True

    def probe_role_flags(self) -> None:
        """The roles' own --help: optional integrations are used only when a role has them."""
        helps = probe_role_flags(self.root, self.child_env(), self.remaining)
        self.net.validator_flags, self.net.miner_flags = helps["validator"], helps["miner"]

    def _has_flag(self, flag: str) -> bool:
        return flag_in(flag, self.net.validator_flags)

    def claims_jobs(self) -> bool:
        """Whether this validator can claim customer jobs from the API (it has job flags)."""
        return bool(job_flags(self.net.validator_flags))

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
        argv += job_claim_flags(self.net.validator_flags)
        if self._has_flag("--api.jobs_poll_interval_s"):
            argv += ["--api.jobs_poll_interval_s", "1"]  # a waiting customer, not a busy net
        for name, path in found.items():
            if self._has_flag(f"--scoring.{name}"):
                argv += [f"--scoring.{name}", path]
        if self.net.preference_dir and self._has_flag("--scoring.preference"):
            argv += ["--scoring.preference", self.net.preference_dir]
        if found and self._has_flag("--scoring.allow_missing"):
            # A present but unloadable model is excluded with its reason, not a failed demo.
            argv += ["--scoring.allow_missing"]
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
        if not any(self._numba_lock.path.parent.glob("**/*.nbi")):
            # Measured on 2 shared cores: 25–90 s of numba compiling, once per machine.
            self.say(
                "first run on this machine: the validator compiles librosa's kernels once "
                f"into {self._numba_lock.path.parent} (about 30–90 s; later runs reuse them)"
            )

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
                    f"uid {m['uid']} {fmt_score(m.get('last_final_score'))}"
                    for m in status.get("miners", [])
                )
                self.say(f"round {done} scored: {scores}")
                seen = done
            outcome = status.get("last_weights") or {}
            if outcome and outcome.get("at") != last_outcome_at:
                last_outcome_at = outcome.get("at")
                if outcome.get("ok"):
                    verb = "committed" if outcome.get("committed") else "set on chain"
                    self.say(f"weights {verb} at block {outcome.get('block')}")
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

    def votes_and_training(self) -> dict[str, Any]:
        """`--votes N`: a scripted customer votes, then the validator trains on the votes."""
        from tuneforge.localnet.votes import VOTE_CLIP_SECONDS, scripted_votes, train_on_votes

        variants = min(3, self.options.miners)
        jobs = math.ceil(self.options.votes / math.comb(variants, 2))
        needed = jobs * variants * math.ceil(VOTE_CLIP_SECONDS / 3)
        self.tuneforge_cli(
            "api", "add-credits", self._customer["account_id"], str(needed),
            "--database-url", f"sqlite:///{self.workdir / 'api.db'}",
        )  # fmt: skip
        cast = scripted_votes(
            self.net.api_url,
            self._customer["api_key"],
            votes=self.options.votes,
            variants=variants,
            wait_s=max(60.0, 20.0 * jobs),
            wait_for=self.wait_for,
            say=self.say,
        )
        clap = self.net.models_found.get("clap")
        embedding = (
            ["--embedding", "clap", "--scoring.clap", clap] if clap else ["--embedding", "dsp"]
        )
        self.say("validator: training the preference head on the votes")
        trained = train_on_votes(
            self.tuneforge_cli,
            [
                "--api.url", self.net.api_url,
                "--wallet.name", "validator", "--wallet.hotkey", "default",
                "--wallet.path", str(self.workdir / "wallets"),
                "--out", str(self.workdir / "validator" / "preference"),
                "--cache", str(self.workdir / "validator" / "preference-audio"),
                *embedding,
            ],
        )  # fmt: skip
        return {**cast, "training": trained, "scoring": self.score_with_preference(trained)}

    def score_with_preference(self, trained: dict[str, Any]) -> dict[str, Any]:
        """Restart the validator with the head it trained and wait for a round scored with it.

        The scorer set (the preference row included, by the consensus rule of D42) is decided
        when the validator starts, never per clip: a newly installed head counts from a start.
        """
        checkpoint = trained.get("checkpoint")
        if not trained.get("active") or not checkpoint:
            return {"active": False, "reason": "no head was trained, the validator is unchanged"}
        if not self._has_flag("--scoring.preference"):
            return {"active": False, "reason": "the validator has no --scoring.preference"}
        old = next(c for c in self.supervisor.children if c.name == "validator")
        self.say("validator: restarting with the trained preference head (--scoring.preference)")
        old.signal_group(signal.SIGTERM)
        old.reap(STOP_GRACE_S)
        done_before = int(self.final_status().get("rounds_completed") or 0)  # its state file
        self.supervisor.children.remove(old)
        self.net.preference_dir = str(checkpoint)
        self.start_validator()

        def scored() -> dict[str, Any] | None:
            running = self.validator_running()
            status = (self.validator_status() if running else self.final_status()) or {}
            if int(status.get("rounds_completed") or 0) > done_before:
                return status
            if not running:
                raise LocalnetError(
                    "the validator stopped before scoring a round with the preference head; "
                    f"see {self.workdir / 'logs' / 'validator.log'}"
                )
            return None

        status = self.wait_for("a round scored with the preference head", scored, 240.0)
        miners = [m for m in status.get("miners", []) if m["hotkey"] in self.net.miner_hotkeys]
        values = {
            int(m["uid"]): (m.get("score_breakdown") or {}).get("preference")
            for m in miners
            if m.get("error") is None
        }
        active = bool(values) and all(v is not None for v in values.values())
        reasons = {str((m.get("reasons") or {}).get("preference", "")) for m in miners}
        self.say(
            "round {} scored with preference {}".format(
                status.get("rounds_completed"), "active" if active else "NOT active"
            )
        )
        return {
            "active": active,
            "round": status.get("rounds_completed"),
            "values": values,
            "active_scorers": active_scorers(miners),
            "reason": "" if active else "; ".join(sorted(r for r in reasons if r)),
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
        # A commit is revealed REVEAL_PERIOD_BLOCKS after it was made: wait for that (bounded).
        reveal_wait = (REVEAL_PERIOD_BLOCKS + 2) * BLOCK_TIME_S if self.options.commit_reveal else 0
        weights = read_chain_weights(
            self.net.chain_path,
            self.options.netuid,
            self.net.validator_uid,
            reveal_wait_s=min(reveal_wait, max(0.0, self.remaining())),
        )
        if not weights["count"]:
            weights["last_outcome"] = status.get("last_weights")
        chain_weights = {int(u): w for u, w in weights["weights"].items()}
        excluded = excluded_reasons(status.get("miners", []))
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
            "published": published(
                api, self._wallet_validator, status, self._has_flag("--api.publish")
            ),
            "customer_job": customer,
            # Pages a person can open (the API root and /api/v1 are no pages: 404).
            "urls": {
                "leaderboard": f"{api}/leaderboard",
                "docs": f"{api}/docs",
                "redoc": f"{api}/redoc",
                "health": f"{api}/health",
                "validator_status": self.net.status_url,
                "api": api,
            },
            "customer": dict(self._customer),
            "curl": curl_snippet(api, self._customer.get("api_key", ""), self.options.duration),
            "commands": [] if self._own_workdir else network_commands(str(self.workdir)),
            "active_scorers": active_scorers(
                [m for m in status.get("miners", []) if m["hotkey"] in self.net.miner_hotkeys]
            ),
            "excluded_scorers": excluded,
            "scoring_models": {
                **{n: f"loaded from {p}" for n, p in self.net.models_found.items()},
                **{n: r for n, r in self.net.models_missing.items()},
            },
            "processes": self.supervisor.pids(),
            "miner_variants": flag_in("--generation.variant", self.net.miner_flags),
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
            customer = Background(lambda: create_customer(self.tuneforge_cli, self.workdir))
            self.wait_for("the miners to serve", self.miners_serving, 180.0)
            self.say("miners serving")
            self._numba_lock.acquire(
                self.remaining(),
                lambda: self.say("waiting for another localnet to finish its rounds"),
            )
            self.start_validator()
            self.run_rounds()
            self._numba_lock.release()
            self._customer = customer.result(self.remaining())
            job = customer_job(
                self.net.api_url,
                self._customer,
                claims_jobs=self.claims_jobs(),
                duration_s=self.options.duration,
                wait_s=self.options.customer_wait_s,
                wait_for=self.wait_for,
                say=self.say,
            )
            preference = self.votes_and_training() if self.options.votes else None
            self.settle_publications()
            report = self.report(job)
            if preference is not None:
                report["preference"] = preference
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

"""Starting localnet's network: the LocalChain and wallets, then the API, the miners and the
validator as real processes, with the flags an operator would give them (optional integrations
only when the role's own --help offers them)."""

from __future__ import annotations

import os
import sys

from tuneforge.core.loopback import LOOPBACK, free_port
from tuneforge.localnet.chain_setup import BLOCK_TIME_S, register_network
from tuneforge.localnet.models import discover_models
from tuneforge.localnet.processes import Child
from tuneforge.localnet.role_flags import job_claim_flags, job_flags, probe_role_flags
from tuneforge.localnet.runtime import Runtime


def setup_chain_and_wallets(rt: Runtime) -> None:
    path = rt.workdir / "chain.db"
    registered = register_network(
        path,
        rt.options.netuid,
        str(rt.workdir / "wallets"),
        rt.options.miners,
        commit_reveal=rt.options.commit_reveal,
    )
    rt.wallet_validator = registered.validator_wallet
    rt.net.validator_hotkey = registered.validator_wallet.hotkey.ss58_address
    rt.net.validator_uid = registered.validator_uid
    rt.net.miner_hotkeys.extend(registered.miner_hotkeys)
    rt.net.chain_path = path
    rt.say(
        f"LocalChain (test double) at {path}: validator uid {rt.net.validator_uid}, "
        f"{rt.options.miners} miner(s) registered, {BLOCK_TIME_S}s blocks"
        + (", commit-reveal weights" if rt.options.commit_reveal else "")
    )


def probe_flags(rt: Runtime) -> None:
    """The roles' own --help: optional integrations are used only when a role has them."""
    helps = probe_role_flags(rt.root, rt.child_env(), rt.remaining)
    rt.net.validator_flags, rt.net.miner_flags = helps["validator"], helps["miner"]


def start_api(rt: Runtime) -> None:
    port = free_port()
    rt.net.api_url = f"http://{LOOPBACK}:{port}"
    env = rt.child_env()
    # The API caches the metagraph; a short refresh lets it see localnet's neurons quickly.
    env["TUNEFORGE_METAGRAPH_REFRESH_S"] = "2"
    # Local only: callbacks may target 127.0.0.1, and the scripted voter may vote quickly.
    env["TUNEFORGE_WEBHOOK_ALLOW_PRIVATE"] = "true"
    env["TUNEFORGE_VOTES_PER_MINUTE"] = "1000"
    argv = [
        sys.executable, "-m", "tuneforge.tools.cli", "api", "serve",
        "--host", LOOPBACK, "--port", str(port), "--workers", "1",
        "--database-url", f"sqlite:///{rt.workdir / 'api.db'}",
        "--network", "localnet", "--netuid", str(rt.options.netuid),
        "--localnet.path", str(rt.net.chain_path),
        "--audio-dir", str(rt.workdir / "api-audio"),
    ]  # fmt: skip
    rt.supervisor.start(Child("api", argv, rt.workdir / "logs" / "api.log", env, rt.root))
    rt.say(f"API starting on {rt.net.api_url}")


def miner_argv(rt: Runtime, index: int, port: int) -> list[str]:
    """`neurons/miner.py` flags for miner `index` serving on `port`."""
    options = rt.options
    argv = [
        sys.executable, str(rt.root / "neurons" / "miner.py"),
        "--network", "localnet", "--netuid", str(options.netuid),
        "--localnet.path", str(rt.net.chain_path),
        "--wallet.name", f"miner{index}", "--wallet.hotkey", "default",
        "--wallet.path", str(rt.workdir / "wallets"),
        "--axon.ip", LOOPBACK, "--axon.port", str(port),
        "--generation.backend", options.backend,
        "--miner.metagraph_refresh_s", "2",
        "--logging.level", "INFO",
    ]  # fmt: skip
    if options.backend == "musicgen":
        argv += ["--generation.model", options.model]
        if rt.net.miner_has("--generation.cpu_threads"):
            # N torch processes on a few cores: one pool each would oversubscribe them.
            threads = max(1, (os.cpu_count() or 1) // options.miners)
            argv += ["--generation.cpu_threads", str(threads)]
    if rt.net.miner_has("--generation.variant"):
        # One seed, one piece: without a per-miner variant every miner would return the
        # same audio for a challenge and the copy penalty would zero them all.
        argv += ["--generation.variant", str(index)]
    return argv


def start_miners(rt: Runtime) -> None:
    for index, _hotkey in enumerate(rt.net.miner_hotkeys):
        port = free_port()
        rt.net.miner_ports.append(port)
        log = rt.workdir / "logs" / f"miner{index}.log"
        argv = miner_argv(rt, index, port)
        rt.supervisor.start(Child(f"miner{index}", argv, log, rt.child_env(), rt.root))
    variants = rt.net.miner_has("--generation.variant")
    rt.say(
        f"{rt.options.miners} miner(s) starting ({rt.options.backend} backend"
        + (", one variant each)" if variants else ", identical: no --generation.variant)")
    )


def claims_jobs(rt: Runtime) -> bool:
    """Whether this validator can claim customer jobs from the API (it has job flags)."""
    return bool(job_flags(rt.net.validator_flags))


def validator_max_rounds(rt: Runtime) -> int:
    if rt.options.keep_running or claims_jobs(rt):
        return 0
    return rt.options.rounds


def validator_argv(rt: Runtime, status_port: int) -> list[str]:
    """`neurons/validator.py` flags; optional integrations only when the validator has them."""
    options = rt.options
    # MusicGen on CPU runs slower than real time: its deadline must not cut it off.
    per_second = 20.0 if options.backend == "musicgen" else 2.0
    argv = [
        sys.executable, str(rt.root / "neurons" / "validator.py"),
        "--network", "localnet", "--netuid", str(options.netuid),
        "--localnet.path", str(rt.net.chain_path),
        "--wallet.name", "validator", "--wallet.hotkey", "default",
        "--wallet.path", str(rt.workdir / "wallets"),
        "--neuron.state_path", str(rt.net.state_path),
        "--neuron.status_port", str(status_port),
        "--neuron.sample_size", str(options.miners),
        # Rounds go on (0 = forever) when the validator must still serve the customer job
        # or --keep-running leaves a live network; otherwise it stops after --rounds.
        "--neuron.max_rounds", str(validator_max_rounds(rt)),
        "--neuron.round_interval_s", str(options.round_interval_s),
        "--neuron.min_challenge_seconds", str(options.duration),
        "--neuron.max_challenge_seconds", str(options.duration),
        "--neuron.metagraph_refresh_blocks", "2",
        # Several processes share a few cores: generous deadlines, no false timeouts.
        "--neuron.timeout", "60",
        "--neuron.timeout_per_second", str(per_second),
        "--logging.level", "INFO",
    ]  # fmt: skip
    return argv + _validator_integrations(rt)


def _validator_integrations(rt: Runtime) -> list[str]:
    """The API, job and scoring-model flags, each only when the validator offers it."""
    net, argv = rt.net, []
    if net.validator_has("--api.url"):
        argv += ["--api.url", net.api_url]
    if net.validator_has("--api.publish"):
        argv += ["--api.publish"]
    argv += job_claim_flags(net.validator_flags)
    if net.validator_has("--api.jobs_poll_interval_s"):
        argv += ["--api.jobs_poll_interval_s", "1"]  # a waiting customer, not a busy net
    for name, path in net.models_found.items():
        if net.validator_has(f"--scoring.{name}"):
            argv += [f"--scoring.{name}", path]
    if net.preference_dir and net.validator_has("--scoring.preference"):
        argv += ["--scoring.preference", net.preference_dir]
    if net.models_found and net.validator_has("--scoring.allow_missing"):
        # A present but unloadable model is excluded with its reason, not a failed demo.
        argv += ["--scoring.allow_missing"]
    return argv


def start_validator(rt: Runtime) -> None:
    found, missing = discover_models(rt.options.models_dir)
    rt.net.models_found, rt.net.models_missing = found, missing
    status_port = free_port()
    rt.net.status_url = f"http://{LOOPBACK}:{status_port}/status"
    rt.net.state_path = rt.workdir / "validator" / "state.db"
    rt.supervisor.start(
        Child(
            "validator",
            validator_argv(rt, status_port),
            rt.workdir / "logs" / "validator.log",
            rt.child_env(),
            rt.root,
            may_finish=validator_max_rounds(rt) > 0,
        )
    )
    models = ", ".join(f"{n} ({p})" for n, p in found.items()) or "none found locally"
    rt.say(f"validator starting; scoring models: {models}")
    cache = rt.numba_lock.path.parent
    if not any(cache.glob("**/*.nbi")):
        # Measured on 2 shared cores: 25–90 s of numba compiling, once per machine.
        rt.say(
            "first run on this machine: the validator compiles librosa's kernels once "
            f"into {cache} (about 30–90 s; later runs reuse them)"
        )

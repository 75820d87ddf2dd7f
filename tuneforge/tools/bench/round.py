"""`tuneforge bench round`: whole validator rounds on loopback against N registered miners.

The miners live in a separate process (one HTTP server answering for every hotkey, each reply
signed by that miner's own wallet) and answer at once with a clip rendered before the bench
starts, one distinct clip per miner: the figures are the validator's (query, decode, scoring,
the state transaction), not generation's. Each miner sends the same clip every round, so from
the second round on every answer is (rightly) caught as a replay of its own earlier clip: the
copy check then verifies a real match, its costlier case. Reported per round: wall time, CPU
seconds of the validator process and of its scoring workers, peak memory of the validator and
its workers together and of each side alone (PSS, sampled every second from /proc, and the sum
of the processes' own peak RSS, which the kernel counts between samples), and how much the
state file and its history grew.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import multiprocessing
import os
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import typer
from fastapi import FastAPI, Request  # module level: FastAPI resolves the handler's annotations
from fastapi.responses import Response

from tuneforge.core.audio import COMMON_RATE
from tuneforge.core.heap import release_freed_memory_promptly
from tuneforge.scoring.workers import default_workers

NETUID = 234
_TICKS = os.sysconf("SC_CLK_TCK")
# Reading a process's smaps_rollup holds its memory map's lock while the kernel walks every
# page; sampled every 0.1 s it cost the validator 11 CPU-s and the round 10 s of wall time at
# 32 miners (the workers waited on the lock to map and unmap clip arrays). Between samples, the
# kernel's own high-water mark (VmHWM, reset each round) catches what PSS sampling misses.
SAMPLE_INTERVAL_S = 1.0


def command(
    miners: int = typer.Option(64, "--miners", help="registered miners, all queried each round"),
    duration: float = typer.Option(30.0, "--duration", help="seconds of audio per answer"),
    workers: int = typer.Option(
        default_workers(), "--scoring.workers", help="scoring processes (default: cores - 1)"
    ),
    rounds: int = typer.Option(2, "--rounds", help="rounds measured (after one warm-up round)"),
    json_out: bool = typer.Option(False, "--json", metavar="", help="print one JSON object"),
    clips: Path | None = typer.Option(
        None,
        "--clips",
        help="folder of the miners' clips: rendered there once, reused by later runs "
        "(default: rendered afresh in a temporary folder)",
    ),
    publish: bool = typer.Option(
        False,
        "--publish",
        help="queue every result and answer for the API as a publishing validator does (no API "
        "listens: the outbox only fills, and its size is reported apart from the state)",
    ),
) -> None:
    """Validator round cost: wall, CPU, peak PSS and state growth per round."""
    report = run(miners, duration, workers, rounds, clips, publish)
    if json_out:
        typer.echo(json.dumps(report))
        return
    typer.echo(
        f"{miners} miners x {duration:.0f} s, {workers} scoring worker(s), "
        f"{os.cpu_count()} cores, load {report['load_average']}"
    )
    for r in report["rounds"]:
        typer.echo(
            f"  round {r['round']}: wall {r['wall_s']:.1f} s, CPU {r['cpu_s']:.1f} s "
            f"(validator {r['cpu_validator_s']:.1f} + workers {r['cpu_workers_s']:.1f}), "
            f"peak PSS {r['peak_pss_mb']:.0f} MB (validator {r['peak_pss_validator_mb']:.0f}, "
            f"workers {r['peak_pss_workers_mb']:.0f}; peak RSS summed "
            f"{r['peak_rss_sum_mb']:.0f}), history +{r['history_growth_kb']:.0f} KB, "
            f"state file +{r['state_growth_kb']:.0f} KB"
        )
    typer.echo(
        f"state: {report['state_bytes_per_miner'] / 1e6:.2f} MB per miner after "
        f"{report['rounds_total']} rounds"
    )


@dataclass
class _Sampler:
    """Peak resident memory of this process and its children (the scoring workers): of both
    together, and of each side alone (their peaks need not fall at the same moment)."""

    workers: Any  # () -> the scoring workers' pids
    peak: int = 0
    peak_validator: int = 0
    peak_workers: int = 0
    _stop: threading.Event | None = None

    @staticmethod
    def _pss(pids: list[int]) -> int:
        """Sum of the processes' PSS: pages shared between them (libraries, the interpreter)
        are counted once in total, not once per worker as a sum of RSS would."""
        return _summed_proc_kb(pids, "smaps_rollup", "Pss:")

    def _sample(self) -> None:
        validator, workers = self._pss([os.getpid()]), self._pss(self.workers())
        self.peak = max(self.peak, validator + workers)
        self.peak_validator = max(self.peak_validator, validator)
        self.peak_workers = max(self.peak_workers, workers)

    def __enter__(self) -> _Sampler:
        self._sample()
        self._stop = threading.Event()
        stop = self._stop

        def sample() -> None:
            while not stop.wait(SAMPLE_INTERVAL_S):
                self._sample()

        self._thread = threading.Thread(target=sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._stop is not None
        self._stop.set()
        self._thread.join()


def _reset_peak_rss(pids: list[int]) -> None:
    """Restart the kernel's peak-RSS count (VmHWM) of each process."""
    for pid in pids:
        try:
            with open(f"/proc/{pid}/clear_refs", "w") as handle:
                handle.write("5")
        except OSError:
            continue  # not allowed here, or the process exited: the peak is then lifelong


def _peak_rss(pids: list[int]) -> int:
    """Sum of the processes' peak RSS (VmHWM) in bytes: an upper bound on their joint peak,
    since shared pages count once per process and the peaks need not coincide."""
    return _summed_proc_kb(pids, "status", "VmHWM:")


def _summed_proc_kb(pids: list[int], file: str, field: str) -> int:
    """Sum over the processes of a kB `field` of /proc/<pid>/`file`, in bytes (a process that
    just exited counts 0)."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/{file}") as handle:
                for line in handle:
                    if line.startswith(field):
                        total += int(line.split()[1]) * 1024
                        break
        except OSError:
            continue
    return total


def _cpu_seconds(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICKS  # utime + stime


def run(
    miners: int,
    duration: float,
    workers: int,
    rounds: int,
    clips: Path | None = None,
    publish: bool = False,
) -> dict[str, Any]:
    from tuneforge.localnet.chain_setup import register_network
    from tuneforge.scoring.engine import ScoringEngine
    from tuneforge.validator.config import NeuronSettings, ValidatorSettings
    from tuneforge.validator.loop import ValidatorLoop
    from tuneforge.validator.query import MinerClient
    from tuneforge.validator.round import RoundRunner
    from tuneforge.validator.state import ValidatorState

    release_freed_memory_promptly()  # as the validator does before its workers spawn
    with tempfile.TemporaryDirectory(prefix="tuneforge-bench-round-") as tmp:
        root = Path(tmp)
        chain_path, wallets = root / "chain.db", str(root / "wallets")
        registered = register_network(chain_path, NETUID, wallets, miners)
        clips = clips or root / "clips"
        _render(clips, miners, duration)
        context = multiprocessing.get_context("spawn")
        ready = context.Event()
        from tuneforge.core.loopback import free_port

        port = free_port()
        server = context.Process(
            target=_serve_miners, args=(wallets, str(clips), miners, port, ready), daemon=True
        )
        server.start()
        try:
            if not ready.wait(120):
                raise RuntimeError("the loopback miners did not start")
            _announce(chain_path, registered.miner_hotkeys, port)
            neuron = NeuronSettings(
                state_path=str(root / "state.db"),
                sample_size=miners,
                round_interval_s=0.0,
                min_challenge_seconds=duration,
                max_challenge_seconds=duration,
                timeout=60.0,
                max_response_bytes=64 * 1024 * 1024,
            )
            settings = ValidatorSettings(
                network="localnet",
                netuid=NETUID,
                localnet={"path": str(chain_path)},
                neuron=neuron,
                api={"url": "http://127.0.0.1:9", "publish": publish},  # port 9: nobody listens
            )
            state = ValidatorState(neuron.state_path)
            engine = ScoringEngine.create(state.history, None, workers=workers)
            engine.warm_up()
            wallet = registered.validator_wallet
            client = MinerClient(wallet, neuron.max_response_bytes, neuron.max_audio_seconds)
            hotkey = wallet.hotkey.ss58_address
            runner = RoundRunner(settings, hotkey, state, client, engine)
            from tuneforge.chain.local import LocalChain

            chain = LocalChain(chain_path, netuid=NETUID, hotkey=hotkey)
            loop = ValidatorLoop(settings, hotkey, chain, state, runner)
            measured = asyncio.run(_rounds(loop, runner, state, rounds + 1, engine.worker_pids))
            measured = measured[1:]  # the first round pays connection set-up and caches
            history = state.history.stored_bytes()
            outbox = state.outbox.stored_bytes()
            engine.close()
            state.close()  # the last connection's close checkpoints the WAL into the file
            state_file = Path(neuron.state_path).stat().st_size + _wal_size(Path(neuron.state_path))
            chain.close()
        finally:
            server.terminate()
            server.join(10)
    return {
        "miners": miners,
        "duration_s": duration,
        "workers": workers,
        "cores": os.cpu_count(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "rounds": measured,
        "rounds_total": rounds + 1,
        "history_bytes": history,
        "state_bytes": state_file,
        "state_bytes_per_miner": round((state_file - outbox) / miners),
        "publish": publish,
        "outbox_bytes": outbox,  # queued publications (bounded by api.outbox_max_bytes)
    }


async def _rounds(
    loop: Any, runner: Any, state: Any, count: int, worker_pids: Any
) -> list[dict[str, Any]]:
    """Each round measured on this process and its scoring workers only (not the miners)."""
    out = []
    try:
        for _ in range(count):
            metagraph = loop.metagraph(force=True)
            state_path = Path(state.path)
            size_before = state_path.stat().st_size + _wal_size(state_path)
            history_before = sum(state.history.stored_bytes().values())
            workers_before = {pid: _cpu_seconds(pid) for pid in worker_pids()}
            me_before = time.process_time()
            _reset_peak_rss([os.getpid(), *worker_pids()])
            started = time.perf_counter()
            with _Sampler(worker_pids) as sampler:
                report = await runner.run_round(metagraph)
            wall = time.perf_counter() - started
            rss_validator, rss_workers = _peak_rss([os.getpid()]), _peak_rss(worker_pids())
            me = time.process_time() - me_before
            workers = sum(_cpu_seconds(pid) - workers_before.get(pid, 0.0) for pid in worker_pids())
            assert report is not None, "nobody answered"
            answered = sum(o.audio is not None for o in report.outcomes)
            out.append(
                {
                    "round": report.round_number,
                    "answered": answered,
                    "copies_flagged": sum(
                        s.penalties.get("fingerprint_penalty") == 0.0 for s in report.scores
                    ),
                    "wall_s": round(wall, 2),
                    "cpu_s": round(me + workers, 2),
                    "cpu_validator_s": round(me, 2),
                    "cpu_workers_s": round(workers, 2),
                    "peak_pss_mb": round(sampler.peak / 2**20, 1),
                    "peak_pss_validator_mb": round(sampler.peak_validator / 2**20, 1),
                    "peak_pss_workers_mb": round(sampler.peak_workers / 2**20, 1),
                    "peak_rss_sum_mb": round((rss_validator + rss_workers) / 2**20, 1),
                    "peak_rss_validator_mb": round(rss_validator / 2**20, 1),
                    "history_growth_kb": round(
                        (sum(state.history.stored_bytes().values()) - history_before) / 1024, 1
                    ),
                    "state_growth_kb": round(
                        (state_path.stat().st_size + _wal_size(state_path) - size_before) / 1024,
                        1,
                    ),
                }
            )
    finally:
        await runner.client.aclose()
    return out


def _wal_size(path: Path) -> int:
    wal = path.with_name(path.name + "-wal")
    return wal.stat().st_size if wal.exists() else 0


def _render(folder: Path, miners: int, duration: float) -> None:
    """One distinct synth clip per miner (its own genre, key, tempo and seed), as WAV files;
    a clip already in `folder` for this duration is kept (rendering 64 takes minutes)."""
    from tuneforge.core.audio import encode_wav
    from tuneforge.generation.synth import SynthBackend
    from tuneforge.validator.challenges import make_challenge

    folder.mkdir(parents=True, exist_ok=True)
    backend = SynthBackend()
    for index in range(miners):
        path = folder / f"{index}.wav"
        if path.exists() and abs(_seconds(path) - duration) < 0.01:
            continue
        seed = hashlib.sha256(f"bench-{index}".encode()).digest()
        challenge = make_challenge(seed, duration, duration)
        partial = path.with_suffix(".part")
        partial.write_bytes(encode_wav(backend.generate(challenge)))
        partial.replace(path)  # a run stopped mid-write leaves no clip that looks whole


def _seconds(path: Path) -> float:
    import soundfile

    return float(soundfile.info(str(path)).duration)


def _announce(chain_path: Path, hotkeys: list[str], port: int) -> None:
    from tuneforge.chain.local import LocalChain

    with LocalChain(chain_path, netuid=NETUID) as chain:
        for hotkey in hotkeys:
            chain.serve_hotkey(hotkey, "127.0.0.1", port)


def _serve_miners(wallets: str, clips: str, miners: int, port: int, ready: Any) -> None:
    """The loopback miners' process: answers every hotkey with its own pre-rendered clip."""
    import uvicorn
    from bittensor.http_auth import HEADER_HOTKEY, HEADER_RECEIVER

    from tuneforge.auth.btauth import sign_response
    from tuneforge.core.protocol import (
        GENERATE_PATH,
        HEADER_GENERATION_MS,
        HEADER_MODEL,
        HEADER_SAMPLE_RATE,
        HEADER_SPEC_VERSION,
        SPEC_VERSION,
    )
    from tuneforge.core.wallets import load_wallet

    by_hotkey = {}
    for index in range(miners):
        wallet = load_wallet(f"miner{index}", "default", wallets)
        wav = (Path(clips) / f"{index}.wav").read_bytes()
        by_hotkey[wallet.hotkey.ss58_address] = (wallet, wav)
    app = FastAPI()

    @app.post(GENERATE_PATH)
    async def generate(request: Request) -> Response:
        await request.body()
        receiver = request.headers.get(HEADER_RECEIVER, "")
        if receiver not in by_hotkey:
            return Response(b"", status_code=401)
        wallet, wav = by_hotkey[receiver]
        headers = {
            HEADER_SPEC_VERSION: SPEC_VERSION,
            HEADER_MODEL: "bench/pre-rendered",
            HEADER_GENERATION_MS: "1",
            HEADER_SAMPLE_RATE: str(COMMON_RATE),
            **sign_response(
                wallet, "POST", GENERATE_PATH, wav, request.headers.get(HEADER_HOTKEY, "")
            ),
        }
        return Response(wav, media_type="audio/wav", headers=headers)

    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
    server = uvicorn.Server(config)

    def announce() -> None:
        while not server.started:
            time.sleep(0.02)
        ready.set()

    threading.Thread(target=announce, daemon=True).start()
    server.run()

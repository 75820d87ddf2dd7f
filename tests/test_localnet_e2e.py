"""`tuneforge localnet` end to end: the real command as a subprocess, every role a real process.

One run of `tuneforge localnet --miners 3 --rounds 2 --json` is shared by the assertions below
(module fixture); two short runs check that Ctrl-C and a SIGKILLed localnet leave no process.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tuneforge.chain.local import LocalChain
from tuneforge.localnet import pid_alive
from tuneforge.scoring.weights import PENALTY_NAMES, SCORER_NAMES

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parent.parent
RUN_TIMEOUT_S = 240


@dataclass
class Run:
    workdir: Path
    returncode: int
    stdout: str
    stderr: str
    wall_s: float

    @property
    def report(self) -> dict[str, Any]:
        return json.loads(self.stdout)


def _env(tmp: Path) -> dict[str, str]:
    env = dict(os.environ)
    # An empty Hugging Face cache: which scorers are excluded does not depend on this machine.
    env["HF_HOME"] = str(tmp / "hf-home")
    env.pop("HF_HUB_CACHE", None)
    return env


def _localnet(*args: str) -> list[str]:
    return [sys.executable, "-m", "tuneforge.tools.cli", "localnet", *args]


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    tmp = tmp_path_factory.mktemp("localnet")
    workdir = tmp / "net"
    started = time.monotonic()
    done = subprocess.run(
        _localnet("--miners", "3", "--rounds", "2", "--json", "--workdir", str(workdir)),
        capture_output=True,
        text=True,
        cwd=REPO,
        env=_env(tmp),
        timeout=RUN_TIMEOUT_S,
        check=False,
    )
    wall = time.monotonic() - started
    print(f"\n`tuneforge localnet --miners 3 --rounds 2` wall time: {wall:.1f}s")
    return Run(workdir, done.returncode, done.stdout, done.stderr, wall)


def _registered(workdir: Path) -> tuple[int, dict[int, str]]:
    """(validator uid, {miner uid: hotkey}) as registered on the run's LocalChain file."""
    with LocalChain(workdir / "chain.db") as chain:
        neurons = chain.metagraph().neurons
    validator = next(n.uid for n in neurons if n.validator_permit)
    return validator, {n.uid: n.hotkey for n in neurons if not n.validator_permit}


def test_localnet_completes_and_prints_one_json_object(run: Run) -> None:
    assert run.returncode == 0, run.stderr[-3000:]
    report = run.report  # the whole stdout is one JSON document
    for key in ("rounds", "leaderboard", "weights_set", "published", "customer_job", "urls"):
        assert key in report
    assert report["rounds"] >= 2
    assert "excluded_scorers" in report


def test_progress_is_shown_on_stderr_while_it_runs(run: Run) -> None:
    lines = [line for line in run.stderr.splitlines() if line.startswith("[localnet")]
    text = "\n".join(lines)
    for step in ("API up", "miners serving", "validator up", "round 1 scored", "round 2 scored"):
        assert step in text
    assert "stopping every process" in text


def test_leaderboard_lists_every_miner_with_its_16_scorer_breakdown(run: Run) -> None:
    _, miners = _registered(run.workdir)
    rows = run.report["leaderboard"]
    assert len(rows) == 3
    assert {row["uid"]: row["hotkey"] for row in rows} == miners
    excluded = set(run.report["excluded_scorers"])
    for row in rows:
        breakdown = row["score_breakdown"]
        assert set(breakdown) == set(SCORER_NAMES) and len(breakdown) == 16
        assert set(row["penalties"]) == set(PENALTY_NAMES)
        assert row["rounds_queried"] == run.report["rounds"]
        assert row["error"] is None
        assert 0.0 <= row["last_final_score"] <= 1.0
        top, bottom = row["top_scorers"], row["bottom_scorers"]
        assert len(top) == 3 and len(bottom) == 3
        for name, value in {**top, **bottom}.items():
            assert name not in excluded and breakdown[name] == value
        assert min(top.values()) >= max(bottom.values())
    emas = [row["ema"] for row in rows]
    assert emas == sorted(emas, reverse=True)


def test_weights_in_the_report_are_the_ones_on_localchain(run: Run) -> None:
    validator_uid, _ = _registered(run.workdir)
    with LocalChain(run.workdir / "chain.db") as chain:
        on_chain = chain.weights().get(validator_uid, {})
        count = chain.weight_set_count(validator_uid)
    reported = run.report["weights_set"]
    assert reported["validator_uid"] == validator_uid
    assert reported["count"] == count
    assert {int(uid): w for uid, w in reported["weights"].items()} == on_chain
    for row in run.report["leaderboard"]:
        assert row["weight"] == on_chain.get(row["uid"], 0.0)


def test_localchain_holds_weights_set_by_the_validator(run: Run) -> None:
    # Each miner runs its own --generation.variant: without one, every synth miner would answer
    # a challenge with the same audio, the copy penalty would zero them all, and no weights.
    assert run.report["miner_variants"]
    validator_uid, miners = _registered(run.workdir)
    with LocalChain(run.workdir / "chain.db") as chain:
        weights = chain.weights()[validator_uid]
        assert chain.weight_set_count(validator_uid) >= 1
    assert set(weights) == set(miners)
    assert math.isclose(sum(weights.values()), 1.0, rel_tol=1e-6)


def test_no_child_process_outlives_localnet(run: Run) -> None:
    pids = run.report["processes"]
    assert set(pids) == {"api", "miner0", "miner1", "miner2", "validator"}
    assert json.loads((run.workdir / "pids.json").read_text()) == pids
    assert [name for name, pid in pids.items() if pid_alive(pid)] == []


def test_api_parts_that_exist_work_through_http(run: Run) -> None:
    report = run.report
    api = report["urls"]["api"]
    assert api.startswith("http://127.0.0.1:")
    assert report["urls"]["docs"] == f"{api}/docs"
    assert report["urls"]["leaderboard"] == f"{api}/leaderboard"
    # The report's key is one the localnet's own database accepts.
    assert report["customer"]["account_id"] == report["customer_job"]["account_id"]
    job = report["customer_job"]
    # The fresh key worked against GET /account/me: the account's credits were read back.
    assert job["account_id"].startswith("acc_") and job["credits"] == 100
    assert job["status"] == "completed", job
    assert job["credits_charged"] == 4  # ceil(12 s / 3) for the default duration
    assert job["tracks"], job
    miners = {row["hotkey"] for row in report["leaderboard"]}
    for track in job["tracks"]:
        assert track["miner_hotkey"] in miners
        assert track["audio_bytes"] > 12 * 32_000  # a real 12 s WAV came back
        assert track["audio_url"].startswith(api)


def test_the_api_holds_the_published_results_of_every_miner(run: Run) -> None:
    published = run.report["published"]
    assert published["note"] == ""
    miners = {row["hotkey"] for row in run.report["leaderboard"]}
    assert set(published["by_miner"]) == miners
    assert all(n >= 2 for n in published["by_miner"].values())  # both requested rounds
    assert published["count"] == sum(published["by_miner"].values())


def test_scorers_without_local_models_are_excluded_and_named(run: Run) -> None:
    excluded = run.report["excluded_scorers"]
    for scorer in ("clap", "neural_quality", "vocal_lyrics", "learned_mos"):
        assert scorer in excluded and "never downloads" in excluded[scorer]
    assert "not found locally" in run.report["scoring_models"]["clap"]


@dataclass
class Interrupted:
    returncode: int
    stderr: str
    pids: dict[str, int]


@contextmanager
def _start_then(tmp: Path, action: signal.Signals) -> Iterator[Interrupted]:
    """Start a one-miner localnet, send `action` once the validator was started, and report."""
    workdir = tmp / "net"
    proc = subprocess.Popen(
        _localnet("--miners", "1", "--rounds", "50", "--workdir", str(workdir)),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
        env=_env(tmp),
    )
    seen: list[str] = []
    try:
        assert proc.stderr is not None
        for line in proc.stderr:
            seen.append(line)
            if "validator starting" in line:
                break
        else:
            pytest.fail("localnet ended before starting the validator:\n" + "".join(seen))
        time.sleep(0.5)
        proc.send_signal(action)
        rest = proc.stderr.read()
        proc.wait(timeout=60)
        pids = json.loads((workdir / "pids.json").read_text())
        yield Interrupted(proc.returncode, "".join(seen) + rest, pids)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _wait_gone(pids: dict[str, int], seconds: float) -> list[str]:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        alive = [name for name, pid in pids.items() if pid_alive(pid)]
        if not alive:
            return []
        time.sleep(0.2)
    return alive


def test_ctrl_c_stops_every_child_cleanly(tmp_path: Path) -> None:
    with _start_then(tmp_path, signal.SIGINT) as result:
        assert set(result.pids) == {"api", "miner0", "validator"}
        # Children are stopped (and reaped) before localnet exits.
        assert [name for name, pid in result.pids.items() if pid_alive(pid)] == []
        assert result.returncode == 130
        assert "stopping every process" in result.stderr


def test_a_killed_localnet_takes_its_children_with_it(tmp_path: Path) -> None:
    with _start_then(tmp_path, signal.SIGKILL) as result:
        assert result.returncode == -signal.SIGKILL
        # No finally ran in localnet: the children's parent-death signal stops them.
        assert _wait_gone(result.pids, 30.0) == []


def test_localnet_completes_with_commit_reveal_weights(tmp_path: Path) -> None:
    workdir = tmp_path / "net"
    done = subprocess.run(
        _localnet(
            "--miners", "2", "--rounds", "2", "--commit-reveal", "--json",
            "--workdir", str(workdir),
        ),
        capture_output=True, text=True, cwd=REPO, env=_env(tmp_path),
        timeout=RUN_TIMEOUT_S, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    reported = json.loads(done.stdout)["weights_set"]
    assert reported["commit_reveal"] is True and reported["count"] >= 1
    assert "weights committed at block" in done.stderr
    validator_uid, miners = _registered(workdir)
    with LocalChain(workdir / "chain.db") as chain:
        revealed = chain.weights()[validator_uid]  # the chain revealed the commit by itself
    assert set(revealed) == set(miners)
    assert {int(uid): w for uid, w in reported["weights"].items()} == revealed


def test_votes_end_with_the_preference_scorer_active_in_a_scored_round(tmp_path: Path) -> None:
    """`--votes 50`: a scripted customer votes, the validator trains, restarts with the head
    (the scorer set is decided at start-up, D42) and scores a round with preference active."""
    done = subprocess.run(
        _localnet(
            "--miners", "3", "--rounds", "1", "--votes", "50", "--json",
            "--workdir", str(tmp_path / "net"),
        ),
        capture_output=True, text=True, cwd=REPO, env=_env(tmp_path),
        timeout=2 * RUN_TIMEOUT_S, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout)
    training = report["preference"]["training"]
    assert training["active"] and training["pairs_used"] == 50
    assert training["heldout_accuracy"] >= 0.55 and training["weight"] > 0
    scoring = report["preference"]["scoring"]
    assert scoring["active"], scoring
    assert "preference" in report["active_scorers"] and "preference" in scoring["active_scorers"]
    assert "preference" not in report["excluded_scorers"]
    for row in report["leaderboard"]:
        assert row["score_breakdown"]["preference"] is not None
    assert "scored with preference active" in done.stderr

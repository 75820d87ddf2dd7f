"""localnet's parts that need no network: model discovery, the leaderboard, the report text,
option checks, and the supervisor stopping real process groups."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tuneforge.core.loopback import (
    LISTEN_PORT_FLOOR,
    ephemeral_port_range,
    free_port,
    port_is_free,
)
from tuneforge.localnet import (
    Child,
    Localnet,
    LocalnetError,
    LocalnetOptions,
    Supervisor,
    discover_models,
    format_report,
    leaderboard,
    pid_alive,
)
from tuneforge.localnet.report import curl_snippet, usage_lines
from tuneforge.tools.cli import app


def _hf_snapshot(cache: Path, hub_id: str, revision: str, with_ref: bool = True) -> Path:
    repo = cache / ("models--" + hub_id.replace("/", "--"))
    snapshot = repo / "snapshots" / revision
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text("{}")
    if with_ref:
        (repo / "refs").mkdir()
        (repo / "refs" / "main").write_text(revision)
    return snapshot


def test_models_come_from_models_dir_or_the_hf_cache_and_absent_ones_say_why(
    tmp_path: Path,
) -> None:
    cache = tmp_path / "hub"
    clap = _hf_snapshot(cache, "laion/clap-htsat-fused", "abc123")
    _hf_snapshot(cache, "openai/whisper-base", "0000", with_ref=False)
    # A snapshot without config.json is an interrupted download: not a model.
    (cache / "models--m-a-p--MERT-v1-95M" / "snapshots" / "partial").mkdir(parents=True)
    models = tmp_path / "models"
    (models / "mos").mkdir(parents=True)
    (models / "mos" / "head.safetensors").write_bytes(b"\0")
    (models / "preference").mkdir()  # empty: not a model

    found, missing = discover_models(str(models), hub_cache=cache)

    assert found["clap"] == str(clap.resolve())
    assert found["whisper"].endswith("/snapshots/0000")
    assert found["mos"] == str((models / "mos").resolve())
    assert set(missing) == {"mert", "preference"}
    assert "m-a-p/MERT-v1-95M" in missing["mert"] and "never downloads" in missing["mert"]


def test_models_dir_copy_wins_over_the_cache(tmp_path: Path) -> None:
    cache = tmp_path / "hub"
    _hf_snapshot(cache, "laion/clap-htsat-fused", "abc")
    local = tmp_path / "models" / "clap-htsat-fused"  # the hub repo's own name also works
    local.mkdir(parents=True)
    (local / "config.json").write_text("{}")
    found, _ = discover_models(str(tmp_path / "models"), hub_cache=cache)
    assert found["clap"] == str(local.resolve())


def _miner(uid: int, ema: float, breakdown: dict[str, float], reasons: dict[str, str]) -> dict:
    return {
        "uid": uid,
        "hotkey": f"5hotkey{uid}",
        "ema": ema,
        "last_final_score": ema,
        "score_breakdown": breakdown,
        "penalties": {"fingerprint_penalty": 1.0},
        "reasons": reasons,
        "rounds_queried": 2,
        "error": None,
    }


def test_leaderboard_ranks_by_ema_and_leaves_unmeasured_scorers_out_of_best_and_worst() -> None:
    breakdown = {"clap": None, "melody": 0.9, "speed": 1.0, "timbral": 0.2, "quality": 0.5}
    reasons = {"clap": "not measured on this validator: no CLAP model", "timbral": "thin"}
    rows = leaderboard(
        [_miner(1, 0.2, breakdown, reasons), _miner(2, 0.6, breakdown, reasons)], {2: 0.8, 1: 0.2}
    )
    assert [r["uid"] for r in rows] == [2, 1]
    assert rows[0]["weight"] == 0.8
    assert list(rows[0]["top_scorers"]) == ["speed", "melody", "quality"]
    assert list(rows[0]["bottom_scorers"]) == ["timbral", "quality", "melody"]
    assert "clap" not in rows[0]["bottom_scorers"]
    assert rows[0]["score_breakdown"] == breakdown


def test_report_text_shows_leaderboard_weights_job_and_urls() -> None:
    rows = leaderboard([_miner(3, 0.4, {"melody": 0.7, "speed": 1.0}, {})], {3: 1.0})
    report = {
        "miners": 1,
        "backend": "synth",
        "rounds": 2,
        "wall_s": 12.5,
        "leaderboard": rows,
        "weights_set": {"validator_uid": 0, "count": 2, "weights": {"3": 1.0}},
        "published": {"count": 0, "note": "publishing is not built"},
        "customer_job": {"status": "skipped", "reason": "no claiming yet"},
        "excluded_scorers": {"clap": "clap model not found locally"},
        "urls": {"leaderboard": "http://127.0.0.1:9/leaderboard"},
        "customer": {"account_id": "acc_1", "api_key": "tf_secret"},
        "curl": "curl …",
        "workdir": "/tmp/x",
        "running": False,
        "miner_variants": True,
    }
    text = format_report(report)
    assert "2 rounds" in text and "5hotkey3" in text and "0.400" in text
    assert "set 2 time(s) by validator uid 0" in text
    assert "customer job: skipped — no claiming yet" in text
    assert "clap: clap model not found locally" in text
    assert "http://127.0.0.1:9/leaderboard" in text
    assert "columns: ema = " in text
    # Stopped: how to keep it running; the key still shown (its database is kept in /tmp/x).
    assert "run it again with --keep-running" in text
    assert "tf_secret" in text and "/tmp/x/api.db" in text
    assert "curl …" not in text  # a curl against a stopped network would only fail
    assert "tuneforge validator status --workdir /tmp/x" in text
    running = format_report({**report, "running": True})
    assert "up until Ctrl-C" in running and "curl …" in running
    assert "scripted votes" not in text
    summary = "preference scorer trained on 50 pairs: held-out accuracy 0.800, weight 23.25"
    voted = {"votes": 50, "jobs": 17, "training": {"active": True, "summary": summary}}
    with_votes = format_report({**report, "preference": voted})
    assert "scripted votes: 50 over 17 requests" in with_votes and summary in with_votes


def test_the_report_shows_the_preference_scorer_active_with_accuracy_and_weight() -> None:
    from tuneforge.localnet.report import active_scorers, preference_lines

    breakdown = {"melody": 0.7, "speed": 1.0, "preference": 0.62, "clap": None}
    miners = [_miner(1, 0.4, breakdown, {}), _miner(2, 0.3, breakdown, {})]
    assert active_scorers(miners) == ["melody", "speed", "preference"]
    training = {
        "active": True,
        "summary": "preference scorer trained on 50 pairs",
        "heldout_accuracy": 0.8,
        "weight": 23.25,
        "share": 0.2,
    }
    scoring = {"active": True, "round": 4, "values": {1: 0.62, 2: 0.41}}
    text = "\n".join(preference_lines({"votes": 50, "jobs": 17, "training": training,
                                        "scoring": scoring}))  # fmt: skip
    assert "preference scorer ACTIVE in round 4: held-out accuracy 0.800, weight 23.25" in text
    assert "(20.0% of the score)" in text and "uid 1 0.620" in text
    off = {"active": False, "reason": "inactive: held-out accuracy 0.500 is below 0.55"}
    text = "\n".join(preference_lines({"votes": 50, "jobs": 17, "training": training,
                                        "scoring": off}))  # fmt: skip
    assert "preference scorer not active: inactive: held-out accuracy 0.500" in text


def test_the_scripted_voter_prefers_treble_it_shares_with_the_validator_analysis_band() -> None:
    from tests.helpers.api_server import wav_bytes
    from tuneforge.localnet.votes import treble_share

    assert treble_share(wav_bytes(0.5, freq=4000.0)) > 0.99
    assert treble_share(wav_bytes(0.5, freq=200.0)) < 0.01
    # Above the validator's analysis Nyquist (11.025 kHz) nothing counts: the embedding the
    # preference head reads cannot hear it, so a taste for it could not be learned (D57).
    assert treble_share(_sum_of(wav_bytes(0.5, freq=200.0), wav_bytes(0.5, freq=15000.0))) < 0.01


def _sum_of(*wavs: bytes) -> bytes:
    """One WAV holding the sum of equally long mono WAVs."""
    import io

    import soundfile as sf

    parts = [sf.read(io.BytesIO(w), dtype="float32") for w in wavs]
    mixed = sum(data for data, _ in parts) / len(parts)
    buffer = io.BytesIO()
    sf.write(buffer, mixed, parts[0][1], format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def test_a_removed_temporary_workdir_suggests_a_workdir_and_lists_no_commands() -> None:
    report = {
        "urls": {"docs": "http://127.0.0.1:9/docs"},
        "customer": {"account_id": "acc_1", "api_key": "tf_gone"},
        "workdir": "/tmp/tuneforge-localnet-x",
        "workdir_removed": True,
        "running": False,
    }
    text = "\n".join(usage_lines(report))
    assert "--keep-running --workdir ./localnet" in text
    assert "tuneforge api" not in text and "(removed)" in text
    assert "tf_gone" not in text  # its database went with the directory


def test_the_printed_curl_is_valid_shell_with_the_key_and_a_bounded_poll() -> None:
    snippet = curl_snippet("http://127.0.0.1:9", "tf_abc", 12.0)
    assert subprocess.run(["bash", "-n", "-c", snippet], check=False).returncode == 0
    assert "TF_KEY=tf_abc" in snippet and '"duration_seconds": 12' in snippet
    assert "for i in $(seq " in snippet and "-o track.wav" in snippet


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"backend": "musicgen"}, "--model"),
        ({"backend": "audiocraft"}, "--backend"),
        ({"miners": 0}, "--miners"),
        ({"duration": 0.5}, "--duration"),
        ({"votes": 10, "miners": 1}, "--votes"),
        ({"votes": -1}, "--votes"),
    ],
)
def test_invalid_options_are_refused_before_anything_starts(
    changes: dict[str, object], message: str
) -> None:
    options = LocalnetOptions(**changes)  # type: ignore[arg-type]
    with pytest.raises(LocalnetError, match=message):
        options.validate()


def test_cli_reports_a_refused_option_as_json_and_exit_code_1() -> None:
    result = CliRunner().invoke(app, ["localnet", "--backend", "musicgen", "--json"])
    assert result.exit_code == 1
    assert "--model" in json.loads(result.stdout.splitlines()[0])["error"]


# A child that ignores SIGTERM and has a grandchild in its session: the worst case for cleanup.
_STUBBORN = """
import os, signal, subprocess, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
grandchild = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
open(sys.argv[1], "w").write(str(grandchild.pid))
time.sleep(120)
"""


def test_supervisor_kills_a_child_that_ignores_sigterm_and_its_grandchildren(
    tmp_path: Path,
) -> None:
    marker = tmp_path / "grandchild.pid"
    supervisor = Supervisor(pids_file=tmp_path / "pids.json")
    child = supervisor.start(
        Child(
            "miner0",
            [sys.executable, "-c", _STUBBORN, str(marker)],
            tmp_path / "miner0.log",
            dict(os.environ),
            tmp_path,
        )
    )
    deadline = time.monotonic() + 20
    while not marker.exists() or not marker.read_text():
        assert time.monotonic() < deadline, child.log_tail()
        time.sleep(0.05)
    grandchild = int(marker.read_text())
    assert json.loads((tmp_path / "pids.json").read_text()) == {"miner0": child.pid}
    assert pid_alive(child.pid) and pid_alive(grandchild)

    started = time.monotonic()
    supervisor.stop_all(grace_s=0.5)

    assert time.monotonic() - started < 10
    assert child.exited() == -9
    deadline = time.monotonic() + 5
    while pid_alive(grandchild) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not pid_alive(grandchild)


def test_supervisor_names_a_child_that_died_with_its_log_tail(tmp_path: Path) -> None:
    supervisor = Supervisor()
    child = supervisor.start(
        Child(
            "api",
            [sys.executable, "-c", "import sys; print('port in use'); sys.exit(3)"],
            tmp_path / "api.log",
            dict(os.environ),
            tmp_path,
        )
    )
    assert child.popen is not None
    child.popen.wait(timeout=20)
    with pytest.raises(LocalnetError, match=r"api exited with code 3(.|\n)*port in use"):
        supervisor.check_alive()
    supervisor.stop_all()


def test_pid_alive_is_false_for_a_reaped_process() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    assert proc.wait(timeout=20) == 0
    assert not pid_alive(proc.pid)
    assert pid_alive(os.getpid())


def test_role_flags_are_ones_the_roles_own_parsers_accept(tmp_path: Path) -> None:
    from tuneforge.core.config import parse_settings
    from tuneforge.localnet import launch
    from tuneforge.miner.config import MinerSettings
    from tuneforge.validator.config import ValidatorSettings

    models = tmp_path / "models"
    (models / "clap").mkdir(parents=True)
    (models / "clap" / "config.json").write_text("{}")
    options = LocalnetOptions(
        miners=2, rounds=3, backend="musicgen", model="/models/musicgen", duration=6.0,
        models_dir=str(models),
    )  # fmt: skip
    net = Localnet(options)
    net.workdir = tmp_path
    net.net.chain_path = tmp_path / "chain.db"
    net.net.api_url = "http://127.0.0.1:4321"
    net.net.state_path = tmp_path / "validator" / "state.db"
    net.net.models_found, _ = discover_models(str(models), hub_cache=tmp_path / "no-cache")
    launch.probe_flags(net)  # the real `--help` of neurons/miner.py and neurons/validator.py

    miner = parse_settings(MinerSettings, launch.miner_argv(net, 1, 5555)[2:])
    assert miner.network == "localnet" and miner.localnet.path == str(tmp_path / "chain.db")
    assert (miner.axon.ip, miner.axon.port) == ("127.0.0.1", 5555)
    assert miner.wallet.name == "miner1" and miner.wallet.path == str(tmp_path / "wallets")
    assert miner.generation.backend == "musicgen"
    assert miner.generation.model == "/models/musicgen"
    assert miner.generation.variant == 1

    validator = parse_settings(ValidatorSettings, launch.validator_argv(net, 6666)[2:])
    assert validator.network == "localnet" and validator.wallet.name == "validator"
    assert validator.neuron.status_port == 6666 and validator.neuron.sample_size == 2
    # It claims customer jobs, so it keeps running rounds until localnet stops it.
    assert validator.api.jobs and validator.neuron.max_rounds == 0
    assert validator.neuron.min_challenge_seconds == validator.neuron.max_challenge_seconds == 6
    assert validator.scoring.clap == str((models / "clap").resolve())
    assert validator.scoring.mert == "" and validator.scoring.allow_missing
    assert validator.api.url == "http://127.0.0.1:4321" and validator.api.publish
    assert validator.scoring.preference == ""
    # After `--votes N` trained a head, the restarted validator loads it (D42).
    net.net.preference_dir = str(tmp_path / "validator" / "preference")
    restarted = parse_settings(ValidatorSettings, launch.validator_argv(net, 6667)[2:])
    assert restarted.scoring.preference == net.net.preference_dir


def test_commit_reveal_network_reports_weights_once_the_chain_revealed_them(
    tmp_path: Path,
) -> None:
    from tuneforge.chain.local import LocalChain
    from tuneforge.localnet.chain_setup import chain_weights, register_network

    path = tmp_path / "chain.db"
    registered = register_network(path, 234, str(tmp_path / "wallets"), 1, commit_reveal=True)
    validator = LocalChain(path, hotkey=registered.validator_wallet.hotkey.ss58_address)
    miner_uid = validator.uid_of(registered.miner_hotkeys[0])
    result = validator.set_weights({miner_uid: 1.0}, version_key=1)
    assert result.committed and chain_weights(path, 234, registered.validator_uid)["weights"] == {}
    seen = chain_weights(path, 234, registered.validator_uid, reveal_wait_s=10.0)
    assert seen["commit_reveal"] and seen["weights"] == {str(miner_uid): 1.0}
    assert seen["pending_reveal_block"] is None
    # Reopening without the flag switches the subnet back to plain weights.
    register_network(path, 234, str(tmp_path / "wallets"), 1)
    assert not LocalChain(path).commit_reveal


def test_the_scripted_customer_waits_out_the_apis_rate_limit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import httpx

    from tuneforge.localnet import votes

    answers = iter([429, 429, 200])
    slept: list[float] = []
    monkeypatch.setattr(votes.time, "sleep", slept.append)

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(next(answers), headers={"Retry-After": "3"}, content=b"wav")

    with httpx.Client(transport=httpx.MockTransport(handler), base_url="http://127.0.0.1") as c:
        answer = votes.patient(c, "GET", "/api/v1/music/audio/trk_1.wav")
    assert answer.status_code == 200 and slept == [3.0, 3.0]


def test_server_ports_come_from_below_the_range_the_kernel_lends_to_outgoing_sockets() -> None:
    """A child that binds seconds after its port was chosen must not meet a client socket there
    (CI once lost a localnet run to `address already in use`): no outgoing connection can hold a
    port below the ephemeral range."""
    low, _high = ephemeral_port_range() or (32768, 60999)
    ports = {free_port((low, _high)) for _ in range(50)}
    assert all(LISTEN_PORT_FLOOR <= port < low for port in ports)
    assert len(ports) > 40  # drawn at random: two localnets starting together rarely meet
    assert all(port_is_free(port) for port in ports)


def test_a_listening_port_is_not_free_and_a_range_with_no_room_still_yields_a_port() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        assert not port_is_free(listener.getsockname()[1])
    port = free_port((LISTEN_PORT_FLOOR + 1, 60999))  # no room below: the kernel chooses
    assert port_is_free(port)

"""A localnet left running (`--keep-running`) is usable exactly as printed: its URLs answer,
its API key works, its copy-paste curl generates and downloads a track, and its `tuneforge`
commands find its database and validator state through --workdir."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parent.parent
REPORT_TIMEOUT_S = 300
# Label → URL path the report must print for it.
PAGES = {
    "leaderboard": "/leaderboard",
    "API docs": "/docs",
    "ReDoc": "/redoc",
    "API health": "/health",
}


def read_report(process: subprocess.Popen[str], deadline: float) -> list[str]:
    """stdout lines up to the report's last line (`workdir …`), while the network stays up."""
    assert process.stdout is not None
    lines: list[str] = []
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        lines.append(line.rstrip("\n"))
        if line.startswith("workdir "):
            return lines
    raise AssertionError("no report before the deadline:\n" + "\n".join(lines))


def section(lines: list[str], header: str) -> list[str]:
    start = lines.index(header) + 1
    end = next((i for i in range(start, len(lines)) if not lines[i].strip()), len(lines))
    return lines[start:end]


def test_the_printed_urls_key_curl_and_commands_work_on_the_running_network(
    tmp_path: Path,
) -> None:
    workdir = tmp_path / "net"
    env = {**os.environ, "HF_HOME": str(tmp_path / "hf-home")}
    stderr = (tmp_path / "stderr.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "tuneforge.tools.cli", "localnet", "--miners", "2", "--rounds", "1",
         "--keep-running", "--workdir", str(workdir)],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=stderr, text=True,
    )  # fmt: skip
    try:
        lines = read_report(process, time.monotonic() + REPORT_TIMEOUT_S)
        text = "\n".join(lines)
        assert "The network is up until Ctrl-C:" in lines, text
        assert "columns: ema = " in text

        urls = dict(re.findall(r"^  (leaderboard|API docs|ReDoc|API health)\s+(\S+)$", text, re.M))
        assert set(urls) == set(PAGES), text
        for label, url in urls.items():
            assert url.endswith(PAGES[label])
            page = httpx.get(url, timeout=30)
            assert page.status_code == 200, (url, page.status_code)
        assert "swagger-ui-bundle.js" in httpx.get(urls["API docs"], timeout=30).text

        key = re.search(r"^  API key\s+(tf_\S+)", text, re.M)
        assert key, text
        base = urls["API health"].removesuffix("/health")
        me = httpx.get(
            f"{base}/api/v1/account/me",
            headers={"Authorization": f"Bearer {key.group(1)}"},
            timeout=30,
        )
        assert me.status_code == 200, me.text

        snippet = "\n".join(section(lines, "Generate and download a track (paste into a shell):"))
        shell = tmp_path / "customer"
        shell.mkdir()
        done = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", snippet],
            cwd=shell, capture_output=True, text=True, timeout=240, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr + done.stdout
        assert "saved track.wav" in done.stdout
        audio = (shell / "track.wav").read_bytes()
        assert audio[:4] == b"RIFF" and audio[8:12] == b"WAVE" and len(audio) > 12 * 32_000

        commands = [c.strip() for c in section(lines, "Commands for this network:")]
        assert any("--workdir" in c for c in commands)
        path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
        for command in commands:
            if "ACCOUNT_ID" in command or "create-account" in command:
                continue  # templates for the reader to fill in
            ran = subprocess.run(
                command, shell=True, cwd=REPO, env={**env, "PATH": path},
                capture_output=True, text=True, timeout=120, check=False,
            )  # fmt: skip
            assert ran.returncode == 0, (command, ran.stderr[-1500:])
            assert "DEBUG" not in ran.stdout + ran.stderr, command
        listed = subprocess.run(
            ["tuneforge", "api", "list-accounts", "--workdir", str(workdir)],
            env={**env, "PATH": path}, capture_output=True, text=True, timeout=120, check=True,
        )  # fmt: skip
        assert "credits=" in listed.stdout
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=90)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        stderr.close()

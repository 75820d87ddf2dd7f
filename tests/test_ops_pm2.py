"""ecosystem.config.js loads in node, uses relative paths and the venv, and holds no secrets."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed on this machine")
def test_pm2_config_loads_and_points_into_the_repo(tmp_path: Path) -> None:
    script = "console.log(JSON.stringify(require('./ecosystem.config.js')))"
    out = subprocess.run(
        ["node", "-e", script], cwd=ROOT, capture_output=True, text=True, check=True, timeout=30
    )
    apps = {app["name"]: app for app in json.loads(out.stdout)["apps"]}
    assert set(apps) == {"tuneforge-miner", "tuneforge-validator", "tuneforge-api"}
    for app in apps.values():
        assert app["interpreter"] == str(ROOT / ".venv" / "bin" / "python")
        assert app["cwd"] == str(ROOT)
        assert app["autorestart"] is True
        assert (ROOT / app["script"]).exists() or app["script"].endswith("tuneforge")
        text = json.dumps(app).lower()
        assert "password" not in text and "mnemonic" not in text
    # The network comes from the env file (TUNEFORGE_NETWORK), never from this tracked file.
    for app in apps.values():
        assert "--network" not in app["args"] and "--netuid" not in app["args"]
        # A configuration error (exit 2) stops the process instead of a restart loop.
        assert app["stop_exit_codes"] == [2]
        assert "time" not in app  # loguru already stamps every line


def test_env_examples_exist_and_env_files_are_ignored() -> None:
    for role in ("miner", "validator", "api"):
        assert (ROOT / f"{role}.env.example").exists()
    for role in ("miner", "validator"):
        text = (ROOT / f"{role}.env.example").read_text()
        assert "TUNEFORGE_NETWORK=test" in text and "--update-env" in text
    ignored = subprocess.run(
        ["git", "check-ignore", "-q", "miner.env"], cwd=ROOT, check=False
    ).returncode
    assert ignored == 0


def test_files_the_repository_cites_exist() -> None:
    """min_compute.yml once cited a file that is not in the repository."""
    text = (ROOT / "min_compute.yml").read_text()
    for cited in re.findall(r"[\w/.-]+\.(?:md|py|yml|js)\b", text):
        assert (ROOT / cited).exists(), cited

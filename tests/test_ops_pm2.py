"""ecosystem.config.js loads in node, uses relative paths and the venv, and holds no secrets."""

from __future__ import annotations

import json
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
    assert apps["tuneforge-miner"]["args"][:4] == ["--netuid", "234", "--network", "test"]


def test_env_examples_exist_and_env_files_are_ignored() -> None:
    for role in ("miner", "validator", "api"):
        assert (ROOT / f"{role}.env.example").exists()
    ignored = subprocess.run(
        ["git", "check-ignore", "-q", "miner.env"], cwd=ROOT, check=False
    ).returncode
    assert ignored == 0

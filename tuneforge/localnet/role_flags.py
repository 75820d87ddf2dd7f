"""What the roles offer: their own `--help`, read once, decides which optional integrations
localnet turns on (a flag is used only when a role has it)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from tuneforge.localnet.options import LocalnetError
from tuneforge.localnet.processes import die_with_parent

ROLES = ("validator", "miner")


def probe_role_flags(
    root: Path, env: dict[str, str], remaining: Callable[[], float]
) -> dict[str, str]:
    """{role: its `neurons/<role>.py --help` text}, both probed at once."""
    probes = {
        role: subprocess.Popen(
            [sys.executable, str(root / "neurons" / f"{role}.py"), "--help"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            cwd=str(root),
            preexec_fn=die_with_parent(os.getpid()),
        )
        for role in ROLES
    }
    helps: dict[str, str] = {}
    for role, probe in probes.items():
        try:
            out, err = probe.communicate(timeout=min(60.0, remaining()))
        except subprocess.TimeoutExpired:
            probe.kill()
            probe.communicate()
            raise LocalnetError(f"neurons/{role}.py --help did not answer in time") from None
        if probe.returncode != 0:
            raise LocalnetError(f"neurons/{role}.py --help failed: {err.strip()[-500:]}")
        helps[role] = out
    return helps


def flag_in(flag: str, help_text: str) -> bool:
    return any(token.strip(",[]") == flag for token in help_text.split())


def job_flags(validator_help: str) -> set[str]:
    """Validator flags about customer jobs (a name with "job" or "claim" in it)."""
    return {
        token.strip(",[]")
        for token in validator_help.split()
        if token.startswith("--")
        and not token.startswith("--no-")
        and ("job" in token or "claim" in token)
    }


def job_claim_flags(validator_help: str) -> list[str]:
    """The validator's boolean job switches (those with a --no- form), to turn them on."""
    return sorted(f for f in job_flags(validator_help) if flag_in("--no-" + f[2:], validator_help))

"""Reading localnet's roles only through their public interfaces: the API's /health, each
miner's axon on LocalChain and its signed GET /v1/info, the validator's status endpoint and,
once it has exited, its own `tuneforge validator status --json`."""

from __future__ import annotations

import contextlib
import json
from typing import Any

import httpx
from loguru import logger

from tuneforge.core.loopback import LOOPBACK
from tuneforge.localnet.runtime import Runtime


def api_ready(rt: Runtime) -> bool:
    with contextlib.suppress(httpx.HTTPError):
        response = httpx.get(f"{rt.net.api_url}/health", timeout=2.0)
        return response.status_code == 200
    return False


def miners_serving(rt: Runtime) -> bool:
    """Every miner published its axon on LocalChain and answers a signed GET /v1/info."""
    from tuneforge.auth.btauth import BtAuth
    from tuneforge.chain.local import LocalChain
    from tuneforge.core.protocol import HEADER_SPEC_VERSION, INFO_PATH, SPEC_VERSION

    with LocalChain(rt.net.chain_path, netuid=rt.options.netuid) as chain:
        axons = {n.hotkey: n.axon for n in chain.metagraph().neurons}
    for hotkey, port in zip(rt.net.miner_hotkeys, rt.net.miner_ports, strict=True):
        if axons.get(hotkey) != f"{LOOPBACK}:{port}":
            return False
        try:
            response = httpx.get(
                f"http://{LOOPBACK}:{port}{INFO_PATH}",
                headers={HEADER_SPEC_VERSION: SPEC_VERSION},
                auth=BtAuth(rt.wallet_validator, hotkey),
            )
        except httpx.HTTPError:
            return False
        if response.status_code != 200:
            logger.debug("miner {} info: {} {}", port, response.status_code, response.text)
            return False
    return True


def validator_running(rt: Runtime) -> bool:
    validator = next(c for c in rt.supervisor.children if c.name == "validator")
    return validator.exited() is None


def validator_status(rt: Runtime) -> dict[str, Any] | None:
    with contextlib.suppress(httpx.HTTPError, ValueError):
        response = httpx.get(rt.net.status_url, timeout=5.0)
        if response.status_code == 200:
            return response.json()
    return None


def current_status(rt: Runtime, running: bool) -> dict[str, Any]:
    """The validator's status while it is `running`, else the state it left ({} if unread)."""
    return (validator_status(rt) if running else final_status(rt)) or {}


def final_status(rt: Runtime) -> dict[str, Any]:
    """The validator's view: its status endpoint while it runs, else its own CLI
    (`tuneforge validator status --json`, reading the state file it left)."""
    if validator_running(rt):
        status = validator_status(rt)
        if status is not None:
            return status
    return json.loads(
        rt.tuneforge_cli("validator", "status", "--state", str(rt.net.state_path), "--json")
    )

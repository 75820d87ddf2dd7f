"""`tuneforge validator status` and /status: a read-only view of the weights actually set."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from tests.helpers.validator_net import make_validator_net
from tests.helpers.wallets import make_wallet
from tuneforge.chain.local import LocalChain
from tuneforge.tools.cli import app
from tuneforge.validator.loop import ValidatorLoop
from tuneforge.validator.state import MinerRoundResult, StateError, ValidatorState
from tuneforge.validator.status import StatusServer, status_snapshot


def _old_state_file(path: Path) -> None:
    """A state written before the outbox had publication groups (what `_migrate` adds)."""
    state = ValidatorState(path)
    state.commit_round(1, {}, 1, 0.0, [MinerRoundResult(0, "hk", 0.5, {})], {(0, "hk"): 0.5})
    state.close()
    db = sqlite3.connect(path)
    db.execute("DROP INDEX outbox_grp")
    db.execute("ALTER TABLE outbox DROP COLUMN grp")
    db.commit()
    db.close()


def _outbox_columns(path: Path) -> set[str]:
    db = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)
    try:
        return {row[1] for row in db.execute("PRAGMA table_info(outbox)")}
    finally:
        db.close()


def test_status_reads_a_read_only_state_file_and_never_writes_or_migrates_it(
    tmp_path: Path,
) -> None:
    path = tmp_path / "state.db"
    _old_state_file(path)
    path.chmod(0o444)
    before = hashlib.sha256(path.read_bytes()).hexdigest()

    printed = CliRunner().invoke(app, ["validator", "status", "--state", str(path), "--json"])
    assert printed.exit_code == 0, printed.output
    assert json.loads(printed.output)["rounds_completed"] == 1
    server = StatusServer(path, 0)
    port = server.start()
    try:
        body = httpx.get(f"http://127.0.0.1:{port}/status", timeout=5).json()
    finally:
        server.stop()
    assert body["rounds_completed"] == 1

    assert hashlib.sha256(path.read_bytes()).hexdigest() == before
    wal = path.with_name(path.name + "-wal")
    assert not wal.exists() or wal.stat().st_size == 0  # no page was written either
    assert "grp" not in _outbox_columns(path)  # migrating is the validator's job, not a GET's
    reader = ValidatorState.open_read_only(path)
    with pytest.raises(StateError, match="read-only"), reader.transaction():
        pass
    reader.close()


def test_status_shows_the_weights_set_even_after_the_emas_moved(tmp_path: Path) -> None:
    net = make_validator_net(tmp_path)
    state = ValidatorState(net.state_path)
    uids, results, emas = {}, [], {}
    for name, ema in {"a": 0.8, "b": 0.4}.items():
        hotkey = make_wallet(net.tmp_path, name).hotkey.ss58_address
        uids[name] = net.chain.register(hotkey, axon="127.0.0.1:9")
        results.append(MinerRoundResult(uids[name], hotkey, ema, {"final_score": ema}))
        emas[(uids[name], hotkey)] = ema
    state.commit_round(1, {}, 1, 0.0, results, emas)
    view = LocalChain(net.chain.path, netuid=net.chain.netuid, hotkey=net.hotkey)
    loop = ValidatorLoop(net.settings(), net.hotkey, view, state, runner=None)  # type: ignore[arg-type]
    outcome = loop.maybe_set_weights()
    assert outcome is not None and outcome["ok"] is True
    on_chain = net.chain.weights()[net.uid]
    assert on_chain[uids["a"]] > on_chain[uids["b"]]

    # Round 2 turns the order around, and the next attempt fails: the chain keeps round 1's.
    b = results[1]
    state.commit_round(2, {}, 2, 0.0, [b], {**emas, (b.uid, b.hotkey): 0.95})
    state.weights.record_outcome({"ok": False, "code": "RATE_LIMITED", "message": "too soon"})
    state.close()

    reader = ValidatorState.open_read_only(net.state_path)
    try:
        snapshot = status_snapshot(reader)
    finally:
        reader.close()
    shown = {m["uid"]: m["weight"] for m in snapshot["miners"]}
    assert shown == pytest.approx(on_chain)
    assert snapshot["last_weights"]["code"] == "RATE_LIMITED"
    assert snapshot["weights_set"]["block"] == outcome["block"]

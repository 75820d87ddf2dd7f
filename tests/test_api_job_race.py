"""Completion and refund of a customer job are exclusive: a result that arrives while the
deadline sweep refunds ends either completed or failed+refunded, never both (issue 11, defect 2),
on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import ExitStack, suppress
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import event, select

from tests.helpers.api_server import postgres_schema_url, wav_bytes
from tuneforge.api.accounts import KeyIdentity, create_account, create_key
from tuneforge.api.db import Database, upgrade
from tuneforge.api.jobs import JobConflict, JobService
from tuneforge.api.models import Account, GenerationRequest, Track, utcnow
from tuneforge.api.schemas import GenerateRequest, JobResult
from tuneforge.api.storage import AudioStore, StagedUpload

VALIDATOR = "5ValidatorHotkeyForTheRaceTest"


@dataclass
class Setup:
    db: Database
    jobs: JobService
    identity: KeyIdentity


@pytest.fixture(params=["sqlite", "postgresql"])
def setup(request, tmp_path: Path) -> Iterator[Setup]:
    with ExitStack() as stack:
        url = f"sqlite:///{tmp_path / 'api.db'}"
        if request.param == "postgresql":
            url = stack.enter_context(postgres_schema_url())
        db = Database.open(url)
        stack.callback(db.dispose)
        upgrade(db)
        jobs = JobService(db, AudioStore(tmp_path / "audio"), lease_s=60, deadline_s=600)
        account = create_account(db, "race@example.com", "premier", 1000)
        key, _ = create_key(db, account.id)
        yield Setup(db, jobs, KeyIdentity(key.id, account.id, "premier"))


def leased_job_with_audio(setup: Setup, freq: float) -> tuple[str, JobResult]:
    accepted = setup.jobs.accept(setup.identity, GenerateRequest(prompt="race", duration_seconds=3))
    (claimed,) = setup.jobs.claim(VALIDATOR, 1)
    assert claimed["request_id"] == accepted.request_id
    audio = wav_bytes(freq=freq)
    upload = StagedUpload(setup.jobs.store)
    upload.write(audio)
    upload.finish()
    setup.jobs.store_audio(VALIDATOR, upload)
    track = {
        "miner_uid": 1,
        "miner_hotkey": "5Miner",
        "final_score": 0.5,
        "composite": 0.5,
        "audio_sha256": upload.sha256,
        "duration_seconds": 0.25,
        "sample_rate": 32000,
    }
    return accepted.request_id, JobResult.model_validate({"tracks": [track]})


def test_a_sweep_committing_between_the_read_and_the_write_never_leaves_a_job_both(
    setup: Setup,
) -> None:
    """The sweep is started the instant `submit_result` has read the job (a cursor hook), the
    worst interleaving: the result must then either win (sweep finds nothing to expire) or lose
    (409, tracks rolled back), and the job is never completed *and* refunded."""
    request_id, result = leased_job_with_audio(setup, 300.0)
    after_deadline = utcnow() + timedelta(seconds=601)
    submitter = threading.get_ident()
    fired = threading.Event()
    sweeper_done = threading.Event()

    def sweep() -> None:
        try:
            setup.jobs.sweep(after_deadline)
        finally:
            sweeper_done.set()

    def after_execute(_conn, _cursor, statement: str, *_args) -> None:
        if (
            threading.get_ident() == submitter
            and not fired.is_set()
            and statement.lstrip().upper().startswith("SELECT")
            and "generation_requests" in statement
        ):
            fired.set()
            threading.Thread(target=sweep, daemon=True).start()
            # Give the sweep the chance to commit now; with a row lock it waits for us instead.
            sweeper_done.wait(timeout=1.0)

    engine = setup.db.write_engine
    event.listen(engine, "after_cursor_execute", after_execute)
    try:
        try:
            outcome = setup.jobs.submit_result(VALIDATOR, request_id, result).get("status")
        except JobConflict:
            outcome = "conflict"
    finally:
        event.remove(engine, "after_cursor_execute", after_execute)
    assert fired.is_set()
    assert sweeper_done.wait(timeout=30), "the sweep never finished"

    with setup.db.read() as session:
        job = session.get(GenerationRequest, request_id)
        tracks = session.scalars(select(Track).where(Track.request_id == request_id)).all()
        credits = session.scalar(select(Account.credits).where(Account.id == job.account_id))
    assert job is not None
    if job.status == "completed":
        assert outcome == "completed" and not job.refunded and len(tracks) == 1
        assert credits == 999  # charged once (1 credit for 3 s), never refunded
    else:
        assert outcome == "conflict" and job.status == "failed" and job.refunded
        assert tracks == [] and credits == 1000


def race(setup: Setup, request_id: str, result: JobResult, when: datetime) -> None:
    """A result and a sweep for one job, released together from two threads."""
    barrier = threading.Barrier(2)

    def deliver() -> None:
        barrier.wait()
        with suppress(JobConflict):
            setup.jobs.submit_result(VALIDATOR, request_id, result)

    def sweep() -> None:
        barrier.wait()
        setup.jobs.sweep(when)

    threads = [threading.Thread(target=deliver), threading.Thread(target=sweep)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)


def test_concurrent_results_and_sweeps_end_in_exactly_one_state(setup: Setup) -> None:
    jobs = [leased_job_with_audio(setup, 200.0 + i) for i in range(8)]
    after_deadline = utcnow() + timedelta(seconds=601)
    for request_id, result in jobs:
        race(setup, request_id, result, after_deadline)
    with setup.db.read() as session:
        for request_id, _ in jobs:
            job = session.get(GenerationRequest, request_id)
            tracks = session.scalars(select(Track).where(Track.request_id == request_id)).all()
            assert job is not None
            assert (job.status, job.refunded, bool(tracks)) in {
                ("completed", False, True),
                ("failed", True, False),
            }

"""`tuneforge localnet`'s orchestrator: the Localnet class runs the steps in order — bring the
network up (LocalChain, wallets, API, miners, validator), run the rounds and the customer job,
report — and always tears it down.

It starts the roles exactly as operators do and reads results only through public interfaces
(see the package docstring); each step lives in its own sibling module (launch, observe,
rounds, preference, results) over the run's shared Runtime.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from loguru import logger

from tuneforge.localnet import launch
from tuneforge.localnet.api_client import create_customer, customer_job
from tuneforge.localnet.background import Background
from tuneforge.localnet.observe import api_ready, miners_serving
from tuneforge.localnet.options import LocalnetStopped
from tuneforge.localnet.preference import votes_and_training
from tuneforge.localnet.results import build_report
from tuneforge.localnet.rounds import run_rounds, settle_publications
from tuneforge.localnet.runtime import Runtime


class Localnet(Runtime):
    """Bring the network up, run the rounds and the customer job, report, tear down."""

    def run(self, on_report: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
        """Up, rounds, customer job, report (handed to `on_report`), then down (or kept up)."""
        previous = {
            signum: signal.signal(signum, _raise_stopped)
            for signum in (signal.SIGTERM, signal.SIGHUP)
        }
        # Ctrl-C must work even when started with SIGINT ignored (e.g. `cmd &` in a script).
        previous[signal.SIGINT] = signal.signal(signal.SIGINT, signal.default_int_handler)
        ok = False
        try:
            report = self._run_steps()
            on_report(report)
            if self.options.keep_running:
                self._stay_up()
            ok = True
            return report
        finally:
            self.say("stopping every process")
            self.supervisor.stop_all()
            self.numba_lock.release()
            for signum, handler in previous.items():
                signal.signal(signum, handler)
            if self.own_workdir and ok:
                shutil.rmtree(self.workdir, ignore_errors=True)
            elif self.workdir != Path():
                self.say(f"logs kept in {self.workdir / 'logs'}")

    def _run_steps(self) -> dict[str, Any]:
        """Every step of a run, in order; the report."""
        self.prepare()
        launch.setup_chain_and_wallets(self)
        launch.probe_flags(self)
        # The API and the miners do not need each other: they start together.
        launch.start_api(self)
        launch.start_miners(self)
        self.wait_for("the API's /health", lambda: api_ready(self), 120.0)
        self.say("API up")
        # The customer's account and key are made (two CLI runs) while the network works.
        customer = Background(lambda: create_customer(self.tuneforge_cli, self.workdir))
        self.wait_for("the miners to serve", lambda: miners_serving(self), 180.0)
        self.say("miners serving")
        self.numba_lock.acquire(
            self.remaining(),
            lambda: self.say("waiting for another localnet to finish its rounds"),
        )
        launch.start_validator(self)
        run_rounds(self)
        self.numba_lock.release()
        self.customer = customer.result(self.remaining())
        job = customer_job(
            self.net.api_url,
            self.customer,
            claims_jobs=launch.claims_jobs(self),
            duration_s=self.options.duration,
            wait_s=self.options.customer_wait_s,
            wait_for=self.wait_for,
            say=self.say,
        )
        preference = votes_and_training(self) if self.options.votes else None
        settle_publications(self)
        report = build_report(self, job)
        if preference is not None:
            report["preference"] = preference
        return report

    def _stay_up(self) -> None:
        """--keep-running: hold the network until Ctrl-C, SIGTERM or a child's death."""
        self.say("network left running; Ctrl-C stops every process")
        try:
            while True:
                self.supervisor.check_alive()
                time.sleep(1.0)
        except (KeyboardInterrupt, LocalnetStopped):
            self.say("stop requested")


def _raise_stopped(signum: int, frame: object) -> None:
    raise LocalnetStopped(signal.Signals(signum).name)


@contextlib.contextmanager
def quiet_logs() -> Iterator[None]:
    """Localnet's own library logs (LocalChain, wallets) would drown the progress lines."""
    logger.remove()
    handler = logger.add(sys.stderr, level="WARNING")
    try:
        yield
    finally:
        logger.remove(handler)

"""Periodic: the one repeating daemon thread the metagraph cache and the IP watch share."""

from __future__ import annotations

import threading
import time

from tuneforge.core.periodic import Periodic


def test_it_ticks_repeatedly_until_stopped_and_a_second_start_is_a_no_op() -> None:
    ticks: list[float] = []
    third = threading.Event()

    def tick() -> None:
        ticks.append(time.monotonic())
        if len(ticks) >= 3:
            third.set()

    periodic = Periodic("test-periodic", 0.01, tick)
    assert periodic.start() is True
    assert periodic.start() is False  # already running: no second thread
    assert third.wait(10.0)
    periodic.stop()
    after_stop = len(ticks)
    time.sleep(0.1)
    assert len(ticks) == after_stop
    assert not any(t.name == "test-periodic" for t in threading.enumerate())


def test_nothing_ticks_before_the_first_interval_and_it_restarts_after_a_stop() -> None:
    ticks: list[int] = []
    periodic = Periodic("test-periodic-slow", 60.0, lambda: ticks.append(1))
    assert periodic.start()
    periodic.stop()
    assert ticks == []
    assert periodic.start()  # stopped: it may start again
    periodic.stop()

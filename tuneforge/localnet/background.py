"""One call on a daemon thread, for a localnet step that may overlap the next one."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from tuneforge.localnet.options import LocalnetError


class Background:
    """One call on a daemon thread, so an interrupted localnet never waits for it (a CLI it
    runs gets the parent-death signal when that thread is gone)."""

    def __init__(self, call: Callable[[], Any]) -> None:
        self._result: Any = None
        self._error: BaseException | None = None
        self._done = threading.Event()
        threading.Thread(target=self._run, args=(call,), daemon=True).start()

    def _run(self, call: Callable[[], Any]) -> None:
        try:
            self._result = call()
        except BaseException as exc:  # handed to whoever asks for the result
            self._error = exc
        finally:
            self._done.set()

    def result(self, timeout_s: float) -> Any:
        if not self._done.wait(timeout_s):
            raise LocalnetError(f"a background step did not finish in {timeout_s:.0f}s")
        if self._error is not None:
            raise self._error
        return self._result

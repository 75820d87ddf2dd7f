"""An ONNX model shipped as a file, run by onnxruntime: one single-threaded session per process,
loaded on first use. Scoring runs one process per core, so one thread each is the whole machine."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from tuneforge.core.errors import TuneForgeError


class OnnxModel:
    """`locate()` returns the model file's path (or raises `unavailable`); `session()` loads it
    once and raises `unavailable` with the reason when onnxruntime or the file cannot."""

    def __init__(self, locate: Callable[[], str], unavailable: type[TuneForgeError]) -> None:
        self._locate = locate
        self._unavailable = unavailable
        self._session: Any = None
        self._lock = threading.Lock()

    def session(self) -> Any:
        with self._lock:
            if self._session is None:
                try:
                    import onnxruntime
                except ImportError as error:
                    raise self._unavailable(f"onnxruntime not installed: {error}") from error
                path = self._locate()
                options = onnxruntime.SessionOptions()
                options.inter_op_num_threads = 1
                options.intra_op_num_threads = 1
                try:
                    self._session = onnxruntime.InferenceSession(
                        path, sess_options=options, providers=["CPUExecutionProvider"]
                    )
                except Exception as error:  # a missing or damaged file: say which
                    raise self._unavailable(f"model {path}: {error}") from error
            return self._session

"""`TuneForgeError`: the one base of the project's exceptions.

Each error carries what a request boundary needs to answer it — an HTTP `status` and a stable
short `code` — so a role maps all of them to a response in one handler (the API's and the
miner's `exception_handler(TuneForgeError)`) instead of one `try/except` per route. Outside a
request (the validator, CLIs) they are still typed errors to catch; the status is then unused.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import ClassVar


class TuneForgeError(Exception):
    """Base error. Subclasses set `status`/`code` (class-wide or per instance); `str(exc)` is
    the detail shown to a caller, so messages never carry secrets or payloads."""

    status: int = 500
    code: str = "internal_error"
    # Extra response headers (e.g. Retry-After); immutable so no instance shares a mutated dict.
    headers: Mapping[str, str] = MappingProxyType({})
    # A fixed public text replacing `str(exc)` where the message names internals (ids, paths).
    public_detail: ClassVar[str | None] = None

    @property
    def detail_text(self) -> str:
        """What a caller is told."""
        return self.public_detail if self.public_detail is not None else str(self)

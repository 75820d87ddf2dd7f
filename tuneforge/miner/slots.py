"""Reserved workers waiting for their prompt (reserve-then-send, docs/decisions.md D33).

`POST /v1/reserve` queues a reservation like any job; when a worker takes it, the worker holds
its device and waits up to `ttl_s` for the prompt that `POST /v1/generate` with the slot's token
delivers. The validator times only that second exchange, so time spent waiting behind another
validator's request never counts as generation time, and a miner cannot shorten the measured
time: it cannot start before it has the prompt.
"""

from __future__ import annotations

import secrets
import threading
from concurrent.futures import Future, InvalidStateError
from dataclasses import dataclass, field
from typing import Any

from tuneforge.core.errors import TuneForgeError
from tuneforge.core.protocol import MusicGenerationSynapse

DEFAULT_SLOT_TTL_S = 10.0
# Tokens a miner keeps at once: bounded by queue + workers in practice; this caps a flood.
MAX_OPEN_SLOTS = 4096


class SlotExpired(TuneForgeError):
    """No prompt reached the reserved worker within the slot's lifetime."""

    status = 409
    code = "slot_expired"


@dataclass
class Slot:
    """One reservation: `ready` resolves when a worker holds it, `prompt` when the challenge
    arrives. Bound to the caller that reserved it."""

    token: str
    caller: str
    ready: Future[None] = field(default_factory=Future)
    prompt: Future[MusicGenerationSynapse] = field(default_factory=Future)
    job: Future[Any] | None = None  # the queued job that holds the worker, then generates


class SlotBook:
    """Open slots by token; each token is claimed at most once, by the caller it was issued to."""

    def __init__(self, ttl_s: float = DEFAULT_SLOT_TTL_S) -> None:
        self.ttl_s = ttl_s
        self._slots: dict[str, Slot] = {}
        self._lock = threading.Lock()

    def open(self, caller: str) -> Slot:
        slot = Slot(token=secrets.token_hex(16), caller=caller)
        with self._lock:
            if len(self._slots) >= MAX_OPEN_SLOTS:
                raise SlotExpired("too many open slots")
            self._slots[slot.token] = slot
        return slot

    def claim(self, token: str, caller: str) -> Slot | None:
        """The slot for `token` if `caller` reserved it and it is still open (removed on claim)."""
        with self._lock:
            slot = self._slots.get(token)
            if slot is None or slot.caller != caller:
                return None
            del self._slots[token]
        return slot

    def close(self, slot: Slot) -> None:
        with self._lock:
            self._slots.pop(slot.token, None)

    def __len__(self) -> int:
        with self._lock:
            return len(self._slots)

    def hold(self, slot: Slot) -> MusicGenerationSynapse:
        """Worker side: announce the slot is held, then wait for its prompt (or expire it)."""
        try:
            slot.ready.set_result(None)
        except InvalidStateError:  # the caller left while the reservation waited
            self.close(slot)
            raise SlotExpired("the caller left before a worker was free") from None
        try:
            return slot.prompt.result(timeout=self.ttl_s)
        except TimeoutError:
            self.close(slot)
            raise SlotExpired(f"no prompt within {self.ttl_s:g} s of the reservation") from None

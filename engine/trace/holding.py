"""Records held back while a firing runs, so that an event that goes as it should is told in one record.

At DETAIL "decisions" a runner holds an event's `received` and `dependency` records (`engine.trace.steps.
routine_start`) until its firing finished: if the firing and the ack went as they should, the event is one
`Routine` record; otherwise the held records are told as they were, before the firing's. A firing can take long
(a slow target, retries with backoff), and a live trace (`sensorium trace --follow`) must show such an event when
it arrives, not when its firing gives up: whatever was held longer than `HOLD_LIMIT` is told then, step by step.
One timer per runner does that, armed while anything is held (not one per event).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Generic, TypeVar

__all__ = ["HOLD_LIMIT", "Holding"]

T = TypeVar("T")

HOLD_LIMIT = 1.0
"""Seconds an event's records wait for its firing at most; a firing of the benchmark's sink takes milliseconds."""


class Holding(Generic[T]):
    """Held records (each what `tell` takes), oldest first. `hold` returns a key (never 0); `take(key)` gives
    them back unless they were told already (held too long: None); `tell(key)` tells them now. Never raises."""

    def __init__(self, tell: Callable[[T], None], limit: float = HOLD_LIMIT) -> None:
        self._tell, self.limit = tell, limit
        self._held: dict[int, tuple[float, T]] = {}  # insertion order is age order
        self._last = 0
        self._timer: asyncio.TimerHandle | None = None

    def __len__(self) -> int:
        return len(self._held)

    def hold(self, records: T) -> int:
        self._last += 1
        self._held[self._last] = (time.monotonic(), records)
        if self._timer is None:
            try:
                self._timer = asyncio.get_running_loop().call_later(self.limit, self._tell_old)
            except RuntimeError:  # no running loop (cannot happen in the engine): told when taken
                pass
        return self._last

    def take(self, key: int) -> T | None:
        held = self._held.pop(key, None)
        return None if held is None else held[1]

    def tell(self, key: int) -> None:
        records = self.take(key)
        if records is not None:
            self._tell(records)

    def _tell_old(self) -> None:
        self._timer = None
        limit = time.monotonic() - self.limit
        for key, (since, records) in list(self._held.items()):
            if since > limit:
                break
            del self._held[key]
            self._tell(records)
        if self._held:
            oldest = next(iter(self._held.values()))[0]
            self._timer = asyncio.get_running_loop().call_later(max(oldest - limit, 0.01), self._tell_old)

    def close(self) -> None:
        """Tell whatever is still held and stop the timer."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for key in list(self._held):
            self.tell(key)

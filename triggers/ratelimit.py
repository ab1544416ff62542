"""Per-trigger leaky bucket (go.uber.org/ratelimit, as Argo's `rateLimit`): attempts evenly spaced at
`requestsPerUnit` per unit, with the library's default slack of 10 (up to 10 attempts may catch up after
idling).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

UNITS = {"Second": 1.0, "Minute": 60.0, "Hour": 3600.0}
SLACK = 10


class RateLimiter:
    def __init__(self, requests_per_unit: int, unit: str = "Second", *,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        if requests_per_unit <= 0:
            raise ValueError("requestsPerUnit must be positive")
        self.per_request = UNITS.get(unit, 1.0) / requests_per_unit  # "" means Second (other units are refused at load)
        self.max_slack = SLACK * self.per_request
        self._clock, self._sleep = clock, sleep
        self._next: float | None = None  # time of the last permission issued

    def reserve(self) -> float:
        """Claim the next slot; returns how long the caller must wait (seconds, 0 when none)."""
        now = self._clock()
        last = self._next
        if last is None:
            issued = now
        elif now - last > self.max_slack + self.per_request:
            issued = now - self.max_slack
        else:
            issued = last + self.per_request
        self._next = issued
        return max(issued - now, 0.0)

    async def take(self) -> float:
        """Wait for the next slot (blocking `Take()` before each attempt); returns the seconds waited."""
        wait = self.reserve()
        if wait > 0:
            await self._sleep(wait)
        return wait

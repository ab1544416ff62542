"""`Collected`: what a source under test published, for tests that run a source without a bus; `until`: wait for
a condition the test can read."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

from sensorium.engine.core.cloudevent import CloudEvent


class Collected:
    """A source's publish callback that keeps every event, and waits for a number of them."""

    def __init__(self) -> None:
        self.events: list[CloudEvent] = []
        self.changed = asyncio.Event()

    async def publish(self, event: CloudEvent) -> None:
        self.events.append(event)
        self.changed.set()

    def data(self) -> list[dict[str, Any]]:
        """Every event's data, decoded as JSON."""
        return [json.loads(e.data or b"") for e in self.events]

    async def wait_for(self, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        """The data of the events so far once there are at least `count`; TimeoutError after `timeout`."""
        async with asyncio.timeout(timeout):
            while len(self.events) < count:
                self.changed.clear()
                await self.changed.wait()
        return self.data()


async def until(check: Callable[[], bool], timeout: float = 20.0) -> None:
    """Return once `check()` holds (polled every 50 ms); TimeoutError after `timeout` seconds."""
    async with asyncio.timeout(timeout):
        while not check():
            await asyncio.sleep(0.05)

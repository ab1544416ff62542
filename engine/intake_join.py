"""One bus message shared by several sensors: per-sensor shares, the join that settles the message, the inboxes.

The shared intake (engine.intake) hands each selected sensor a `Share` of a message: a `Delivery` with the
message's body, headers and position, plus the event decoded once. The sensor's runner settles its share exactly
as it settles a delivery of its own (ack after its firings finished, nak for a redelivery, a dead letter then
ack). The `Join` acknowledges the bus message once every share is settled: ack if every sensor acked, else nak
(with the longest delay asked), remembering which sensors had finished (`Finished`) so that a redelivery to this
process goes only to the others.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence

from sensorium.buses.base import Consumer, Delivery
from sensorium.engine.core.cloudevent import CloudEvent

log = logging.getLogger("sensorium.engine")

MAX_REMEMBERED = 100_000  # messages whose finished sensors are remembered for their redelivery


class Finished:
    """Per message position, the sensors that finished it while another asked for a redelivery (bounded, oldest
    forgotten first; kept in memory only, so a redelivery to another process or after a restart reaches every
    sensor again: at-least-once)."""

    def __init__(self, limit: int = MAX_REMEMBERED) -> None:
        self._done: OrderedDict[str, frozenset[str]] = OrderedDict()
        self._limit = limit

    def remember(self, position: str, sensors: Sequence[str]) -> None:
        self._done[position] = self._done.get(position, frozenset()) | frozenset(sensors)
        self._done.move_to_end(position)
        while len(self._done) > self._limit:
            self._done.popitem(last=False)

    def done(self, position: str) -> frozenset[str]:
        return self._done.get(position, frozenset())

    def forget(self, position: str) -> None:
        self._done.pop(position, None)

    def __len__(self) -> int:
        return len(self._done)


class Join:
    """The settlement of one bus message shared by `share()`d sensors (see the module)."""

    __slots__ = ("acked", "delivery", "finished", "on_settled", "retry", "waiting")

    def __init__(self, delivery: Delivery, finished: Finished) -> None:
        self.delivery, self.finished = delivery, finished
        self.waiting = 0
        self.acked: list[str] = []
        self.retry: float | None = None  # the nak delay, once a sensor asked for a redelivery
        self.on_settled: Callable[[Join], None] | None = None

    def share(self, sensor: str, event: CloudEvent | None, error: str | None = None,
              listeners: Sequence[str] = ()) -> Share:
        self.waiting += 1
        return Share(self, sensor, event, error, listeners)

    async def settled(self, sensor: str, ok: bool, delay: float = 0.0) -> None:
        self.waiting -= 1
        if ok:
            self.acked.append(sensor)
        else:
            self.retry = max(self.retry or 0.0, delay)
        if self.waiting > 0:
            return
        if self.on_settled is not None:
            self.on_settled(self)
        if self.retry is None:
            self.finished.forget(self.delivery.position)
            await self.delivery.ack()
        else:
            self.finished.remember(self.delivery.position, self.acked)
            await self.delivery.nak(self.retry)


class Share(Delivery):
    """One sensor's part of a shared message (see the module). `event` is the message decoded once (None with
    `error` when it is not a CloudEvent; `listeners` then names every sensor listening on its key)."""

    def __init__(self, join: Join, sensor: str, event: CloudEvent | None, error: str | None,
                 listeners: Sequence[str]) -> None:
        source = join.delivery
        super().__init__(source.body, source.headers, source.position, source.origin)
        self.join, self.sensor, self.event, self.error, self.listeners = join, sensor, event, error, listeners
        self.order = source.order
        count = getattr(source, "delivery_count", None)
        if count is not None:
            self.delivery_count = count

    async def ack(self) -> None:
        """`Delivery.ack` without its `_ack` step (one coroutine less per event)."""
        if not self._settled:
            self._settled = True
            await self.join.settled(self.sensor, True)

    async def _ack(self) -> None:
        await self.join.settled(self.sensor, True)

    async def _nak(self, delay: float) -> None:
        await self.join.settled(self.sensor, False, delay)

    async def _in_progress(self) -> None:
        await self.join.delivery.in_progress()


class Inbox(Consumer):
    """A sensor's queue of shares, read by its runner as its consumer. It outlives a runner: a reloaded sensor's
    new version reads what the old one left. At most `limit` shares wait; the intake naks the share of a sensor
    whose inbox is full (`offer` returns False), so one slow sensor holds at most its inbox and its firings in
    flight, never the others."""

    def __init__(self, sensor: str, limit: int) -> None:
        self.sensor, self.limit = sensor, limit
        self._queue: deque[Share] = deque()
        self._ready = asyncio.Event()
        self.on_taken: Callable[[], None] | None = None
        """Called after the runner took shares (the intake then knows there is room again)."""

    @property
    def room(self) -> int:
        """Shares it accepts now."""
        return self.limit - len(self._queue)

    def __len__(self) -> int:
        return len(self._queue)

    def offer(self, share: Share) -> bool:
        if len(self._queue) >= self.limit:
            return False
        self._queue.append(share)
        self._ready.set()
        return True

    def wake(self) -> None:
        """End a waiting `fetch` (its runner is stopping)."""
        self._ready.set()

    async def fetch(self, max_messages: int, timeout: float) -> list[Delivery]:
        """Up to `max_messages` shares; waits (without a timer: idle sensors cost nothing) until there are some
        or `wake()`. `timeout` is ignored."""
        if not self._queue:
            self._ready.clear()
            await self._ready.wait()
        out: list[Delivery] = []
        while self._queue and len(out) < max_messages:
            out.append(self._queue.popleft())
        if out and self.on_taken is not None:
            self.on_taken()
        return out

    def take_all(self) -> list[Share]:
        out = list(self._queue)
        self._queue.clear()
        return out

    async def close(self) -> None:
        """The runner is done with it; the shares stay for the sensor's next version (see `Intake`)."""

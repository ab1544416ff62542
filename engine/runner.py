"""The engine's runner for one sensor: fetch from the bus, run the sensor stage, fire, then settle.

This is the only place that performs side effects between stages and decides acknowledgement: a delivery is
acked only after every firing it caused has reached a terminal outcome (success, or failure after the last
retry), and the bus is told `in_progress` while firings are still running. Firings of different deliveries run
concurrently (bounded by `max_in_flight`); the sensor stage itself runs in delivery order.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from buses.base import Bus, Consumer, ConsumerSpec, Delivery, EventKey
from engine.cloudevent import CloudEvent, DecodeError, decode_structured
from engine.errors import BusError
from engine.trace import NULL_TRACER, Tracer

log = logging.getLogger("sensorium.engine")


class Outcome(Protocol):
    @property
    def success(self) -> bool: ...
    @property
    def error(self) -> str | None: ...


class Executor(Protocol):
    async def fire(self, events: Mapping[str, CloudEvent]) -> Outcome: ...


class FiringLike(Protocol):
    @property
    def trigger(self) -> str: ...
    @property
    def events(self) -> Mapping[str, CloudEvent]: ...


class StageLike(Protocol):
    def process(self, event: CloudEvent, now: datetime) -> StageResultLike: ...


class StageResultLike(Protocol):
    @property
    def firings(self) -> Sequence[FiringLike]: ...


@dataclass(frozen=True)
class RunnerSettings:
    batch: int = 64
    fetch_timeout: float = 1.0
    max_in_flight: int = 256
    ack_wait: float = 30.0
    drain_timeout: float = 10.0


def consumer_name(sensor: str) -> str:
    return f"sensorium-{sensor}"


class SensorRunner:
    def __init__(self, sensor: str, keys: Sequence[EventKey], stage: StageLike, executors: Mapping[str, Executor],
                 bus: Bus, settings: RunnerSettings = RunnerSettings(), tracer: Tracer = NULL_TRACER,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.sensor, self.keys, self.stage, self.executors = sensor, keys, stage, executors
        self.bus, self.settings, self.tracer, self.clock = bus, settings, tracer, clock
        self._consumer: Consumer | None = None
        self._slots = asyncio.Semaphore(settings.max_in_flight)
        self._in_flight: dict[asyncio.Task[None], Delivery] = {}
        self._firing_seq = 0

    async def prepare(self) -> None:
        """Create or resume the durable consumer; afterwards every newly published event reaches this sensor."""
        spec = ConsumerSpec(name=consumer_name(self.sensor), keys=self.keys, ack_wait=self.settings.ack_wait,
                            max_in_flight=max(self.settings.max_in_flight * 4, 1000))
        self._consumer = await self.bus.consumer(spec)

    async def run(self, stop: asyncio.Event) -> None:
        if self._consumer is None:
            await self.prepare()
        assert self._consumer is not None
        heartbeat = asyncio.create_task(self._heartbeat(), name=f"heartbeat-{self.sensor}")
        backoff = 0.1
        try:
            while not stop.is_set():
                try:
                    batch = await self._consumer.fetch(self.settings.batch, self.settings.fetch_timeout)
                    backoff = 0.1
                except BusError as exc:
                    log.error("sensor %s: fetch failed: %s (retrying in %.1fs)", self.sensor, exc, backoff)
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, 5.0)
                    continue
                for delivery in batch:
                    await self._handle(delivery)
            await self._drain()
        finally:
            heartbeat.cancel()
            await self._consumer.close()

    async def _handle(self, delivery: Delivery) -> None:
        try:
            event = decode_structured(delivery.body)
        except DecodeError as exc:
            log.warning("sensor %s: skipping message at %s: not a CloudEvent: %s", self.sensor,
                        delivery.position, exc)
            self.tracer.emit("received", sensor=self.sensor, position=delivery.position, error=str(exc))
            await delivery.ack()
            return
        self.tracer.emit("received", sensor=self.sensor, event_id=event.id, position=delivery.position)
        try:
            result = self.stage.process(event, self.clock())
        except Exception:  # a bug in a stage must not stop the sensor; the event is logged, not lost silently
            log.exception("sensor %s: event %s at %s could not be processed", self.sensor, event.id,
                          delivery.position)
            await delivery.ack()
            return
        if not result.firings:
            await delivery.ack()
            return
        await self._slots.acquire()
        task = asyncio.create_task(self._fire_all(event, result.firings, delivery))
        self._in_flight[task] = delivery

    async def _fire_all(self, event: CloudEvent, firings: Sequence[FiringLike], delivery: Delivery) -> None:
        try:
            outcomes = await asyncio.gather(*(self._fire(f) for f in firings))
            for firing, outcome in zip(firings, outcomes, strict=True):
                if not outcome.success:
                    log.error("sensor %s: trigger %s failed for event %s: %s", self.sensor, firing.trigger,
                              event.id, outcome.error)
            await delivery.ack()
        except asyncio.CancelledError:
            await delivery.nak()
            raise
        finally:
            self._slots.release()
            self._in_flight.pop(asyncio.current_task(), None)  # type: ignore[arg-type]

    async def _fire(self, firing: FiringLike) -> Outcome:
        self._firing_seq += 1
        return await self.executors[firing.trigger].fire(firing.events)

    async def _heartbeat(self) -> None:
        interval = max(self.settings.ack_wait / 3, 0.2)
        while True:
            await asyncio.sleep(interval)
            for delivery in list(self._in_flight.values()):
                try:
                    await delivery.in_progress()
                except Exception as exc:  # a lost heartbeat only risks a redelivery
                    log.debug("in_progress failed for %s: %s", delivery.position, exc)

    async def _drain(self) -> None:
        """Let running firings finish (bounded); unfinished ones are nak'ed so the bus redelivers them."""
        if not self._in_flight:
            return
        tasks = list(self._in_flight)
        started = time.monotonic()
        done, pending = await asyncio.wait(tasks, timeout=self.settings.drain_timeout)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
            log.warning("sensor %s: %d firings unfinished after %.1fs; their events will be redelivered",
                        self.sensor, len(pending), time.monotonic() - started)

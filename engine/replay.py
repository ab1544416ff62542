"""`sensorium replay`: stored events read again from the bus, through a temporary reader
(`Bus.replay_reader`: nothing acknowledged or committed, no live consumer's position moves), and run through one
sensor's own stage and triggers (`engine.assemble`), marked as replays.

Each replayed event carries two CloudEvent extensions, added before the stage: `sensoriumreplay: "true"` (a
constant, so a context filter `extensions: {sensoriumreplay: "true"}` selects replays) and `sensoriumreplayid`,
the replay's id (`r-` and 8 hex digits). Filters, a trigger that sends the event as a CloudEvent and the trace's
`received` record (its `attributes`) see both; Argo's parameters do not (its event context has no extensions).
Every HTTP request a replay sends carries the header `X-Sensorium-Replay: <the replay's id>`, added by the
replay's own connection pool, and so does every message a NATS or Kafka trigger sends (a header). The event
keeps its id, so a target can tell a replay of an event it has seen.

The replay's condition state starts empty and is its own: the live sensor's durable state (partial `&&` matches)
is neither read nor written, so an `&&` trigger fires in a replay only when its events are all in the range.
Events run one at a time, in the order the bus hands them out; an event's firings run together, each with the
trigger's own retries.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import ssl
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TextIO

import msgspec

from sensorium.buses.base import Bus, ReplayedDelivery, ReplayRange, ReplayReader
from sensorium.engine.assemble import Checked, CompiledSensor, assemble
from sensorium.engine.core.cloudevent import CloudEvent, DecodeError, decode_delivery
from sensorium.engine.core.errors import ConfigError, TriggerError
from sensorium.engine.core.secrets import Secrets
from sensorium.engine.goport.deadline import DEFAULT_EVENT_TIMEOUT, event_deadline
from sensorium.engine.logs import firing_failed
from sensorium.engine.progress import Progress
from sensorium.engine.registry import Registry
from sensorium.engine.suggest import closest
from sensorium.engine.trace.records import NULL_TRACER, Tracer, now
from sensorium.engine.trace.steps import event_rows, fired_rows, firing_rows, received_rows
from sensorium.sensors.stage import StageResult
from sensorium.triggers.http import HttpClient, HttpRequest
from sensorium.triggers.httprequest import safe_url
from sensorium.triggers.outcome import Fireable, FiringOutcome
from sensorium.triggers.params import ResolvedParam
from sensorium.triggers.pools import Pools
from sensorium.triggers.spec import Trigger

log = logging.getLogger("sensorium.replay")

REPLAY_EXTENSION = "sensoriumreplay"
REPLAY_ID_EXTENSION = "sensoriumreplayid"
REPLAY_HEADER = "X-Sensorium-Replay"
STOP_GRACE = 5.0  # seconds running firings get to finish after Ctrl-C before they are cancelled


def new_replay_id() -> str:
    return f"r-{os.urandom(4).hex()}"


def mark(event: CloudEvent, replay_id: str) -> CloudEvent:
    """`event` as a replay hands it to the stage: marked by the extensions `sensoriumreplay` and
    `sensoriumreplayid`."""
    return msgspec.structs.replace(event, extensions={**event.extensions, REPLAY_EXTENSION: "true",
                                                  REPLAY_ID_EXTENSION: replay_id})


class ReplayHttpClient(HttpClient):
    """The replay's connection pool: every request also carries `X-Sensorium-Replay: <replay id>`."""

    def __init__(self, replay_id: str) -> None:
        super().__init__()
        self.replay_id = replay_id

    async def exchange(self, request: HttpRequest, tls: ssl.SSLContext | None = None,
                       extra_headers: Mapping[str, str] | None = None) -> tuple[int, bytes]:
        headers = {**(extra_headers or {}), REPLAY_HEADER: self.replay_id}
        return await super().exchange(request, tls, headers)


def find_sensor(config: Checked, name: str, flag: str = "--sensor") -> CompiledSensor:
    """The checked sensor `name` (a translated subscription is a sensor of its name); ConfigError with the
    closest name otherwise."""
    names = [c.name for c in config.compiled]
    for compiled in config.compiled:
        if compiled.name == name:
            return compiled
    if not names:
        raise ConfigError(f"{flag} {name!r}: the files hold no Sensor (or subscription)")
    guess = closest(name, names)
    hint = f"; did you mean {guess!r}?" if guess else f" (loaded: {', '.join(sorted(names)[:20])})"
    raise ConfigError(f"{flag} {name!r}: no sensor or subscription of that name is loaded{hint}")


@dataclass
class ReplayCounts:
    """`read`: the sensor's messages read in the range; `matched`: events a dependency of the sensor passed;
    `firings`: firings sent (or, in a dry run, that would be sent), `failed` those that failed after their
    retries (or whose request could not be built); `skipped`: messages that are not CloudEvents, or on which the
    sensor's stage failed."""

    read: int = 0
    matched: int = 0
    firings: int = 0
    failed: int = 0
    skipped: int = 0

    def note(self) -> str:
        """What a progress line says after the bar's count (messages gone through of the range's size)."""
        return f"· {self.read} event(s), {self.matched} matched, {self.firings} fired"


@dataclass
class ReplayReport:
    sensor: str
    replay_id: str
    dry_run: bool
    counts: ReplayCounts = field(default_factory=ReplayCounts)
    interrupted: bool = False
    resume: str | None = None

    def summary(self) -> str:
        c = self.counts
        verb = "would fire" if self.dry_run else "fired"
        failed = f" ({c.failed} failed)" if c.failed else ""
        skipped = f", {c.skipped} skipped (not a CloudEvent, or the stage failed)" if c.skipped else ""
        head = "interrupted" if self.interrupted else ("dry run" if self.dry_run else "replayed")
        text = (f"{head} {self.replay_id} to sensor {self.sensor}: {c.read} event(s) read, {c.matched} matched, "
                f"{c.firings} firing(s) {verb}{failed}{skipped}")
        if self.interrupted and self.resume:
            text += f"; continue with {self.resume}"
        return text


class SensorReplay:
    """One replay of stored events to one checked sensor. `run` reads the range, paces it (`rate` events per
    second), runs each event through the stage and fires (or, with `dry_run`, prints what would be sent to
    `out`), until the range ends or `stop` is set."""

    def __init__(self, compiled: CompiledSensor, bus: Bus, client: HttpClient, secrets: Secrets, registry: Registry,
                 *, replay_id: str, rate: float | None = None, dry_run: bool = False, tracer: Tracer = NULL_TRACER,
                 out: TextIO | None = None, progress: Callable[[int], Progress | None] = lambda total: None,
                 event_timeout: float = DEFAULT_EVENT_TIMEOUT, pools: Pools | None = None) -> None:
        self.compiled, self.bus, self.secrets, self.registry = compiled, bus, secrets, registry
        self.name = compiled.name
        self.rate, self.dry_run, self.tracer, self.out = rate, dry_run, tracer, out
        self.progress_for, self.event_timeout = progress, event_timeout
        self.report = ReplayReport(self.name, replay_id, dry_run)
        self.triggers: dict[str, Trigger] = {t.template.name: t for t in compiled.triggers}
        self.executors: Mapping[str, Fireable] = ({} if dry_run else
                                                  assemble(compiled, secrets, client, registry, pools=pools).executors)
        self._firing_seq = 0
        self._progress: Progress | None = None

    async def run(self, span: ReplayRange, stop: asyncio.Event) -> ReplayReport:
        reader = await self.bus.replay_reader(self.compiled.keys, span, self.name)
        progress = self._progress = self.progress_for(reader.total)
        try:
            async with contextlib.aclosing(reader.__aiter__()) as deliveries:
                await self._loop(deliveries, reader, stop)
        finally:
            self.report.interrupted = stop.is_set()
            if progress is not None:
                progress.close()
            await reader.close()
            await self._flush()
        return self.report

    async def _loop(self, deliveries: AsyncIterator[ReplayedDelivery], reader: ReplayReader,
                    stop: asyncio.Event) -> None:
        counts, progress = self.report.counts, self._progress
        started = time.monotonic()
        async for delivery in deliveries:
            if stop.is_set():
                break
            if self.rate:  # event n starts n / rate seconds after the first
                wait = started + counts.read / self.rate - time.monotonic()
                if wait > 0 and await _stopped(stop, wait):
                    break
            counts.read += 1
            if await self._one(delivery, stop):
                self.report.resume = reader.resume()  # after this event; not after one whose firings were cut
            if progress is not None:
                progress.update(reader.scanned, counts.note())
            if stop.is_set():
                break

    async def _flush(self) -> None:
        if self.tracer.enabled:
            try:
                await asyncio.wait_for(self.tracer.flush(), 5.0)
            except Exception as exc:
                log.debug("replay trace flush failed: %r", exc)

    def _evaluate(self, event: CloudEvent) -> StageResult:
        with event_deadline(self.event_timeout):
            verdicts = self.compiled.stage.evaluate(event)
        return self.compiled.stage.decide(event, verdicts, datetime.now(UTC))

    async def _one(self, delivery: ReplayedDelivery, stop: asyncio.Event) -> bool:
        """Run one stored message; False when Ctrl-C cut its firings short (a continuation starts at it)."""
        counts, tracing = self.report.counts, self.tracer.enabled
        try:
            event = mark(decode_delivery(delivery.body, delivery.headers), self.report.replay_id)
        except DecodeError as exc:
            counts.skipped += 1
            log.warning("replay %s: message at %s skipped: not a CloudEvent: %s", self.report.replay_id,
                        delivery.position, exc)
            if tracing:
                self.tracer.defer(received_rows, self.name, now(), self.bus.url, delivery.position, None, None,
                                  len(delivery.body), str(exc), delivery.body)
            return True
        try:
            result = await asyncio.to_thread(self._evaluate, event)
        except Exception as exc:
            counts.skipped += 1
            log.warning("replay %s: event %s at %s skipped: the sensor stage failed: %s", self.report.replay_id,
                        event.id, delivery.position, exc)
            return True
        if tracing:
            self.tracer.defer(event_rows, self.name, now(), self.bus.url, delivery.position, None, result,
                              self.tracer.detail == "all")
        if any(d.passed for d in result.dependencies):
            counts.matched += 1
        if not result.firings:
            return True
        counts.firings += len(result.firings)
        if self.dry_run:
            for firing in result.firings:
                self._would_fire(firing.trigger, dict(firing.events), event.id, delivery.position)
            return True
        fires = asyncio.ensure_future(asyncio.gather(*(self._fire(f.trigger, f.events, event.id)
                                                       for f in result.firings)))
        if await _stopped(stop, None, fires):  # Ctrl-C while they run: a grace, then cancel
            await asyncio.wait({fires}, timeout=STOP_GRACE)
            if not fires.done():
                fires.cancel()
                await asyncio.gather(fires, return_exceptions=True)
                log.warning("replay %s: firings for event %s cancelled by the interrupt", self.report.replay_id,
                            event.id)
                return False
        for firing, outcome in zip(result.firings, fires.result(), strict=True):
            if not outcome.success:
                counts.failed += 1
                firing_failed(log, self.name, firing.trigger, event.id, outcome)
        return True

    async def _fire(self, trigger: str, events: Mapping[str, CloudEvent], event_id: str) -> FiringOutcome:
        executor = self.executors[trigger]
        self._firing_seq += 1
        firing_id = f"{self.report.replay_id}-{self._firing_seq}"
        if self.tracer.enabled:
            self.tracer.defer(firing_rows, self.name, now(), event_id, firing_id, trigger,
                              str(getattr(executor, "kind", "")), events)
        outcome = await executor.fire(events)
        if self.tracer.enabled:
            spec = getattr(executor, "trigger", None)
            self.tracer.defer(fired_rows, self.name, now(), event_id, firing_id,
                              spec if isinstance(spec, Trigger) else None, outcome, self.tracer.detail == "all")
        return outcome

    def _would_fire(self, name: str, events: dict[str, CloudEvent], event_id: str, position: str) -> None:
        """A dry run's line for one firing: the request it would send (secret headers as ***), nothing sent."""
        trigger = self.triggers[name]
        kind = self.registry.trigger(trigger)
        what = f"{kind.name} trigger (sends no HTTP request)"
        if kind.request is not None:
            try:
                request = kind.request(trigger, events, self.secrets, list[ResolvedParam]())
            except TriggerError as exc:
                self.report.counts.failed += 1
                what = f"request cannot be built: {exc}"
            else:
                what = (f"{request.method} {safe_url(request.url)} ({len(request.body)} bytes, "
                        f"{REPLAY_HEADER}: {self.report.replay_id})")
        if self.out is not None:
            if self._progress is not None:
                self._progress.close()  # the bar's line is cleared before a line of output; the next update redraws
            self.out.write(f"would fire {name} for event {event_id} at {position}: {what}\n")
            self.out.flush()


async def _stopped(stop: asyncio.Event, timeout: float | None, work: asyncio.Future[Any] | None = None) -> bool:
    """Wait until `work` is done (or `timeout` passes, with no work); True when `stop` was set first."""
    if stop.is_set():
        return True
    waiter = asyncio.ensure_future(stop.wait())
    waits: set[asyncio.Future[Any]] = {waiter}
    if work is not None:
        waits.add(work)
    try:
        await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiter.cancel()
    return stop.is_set() and (work is None or not work.done())


def keys_text(compiled: CompiledSensor) -> str:
    return ", ".join(k.dotted() for k in compiled.keys)


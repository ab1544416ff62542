"""The engine's runner for one sensor: fetch from the bus, run the sensor stage, fire, then settle.

This is the only place that performs side effects between stages and decides acknowledgement: a delivery is
acked only after every firing it caused has reached a terminal outcome (success, or failure after the last
retry), and the bus is told `in_progress` while firings are still running. Firings of different deliveries run
concurrently (bounded by `max_in_flight`); the sensor stage itself runs in delivery order.

With an enabled tracer it also emits a trace record per step (received, dependency, transform, filter, condition,
firing, param, request, response, retry, outcome, ack); building or emitting a record never fails the pipeline.
On the event path it only captures what the records will say (immutable values: the stage result, the
outcome, the parameters the trigger resolved) and hands them to the tracer's `defer`, so a tracer that writes
in a task of its own (TraceHub) expands and serialises them there, in batches; other tracers get records.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from sensorium.buses.base import DEAD_LETTERS, Bus, Consumer, ConsumerSpec, Delivery, EventKey
from sensorium.engine.core.cloudevent import CloudEvent, DecodeError, decode_delivery
from sensorium.engine.core.errors import BusError
from sensorium.engine.dlq import UNDECODABLE, UNDELIVERABLE, UNPROCESSABLE, dead_letter_attributes, one_line
from sensorium.engine.goport.deadline import DEFAULT_EVENT_TIMEOUT, event_deadline
from sensorium.engine.intake_join import Inbox, Share
from sensorium.engine.logs import firing_failed
from sensorium.engine.metrics import NULL_SENSOR_METRICS, SensorMetricsLike
from sensorium.engine.otel import EventSpan, SensorSpans
from sensorium.engine.persistence import ConditionPersistence
from sensorium.engine.trace.holding import Holding
from sensorium.engine.trace.records import NULL_TRACER, Tracer, now, stamp
from sensorium.engine.trace.steps import (
    Started,
    Told,
    ack_rows,
    event_rows,
    fired_rows,
    firing_rows,
    received_rows,
    routine_outcome,
    routine_rows,
    routine_start,
)
from sensorium.sensors.spec import EventDependency
from sensorium.sensors.stage import DependencyVerdict, StageResult
from sensorium.triggers.outcome import Fireable, FiringOutcome
from sensorium.triggers.spec import Trigger

log = logging.getLogger("sensorium.engine")

Fired = tuple[Told, Fireable, str, Started, FiringOutcome]
"""A maybe routine event whose firing went as it should: its records, its trigger, the firing's id, start and
outcome (told with the ack)."""


class FiringLike(Protocol):
    @property
    def trigger(self) -> str: ...
    @property
    def events(self) -> Mapping[str, CloudEvent]: ...


class StageResultLike(Protocol):
    @property
    def firings(self) -> Sequence[FiringLike]: ...


class StageLike(Protocol):
    """The sensor stage as the runner uses it (`sensors.stage.SensorStage`): `evaluate` is the pure part of one
    event (dependency matching, transforms, filters) and runs in the sensor's own thread under the per-event
    deadline; `decide` (condition state, firings) runs on the event loop."""

    def evaluate(self, event: CloudEvent) -> tuple[DependencyVerdict, ...]: ...

    def decide(self, event: CloudEvent, verdicts: tuple[DependencyVerdict, ...], now: datetime) -> StageResultLike: ...


@dataclass(frozen=True)
class RunnerSettings:
    batch: int = 64
    fetch_timeout: float = 1.0
    max_in_flight: int = 256
    ack_wait: float = 30.0
    drain_timeout: float = 10.0
    event_timeout: float = DEFAULT_EVENT_TIMEOUT
    """Seconds one event may spend in the stage's matching, transforms and filters (engine.goport.deadline)."""


DEAD_LETTER_RETRY = 5.0  # seconds before a message whose dead letter could not be stored is delivered again


def consumer_name(sensor: str) -> str:
    return f"sensorium-{sensor}"


def _describe(exc: BaseException) -> str:
    """`Type: message` on one line, for logs, traces and dead letters."""
    return one_line(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__, 500)


async def _quietly(step: Awaitable[None]) -> None:
    try:
        await step
    except Exception as exc:
        log.debug("settlement failed: %r", exc)


class Slots:
    """A firing's place in flight: one of the sensor's own `max_in_flight`, then (when the engine has one) one of
    the process-wide bound shared by every sensor's runner (`sensorium run --max-in-flight`). Always taken in
    that order and both released together, so sensors waiting on the shared bound cannot deadlock."""

    def __init__(self, own: int, shared: asyncio.Semaphore | None = None) -> None:
        self.own, self.shared = asyncio.Semaphore(own), shared

    async def acquire(self) -> None:
        await self.own.acquire()
        if self.shared is not None:
            try:
                await self.shared.acquire()
            except BaseException:
                self.own.release()
                raise

    def release(self) -> None:
        if self.shared is not None:
            self.shared.release()
        self.own.release()


class SensorRunner:
    def __init__(self, sensor: str, keys: Sequence[EventKey], stage: StageLike, executors: Mapping[str, Fireable],
                 bus: Bus, settings: RunnerSettings = RunnerSettings(), tracer: Tracer = NULL_TRACER,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC),
                 persistence: ConditionPersistence | None = None,
                 metrics: SensorMetricsLike = NULL_SENSOR_METRICS, spans: SensorSpans | None = None,
                 shared_slots: asyncio.Semaphore | None = None, consumer: str | None = None,
                 dead_letter_failures: bool = False, inbox: Inbox | None = None,
                 dependencies: Sequence[EventDependency] = (),
                 inline: Callable[[CloudEvent], bool] | None = None) -> None:
        self.sensor, self.keys, self.stage, self.executors = sensor, keys, stage, executors
        self.consumer = consumer or consumer_name(sensor)  # the durable consumer's name on the bus
        self.dead_letter_failures = dead_letter_failures  # failed firings: the message goes to sensorium-dlq
        # Fed by the engine's shared intake (engine.intake) through `inbox` instead of a consumer of its own;
        # `dependencies` are what the intake's index reads.
        self.inbox, self.dependencies = inbox, dependencies
        # Which events the stage may evaluate on the loop, skipping the thread hop (sensors.inline.InlineGate:
        # bounded stages and small events only); None: always the stage thread.
        self.inline = inline
        self.spans = spans  # OpenTelemetry (engine.otel), None when off
        self.metrics = metrics
        self.persistence = persistence
        self.bus, self.settings, self.tracer, self.clock = bus, settings, tracer, clock
        self._consumer: Consumer | None = None
        self._slots = Slots(settings.max_in_flight, shared_slots)
        self._in_flight: dict[asyncio.Task[None], Delivery] = {}
        self._firing_seq = 0
        self._run_id = os.urandom(3).hex()  # firing ids: <run id>-<n>, unique across engine instances
        self._tracing = tracer.enabled
        self._full = tracer.detail == "all"  # (engine.trace.records.DETAILS)
        self._compact = False  # a routine event told in one record (Tracer.compact), known once the bus is attached
        # an event that fires is routine so far without `routine_start` looking through its verdicts
        self._plain = bool(getattr(stage, "plain", False))  # (sensors.stage.SensorStage.plain)
        self._copy = False  # a routine record copies its event's preview: the bus does not keep delivered events
        # the records of events that may turn out routine, while their firing runs (engine.trace.holding)
        self._holding: Holding[Told] = Holding(self._tell_held)
        self._dlq_failing: str | None = None  # why the last dead letter could not be stored, until one is
        # Why the loop last failed (set by its supervisor, or by failing fetches), None once it fetches again:
        # the health endpoint reports it.
        self.failure: str | None = None
        # The stage evaluates in a thread of this sensor's own, under the
        # per-event deadline, so a slow event (regex, Lua, template) never holds the event loop other sensors
        # share; decide() (condition state) stays on the loop. Measured: 43 us of CPU per event for the hop.
        # One per run(): a loop restarted by its supervisor gets a new one (the old one was shut down).
        self._stage_thread: ThreadPoolExecutor | None = None
        # `_trace(rows_fn, *args)`: the records `rows_fn(out, *args)` appends, for the tracer (TraceHub: one list
        # append; it never raises).
        self._trace: Callable[..., None] = tracer.defer

    @property
    def unsettled(self) -> int:
        """Deliveries this sensor holds unacknowledged (firings or dead letters still running)."""
        return len(self._in_flight)

    def _trace_ack(self, event_id: str | None, delivery: Delivery, action: str, reason: str) -> None:
        if self._tracing:
            self._trace(ack_rows, self.sensor, now(), event_id, delivery.position, action, reason)

    async def prepare(self) -> None:
        """Create or resume the durable consumer (or take the intake's inbox); afterwards every newly published
        event reaches this sensor."""
        if self.persistence is not None:
            await self.persistence.restore()
        if self.inbox is not None:
            self._consumer = self.inbox
        else:
            spec = ConsumerSpec(name=self.consumer, keys=self.keys, ack_wait=self.settings.ack_wait,
                                max_in_flight=max(self.settings.max_in_flight * 4, 1000))
            self._consumer = await self.bus.consumer(spec)
        if self._tracing:
            try:
                self.tracer.attach_bus(self.bus)
            except Exception as exc:
                log.debug("sensor %s: trace bus not attached: %r", self.sensor, exc)
            self._compact = not self._full and self.tracer.compact
            self._copy = not self.bus.keeps_delivered

    async def run(self, stop: asyncio.Event) -> None:
        if self._consumer is None:
            await self.prepare()
        assert self._consumer is not None
        inbox = self.inbox
        if inbox is None:
            heartbeat = asyncio.create_task(self._heartbeat(), name=f"heartbeat-{self.sensor}")
        else:  # the intake keeps the shared messages alive; a stop ends the inbox's wait
            heartbeat = asyncio.create_task(self._wake_on(stop, inbox), name=f"stop-{self.sensor}")
        backoff = 0.1
        try:
            while not stop.is_set():
                try:
                    batch = await self._consumer.fetch(self.settings.batch, self.settings.fetch_timeout)
                    backoff = 0.1
                    self.failure = None
                except BusError as exc:
                    log.error("sensor %s: fetch failed: %s (retrying in %.1fs)", self.sensor, exc, backoff)
                    self.failure = f"fetch failed: {exc}"
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, 5.0)
                    continue
                for delivery in batch:
                    try:
                        await self._handle(delivery)
                    except Exception as exc:  # whatever one delivery raises, the loop goes on
                        await self._handle_failed(delivery, exc)
            await self._drain()
        finally:
            heartbeat.cancel()
            self._holding.close()
            if self._stage_thread is not None:
                self._stage_thread.shutdown(wait=False)
                self._stage_thread = None
            await self._consumer.close()
            await self._flush_trace()

    async def _flush_trace(self) -> None:
        """Let the tracer write what it holds while the bus is still open (bounded, never raises)."""
        if self._tracing:
            try:
                await asyncio.wait_for(self.tracer.flush(), 5.0)
            except Exception as exc:
                log.debug("sensor %s: trace flush failed: %r", self.sensor, exc)

    async def _handle(self, delivery: Delivery) -> None:
        tracing = self._tracing
        self.metrics.delivered()
        try:
            if isinstance(delivery, Share):  # decoded once by the intake
                if delivery.event is None:
                    raise DecodeError(delivery.error or "not a CloudEvent")
                event = delivery.event
            else:
                event = decode_delivery(delivery.body, delivery.headers)
        except DecodeError as exc:
            if tracing:
                self._trace(received_rows, self.sensor, now(), self.bus.url, delivery.position,
                            getattr(delivery, "delivery_count", None), None, len(delivery.body), str(exc),
                            delivery.body)
            await self._dead_letter(delivery, None, UNDECODABLE, f"not a CloudEvent: {exc}")
            return
        received = time.time() if tracing else 0.0  # (formatted, `stamp`, only when a record says it)
        persist = self.persistence
        version = persist.version if persist is not None else 0
        span = self.spans.event(event) if self.spans is not None else None
        try:
            if self.inline is not None and self.inline(event):  # bounded and small: the hop would cost more
                result = self.stage.decide(event, self._evaluate(event), self.clock())  # (no coroutine)
            else:
                result = await self._process(event)
        except Exception as exc:  # a bug in a stage must not stop the sensor: the message is dead-lettered
            if span is not None:
                span.failed(_describe(exc))
            log.debug("sensor %s: the sensor stage failed on event %s at %s", self.sensor, event.id,
                      delivery.position, exc_info=True)
            if tracing:
                self._trace(received_rows, self.sensor, stamp(received), self.bus.url, delivery.position,
                            getattr(delivery, "delivery_count", None), event)
            await self._dead_letter(delivery, event.id, UNPROCESSABLE, f"the sensor stage failed: {_describe(exc)}")
            return
        self.metrics.decided(result)
        if span is not None:
            span.decided(len(result.firings))
        held = 0  # the key of the records of a maybe routine event, held while its firing runs
        if tracing:
            if isinstance(result, StageResult):  # received, then what the stage decided
                told = (self.sensor, received, self.bus.url, delivery.position,
                        getattr(delivery, "delivery_count", None), result, self._full)
                if self._compact and span is None and (len(result.firings) == 1 if self._plain
                                                       else routine_start(result)):
                    held = self._holding.hold(told)
                else:
                    self._tell_held(told)
            else:
                self._trace(received_rows, self.sensor, stamp(received), self.bus.url, delivery.position,
                            getattr(delivery, "delivery_count", None), event)
        tokens: Sequence[int] = ()
        if persist is not None:  # registered before any await: every snapshot from now on includes them
            tokens = [persist.firing_started(f.trigger, f.events) for f in result.firings if persist.holds(f.trigger)]
            changed = persist.version != version
        else:
            changed = False
        if not result.firings and not changed:
            await delivery.ack()
            self._trace_ack(event.id, delivery, "ack", "nothing to fire")
            return
        try:
            await self._slots.acquire()
        except BaseException:  # (cancelled while waiting for a slot)
            self._holding.tell(held)
            raise
        task = asyncio.create_task(self._fire_all(event, result.firings, delivery, tokens, changed, span, held))
        self._in_flight[task] = delivery

    async def _handle_failed(self, delivery: Delivery, exc: Exception) -> None:
        """`_handle` raised (a bug): dead-letter the delivery unless it already went to a firing or was settled."""
        log.debug("sensor %s: handling %s failed", self.sensor, delivery.position, exc_info=exc)
        if delivery.settled or any(d is delivery for d in self._in_flight.values()):
            log.error("sensor %s: error after handing over the message at %s: %s", self.sensor, delivery.position,
                      _describe(exc))
            return
        try:
            await self._dead_letter(delivery, None, UNPROCESSABLE, f"handling failed: {_describe(exc)}")
        except Exception as again:  # never the loop's end; the unsettled message is redelivered by the bus
            log.error("sensor %s: message at %s left unsettled: %s", self.sensor, delivery.position,
                      _describe(again))

    async def _dead_letter(self, delivery: Delivery, event_id: str | None, reason: str, error: str) -> None:
        """Store the message on the bus's dead-letter subject/topic, then ack it; in a task of its own (like a
        firing: bounded by `max_in_flight`, drained at shutdown), so the loop goes on meanwhile."""
        await self._slots.acquire()
        task = asyncio.create_task(self._store_dead_letter(delivery, event_id, reason, error))
        self._in_flight[task] = delivery

    async def _store_dead_letter(self, delivery: Delivery, event_id: str | None, reason: str, error: str) -> None:
        try:
            await self._settle_dead_letter(delivery, event_id, reason, error)
        except asyncio.CancelledError:
            await _quietly(delivery.nak())
            raise
        finally:
            self._slots.release()
            self._in_flight.pop(asyncio.current_task(), None)  # type: ignore[arg-type]

    async def _settle_dead_letter(self, delivery: Delivery, event_id: str | None, reason: str, error: str) -> None:
        """Publish the dead letter, then ack (logged once at WARNING); if it cannot be stored, nak with a delay.
        Never raises but CancelledError."""
        try:
            attributes = dead_letter_attributes(self.sensor, delivery, reason, error, event_id)
            if isinstance(delivery, Share) and len(delivery.listeners) > 1:  # every sensor listening on its key
                attributes["dlqsensors"] = one_line(",".join(delivery.listeners))
            try:
                await self.bus.publish_dead_letter(self.sensor, attributes, delivery.body)
            except Exception as exc:  # BusError or any other: keep the message on the bus and try again later
                self._dead_letter_failed(delivery, exc)
                await delivery.nak(DEAD_LETTER_RETRY)
                self._trace_ack(event_id, delivery, "nak", f"dead letter not stored ({reason}): redelivery")
                return
            if self._dlq_failing is not None:
                self._dlq_failing = None
                log.warning("sensor %s: dead letters are stored again on %s", self.sensor, DEAD_LETTERS)
            log.warning("sensor %s: message at %s dead-lettered to %s: %s", self.sensor, delivery.position,
                        DEAD_LETTERS, attributes["dlqerror"])
            await delivery.ack()
            self.metrics.dead_lettered(reason)
            self._trace_ack(event_id, delivery, "ack", f"dead-lettered to {DEAD_LETTERS} ({reason}): {error}")
        except Exception as exc:  # e.g. the ack itself failed: the bus redelivers the message
            log.error("sensor %s: message at %s: %s", self.sensor, delivery.position, _describe(exc))

    def _dead_letter_failed(self, delivery: Delivery, exc: Exception) -> None:
        """One ERROR line when dead letters start failing (or fail differently), DEBUG for the rest."""
        cause = _describe(exc)
        loud = cause != self._dlq_failing
        self._dlq_failing = cause
        (log.error if loud else log.debug)(
            "sensor %s: message at %s could not be dead-lettered (%s); it stays on the bus, retried in %.0fs",
            self.sensor, delivery.position, cause, DEAD_LETTER_RETRY)

    def _evaluate(self, event: CloudEvent) -> tuple[DependencyVerdict, ...]:
        with event_deadline(self.settings.event_timeout):
            return self.stage.evaluate(event)

    async def _process(self, event: CloudEvent) -> StageResultLike:
        """The stage in the sensor's own thread (evaluate), then decide on the loop."""
        if self._stage_thread is None:
            self._stage_thread = ThreadPoolExecutor(1, thread_name_prefix=f"stage-{self.sensor}")
        verdicts = await asyncio.get_running_loop().run_in_executor(self._stage_thread, self._evaluate, event)
        return self.stage.decide(event, verdicts, self.clock())

    async def _fire_all(self, event: CloudEvent, firings: Sequence[FiringLike], delivery: Delivery,
                        tokens: Sequence[int] = (), state_changed: bool = False, span: EventSpan | None = None,
                        held: int = 0) -> None:
        """Fire `firings`, then settle the delivery. `held`: the key of the event's records in `_holding`
        (`_handle`): if its one firing and the ack go as they should (and they were not told meanwhile) it is
        told in one `Routine` record, otherwise step by step, before the firing's own records (`_untold`)."""
        routine: Fired | None = None  # a routine event so far, told with the ack
        try:
            if len(firings) == 1:  # the common case: no task of its own (gather would add one per event)
                only = firings[0]
                if span is None:  # no coroutine but the trigger's own (each layer is resumed at every suspension)
                    self._firing_seq += 1
                    executor = self.executors[only.trigger]
                    if self._tracing:
                        firing_id, started = self._firing_started(executor, only, event.id)
                        outcome = await executor.fire(only.events)
                        told = self._holding.take(held) if held else None
                        held = 0
                        if told is not None and routine_outcome(outcome):
                            routine = (told, executor, firing_id, started, outcome)
                        else:
                            if told is not None:
                                self._tell_held(told)
                            self._firing_done(executor, firing_id, started, event.id, outcome)
                        outcomes = [outcome]
                    else:
                        outcomes = [await executor.fire(only.events)]
                else:
                    outcomes = [await self._fire(only, event.id, span)]
            else:
                outcomes = await asyncio.gather(*(self._fire(f, event.id, span) for f in firings))
            failed = 0
            for firing, outcome in zip(firings, outcomes, strict=True):
                self.metrics.fired(firing.trigger, event, outcome)
                if not outcome.success:
                    failed += 1
                    firing_failed(log, self.sensor, firing.trigger, event.id, outcome)
            if self.persistence is not None and (tokens or state_changed):
                for token in tokens:
                    self.persistence.firing_finished(token)
                try:
                    await self.persistence.ensure(self.persistence.version)
                except BusError as exc:
                    log.error("sensor %s: condition state not stored (%s); event %s will be redelivered",
                              self.sensor, exc, event.id)
                    self._untold(held, routine, event.id)
                    held, routine = 0, None
                    await delivery.nak(1.0)
                    self._trace_ack(event.id, delivery, "nak", "condition state could not be stored")
                    return
            if failed and self.dead_letter_failures:  # stored on sensorium-dlq, then acked (spec.consumer)
                errors = "; ".join(f"{f.trigger}: {o.error}" for f, o in zip(firings, outcomes, strict=True)
                                   if not o.success)
                await self._settle_dead_letter(delivery, event.id, UNDELIVERABLE, f"firing failed: {errors}")
                return
            await delivery.ack()
            if self._tracing:
                done = (f"{len(firings)} firing(s) finished" + (f", {failed} failed" if failed else "")
                        if firings else "condition state stored")
                if routine is not None:
                    told, _, firing_id, _, outcome = routine
                    routine = None
                    self._trace(routine_rows, told, firing_id, outcome, time.time(), done, self._copy)
                else:
                    self._trace_ack(event.id, delivery, "ack", done)
        except asyncio.CancelledError:
            self._untold(held, routine, event.id)
            held, routine = 0, None
            await delivery.nak()
            self._trace_ack(event.id, delivery, "nak", "shutting down before its firings finished: redelivery")
            raise
        except Exception as exc:  # a bug in a trigger: the firings did not finish, the message is dead-lettered
            log.debug("sensor %s: firing event %s failed", self.sensor, event.id, exc_info=True)
            self._untold(held, routine, event.id)
            held, routine = 0, None
            if not delivery.settled:
                await self._settle_dead_letter(delivery, event.id, UNPROCESSABLE, f"firing failed: {_describe(exc)}")
        finally:
            self._slots.release()
            self._in_flight.pop(asyncio.current_task(), None)  # type: ignore[arg-type]

    async def _fire(self, firing: FiringLike, event_id: str, span: EventSpan | None = None) -> FiringOutcome:
        if span is None:
            return await self._fire_one(firing, event_id)
        with span.firing(firing.trigger) as done:  # current in this task: the trigger's attempts are its children
            outcome = await self._fire_one(firing, event_id)
            done(outcome.success, outcome.error)
            return outcome

    async def _fire_one(self, firing: FiringLike, event_id: str) -> FiringOutcome:
        self._firing_seq += 1
        executor = self.executors[firing.trigger]
        if not self._tracing:
            return await executor.fire(firing.events)
        firing_id, started = self._firing_started(executor, firing, event_id)
        outcome = await executor.fire(firing.events)
        self._firing_done(executor, firing_id, started, event_id, outcome)
        return outcome

    def _firing_started(self, executor: Fireable, firing: FiringLike, event_id: str) -> tuple[str, Started]:
        """The firing numbered `_firing_seq`: its id and what its `firing` record says. With every detail, that
        record is traced now (a live trace shows a long firing as it starts); otherwise with its outcome
        (`fired_rows`: left out when the others imply it)."""
        firing_id = f"{self._run_id}-{self._firing_seq}"
        started = (time.time(), firing.trigger, str(getattr(executor, "kind", "")), firing.events)
        if self._full:
            self._trace(firing_rows, self.sensor, stamp(started[0]), event_id, firing_id, *started[1:])
        return firing_id, started

    def _tell_held(self, told: Told) -> None:
        """The records of an event that `told` holds (`event_rows`' arguments, its time not yet formatted)."""
        self._trace(event_rows, told[0], stamp(told[1]), *told[2:])

    def _untold(self, held: int, routine: Fired | None, event_id: str) -> None:
        """Tell step by step what was held back for a `Routine` record that will not be written: the event's
        records (still in `_holding` under `held`, or taken into `routine`), then its firing's."""
        if held:
            self._holding.tell(held)
        if routine is not None:
            told, executor, firing_id, started, outcome = routine
            self._tell_held(told)
            self._firing_done(executor, firing_id, started, event_id, outcome)

    def _firing_done(self, executor: Fireable, firing_id: str, started: Started, event_id: str,
                     outcome: FiringOutcome) -> None:
        trigger = getattr(executor, "trigger", None)
        self._trace(fired_rows, self.sensor, now(), event_id, firing_id,
                    trigger if isinstance(trigger, Trigger) else None, outcome, self._full,
                    None if self._full else started)

    @staticmethod
    async def _wake_on(stop: asyncio.Event, inbox: Inbox) -> None:
        await stop.wait()
        inbox.wake()

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
        _done, pending = await asyncio.wait(tasks, timeout=self.settings.drain_timeout)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
            log.warning("sensor %s: %d firings unfinished after %.1fs; their events will be redelivered",
                        self.sensor, len(pending), time.monotonic() - started)

"""The shared intake: one durable consumer and one fetch loop per engine process for every sensor without a
consumer of its own (README "One intake per engine").

Each bus message is fetched and decoded once, then handed (`intake_join.Share`) to the inbox of every sensor the
dispatch index (engine.intake_index) says it can affect; each sensor's runner runs its full stage on it as it
does on a delivery of its own. The message is acknowledged once every sensor settled its share (the join); if a
sensor asked for a redelivery the message is nak'ed and, when it comes back to this process, goes only to the
sensors that had not finished it.

The consumer is named for the deployment (`IntakeSettings.group`, `sensorium run --group`, default
`sensorium-intake`): every process of a deployment (`--workers N`) shares it through the bus, two deployments
with different names each see every event. Its event keys are the union of its sensors' keys, changed in place on
a reload (JetStream filter subjects, Kafka record keys): the durable position is kept.

A sensor starts at new events: where the bus was when a sensor first appeared (`Consumer.head()`, the stream
sequence on JetStream, each partition's next offset on Kafka) is stored on the bus
(`Bus.state_store("intake.<group>")`, one snapshot for all sensors) and older messages are not handed to it,
also after a restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from sensorium.buses.base import Bus, Consumer, ConsumerSpec, Delivery, EventKey, Mark, StateStore
from sensorium.engine.core.cloudevent import DecodeError, decode_delivery
from sensorium.engine.core.errors import BusError
from sensorium.engine.dlq import UNDECODABLE, dead_letter_attributes, one_line
from sensorium.engine.intake_index import DispatchIndex
from sensorium.engine.intake_join import Finished, Inbox, Join, Share
from sensorium.engine.metrics import IntakeMetrics, NullIntakeMetrics
from sensorium.engine.runner import SensorRunner, consumer_name

log = logging.getLogger("sensorium.engine")

DEFAULT_GROUP = "sensorium-intake"
OVERFLOW_RETRY = 1.0  # seconds before a message a full inbox refused is delivered again


@dataclass(frozen=True)
class IntakeSettings:
    group: str = DEFAULT_GROUP
    batch: int = 64  # messages per fetch
    fetch_timeout: float = 1.0
    ack_wait: float = 30.0
    window: int = 1024
    """Messages the intake holds unacknowledged at most (JetStream `max_ack_pending`, Kafka records in flight):
    the bound on what every sensor together holds, and how far the others may run ahead of one slow sensor."""
    inbox: int = 256
    """Shares one sensor holds waiting for its stage; a message arriving for a full inbox is nak'ed for that
    sensor (and redelivered after OVERFLOW_RETRY), so a slow sensor holds at most this plus its firings. The
    intake fetches no more messages than the emptiest inbox has room for, and waits while that is less than a
    batch: when every sensor is behind, messages wait on the bus instead of being fetched, decoded and nak'ed
    over and over (a burst into one sensor was fetched ~3 times per message); one slow sensor never stops the
    fetching for the others."""


def _is_mark(value: object) -> bool:
    """Whether a stored start position is one (`buses.base.Mark`)."""
    if isinstance(value, dict):
        return all(isinstance(k, str) and type(v) is int for k, v in value.items())
    return type(value) is int


def earliest(marks: Sequence[Mark]) -> Mark:
    """Where all of `marks` (of one bus) are at or after: the lowest order, or each partition's lowest offset
    among the marks that name it."""
    orders = [m for m in marks if isinstance(m, int)]
    if orders:
        return min(orders)
    out: dict[str, int] = {}
    for mark in marks:
        for partition, offset in (mark.items() if isinstance(mark, dict) else ()):
            out[partition] = min(offset, out.get(partition, offset))
    return out


def _described(mark: Mark) -> str:
    """A start position for a log line: the order, or the partitions' offsets (`0:12, 1:40`)."""
    if isinstance(mark, int):
        return str(mark)
    offsets = ", ".join(f"{p}:{o}" for p, o in sorted(mark.items(), key=lambda item: (len(item[0]), item[0])))
    return f"offsets {offsets[:200]}{'…' if len(offsets) > 200 else ''}"


def _key_of(delivery: Delivery) -> str:
    """`<source>.<name>` of where the message was on the bus (for one that is not a CloudEvent)."""
    subject = delivery.origin.get("subject")
    if subject is not None:
        return subject.split(".", 1)[1] if "." in subject else subject
    return delivery.origin.get("key", "")


class Intake:
    """The shared intake of one engine process on `bus` (see the module): `inbox()` for each sensor it feeds,
    `sync()` after every change of the sensors, `launch()` to fetch, `halt()` then `close()` to stop."""

    def __init__(self, bus: Bus, settings: IntakeSettings = IntakeSettings(),
                 metrics: IntakeMetrics | NullIntakeMetrics | None = None) -> None:
        self.bus, self.settings = bus, settings
        self.metrics = metrics if metrics is not None else NullIntakeMetrics()
        self.index = DispatchIndex({})
        self.members: dict[str, SensorRunner] = {}
        self.inboxes: dict[str, Inbox] = {}
        self.finished = Finished()
        self.open: set[Join] = set()  # messages some sensor still holds
        self._consumer: Consumer | None = None
        self._keys: list[EventKey] = []
        self._marks: dict[str, Mark] | None = None
        self._store: StateStore | None = None
        self._task: asyncio.Task[None] | None = None
        self._heartbeat: asyncio.Task[None] | None = None
        self._failing: str | None = None
        self._room = asyncio.Event()  # set when an inbox may have room for a batch again

    # -- membership ----------------------------------------------------------------------------------------
    def inbox(self, sensor: str) -> Inbox:
        """The inbox of `sensor` (kept across its reloads)."""
        inbox = self.inboxes.get(sensor)
        if inbox is None:
            inbox = self.inboxes[sensor] = Inbox(sensor, self.settings.inbox)
            inbox.on_taken = self._room.set
        return inbox

    async def sync(self, runners: Sequence[SensorRunner]) -> None:
        """Serve exactly the intake-fed `runners` from now on: a new index, the consumer's keys, start marks for
        sensors never seen before; a removed sensor's waiting shares are released (acked for it). Raises
        BusError when the bus cannot be asked (the previous state is then kept)."""
        members = {r.sensor: r for r in runners if r.inbox is not None}
        keys = sorted({k for r in members.values() for k in r.keys}, key=EventKey.dotted)
        if keys and self._consumer is None:
            self._consumer = await self._adopt(keys, list(members))
        elif keys and keys != self._keys and self._consumer is not None:
            await self._consumer.retarget(keys)
        self._keys = keys
        if self._consumer is not None:
            await self._mark(list(members), self._consumer)
        self.members = members
        self.index = DispatchIndex({name: r.dependencies for name, r in members.items()})
        for name in [n for n in self.inboxes if n not in members]:
            for share in self.inboxes.pop(name).take_all():
                await share.ack()
        self._room.set()

    def _spec(self, keys: Sequence[EventKey], start_after: Mark | None = None) -> ConsumerSpec:
        return ConsumerSpec(name=self.settings.group, keys=keys, ack_wait=self.settings.ack_wait,
                            max_in_flight=self.settings.window, start_after=start_after)

    async def _adopt(self, keys: Sequence[EventKey], sensors: Sequence[str]) -> Consumer:
        """The intake's consumer. Upgrading from per-sensor consumers (`sensorium-<sensor>`): when the intake's
        own does not exist yet, it is created at the lowest acknowledgement floor of theirs (`Bus.
        consumer_positions`), each such sensor starts after its own floor (so nothing they held unacknowledged
        is lost; what they acked out of order above it comes again: at-least-once), and their consumers are
        deleted where the bus can (JetStream)."""
        positions = await self.bus.consumer_positions([self.settings.group, *(consumer_name(s) for s in sensors)])
        legacy = {s: positions[consumer_name(s)] for s in sensors if consumer_name(s) in positions}
        if self.settings.group in positions or not legacy:
            return await self.bus.consumer(self._spec(keys))
        start = earliest(list(legacy.values()))
        consumer = await self.bus.consumer(self._spec(keys, start_after=start))
        await self._load_marks()
        assert self._marks is not None and self._store is not None
        marks = {**self._marks, **legacy}
        await self._store.save(json.dumps({"marks": marks}, separators=(",", ":")).encode())
        self._marks = marks
        for sensor in legacy:
            await self.bus.delete_consumer(consumer_name(sensor))
        log.info("intake %s: took over from the consumers of %d sensor(s) (%s), starting after bus position %s",
                 self.settings.group, len(legacy), ", ".join(sorted(legacy))[:300], _described(start))
        return consumer

    async def _load_marks(self) -> None:
        if self._marks is None:
            self._store = await self.bus.state_store(f"intake.{self.settings.group}")
            raw = await self._store.load()
            try:
                stored = json.loads(raw)["marks"] if raw else {}
                if not isinstance(stored, dict):
                    raise TypeError(f"marks: {type(stored).__name__}, not an object")
            except (ValueError, KeyError, TypeError) as exc:  # the sensors then start anew
                log.error("intake %s: stored start positions ignored: %s", self.settings.group, exc)
                stored = {}
            marks = {str(k): v for k, v in stored.items() if _is_mark(v)}
            if len(marks) != len(stored):
                log.error("intake %s: stored start positions of %s ignored (not a bus position): they start anew",
                          self.settings.group, ", ".join(sorted(map(str, set(stored) - set(marks))))[:300])
            self._marks = marks

    async def _mark(self, sensors: Sequence[str], consumer: Consumer) -> None:
        """Record where the bus is for every sensor not known (durably); forget the sensors no longer loaded,
        so one added again later is new again."""
        await self._load_marks()
        assert self._marks is not None
        new = [s for s in sensors if s not in self._marks]
        loaded = set(sensors)
        kept = {s: m for s, m in self._marks.items() if s in loaded}
        if not new and len(kept) == len(self._marks):
            return
        head = await consumer.head() if new else 0
        marks = {**kept, **dict.fromkeys(new, head)}
        assert self._store is not None
        await self._store.save(json.dumps({"marks": marks}, separators=(",", ":")).encode())
        self._marks = marks
        if new:
            log.info("intake %s: %d new sensor(s) start after bus position %s", self.settings.group, len(new),
                     _described(head))

    # -- running -------------------------------------------------------------------------------------------
    def launch(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._loop(), name=f"intake-{self.settings.group}")
            self._heartbeat = asyncio.create_task(self._beat(), name="intake-heartbeat")

    async def halt(self) -> None:
        """Stop fetching (the sensors then drain what they hold)."""
        for task in (self._task, self._heartbeat):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._task = self._heartbeat = None

    async def close(self) -> None:
        """Nak what no sensor started (redelivered to the next engine), then close the consumer."""
        await self.halt()
        for inbox in self.inboxes.values():
            for share in inbox.take_all():
                with contextlib.suppress(Exception):
                    await share.nak()
        if self._consumer is not None:
            await self._consumer.close()
            self._consumer = None

    async def _loop(self) -> None:
        backoff = 0.1
        while True:
            consumer = self._consumer
            if consumer is None:  # no sensor yet
                await asyncio.sleep(self.settings.fetch_timeout)
                continue
            wanted = await self._wanted()
            try:
                batch = await consumer.fetch(wanted, self.settings.fetch_timeout)
            except BusError as exc:
                log.error("intake %s: fetch failed: %s (retrying in %.1fs)", self.settings.group, exc, backoff)
                self._fail(f"fetch failed: {exc}")
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            backoff = 0.1
            if self._failing is not None:
                self._fail(None)
            for delivery in batch:
                try:
                    await self.dispatch(delivery)
                except Exception as exc:  # never the loop's end: the bus redelivers an unsettled message
                    log.error("intake %s: message at %s not dispatched: %s", self.settings.group,
                              delivery.position, exc)

    async def _wanted(self) -> int:
        """How many messages to fetch: at most what the emptiest inbox takes, once that is a batch (or its
        whole size, when smaller); waits until then (see IntakeSettings.inbox)."""
        batch = self.settings.batch
        members = self.members
        while True:
            room = -1
            for name, inbox in self.inboxes.items():  # stops at the first inbox with room for a batch: with
                if name in members:                   # thousands of sensors, nearly always one of the first
                    room = max(room, inbox.room)
                    if room >= batch:
                        return batch
            if room < 0:  # no sensor yet
                return batch
            if room >= min(batch, self.settings.inbox):
                return room
            self._room.clear()
            await self._room.wait()

    def _fail(self, cause: str | None) -> None:
        """Readiness (`/readyz`) names the cause for every sensor fed by the intake."""
        previous, self._failing = self._failing, cause
        for runner in self.members.values():
            if cause is not None or runner.failure == previous:
                runner.failure = cause

    async def dispatch(self, delivery: Delivery) -> None:
        """Hand `delivery` to every sensor it can affect, or settle it at once when there is none."""
        join = Join(delivery, self.finished)
        try:
            event = decode_delivery(delivery.body, delivery.headers)
        except DecodeError as exc:
            self.metrics.count("undecodable")
            await self._undecodable(join, str(exc))
            return
        done = self.finished.done(delivery.position) if len(self.finished) else frozenset()
        marks = self._marks or {}
        for sensor in self.index.select(event):
            if sensor in done:
                continue
            mark = marks.get(sensor)
            if mark is not None and delivery.published_before(mark):
                continue  # published before the sensor existed
            self._offer(join, sensor, join.share(sensor, event))
        self.metrics.count("dispatched" if join.waiting or join.retry is not None else "unselected")
        if join.waiting:  # the common case, without a coroutine: see _opened
            self.open.add(join)
            join.on_settled = self.open.discard
        else:
            await self._opened(join)

    def _offer(self, join: Join, sensor: str, share: Share) -> None:
        inbox = self.inboxes.get(sensor)
        if inbox is None or not inbox.offer(share):
            # full (or gone): this sensor gets it again later; the others finish it now
            join.waiting -= 1
            join.retry = max(join.retry or 0.0, OVERFLOW_RETRY)

    async def _opened(self, join: Join) -> None:
        if join.waiting == 0:
            if join.retry is None:
                self.finished.forget(join.delivery.position)
                await join.delivery.ack()
            else:
                await join.delivery.nak(join.retry)
            return
        self.open.add(join)
        join.on_settled = self.open.discard

    async def _undecodable(self, join: Join, error: str) -> None:
        """Dead-lettered once: by the first sensor listening on its key (naming all of them), else the intake."""
        listeners = self.index.by_key.get(_key_of(join.delivery), [])
        if listeners:
            self._offer(join, listeners[0], join.share(listeners[0], None, error, listeners))
            await self._opened(join)
            return
        attributes = dead_letter_attributes(self.settings.group, join.delivery, UNDECODABLE,
                                            one_line(f"not a CloudEvent: {error}", 500))
        try:
            await self.bus.publish_dead_letter(self.settings.group, attributes, join.delivery.body)
        except BusError as exc:
            log.error("intake %s: message at %s could not be dead-lettered: %s", self.settings.group,
                      join.delivery.position, exc)
            await join.delivery.nak(5.0)
            return
        await join.delivery.ack()

    async def _beat(self) -> None:
        """Keep the messages sensors still hold from being redelivered (one task for every sensor)."""
        interval = max(self.settings.ack_wait / 3, 0.2)
        while True:
            await asyncio.sleep(interval)
            for join in list(self.open):
                try:
                    await join.delivery.in_progress()
                except Exception as exc:  # a lost heartbeat only risks a redelivery
                    log.debug("in_progress failed for %s: %s", join.delivery.position, exc)

    def unsettled(self) -> Mapping[str, int]:
        return {name: len(inbox) for name, inbox in self.inboxes.items()}

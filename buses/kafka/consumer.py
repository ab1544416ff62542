"""Kafka consumer group behind the bus seam (transport only): records in, `Delivery` out, settled records
turned into manual offset commits. The committed offset of a partition never passes an unsettled record.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Any

import msgspec
from aiokafka import TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.errors import KafkaError

from sensorium.buses.base import Consumer, ConsumerSpec, Delivery, EventKey, Mark
from sensorium.engine.core.cloudevent import DecodeError, decode_binary, encode_structured
from sensorium.engine.core.errors import BusError
from sensorium.engine.core.kafkaclient import describe

log = logging.getLogger("buses.kafka.bus")

COMMIT_INTERVAL = 0.15  # seconds between commit flushes: acks are batched, never one round trip each
SETTLE_TIMEOUT = 5.0  # bound on the final commit at rebalance and close


async def quietly(step: Awaitable[Any], timeout: float) -> None:
    """Run a client shutdown step, bounded in time; its errors (including a CancelledError that aiokafka lets
    escape from its own cancelled tasks when a broker is away) are swallowed unless we are being cancelled."""
    try:
        await asyncio.wait_for(step, timeout)
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise
    except Exception as exc:
        log.debug("kafka: shutdown step failed: %r", exc)


class PartitionOffsets:
    """Offsets of one assigned partition: which delivered records are unsettled and what may be committed."""

    def __init__(self, tp: TopicPartition) -> None:
        self.tp = tp
        self.alive = True  # False once revoked or closed: late settlements are ignored
        self.inflight: set[int] = set()
        self.next: int | None = None  # offset after the highest record seen (delivered or skipped)
        self.committed: int | None = None

    def seen(self, offset: int, deliver: bool) -> None:
        if deliver:
            self.inflight.add(offset)
        self.next = offset + 1 if self.next is None else max(self.next, offset + 1)

    def settle(self, offset: int) -> None:
        self.inflight.discard(offset)

    def committable(self) -> int | None:
        """The offset to commit now (lowest unsettled offset, else the next one), or None if nothing new."""
        target = min(self.inflight) if self.inflight else self.next
        if target is None or (self.committed is not None and target <= self.committed):
            return None
        return target


class KafkaDelivery(Delivery):
    def __init__(self, owner: KafkaGroupConsumer, part: PartitionOffsets, record: Any, body: bytes,
                 headers: Mapping[str, str]) -> None:
        key = "" if record.key is None else bytes(record.key).decode("utf-8", "replace")
        super().__init__(body, headers, f"{record.topic}[{record.partition}]@{record.offset}",
                         {"key": key, "topic": record.topic, "partition": str(record.partition),
                          "offset": str(record.offset)})
        self._owner, self._part, self.record = owner, part, record
        self.order = int(record.timestamp)

    def published_before(self, mark: Mark) -> bool:
        if isinstance(mark, dict):  # offsets (`KafkaGroupConsumer.head`): no producer's clock matters
            return bool(self.record.offset < mark.get(self.origin["partition"], 0))
        return super().published_before(mark)  # a record timestamp: a mark stored before 2026-12-06

    async def _ack(self) -> None:
        self._owner.settled(self._part, self.record.offset)

    async def _nak(self, delay: float) -> None:
        self._owner.redeliver(self._part, self, delay)


def record_headers(record: Any) -> dict[str, str]:
    return {k: (v or b"").decode("utf-8", "replace") for k, v in (record.headers or ())}


def record_keys(record: Any, headers: Mapping[str, str]) -> list[str]:
    """The event keys a record answers to: its record key (Argo's `<eventSourceName>.<eventName>`) and, for
    binary-mode CloudEvents, `<ce_source>.<ce_subject>`; a keyless structured record is read for its
    `source` and `subject`."""
    keys = [] if record.key is None else [bytes(record.key).decode("utf-8", "replace")]
    if "ce_source" in headers:
        keys.append(f"{headers['ce_source']}.{headers.get('ce_subject', '')}")
    elif record.key is None:
        with contextlib.suppress(msgspec.DecodeError, RecursionError):  # not a CloudEvent: the runner says why
            where = _ROUTING.decode(record.value or b"")
            keys.append(f"{where.source}.{where.subject}")
    return keys


class _Routing(msgspec.Struct):
    """The members of a keyless structured record that route it (msgspec: C, bounded nesting, no traceback)."""

    source: str
    subject: str = ""


_ROUTING = msgspec.json.Decoder(_Routing)


def structured_body(record: Any, headers: Mapping[str, str]) -> bytes:
    """Binary-mode CloudEvents (`ce_*` headers) become structured-mode JSON; anything else is passed as is."""
    value = bytes(record.value or b"")
    if "ce_specversion" not in headers:
        return value
    try:
        return encode_structured(decode_binary(headers, value))
    except DecodeError:
        return value


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, owner: KafkaGroupConsumer) -> None:
        self.owner = owner

    async def on_partitions_revoked(self, revoked: Iterable[TopicPartition]) -> None:
        await self.owner.revoked(set(revoked))

    async def on_partitions_assigned(self, assigned: Iterable[TopicPartition]) -> None:
        self.owner.assigned(set(assigned))


class KafkaGroupConsumer(Consumer):
    """One member of a consumer group on the bus topic; only records with one of `spec.keys` are delivered,
    the others are counted as settled at once (they belong to other sensors)."""

    def __init__(self, consumer: Any, spec: ConsumerSpec, where: str, traffic: Callable[[], None]) -> None:
        self.consumer, self.spec, self.where, self.traffic = consumer, spec, where, traffic
        self.keys = {k.dotted() for k in spec.keys}
        self.listener = _Listener(self)
        self.parts: dict[TopicPartition, PartitionOffsets] = {}
        self.pending: list[tuple[float, PartitionOffsets, KafkaDelivery]] = []  # nak'd, due at monotonic time
        self._committer: asyncio.Task[None] | None = None
        self._closed = False
        self._last_error = ""

    # -- lifecycle -------------------------------------------------------------------------------------------
    async def pin_positions(self, timeout: float, start_after: Mark | None = None) -> None:
        """Fix the position of every assigned partition; a new group stores it at once so that a restart
        resumes there, never at a later "latest". With `start_after` (offsets by partition, `Bus.
        consumer_positions`) a new group's partitions start at those offsets (one it does not name: at the end)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                fresh: dict[TopicPartition, int] = {}
                for tp in self.consumer.assignment():
                    if await self.consumer.committed(tp) is not None:
                        continue
                    if isinstance(start_after, dict) and str(tp.partition) in start_after:
                        self.consumer.seek(tp, start_after[str(tp.partition)])
                    elif start_after is not None:
                        await self.consumer.seek_to_end(tp)
                    fresh[tp] = await self.consumer.position(tp)
                if fresh:
                    await self.consumer.commit(fresh)
                    for tp, offset in fresh.items():
                        self._part(tp).committed = offset
                break
            except KafkaError as exc:  # a rebalance started meanwhile: try again on the new assignment
                if time.monotonic() > deadline:
                    raise
                log.debug("kafka %s: pinning positions again after %r", self.where, exc)
                await asyncio.sleep(0.1)
        self._committer = asyncio.create_task(self._commit_loop())

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._committer is not None:
            self._committer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._committer
        await quietly(self.flush(), SETTLE_TIMEOUT)
        for part in self.parts.values():
            part.alive = False
        self.parts.clear()
        self.pending.clear()
        await quietly(self.consumer.stop(), SETTLE_TIMEOUT)

    async def retarget(self, keys: Sequence[EventKey]) -> None:
        """Deliver the records of `keys` from now on (records are filtered here, the group is unchanged)."""
        self.spec = replace(self.spec, keys=tuple(keys))
        self.keys = {k.dotted() for k in keys}

    async def head(self) -> dict[str, int]:
        """The next offset of every partition of the topic (`Mark`): a record is new to a sensor marked here
        when its offset is at or past its partition's, and every record of a partition added later is. Offsets,
        not timestamps: a producer whose clock is behind still reaches a sensor that appeared meanwhile."""
        try:
            parts = [TopicPartition(topic, p) for topic in sorted(self.consumer.subscription())
                     for p in sorted(self.consumer.partitions_for_topic(topic) or ())]
            if not parts:
                raise BusError(f"kafka {self.where}: the partitions of the topic are not known yet")
            ends = await self.consumer.end_offsets(parts)
        except KafkaError as exc:
            raise BusError(f"kafka {self.where}: where the topic ends is not known: {describe(exc)}") from None
        return {str(tp.partition): int(offset) for tp, offset in ends.items()}

    # -- rebalance -------------------------------------------------------------------------------------------
    def assigned(self, tps: set[TopicPartition]) -> None:
        for tp in tps:
            self._part(tp)

    async def revoked(self, tps: set[TopicPartition]) -> None:
        """Commit what is settled, then forget the partitions: unsettled records go to their next owner."""
        with contextlib.suppress(KafkaError, asyncio.TimeoutError):
            await asyncio.wait_for(self.flush(tps), SETTLE_TIMEOUT)
        for tp in tps:
            part = self.parts.pop(tp, None)
            if part is not None:
                part.alive = False
        self.pending = [p for p in self.pending if p[1].alive]

    def _part(self, tp: TopicPartition) -> PartitionOffsets:
        part = self.parts.get(tp)
        if part is None:
            part = self.parts[tp] = PartitionOffsets(tp)
        return part

    # -- settlement ------------------------------------------------------------------------------------------
    def settled(self, part: PartitionOffsets, offset: int) -> None:
        if part.alive:
            part.settle(offset)

    def redeliver(self, part: PartitionOffsets, delivery: KafkaDelivery, delay: float) -> None:
        """A nak keeps the offset unsettled (so no commit passes it) and hands the record out again after
        `delay`; later records of the partition are not replayed."""
        if part.alive and not self._closed:
            again = KafkaDelivery(self, part, delivery.record, delivery.body, delivery.headers)
            self.pending.append((time.monotonic() + max(0.0, delay), part, again))

    async def flush(self, only: set[TopicPartition] | None = None) -> None:
        assignment = self.consumer.assignment()
        offsets = {tp: c for tp, part in self.parts.items()
                   if (only is None or tp in only) and tp in assignment
                   and (c := part.committable()) is not None}
        if not offsets:
            return
        await self.consumer.commit(offsets)
        for tp, offset in offsets.items():
            part = self.parts.get(tp)
            if part is not None:
                part.committed = max(offset, part.committed or 0)

    async def _commit_loop(self) -> None:
        while True:
            await asyncio.sleep(COMMIT_INTERVAL)
            try:
                await self.flush()
            except KafkaError as exc:  # rebalance in progress or broker away: the next flush tries again
                log.debug("kafka %s: commit deferred: %r", self.where, exc)

    # -- fetching --------------------------------------------------------------------------------------------
    def inflight(self) -> int:
        return sum(len(p.inflight) for p in self.parts.values())

    async def fetch(self, max_messages: int, timeout: float) -> list[Delivery]:
        deadline = time.monotonic() + timeout
        while not self._closed:
            now = time.monotonic()
            due = [p for p in self.pending if p[0] <= now and p[1].alive][:max_messages]
            if due:
                self.pending = [p for p in self.pending if p not in due and p[1].alive]
                return [d for _, _, d in due]
            wait = deadline - now
            if self.pending:
                wait = min(wait, min(p[0] for p in self.pending) - now)
            room = min(max_messages, self.spec.max_in_flight - self.inflight())
            self._backpressure(room <= 0)
            try:
                batches = await self.consumer.getmany(timeout_ms=max(0, int(wait * 1000)),
                                                      max_records=max(1, room))
            except KafkaError as exc:
                self._error(f"fetch failed: {exc!r}")
                await asyncio.sleep(min(1.0, max(0.0, deadline - time.monotonic())))
                batches = {}
            out = self._accept(batches)
            if out or time.monotonic() >= deadline:
                return out
        return []

    def _backpressure(self, full: bool) -> None:
        assignment = self.consumer.assignment()
        if full:
            self.consumer.pause(*assignment)
        elif self.consumer.paused():
            self.consumer.resume(*(tp for tp in self.consumer.paused() if tp in assignment))

    def _accept(self, batches: Mapping[TopicPartition, list[Any]]) -> list[Delivery]:
        out: list[Delivery] = []
        for tp, records in batches.items():
            part = self._part(tp)
            for record in records:
                headers = record_headers(record)
                wanted = any(key in self.keys for key in record_keys(record, headers))
                part.seen(record.offset, wanted)
                if wanted:
                    out.append(KafkaDelivery(self, part, record, structured_body(record, headers), headers))
        if batches:
            self._last_error = ""
            self.traffic()
        return out

    def _error(self, message: str) -> None:
        if message != self._last_error:
            self._last_error = message
            log.warning("kafka %s: %s", self.where, message)

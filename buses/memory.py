"""In-memory bus for unit tests and dry runs only (transport only; nothing survives the process).

Same semantics as the JetStream bus: a `MemoryBroker` holds the log, one shared queue per consumer name that
starts at the end of the log (DeliverNew), server-side dedup of event ids, and redelivery of a message that is
not acknowledged within `ack_wait` or is nak'ed. `MemoryBus` objects are clients of a broker; the broker also
keeps each sensor's condition-state snapshot (`states`), so a new client sees what an old one saved.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, Mapping, Sequence
from dataclasses import dataclass, field, replace

from sensorium.buses.base import (
    DEAD_LETTERS,
    Bus,
    Consumer,
    ConsumerSpec,
    Delivery,
    EventKey,
    Health,
    ReplayedDelivery,
    ReplayRange,
    ReplayReader,
    StateStore,
)
from sensorium.buses.state import DEFAULT_MAX_SNAPSHOT, SerialStateStore
from sensorium.engine.core.errors import BusError, ConfigError


@dataclass
class _Group:
    spec: ConsumerSpec
    cursor: int  # next log index to hand out
    pending: dict[int, float] = field(default_factory=dict)  # log index -> redelivery time
    deliveries: dict[int, int] = field(default_factory=dict)  # log index -> times delivered


@dataclass(frozen=True)
class _Record:
    key: EventKey
    event_id: str
    body: bytes
    stored: float = field(default_factory=time.time)  # Unix seconds, what a replay's `since`/`until` compare


class MemoryBroker:
    """The shared state several `MemoryBus` clients talk to (the in-memory stand-in for a server)."""

    def __init__(self, duplicate_window: float = 300.0, max_snapshot: int = DEFAULT_MAX_SNAPSHOT) -> None:
        self.log: list[_Record] = []
        self.dead_letters: list[tuple[str, dict[str, str], bytes]] = []  # (sensor, attributes, body)
        self.refuse_dead_letters = False  # tests: the dead-letter "subject" refuses writes
        self.states: dict[str, bytes] = {}  # sensor -> latest condition-state snapshot (b"" never stored)
        self.max_snapshot = max_snapshot
        self.groups: dict[str, _Group] = {}
        self.duplicate_window = duplicate_window
        self._seen: dict[str, float] = {}
        self._changed: asyncio.Condition | None = None

    @property
    def changed(self) -> asyncio.Condition:
        if self._changed is None:
            self._changed = asyncio.Condition()
        return self._changed

    async def notify(self) -> None:
        async with self.changed:
            self.changed.notify_all()

    def store(self, record: _Record) -> None:
        now = time.monotonic()
        seen = self._seen.get(record.event_id)
        if seen is not None and now - seen < self.duplicate_window:
            return
        self._seen[record.event_id] = now
        self.log.append(record)

    def group(self, spec: ConsumerSpec) -> _Group:
        group = self.groups.get(spec.name)
        if group is None:
            group = self.groups[spec.name] = _Group(spec=spec, cursor=len(self.log))
        else:
            group.spec = spec  # like a durable's config update: new filters and limits, same position
        return group

    def take(self, group: _Group, limit: int) -> list[int]:
        """Log indexes to deliver now: due redeliveries first, then new matching records, in log order."""
        now = time.monotonic()
        keys = set(group.spec.keys)
        due = sorted(i for i, t in group.pending.items() if t <= now)[:limit]
        room = max(0, group.spec.max_in_flight - (len(group.pending) - len(due)))
        out = due[:room]
        while len(out) < min(limit, room) and group.cursor < len(self.log):
            if self.log[group.cursor].key in keys:
                out.append(group.cursor)
            group.cursor += 1
        for i in out:
            group.pending[i] = now + group.spec.ack_wait
            group.deliveries[i] = group.deliveries.get(i, 0) + 1
        return out

    def next_due(self, group: _Group) -> float | None:
        return min(group.pending.values(), default=None)


class MemoryDelivery(Delivery):
    def __init__(self, broker: MemoryBroker, group: _Group, index: int) -> None:
        record = broker.log[index]
        subject = f"default.{record.key.dotted()}"
        super().__init__(record.body, {"Nats-Msg-Id": record.event_id}, f"{subject} seq {index + 1}",
                         {"subject": subject, "stream": "default", "sequence": str(index + 1)})
        self._broker, self._group, self._index = broker, group, index
        self.delivery_count = group.deliveries.get(index, 1)
        self.order = index + 1

    async def _ack(self) -> None:
        self._group.pending.pop(self._index, None)

    async def _nak(self, delay: float) -> None:
        if self._index in self._group.pending:
            self._group.pending[self._index] = time.monotonic() + max(0.0, delay)
            await self._broker.notify()

    async def _in_progress(self) -> None:
        if self._index in self._group.pending:
            self._group.pending[self._index] = time.monotonic() + self._group.spec.ack_wait


class MemoryConsumer(Consumer):
    def __init__(self, bus: MemoryBus, group: _Group) -> None:
        self._bus, self._group = bus, group
        self._closed = False

    async def fetch(self, max_messages: int, timeout: float) -> list[Delivery]:
        broker = self._bus.broker
        deadline = time.monotonic() + timeout
        while True:
            if self._closed or self._bus.health is Health.CLOSED:
                raise BusError(f"consumer {self._group.spec.name} on {self._bus.url} is closed")
            taken = broker.take(self._group, max(1, max_messages))
            if taken:
                return [MemoryDelivery(broker, self._group, i) for i in taken]
            now = time.monotonic()
            if now >= deadline:
                return []
            due = broker.next_due(self._group)
            wait = min(deadline, due if due is not None else deadline) - now
            async with broker.changed:
                try:
                    await asyncio.wait_for(broker.changed.wait(), max(0.001, wait))
                except TimeoutError:
                    pass

    async def retarget(self, keys: Sequence[EventKey]) -> None:
        self._group.spec = replace(self._group.spec, keys=tuple(keys))

    async def head(self) -> int:
        return len(self._bus.broker.log)

    async def close(self) -> None:
        self._closed = True


class MemoryReplayReader(ReplayReader):
    """The log's records of `keys` in `span`, as the JetStream reader reads a stream (sequence = index + 1);
    the log keeps everything, so no range is past retention."""

    def __init__(self, broker: MemoryBroker, keys: Sequence[EventKey], span: ReplayRange) -> None:
        if span.offsets is not None:
            raise ConfigError("--from-offset is for a Kafka bus; the memory bus counts stream sequences "
                              "(--from-sequence)")
        self._broker, self._keys, self._span = broker, set(keys), span
        self._end = len(broker.log)  # records stored later are not read
        self._start = max(0, (span.sequence or 1) - 1)
        self._last: int | None = None
        self.total = sum(1 for r in broker.log[self._start:self._end] if r.key in self._keys)

    async def __aiter__(self) -> AsyncGenerator[ReplayedDelivery, None]:
        for index in range(self._start, self._end):
            record = self._broker.log[index]
            if self._span.until is not None and record.stored > self._span.until:
                return
            if record.key not in self._keys or (self._span.since is not None and record.stored < self._span.since):
                continue
            subject = f"default.{record.key.dotted()}"
            self._last = index + 1
            self.scanned += 1
            yield ReplayedDelivery(record.body, {"Nats-Msg-Id": record.event_id}, f"{subject} seq {index + 1}",
                                   {"subject": subject, "stream": "default", "sequence": str(index + 1)},
                                   record.stored)

    def resume(self) -> str | None:
        return None if self._last is None else f"--from-sequence {self._last + 1}"

    async def close(self) -> None:
        return None


class MemoryStateStore(SerialStateStore):
    def __init__(self, bus: MemoryBus, sensor: str) -> None:
        super().__init__(sensor, bus.broker.max_snapshot, f"{bus.url} state of {sensor!r}")
        self._bus = bus

    async def _load(self) -> bytes | None:
        self._bus._check()
        return self._bus.broker.states.get(self.sensor)

    async def _save(self, snapshot: bytes) -> None:
        self._bus._check()
        if snapshot:
            self._bus.broker.states[self.sensor] = snapshot
        else:
            self._bus.broker.states.pop(self.sensor, None)


class MemoryBus(Bus):
    """A client of `broker` (a fresh private broker when none is given)."""

    keeps_delivered = True  # (the broker keeps every record, for replays; it has no trace channel to read them)

    def __init__(self, broker: MemoryBroker | None = None, url: str = "memory://") -> None:
        self.broker = broker if broker is not None else MemoryBroker()
        self.url = url
        self.health = Health.CONNECTING

    async def start(self) -> None:
        if self.health is Health.CLOSED:
            raise BusError(f"bus {self.url} is closed")
        self.health = Health.CONNECTED

    def _check(self) -> None:
        if self.health is not Health.CONNECTED:
            raise BusError(f"bus {self.url} is {self.health.value}")

    async def publish(self, key: EventKey, event_id: str, body: bytes) -> None:
        await self.publish_many([(key, event_id, body)])

    async def publish_many(self, items: Sequence[tuple[EventKey, str, bytes]]) -> None:
        self._check()
        for key, event_id, body in items:
            self.broker.store(_Record(key, event_id, bytes(body)))
        await self.broker.notify()

    async def publish_dead_letter(self, sensor: str, attributes: Mapping[str, str], body: bytes) -> None:
        """Kept in the broker's `dead_letters`, deduplicated by `id` like JetStream."""
        self._check()
        if self.broker.refuse_dead_letters:
            raise BusError(f"dead letter to {DEAD_LETTERS} on {self.url} not stored: refused")
        if all(a.get("id") != attributes.get("id") for _, a, _ in self.broker.dead_letters):
            self.broker.dead_letters.append((sensor, dict(attributes), bytes(body)))

    async def consumer(self, spec: ConsumerSpec) -> Consumer:
        self._check()
        if not spec.keys:
            raise BusError(f"consumer {spec.name!r} has no event keys")
        return MemoryConsumer(self, self.broker.group(spec))

    async def state_store(self, sensor: str) -> StateStore:
        """A store in the broker's `states`: shared by every client of the broker (a "restart" keeps it)."""
        self._check()
        return MemoryStateStore(self, sensor)

    async def replay_reader(self, keys: Sequence[EventKey], span: ReplayRange, label: str = "") -> ReplayReader:
        self._check()
        return MemoryReplayReader(self.broker, keys, span)

    async def close(self) -> None:
        self.health = Health.CLOSED
        await self.broker.notify()

"""The transport seam: what every bus offers the engine (transport only, no sensor logic).

A bus publishes raw CloudEvent bytes under an event key `(eventSourceName, eventName)` and hands a consumer
group batches of `Delivery` objects. The bus never decides when to acknowledge: the engine's runner settles each
delivery after every firing it caused has finished.
"""

from __future__ import annotations

import abc
from collections.abc import AsyncGenerator, AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum

from sensorium.engine.core.errors import BusError


@dataclass(frozen=True)
class EventKey:
    """Where an event lives on the bus: Argo's `<eventSourceName>.<eventName>`."""

    source: str
    name: str

    def dotted(self) -> str:
        return f"{self.source}.{self.name}"


DEAD_LETTERS = "sensorium-dlq"
DEAD_LETTER_HEADROOM = 16 * 1024  # bytes kept free for a dead letter's headers within a message size limit


def fit_dead_letter(attributes: Mapping[str, str], body: bytes, limit: int) -> tuple[dict[str, str], bytes]:
    """`attributes` and `body` such that the body leaves DEAD_LETTER_HEADROOM bytes of a `limit`-byte message for
    the headers: a longer body is cut, and the attribute `dlqtruncated` gives its original length."""
    room = max(0, limit - DEAD_LETTER_HEADROOM)
    if len(body) <= room:
        return dict(attributes), body
    return {**attributes, "dlqtruncated": str(len(body))}, body[:room]


class Health(Enum):
    CONNECTING = "connecting"
    CONNECTED = "connected"
    DISCONNECTED = "disconnected"
    CLOSED = "closed"


Mark = int | dict[str, int]
"""Where the bus is (`Consumer.head()`), kept durably for each sensor the intake starts: an order
(`Delivery.order`: the JetStream stream sequence, the memory log index; a Kafka record timestamp in marks that
engines stored before the change of 2026-12-06) or, on a bus ordered per partition (Kafka), the next offset of
each partition, by its number."""


class Delivery(abc.ABC):
    """One message handed to a consumer. Settlement is idempotent: the first ack/nak wins, later calls are no-ops.

    `position` names the message for logs and traces: `"<subject> seq <n>"` or `"<topic>[<partition>]@<offset>"`.
    `origin` is the same place as fields, for dead letters: JetStream `subject`, `stream`, `sequence`; Kafka `key`,
    `topic`, `partition`, `offset` (all strings).
    """

    body: bytes
    headers: Mapping[str, str]
    position: str
    origin: Mapping[str, str]
    # Grows with the time of publication: the JetStream stream sequence, the Kafka record timestamp (ms), the
    # memory log index. 0 when the bus does not say.
    order: int = 0

    def __init__(self, body: bytes, headers: Mapping[str, str], position: str,
                 origin: Mapping[str, str] | None = None) -> None:
        self.body, self.headers, self.position = body, headers, position
        self.origin = origin if origin is not None else {}
        self._settled = False

    @property
    def settled(self) -> bool:
        return self._settled

    def published_before(self, mark: Mark) -> bool:
        """Whether the message was on the bus when `mark` was taken (`Consumer.head()`): a sensor that appeared
        there does not get it. False when the bus cannot say (at least once)."""
        return isinstance(mark, int) and 0 < self.order <= mark

    async def ack(self) -> None:
        """The message and everything it caused are done; never deliver it again."""
        if not self._settled:
            self._settled = True
            await self._ack()

    async def nak(self, delay: float = 0.0) -> None:
        """Processing could not finish (e.g. shutdown); deliver again, after `delay` seconds if the bus can."""
        if not self._settled:
            self._settled = True
            await self._nak(delay)

    async def in_progress(self) -> None:
        """Still working: extend the redelivery deadline. Buses without one do nothing."""
        if not self._settled:
            await self._in_progress()

    @abc.abstractmethod
    async def _ack(self) -> None: ...

    @abc.abstractmethod
    async def _nak(self, delay: float) -> None: ...

    async def _in_progress(self) -> None:
        return None


@dataclass(frozen=True)
class ConsumerSpec:
    """A durable consumer group. `name` is stable across restarts (derived from the sensor name), so a restarted
    engine resumes where it stopped and two engines with the same name share the work."""

    name: str
    keys: Sequence[EventKey]
    # Seconds the bus waits for a settlement before redelivering; the runner sends in_progress well before it.
    ack_wait: float = 30.0
    max_in_flight: int = 1000
    extra: Mapping[str, str] = field(default_factory=dict)
    # A consumer created by this call starts after this `Mark` (one `Bus.consumer_positions` gave) instead of at
    # new messages (an existing one keeps its position): JetStream after a stream sequence, Kafka at each
    # partition's offset (a partition it does not name: at its end). The memory bus ignores it.
    start_after: Mark | None = None


class Consumer(abc.ABC):
    @abc.abstractmethod
    async def fetch(self, max_messages: int, timeout: float) -> list[Delivery]:
        """Up to `max_messages` deliveries, waiting at most `timeout` seconds for the first; [] on timeout.
        Raises BusError only for unrecoverable problems; transient disconnects are retried inside."""

    async def retarget(self, keys: Sequence[EventKey]) -> None:
        """Deliver the events of `keys` from now on, keeping the durable position (a reload added or removed
        sensors). Raises BusError."""
        raise BusError(f"{type(self).__name__} cannot change its event keys")

    async def head(self) -> Mark:
        """Where the bus is now: no message published after this call is `Delivery.published_before` it.
        Raises BusError."""
        raise BusError(f"{type(self).__name__} cannot say where the bus is")

    @abc.abstractmethod
    async def close(self) -> None: ...


class StateStore(abc.ABC):
    """One sensor's durable condition state on the bus: the latest snapshot, opaque bytes (the engine's JSON).

    Saves are applied in call order and the last one wins. `save(b"")` clears the state: `load()` then returns
    None again. A store belongs to the bus that made it and stops working when that bus is closed.
    """

    sensor: str
    # The largest snapshot `save` accepts, in bytes (the bus's message size limit, 1 MiB by default).
    max_size: int

    @abc.abstractmethod
    async def load(self) -> bytes | None:
        """The latest saved snapshot for this sensor, None if never saved (or cleared). Sees every save that
        returned before the call, from any client of the same bus. Raises BusError if the bus cannot answer."""

    @abc.abstractmethod
    async def save(self, snapshot: bytes) -> None:
        """Replace the snapshot; returns only once the bus has durably stored it. Raises BusError otherwise,
        including for a snapshot larger than `max_size` (the message names both sizes)."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Release this store's resources; the saved state stays on the bus."""


class TraceChannel(abc.ABC):
    """Where a running engine publishes its trace records on the bus (`Bus.trace_channel`), apart from events.

    Each body is one batch of JSON Lines of one sensor's records; the channel keeps them for about an hour."""

    @abc.abstractmethod
    async def publish(self, bodies: Sequence[tuple[str, bytes]]) -> None:
        """Store each `(sensor, body)`; raises on failure (the engine's trace writer counts and logs it)."""

    @abc.abstractmethod
    async def close(self) -> None: ...


class StoredEvents(abc.ABC):
    """Events stored on the bus, looked up by the position a delivery of them had (`Delivery.position`:
    `<subject> seq <n>` on JetStream, `<topic>[<partition>]@<offset>` on Kafka); `Bus.stored_events`. The trace's
    readers use it: a `Routine` record does not copy its event's data, it names where the event is stored."""

    @abc.abstractmethod
    async def get(self, positions: Sequence[str]) -> dict[str, tuple[bytes, dict[str, str]]]:
        """The body and headers, as a delivery has them, of each of `positions` still stored (one that is not, or
        that is no position on this bus, is left out). Raises BusError when the bus cannot be read."""

    @abc.abstractmethod
    async def close(self) -> None: ...


@dataclass(frozen=True)
class ReplayRange:
    """Which stored events a replay reads (`Bus.replay_reader`). The start is exactly one of `since` (Unix
    seconds: the first event stored at or after it), `sequence` (a JetStream stream sequence) or `offsets`
    (Kafka: partition -> first offset; the key `ALL_PARTITIONS` gives every partition the same offset); none of
    them starts at the oldest retained event. `until` (Unix seconds) ends it: no event stored after it is read.
    Events stored after the reader was opened are never read, so a replay ends."""

    since: float | None = None
    sequence: int | None = None
    offsets: Mapping[int, int] | None = None
    until: float | None = None


ALL_PARTITIONS = -1


class ReplayedDelivery(Delivery):
    """A stored message read again by a replay. Nothing is acknowledged: settling it does nothing, and no live
    consumer's position moves. `stored_at` is when the bus stored it (Unix seconds)."""

    def __init__(self, body: bytes, headers: Mapping[str, str], position: str, origin: Mapping[str, str],
                 stored_at: float) -> None:
        super().__init__(body, headers, position, origin)
        self.stored_at = stored_at

    async def _ack(self) -> None:
        return None

    async def _nak(self, delay: float) -> None:
        return None


class ReplayReader(abc.ABC):
    """A temporary reader of one range of stored events, apart from every consumer group: nothing it does is
    committed or acknowledged. Iterate it for the messages of the reader's keys, oldest first (per partition on
    Kafka); `close()` removes whatever it created on the bus (a JetStream ephemeral consumer) and must be called.
    `total` is how many messages the range holds as far as the bus could tell when the reader was opened (an
    upper bound: JetStream counts the keys' messages up to the stream's end, Kafka every record of the
    partitions read); `scanned` how many of those it has gone through so far (Kafka: records of other keys
    included), for progress; `resume()` the start flag that continues after the last message handed out."""

    total: int = 0
    scanned: int = 0

    @abc.abstractmethod
    def __aiter__(self) -> AsyncGenerator[ReplayedDelivery, None]: ...

    @abc.abstractmethod
    def resume(self) -> str | None:
        """e.g. `--from-sequence 43` or `--from-offset 0:12,2:7`; None before the first message."""

    @abc.abstractmethod
    async def close(self) -> None: ...


class Bus(abc.ABC):
    """A connected event bus. `url` is printable (no credentials)."""

    url: str
    health: Health = Health.CONNECTING

    @abc.abstractmethod
    async def start(self) -> None:
        """Connect and make sure the stream/topic exists. Raises BusError naming the server and the cause."""

    @abc.abstractmethod
    async def publish(self, key: EventKey, event_id: str, body: bytes) -> None:
        """Store one structured-mode CloudEvent; returns only once the bus has stored it (raises BusError if not).
        Concurrent calls are pipelined: no call waits for another's round trip."""

    async def publish_many(self, items: Sequence[tuple[EventKey, str, bytes]]) -> None:
        """Store many events, pipelined; raises BusError if any was not stored."""
        import asyncio

        await asyncio.gather(*(self.publish(k, i, b) for k, i, b in items))

    @abc.abstractmethod
    async def publish_dead_letter(self, sensor: str, attributes: Mapping[str, str], body: bytes) -> None:
        """Store one dead letter (a message `sensor` could not decode or process) on the bus's dead-letter
        subject/topic, DEAD_LETTERS (`sensorium-dlq`), created if missing with bounded retention. It is a
        binary-mode CloudEvent: `attributes` (core and extension attribute names, one-line values) become the
        message's CloudEvents headers and `body`, the original message bytes, its data. A body that with its
        headers would exceed the bus's message size limit is cut to fit (see `fit_dead_letter`). Publishing the
        same attributes' `id` twice may store it once (JetStream dedup). Returns only once stored; raises
        BusError otherwise."""

    @abc.abstractmethod
    async def consumer(self, spec: ConsumerSpec) -> Consumer:
        """Create or resume a durable consumer. When this returns the consumer's position is fixed: every event
        published afterwards will be delivered to it."""

    async def consumer_positions(self, names: Sequence[str]) -> dict[str, Mark]:
        """Those of the durable consumers (JetStream) or consumer groups (Kafka) `names` that exist, each with
        its acknowledgement floor as a `Mark` (what it acknowledged everything before: JetStream a stream sequence,
        Kafka each partition's committed offset). What the shared intake adopts from the per-sensor consumers of
        an earlier version. Empty where the bus cannot say (memory)."""
        return {}

    async def delete_consumer(self, name: str) -> None:
        """Remove the durable consumer `name` (a no-op where there is none, or the bus has no such thing)."""
        return None

    @abc.abstractmethod
    async def state_store(self, sensor: str) -> StateStore:
        """The durable condition-state store of `sensor` (created on the bus if missing: a JetStream KV bucket,
        a compacted Kafka topic). Raises BusError naming the bus and the cause."""

    async def replay_reader(self, keys: Sequence[EventKey], span: ReplayRange, label: str = "") -> ReplayReader:
        """A `ReplayReader` of the stored events of `keys` in `span` (`label`, e.g. the sensor's name, names what
        the reader creates on the bus, for operators). Raises ConfigError (one plain sentence) for a
        start this bus does not have (`sequence` on Kafka, `offsets` on JetStream) or one past retention (naming
        the oldest event retained), BusError if the bus cannot answer."""
        raise BusError(f"bus {self.url} cannot replay stored events")

    def trace_channel(self) -> TraceChannel | None:
        """The channel trace records are published on; None for a bus without one (the memory bus)."""
        return None

    keeps_delivered = False
    """Whether an event stays stored once its deliveries were acknowledged (within the bus's limits), for
    `stored_events` to find later: JetStream with the limits retention (Argo's default), Kafka, memory. False
    where it is gone once acknowledged (JetStream's interest or work-queue retention); a trace then copies what
    it would have looked up (`engine.trace.steps.routine_rows`)."""

    def stored_events(self) -> StoredEvents | None:
        """A reader of the events stored on this bus by position, connecting on first use (needs no `start()`);
        None where the bus keeps no events to look up (memory)."""
        return None

    def read_trace(self, sensor: str | None, start: float | None, follow: bool,
                   idle: float) -> AsyncIterator[bytes]:
        """The trace bodies on this bus (oldest first; `sensor` narrows them where the bus can, `start` is a Unix
        time, None for all retained). Without `follow` it stops once caught up; with it, it waits for new bodies
        until cancelled. Needs no `start()`: it opens a connection of its own. Raises BusError."""
        raise BusError(f"bus {self.url} has no trace channel")

    @abc.abstractmethod
    async def close(self) -> None: ...

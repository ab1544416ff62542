"""Replaying stored events from the JetStream stream: an ephemeral pull consumer of its own (no acknowledgements,
filtered on the keys' subjects, delivering by start time or sequence), deleted when the reader closes. A durable
consumer is never touched, so a live sensor keeps its position."""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncGenerator, Sequence
from datetime import UTC, datetime

from nats.errors import Error as NatsError
from nats.errors import TimeoutError as NatsTimeout
from nats.js import JetStreamContext, api
from nats.js.errors import NotFoundError

from sensorium.buses.base import EventKey, ReplayedDelivery, ReplayRange, ReplayReader
from sensorium.buses.jetstream.connection import JetStreamConnection, describe
from sensorium.buses.jetstream.stream import STREAM, subject_for
from sensorium.engine.core.errors import BusError, ConfigError

FETCH = 256
FETCH_TIMEOUT = 2.0
INACTIVE = 120.0  # seconds after which the server removes the consumer of a reader that died without closing


def when(at: float | datetime) -> str:
    """A time for messages: RFC 3339 UTC, seconds."""
    moment = at if isinstance(at, datetime) else datetime.fromtimestamp(at, UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


async def _oldest(js: JetStreamContext, first_seq: int) -> str:
    """`sequence N (stored T)` of the oldest retained message of the stream."""
    try:
        msg = await js.get_msg(STREAM, seq=first_seq, next=True)
    except (NatsError, NotFoundError):
        return f"sequence {first_seq}"
    stored = f" (stored {when(msg.time)})" if msg.time is not None else ""
    return f"sequence {msg.seq or first_seq}{stored}"


async def check_retention(js: JetStreamContext, span: ReplayRange) -> api.StreamInfo:
    """The stream's info, after refusing a start the stream no longer holds: a sequence below its first one, or
    a time before its oldest message when older ones were removed (first sequence above 1)."""
    if span.offsets is not None:
        raise ConfigError("--from-offset is for a Kafka bus; on JetStream start with --from-sequence N "
                          "(a stream sequence) or a time")
    info = await js.stream_info(STREAM)
    state = info.state
    removed = state.first_seq > 1
    if span.sequence is not None and span.sequence < state.first_seq and removed:
        oldest = await _oldest(js, state.first_seq)
        raise ConfigError(f"--from-sequence {span.sequence} is past the retention of stream '{STREAM}': the "
                          f"oldest event retained is {oldest}")
    if span.sequence is not None and span.sequence > state.last_seq:
        raise ConfigError(f"--from-sequence {span.sequence} is beyond the end of stream '{STREAM}' (its last "
                          f"sequence is {state.last_seq}): nothing to replay")
    if span.since is not None and removed and state.messages:
        msg = await js.get_msg(STREAM, seq=state.first_seq, next=True)
        if msg.time is not None and span.since < msg.time.timestamp():
            raise ConfigError(f"the range starts at {when(span.since)}, past the retention of stream '{STREAM}': "
                              f"the oldest event retained is sequence {msg.seq} (stored {when(msg.time)}); "
                              f"start at --from-time {when(msg.time)} or later")
    return info


class JetStreamReplay(ReplayReader):
    """Open with `open()`; iterate; `close()` deletes the consumer."""

    def __init__(self, connection: JetStreamConnection, keys: Sequence[EventKey], span: ReplayRange,
                 label: str = "") -> None:
        self._connection, self._span = connection, span
        self.subjects = sorted({subject_for(k) for k in keys})
        tag = "".join(c if c.isalnum() or c in "-_" else "_" for c in label)[:60]
        self.name = f"sensorium-replay-{tag + '-' if tag else ''}{os.urandom(4).hex()}"
        self._end = 0
        self._last: int | None = None
        self._psub: JetStreamContext.PullSubscription | None = None
        self._created = False

    async def open(self) -> None:
        js = self._connection.js
        try:
            info = await check_retention(js, self._span)
            self._end = info.state.last_seq
            config = api.ConsumerConfig(
                name=self.name, ack_policy=api.AckPolicy.NONE, filter_subjects=self.subjects,
                inactive_threshold=INACTIVE, mem_storage=True, num_replicas=1,
                deliver_policy=api.DeliverPolicy.ALL, replay_policy=api.ReplayPolicy.INSTANT)
            if self._span.sequence is not None:
                config.deliver_policy = api.DeliverPolicy.BY_START_SEQUENCE
                config.opt_start_seq = self._span.sequence
            elif self._span.since is not None:
                config.deliver_policy = api.DeliverPolicy.BY_START_TIME
                config.opt_start_time = datetime.fromtimestamp(self._span.since, UTC)
            created = await js.add_consumer(STREAM, config)
            self._created = True
            self.total = created.num_pending or 0
            self._psub = await js.pull_subscribe_bind(consumer=self.name, stream=STREAM)
        except (NatsError, OSError, TimeoutError) as exc:
            await self.close()
            raise BusError(f"NATS at {self._connection.url}: cannot open a replay consumer: "
                           f"{self._connection.redact(describe(exc))}") from exc

    async def __aiter__(self) -> AsyncGenerator[ReplayedDelivery, None]:
        if self._psub is None or self.total == 0:
            return
        until = self._span.until
        while True:
            try:
                msgs = await self._psub.fetch(FETCH, timeout=FETCH_TIMEOUT)
            except (NatsTimeout, TimeoutError):
                return  # nothing more matches before the stream's end
            except (NatsError, OSError) as exc:
                raise BusError(f"NATS at {self._connection.url}: replay consumer {self.name}: "
                               f"{self._connection.redact(describe(exc))}") from exc
            for msg in msgs:
                meta = msg.metadata
                seq = meta.sequence.stream
                stored = meta.timestamp.timestamp()
                if seq > self._end or (until is not None and stored > until):
                    return
                self._last = seq
                self.scanned += 1
                yield ReplayedDelivery(msg.data, dict(msg.headers or {}), f"{msg.subject} seq {seq}",
                                       {"subject": msg.subject, "stream": STREAM, "sequence": str(seq)}, stored)
                if seq >= self._end or meta.num_pending == 0:
                    return

    def resume(self) -> str | None:
        return None if self._last is None else f"--from-sequence {self._last + 1}"

    async def close(self) -> None:
        psub, self._psub = self._psub, None
        if psub is not None:
            with contextlib.suppress(NatsError, OSError, TimeoutError):
                await psub.unsubscribe()
        if self._created and not self._connection.closed:
            self._created = False
            with contextlib.suppress(NatsError, OSError, TimeoutError):
                await self._connection.js.delete_consumer(STREAM, self.name)

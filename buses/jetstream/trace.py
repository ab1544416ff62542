"""Trace records on JetStream: subject `sensorium.trace.<sensor>` in its own stream `sensorium-trace` (1 hour,
1,000,000 messages, 256 MiB, oldest dropped first), apart from the event stream. Each message is one body of JSON
Lines. Publishing runs in the engine's trace writer task, never in the event pipeline."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime

import nats
from nats.errors import Error as NatsError
from nats.errors import TimeoutError as NatsTimeout
from nats.js import JetStreamContext, api
from nats.js.errors import NotFoundError

from sensorium.buses.base import TraceChannel
from sensorium.buses.jetstream.connection import JetStreamConnection
from sensorium.engine.core.errors import BusError

log = logging.getLogger("sensorium.trace")

TRACE_STREAM = "sensorium-trace"
TRACE_SUBJECTS = "sensorium.trace.>"
RETENTION_S = 3600.0
MAX_MESSAGES = 1_000_000
"""A writer batch is one message per sensor in it, so many sensors with a few events each make many small
messages (the benchmark's routine record, 1,122 bytes, compresses alone to 666): 1,000 sensors at an event a second
each write about 1,000 a second, which 100,000 messages (the limit until 2026-12-07) held for under two minutes. A
million lets the 256 MiB and the hour bound the history instead."""
OLD_MAX_MESSAGES = 100_000  # a stream created with it (and nothing else changed) is raised to MAX_MESSAGES
MAX_BYTES = 256 * 1024 * 1024
PIPELINE = 64  # sensors' trace messages awaiting the server's acknowledgement at a time
_BAD_TOKEN = re.compile(r"[.*>\s]")


def trace_subject(sensor: str) -> str:
    """JetStream subject of a sensor's records ('.', '*', '>' and spaces in the name become '_')."""
    return f"sensorium.trace.{_BAD_TOKEN.sub('_', sensor) or '_'}"


async def ensure_trace_stream(js: JetStreamContext) -> None:
    """Create the trace stream, or raise an existing one's message limit from the old default to MAX_MESSAGES
    (limits someone changed are theirs: left as they are)."""
    try:
        have = (await js.stream_info(TRACE_STREAM)).config
    except NotFoundError:
        await js.add_stream(api.StreamConfig(
            name=TRACE_STREAM, subjects=[TRACE_SUBJECTS], storage=api.StorageType.FILE,
            retention=api.RetentionPolicy.LIMITS, discard=api.DiscardPolicy.OLD, max_age=RETENTION_S,
            max_msgs=MAX_MESSAGES, max_bytes=MAX_BYTES, num_replicas=1))
        return
    if have.max_msgs == OLD_MAX_MESSAGES and have.max_bytes == MAX_BYTES and have.max_age == RETENTION_S:
        have.max_msgs = MAX_MESSAGES
        try:
            await js.update_stream(have)
        except (NatsError, TimeoutError) as exc:  # (no permission, say): the stream works as it is
            log.warning("trace stream %s: its message limit stays %d (raising it to %d failed: %s)", TRACE_STREAM,
                        OLD_MAX_MESSAGES, MAX_MESSAGES, exc)
            return
        log.info("trace stream %s: message limit raised from %d to %d", TRACE_STREAM, OLD_MAX_MESSAGES,
                 MAX_MESSAGES)


class JetStreamTraceChannel(TraceChannel):
    """Publishes on the bus's own connection (the stream is created on first use)."""

    def __init__(self, connection: JetStreamConnection) -> None:
        self._connection = connection
        self._ready = False

    async def publish(self, bodies: Sequence[tuple[str, bytes]]) -> None:
        js = self._connection.js
        if not self._ready:
            await ensure_trace_stream(js)
            self._ready = True
        # Sensors' bodies are stored concurrently (PIPELINE at a time: one after another, a batch of 1,000 busy
        # sensors took 1,000 round trips), each sensor's in order.
        by_sensor: dict[str, list[bytes]] = {}
        for sensor, body in bodies:
            by_sensor.setdefault(sensor, []).append(body)
        slots = asyncio.Semaphore(PIPELINE)

        async def store(sensor: str, parts: list[bytes]) -> None:
            async with slots:
                for body in parts:
                    await js.publish(trace_subject(sensor), body, timeout=5.0, stream=TRACE_STREAM)

        results = await asyncio.gather(*(store(sensor, parts) for sensor, parts in by_sensor.items()),
                                       return_exceptions=True)
        for result in results:  # every store has finished: the first failure is the batch's
            if isinstance(result, BaseException):
                raise result

    async def close(self) -> None:
        return None


async def read_trace(url: str, printable: str, sensor: str | None, start: float | None, follow: bool,
                     idle: float) -> AsyncIterator[bytes]:
    """The bodies in the trace stream on the server at `url` (`printable`: the same without credentials)."""

    async def quiet(exc: Exception) -> None:  # nats-py logs a traceback per failed attempt otherwise
        log.debug("nats %s: %r", printable, exc)

    try:
        nc = await nats.connect(url, connect_timeout=3, max_reconnect_attempts=2, allow_reconnect=follow,
                                error_cb=quiet)
    except (NatsError, OSError, TimeoutError) as exc:
        raise BusError(f"cannot reach NATS at {printable}: {exc or type(exc).__name__}") from None
    try:
        js = nc.jetstream()
        try:
            await js.stream_info(TRACE_STREAM)
        except NotFoundError:
            if not follow:
                return
            await ensure_trace_stream(js)
        config = api.ConsumerConfig(ack_policy=api.AckPolicy.NONE, inactive_threshold=60.0,
                                    deliver_policy=api.DeliverPolicy.ALL)
        if start is not None:
            config.deliver_policy = api.DeliverPolicy.BY_START_TIME
            config.opt_start_time = datetime.fromtimestamp(start, UTC)
        subject = trace_subject(sensor) if sensor else TRACE_SUBJECTS
        psub = await js.pull_subscribe(subject, stream=TRACE_STREAM, config=config)
        pending = (await psub.consumer_info()).num_pending
        if pending == 0 and not follow:
            return
        while True:
            try:
                msgs = await psub.fetch(256, timeout=idle)
            except (NatsTimeout, TimeoutError):
                if follow:
                    continue
                return
            for msg in msgs:
                yield msg.data
                if not follow and msg.metadata.num_pending == 0:
                    return
    finally:
        with contextlib.suppress(Exception):
            await nc.close()

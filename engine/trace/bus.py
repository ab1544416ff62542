"""Trace records on the bus: publishing them from a running engine and reading them back (`sensorium trace`).

JetStream: subject `sensorium.trace.<sensor>` in its own stream `sensorium-trace` (1 hour, 100,000 messages,
256 MiB, oldest dropped first), apart from the event stream. Kafka: topic `sensorium-trace` (one partition,
`retention.ms` one hour), record key = sensor name. Each message is a batch: JSON Lines, one record per line.
Publishing runs in the trace writer task, never in the event pipeline.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from typing import Any

from buses.base import Bus
from engine.busconfig import describe
from engine.core.errors import BusError
from engine.trace.records import TraceRecord, encode_chunks

log = logging.getLogger("sensorium.trace")

TRACE_STREAM = "sensorium-trace"
TRACE_SUBJECTS = "sensorium.trace.>"
KAFKA_TRACE_TOPIC = "sensorium-trace"
RETENTION_S = 3600.0
MAX_MESSAGES = 100_000
MAX_BYTES = 256 * 1024 * 1024
MAX_BODY = 512 * 1024  # bytes: half of NATS' default max payload (1 MiB)
_BAD_TOKEN = re.compile(r"[.*>\s]")


def trace_subject(sensor: str) -> str:
    """JetStream subject of a sensor's records ('.', '*', '>' and spaces in the name become '_')."""
    return f"sensorium.trace.{_BAD_TOKEN.sub('_', sensor) or '_'}"


def _bodies(batch: Sequence[TraceRecord]) -> list[tuple[str, bytes]]:
    """(sensor, JSON Lines body) pairs; a body holds at most MAX_BODY bytes (cut between records)."""
    chunks, sensors, _ = encode_chunks(batch)
    return _line_bodies(chunks, sensors)


def _line_bodies(chunks: Sequence[bytes], sensors: Sequence[str]) -> list[tuple[str, bytes]]:
    """`_bodies` of records the hub encoded already: chunks of their JSON Lines and, at the same index, the
    sensor of each chunk. A body is cut between lines (a single longer line goes alone)."""
    by_sensor: dict[str, list[bytes]] = defaultdict(list)
    for sensor, chunk in zip(sensors, chunks, strict=True):
        by_sensor[sensor].append(chunk)
    out: list[tuple[str, bytes]] = []
    for sensor, parts in by_sensor.items():
        data = b"".join(parts)
        start = 0
        while len(data) - start > MAX_BODY:
            cut = data.rfind(b"\n", start, start + MAX_BODY) + 1
            if cut <= start:  # one line longer than a body
                cut = data.find(b"\n", start + MAX_BODY) + 1 or len(data)
            out.append((sensor, data[start:cut]))
            start = cut
        if start < len(data):
            out.append((sensor, data[start:]))
    return out


class JetStreamTraceSink:
    accepts_lines = True

    def __init__(self, bus: Any) -> None:
        self.bus = bus
        self._ready = False

    async def write(self, batch: Sequence[TraceRecord]) -> None:
        await self._publish(_bodies(batch))

    async def write_lines(self, chunks: Sequence[bytes], sensors: Sequence[str]) -> None:
        await self._publish(_line_bodies(chunks, sensors))

    async def _publish(self, bodies: list[tuple[str, bytes]]) -> None:
        js = self.bus.js
        if not self._ready:
            await ensure_trace_stream(js)
            self._ready = True
        for sensor, body in bodies:
            await js.publish(trace_subject(sensor), body, timeout=5.0, stream=TRACE_STREAM)

    async def close(self) -> None:
        return None


async def ensure_trace_stream(js: Any) -> None:
    from nats.js import api
    from nats.js.errors import NotFoundError

    try:
        await js.stream_info(TRACE_STREAM)
    except NotFoundError:
        await js.add_stream(api.StreamConfig(
            name=TRACE_STREAM, subjects=[TRACE_SUBJECTS], storage=api.StorageType.FILE,
            retention=api.RetentionPolicy.LIMITS, discard=api.DiscardPolicy.OLD, max_age=RETENTION_S,
            max_msgs=MAX_MESSAGES, max_bytes=MAX_BYTES, num_replicas=1))


class KafkaTraceSink:
    """Its own producer (acks=1, lingering) so trace traffic never queues behind event publishing."""

    accepts_lines = True

    def __init__(self, options: dict[str, Any]) -> None:
        self.options = options
        self._producer: Any = None

    async def _start(self) -> Any:
        from aiokafka import AIOKafkaProducer

        if self._producer is None:
            await ensure_trace_topic(self.options)
            producer = AIOKafkaProducer(acks=1, linger_ms=20, **self.options)
            await producer.start()
            self._producer = producer
        return self._producer

    async def write(self, batch: Sequence[TraceRecord]) -> None:
        await self._send(_bodies(batch))

    async def write_lines(self, chunks: Sequence[bytes], sensors: Sequence[str]) -> None:
        await self._send(_line_bodies(chunks, sensors))

    async def _send(self, bodies: list[tuple[str, bytes]]) -> None:
        producer = await self._start()
        futures = [await producer.send(KAFKA_TRACE_TOPIC, value=body, key=sensor.encode())
                   for sensor, body in bodies]
        await asyncio.gather(*futures)

    async def close(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(producer.stop(), 10)


async def ensure_trace_topic(options: dict[str, Any]) -> None:
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    admin = AIOKafkaAdminClient(**options)
    await admin.start()
    try:
        (meta,) = await admin.describe_topics([KAFKA_TRACE_TOPIC])
        if meta["error_code"] == 0:
            return
        replicas = min(3, len((await admin.describe_cluster())["brokers"]))
        await admin.create_topics([NewTopic(KAFKA_TRACE_TOPIC, 1, max(1, replicas), topic_configs={
            "retention.ms": str(int(RETENTION_S * 1000)), "cleanup.policy": "delete"})])
        for _ in range(100):
            (meta,) = await admin.describe_topics([KAFKA_TRACE_TOPIC])
            if meta["error_code"] == 0 and all(p["leader"] >= 0 for p in meta["partitions"]):
                return
            await asyncio.sleep(0.1)
    finally:
        await admin.close()


async def _partitions(options: dict[str, Any]) -> list[int]:
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(**options)
    await admin.start()
    try:
        (meta,) = await admin.describe_topics([KAFKA_TRACE_TOPIC])
    finally:
        await admin.close()
    return sorted(p["partition"] for p in meta["partitions"]) if meta["error_code"] == 0 else []


def bus_trace_sink(bus: Bus) -> JetStreamTraceSink | KafkaTraceSink | None:
    """The sink that publishes records on `bus`; None for buses without a trace channel (memory)."""
    from buses.jetstream.bus import JetStreamBus
    from buses.kafka.bus import KafkaBus

    if isinstance(bus, JetStreamBus):
        return JetStreamTraceSink(bus)
    if isinstance(bus, KafkaBus):
        return KafkaTraceSink(bus.client_options())
    return None


# ---- reading ------------------------------------------------------------------------------------------------

def _parse(body: bytes) -> list[dict[str, Any]]:
    out = []
    for line in body.splitlines():
        try:
            value = json.loads(line)
        except ValueError:
            continue
        if isinstance(value, dict):
            out.append(value)
    return out


async def read_traces(url: str, *, sensor: str | None = None, since: float | None = None,
                      follow: bool = False, idle: float = 2.0) -> AsyncIterator[dict[str, Any]]:
    """Records on the bus at `url` (oldest first), from `since` seconds ago (None: all retained). Without
    `follow` it stops once it has caught up; with it, it waits for new records until cancelled."""
    scheme = url.split("://", 1)[0] if "://" in url else "nats"
    start = None if since is None else time.time() - since
    reader = _read_kafka if scheme == "kafka" else _read_jetstream
    async for record in reader(url, sensor, start, follow, idle):
        if sensor is None or record.get("sensor") == sensor:
            yield record


async def _read_jetstream(url: str, sensor: str | None, start: float | None, follow: bool,
                          idle: float) -> AsyncIterator[dict[str, Any]]:
    import nats
    from nats.errors import Error as NatsError
    from nats.errors import TimeoutError as NatsTimeout
    from nats.js import api
    from nats.js.errors import NotFoundError

    async def quiet(exc: Exception) -> None:  # nats-py logs a traceback per failed attempt otherwise
        log.debug("nats %s: %r", describe(url), exc)

    try:
        nc = await nats.connect(url, connect_timeout=3, max_reconnect_attempts=2, allow_reconnect=follow,
                                error_cb=quiet)
    except (NatsError, OSError, TimeoutError) as exc:
        raise BusError(f"cannot reach NATS at {describe(url)}: {exc or type(exc).__name__}") from None
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
                for record in _parse(msg.data):
                    yield record
                if not follow and msg.metadata.num_pending == 0:
                    return
    finally:
        with contextlib.suppress(Exception):
            await nc.close()


async def _read_kafka(url: str, sensor: str | None, start: float | None, follow: bool,
                      idle: float) -> AsyncIterator[dict[str, Any]]:
    from aiokafka import AIOKafkaConsumer, TopicPartition
    from aiokafka.errors import KafkaError

    from buses.kafka.bus import KafkaBus

    options = KafkaBus.from_url(url).client_options()
    consumer = AIOKafkaConsumer(enable_auto_commit=False, auto_offset_reset="earliest", **options)
    try:
        await consumer.start()
        partitions = await _partitions(options)
        if not partitions:
            if not follow:
                return
            await ensure_trace_topic(options)
            partitions = await _partitions(options)
        tps = [TopicPartition(KAFKA_TRACE_TOPIC, p) for p in sorted(partitions)]
        consumer.assign(tps)
        ends = await consumer.end_offsets(tps)
        if start is None:
            await consumer.seek_to_beginning(*tps)
        else:
            found = await consumer.offsets_for_times({tp: int(start * 1000) for tp in tps})
            for tp in tps:
                hit = found.get(tp)
                consumer.seek(tp, hit.offset if hit is not None else ends[tp])
        while True:
            if not follow and all([await consumer.position(tp) >= ends[tp] for tp in tps]):
                return
            batches = await consumer.getmany(timeout_ms=int(idle * 1000), max_records=500)
            if not batches and not follow:
                return
            for records in batches.values():
                for rec in records:
                    if sensor is not None and rec.key is not None and rec.key.decode() != sensor:
                        continue
                    for record in _parse(rec.value or b""):
                        yield record
    except KafkaError as exc:
        raise BusError(f"kafka {url}: {exc}") from None
    finally:
        with contextlib.suppress(Exception):
            await consumer.stop()

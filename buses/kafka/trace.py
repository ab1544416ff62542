"""Trace records on Kafka: topic `sensorium-trace` (one partition, `retention.ms` one hour), record key = sensor
name, value = one body of JSON Lines. Publishing runs in the engine's trace writer task, never in the event
pipeline, on a producer of its own (acks=1, lingering) so trace traffic never queues behind events."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError

from sensorium.buses.base import TraceChannel
from sensorium.engine.core.errors import BusError

KAFKA_TRACE_TOPIC = "sensorium-trace"
RETENTION_S = 3600.0


class KafkaTraceChannel(TraceChannel):
    """Its own producer, made with the bus's client options on first use (the topic is created then)."""

    def __init__(self, options: dict[str, Any]) -> None:
        self.options = options
        self._producer: AIOKafkaProducer | None = None

    async def _start(self) -> AIOKafkaProducer:
        if self._producer is None:
            await ensure_trace_topic(self.options)
            producer = AIOKafkaProducer(acks=1, linger_ms=20, **self.options)
            await producer.start()
            self._producer = producer
        return self._producer

    async def publish(self, bodies: Sequence[tuple[str, bytes]]) -> None:
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
    admin = AIOKafkaAdminClient(**options)
    await admin.start()
    try:
        (meta,) = await admin.describe_topics([KAFKA_TRACE_TOPIC])
    finally:
        await admin.close()
    return sorted(p["partition"] for p in meta["partitions"]) if meta["error_code"] == 0 else []


async def read_trace(options: dict[str, Any], where: str, sensor: str | None, start: float | None, follow: bool,
                     idle: float) -> AsyncIterator[bytes]:
    """The bodies in the trace topic of the brokers in `options` (`where` names them in errors)."""
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
                    yield rec.value or b""
    except KafkaError as exc:
        raise BusError(f"kafka {where}: {exc}") from None
    finally:
        with contextlib.suppress(Exception):
            await consumer.stop()

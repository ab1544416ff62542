"""Condition state on Kafka: the compacted topic `sensorium-state`, record key = sensor name, value = the latest
snapshot (an empty snapshot is written as a tombstone). Compaction keeps the last record of each key.

The topic is created when missing (1 partition, replication min(3, brokers), `cleanup.policy=compact`, room for
a 1 MiB snapshot, 16 MiB segments so the log is compacted soon); an existing topic must be compacted, and its
`max.message.bytes` bounds the snapshot size. A sensor's records go to partition `sarama_hash(name)` of the
topic (partition 0 of a topic we created). A save is an acks=all idempotent produce; a load reads that
partition from its beginning to the end offset found at the start of the load, keeping the sensor's last value.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import KafkaError, for_code

from sensorium.buses.kafka.consumer import quietly
from sensorium.buses.state import DEFAULT_MAX_SNAPSHOT, STATE_NAME, SerialStateStore, check_sensor
from sensorium.engine.core.errors import BusError
from sensorium.engine.core.kafkaclient import PROBE_TIMEOUT, describe
from sensorium.engine.goport.sarama import sarama_hash

log = logging.getLogger("buses.kafka.bus")

STATE_TOPIC = STATE_NAME
RECORD_OVERHEAD = 4096  # bytes around a snapshot in a record batch: batch and record headers, the key
SEGMENT_BYTES = 16 * 1024 * 1024
_UNKNOWN_TOPIC, _TOPIC_EXISTS = 3, 36


class KafkaStateTopic:
    """The state topic of one bus: checked (or created) once, then one producer shared by every sensor's store.
    `options` are the bus's client settings (brokers, TLS, SASL: `KafkaBus.client_options()`)."""

    def __init__(self, options: dict[str, Any], where: str, *, topic: str = STATE_TOPIC,
                 max_snapshot: int = DEFAULT_MAX_SNAPSHOT, request_timeout: float = 30.0) -> None:
        self.options, self.where, self.topic = options, where, topic
        self.max_size, self.request_timeout = max_snapshot, request_timeout
        self.partitions = 0
        self.producer: Any = None
        self._lock = asyncio.Lock()

    async def store(self, sensor: str) -> KafkaStateStore:
        check_sensor(sensor)
        async with self._lock:
            if self.producer is None:
                try:
                    await self._open()
                except (TimeoutError, KafkaError, OSError) as exc:
                    raise BusError(f"kafka {self.where}: state topic '{self.topic}': {describe(exc)}") from None
        return KafkaStateStore(self, sensor)

    async def _open(self) -> None:
        admin = AIOKafkaAdminClient(**self.options)
        try:
            await admin.start()
            await self._ensure_topic(admin)
            await self._check_configs(admin)
        finally:
            await quietly(admin.close(), PROBE_TIMEOUT)
        producer = AIOKafkaProducer(acks="all", enable_idempotence=True,
                                    max_request_size=self.max_size + RECORD_OVERHEAD, **self.options)
        try:
            await producer.start()
        except BaseException:
            await quietly(producer.stop(), PROBE_TIMEOUT)
            raise
        self.producer = producer

    async def _ensure_topic(self, admin: Any) -> None:
        for attempt in range(100):  # until the topic exists and every partition has a leader
            (meta,) = await admin.describe_topics([self.topic])
            code, parts = meta["error_code"], meta["partitions"]
            if code == 0 and parts and all(p["leader"] >= 0 for p in parts):
                self.partitions = len(parts)
                return
            if code == _UNKNOWN_TOPIC and attempt == 0:
                await self._create(admin)
            elif code not in (0, _UNKNOWN_TOPIC, 5):  # 5: leader not available yet
                raise BusError(f"kafka {self.where}: state topic '{self.topic}': {for_code(code).__name__}")
            await asyncio.sleep(0.1)
        raise BusError(f"kafka {self.where}: state topic '{self.topic}' has no leader for every partition")

    async def _create(self, admin: Any) -> None:
        replicas = max(1, min(3, len((await admin.describe_cluster())["brokers"])))
        configs = {"cleanup.policy": "compact", "max.message.bytes": str(self.max_size + RECORD_OVERHEAD),
                   "segment.bytes": str(max(SEGMENT_BYTES, 2 * (self.max_size + RECORD_OVERHEAD)))}
        response = await admin.create_topics([NewTopic(self.topic, 1, replicas, topic_configs=configs)])
        _, code, message = response.topic_errors[0]
        if code not in (0, _TOPIC_EXISTS):
            raise BusError(f"kafka {self.where}: state topic '{self.topic}' does not exist and could not be "
                           f"created: {for_code(code).__name__}: {message}")
        log.info("kafka %s: created compacted topic '%s' (condition state)", self.where, self.topic)

    async def _check_configs(self, admin: Any) -> None:
        """Refuse a topic that would delete state (no compaction); fit the snapshot limit to the topic's."""
        names = {"cleanup.policy": None, "max.message.bytes": None}
        (response,) = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, self.topic, names)])
        (resource,) = response.to_object()["resources"]
        if resource["error_code"]:
            raise BusError(f"kafka {self.where}: state topic '{self.topic}': cannot read its settings: "
                           f"{for_code(resource['error_code']).__name__}")
        settings = {e["config_names"]: e["config_value"] for e in resource["config_entries"]}
        policy = settings.get("cleanup.policy") or ""
        if "compact" not in policy.split(","):
            raise BusError(f"kafka {self.where}: state topic '{self.topic}' has cleanup.policy={policy}: "
                           "saved condition state would be deleted; set cleanup.policy=compact")
        limit = settings.get("max.message.bytes")
        if limit and limit.isdigit():
            self.max_size = min(self.max_size, int(limit) - RECORD_OVERHEAD)

    async def close(self) -> None:
        async with self._lock:
            producer, self.producer = self.producer, None
            if producer is not None:
                await quietly(producer.stop(), min(self.request_timeout, 10.0))


class KafkaStateStore(SerialStateStore):
    def __init__(self, topic: KafkaStateTopic, sensor: str) -> None:
        self.key = sensor.encode()
        self.partition = sarama_hash(self.key, topic.partitions)
        self._topic = topic
        super().__init__(sensor, topic.max_size,
                         f"kafka {topic.where} topic '{topic.topic}'[{self.partition}] key '{sensor}'")

    async def _save(self, snapshot: bytes) -> None:
        producer = self._topic.producer
        if producer is None:
            raise BusError(f"saving condition state on {self.where}: the bus is closed")
        timeout = self._topic.request_timeout
        try:
            future = await producer.send(self._topic.topic, value=snapshot or None, key=self.key,
                                         partition=self.partition)
            await asyncio.wait_for(asyncio.shield(future), timeout)
        except TimeoutError:
            raise BusError(f"saving condition state on {self.where}: not confirmed within {timeout:.0f}s") from None
        except KafkaError as exc:
            raise BusError(f"saving condition state on {self.where} failed: {describe(exc)}") from None

    async def _load(self) -> bytes | None:
        if self._topic.producer is None:
            raise BusError(f"loading condition state on {self.where}: the bus is closed")
        fetch = max(1024 * 1024, self.max_size + RECORD_OVERHEAD)
        # no group; "earliest" places the new consumer at the beginning (an explicit seek right after assign()
        # makes aiokafka drop its first fetch and wait out the getmany timeout)
        consumer = AIOKafkaConsumer(enable_auto_commit=False, auto_offset_reset="earliest",
                                    max_partition_fetch_bytes=fetch, **self._topic.options)
        try:
            await consumer.start()
            return await self._read(consumer)
        except (KafkaError, OSError) as exc:
            raise BusError(f"loading condition state on {self.where} failed: {describe(exc)}") from None
        finally:
            await quietly(consumer.stop(), PROBE_TIMEOUT)

    async def _read(self, consumer: Any) -> bytes | None:
        """The last value of the key between the partition's beginning and its end offset as of now."""
        tp = TopicPartition(self._topic.topic, self.partition)
        consumer.assign([tp])
        end = (await consumer.end_offsets([tp]))[tp]
        begin = (await consumer.beginning_offsets([tp]))[tp]
        if begin >= end:
            return None
        latest: bytes | None = None
        deadline = time.monotonic() + self._topic.request_timeout
        while await consumer.position(tp) < end:
            if time.monotonic() > deadline:
                raise BusError(f"loading condition state on {self.where}: did not reach offset {end} within "
                               f"{self._topic.request_timeout:.0f}s")
            batches = await consumer.getmany(tp, timeout_ms=500)
            for record in batches.get(tp, []):
                if record.offset < end and record.key == self.key:
                    latest = record.value
        return latest

"""The `kafka` event source against the real Kafka broker: Argo's event for a record, a consumer group that commits
only what the bus stored (a restart reads on, nothing twice), a partition reader that keeps its offset on the bus
(what was produced while it was down is read), a refused publish retried, brokers not there, and the engine
running it from an EventSource document to a sensor's trigger."""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from sensorium.buses.kafka_broker import free_port
from sensorium.buses.memory import MemoryBroker, MemoryBus
from sensorium.engine.core.cloudevent import CloudEvent
from sensorium.engine.core.errors import BusError
from sensorium.engine.core.secrets import Secrets
from sensorium.sources.kafka import KafkaSource, KafkaSourceContext
from tests.collected import until
from tests.engine_harness import Engine, order_sensor, unique, write_config
from tests.fixtures_http import HttpSink

pytestmark = pytest.mark.kafka


def spec(url: str, topic: str, **extra: Any) -> KafkaSourceContext:
    return KafkaSourceContext.model_validate({"url": url, "topic": topic, **extra})



async def new_topic(bootstrap: str, partitions: int = 2) -> str:
    name = f"source-{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1)])
    finally:
        await admin.close()
    return name


async def produce(bootstrap: str, topic: str, *records: tuple[bytes | None, bytes], partition: int | None = None,
                  headers: list[tuple[str, bytes]] | None = None) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for key, value in records:
            await producer.send_and_wait(topic, value, key=key, partition=partition, headers=headers)
    finally:
        await producer.stop()


class Events:
    def __init__(self, refusals: int = 0) -> None:
        self.got: list[CloudEvent] = []
        self.refusals = refusals

    async def publish(self, event: CloudEvent) -> None:
        if self.refusals:
            self.refusals -= 1
            raise BusError("bus down")
        self.got.append(event)

    def data(self) -> list[dict[str, Any]]:
        return [json.loads(e.data or b"") for e in self.got]


async def reading(source: KafkaSource) -> KafkaSource:
    await source.start()
    await until(lambda: len(source.reading) == len(source.entries))
    return source


async def test_a_group_reads_argo_s_events_and_commits_what_was_stored(kafka_broker: str) -> None:
    topic = await new_topic(kafka_broker)
    group = {"groupName": f"g-{uuid.uuid4().hex[:6]}", "oldest": True}
    entry = spec(kafka_broker, topic, consumerGroup=group, jsonBody=True, metadata={"team": "ops"})
    await produce(kafka_broker, topic, (b"k1", b'{"n":1}'), (b"k1", b"not json"), partition=0,
                  headers=[("X-Trace", b"t1")])
    events = Events(refusals=1)
    source = await reading(KafkaSource([("shop", "orders", entry)], events.publish, Secrets(None, {})))
    try:
        await until(lambda: len(events.got) == 2)
    finally:
        await source.stop()
    first = events.data()[0]
    assert {k: v for k, v in first.items() if k != "timestamp"} == {
        "topic": topic, "key": "k1", "partition": 0, "headers": {"X-Trace": "t1"}, "body": {"n": 1},
        "metadata": {"team": "ops"}}
    assert first["timestamp"].endswith(" +0000 UTC")  # Go's time.Time.String()
    assert events.data()[1]["body"] == "not json"
    assert events.got[0].id == f"shop:orders:{kafka_broker}:{topic}:0:0" and events.got[0].type == "kafka"
    await produce(kafka_broker, topic, (b"k2", b'{"n":2}'), partition=1)
    again = Events()
    source = await reading(KafkaSource([("shop", "orders", entry)], again.publish, Secrets(None, {})))
    try:
        await until(lambda: len(again.got) == 1)
        await asyncio.sleep(1.0)  # nothing committed is read again
    finally:
        await source.stop()
    assert [d["body"] for d in again.data()] == [{"n": 2}]


async def test_a_partition_reader_keeps_its_offset_on_the_bus(kafka_broker: str) -> None:
    topic = await new_topic(kafka_broker)
    bus = MemoryBus(MemoryBroker())
    await bus.start()
    entry = spec(kafka_broker, topic, partition="1")
    first = Events()
    source = await reading(KafkaSource([("s", "e", entry)], first.publish, Secrets(None, {}), bus.state_store))
    try:
        await produce(kafka_broker, topic, (None, b"a"), (None, b"b"), partition=1)
        await produce(kafka_broker, topic, (None, b"other"), partition=0)
        await until(lambda: len(first.got) == 2)
    finally:
        await source.stop()
    await produce(kafka_broker, topic, (None, b"c"), partition=1)  # while nothing reads: Argo never sees it
    second = Events()
    source = await reading(KafkaSource([("s", "e", entry)], second.publish, Secrets(None, {}), bus.state_store))
    try:
        await until(lambda: len(second.got) == 1)
    finally:
        await source.stop()
        await bus.close()
    assert [base64.b64decode(d["body"]) for d in first.data() + second.data()] == [b"a", b"b", b"c"]


async def test_brokers_not_there_are_reported() -> None:
    url = f"127.0.0.1:{free_port()}"
    source = KafkaSource([("s", "e", spec(url, "t", consumerGroup={"groupName": "g"}))], Events().publish,
                         Secrets(None, {}))
    await source.start()
    try:
        await until(lambda: "cannot read" in " ".join(source.problems()))
        assert source.problems() == [f"kafka s/e: cannot read t from {url}: {url}: connection refused"]
    finally:
        await source.stop()


def test_argo_s_entry_is_read_and_mistakes_are_refused() -> None:
    full = spec("k1:9092,k2", "orders", consumerGroup={"groupName": "g", "oldest": True, "rebalanceStrategy": "sticky"},
                jsonBody=True, limitEventsPerSecond=5, version="2.5.0", connectionBackoff={"steps": 3})
    assert full.consumer_group is not None and full.consumer_group.group_name == "g"
    for bad, wanted in (({"consumerGroup": None}, "either consumerGroup or partition must be specified"),
                        ({"partition": "x"}, "partition must be a partition number"),
                        ({"config": "net: {}"}, "not supported"),
                        ({"topic": "a/b"}, "not a valid Kafka topic name")):
        fields = {"url": "k:9092", "topic": "t", "consumerGroup": {"groupName": "g"}, **bad}
        with pytest.raises(ValueError, match=wanted):
            KafkaSourceContext.model_validate({k: v for k, v in fields.items() if v is not None})


@pytest.mark.nats
async def test_the_engine_runs_an_argo_kafka_event_source(nats_url: str, kafka_broker: str, http_sink: HttpSink,
                                                          tmp_path: Path) -> None:
    topic, source = await new_topic(kafka_broker, 1), unique("kafka-es")
    documents = (f"""
apiVersion: argoproj.io/v1alpha1
kind: EventSource
metadata: {{name: {source}}}
spec:
  kafka:
    example:
      url: {kafka_broker}
      topic: {topic}
      jsonBody: true
      consumerGroup: {{groupName: {unique("group")}, oldest: true}}
""", order_sensor(source, http_sink.url))
    await produce(kafka_broker, topic, (b"k", b'{"order":"o-7"}'))
    async with Engine(write_config(tmp_path, *documents), nats_url):
        await until(lambda: len(http_sink.requests) == 1, timeout=30)
    assert http_sink.requests[0].json() == {"order": "o-7"}


class FailingOnce:
    """A state store whose second save fails once (the bus away for a moment)."""

    def __init__(self, store: Any) -> None:
        self.store, self.saves = store, 0

    async def load(self) -> bytes | None:
        return await self.store.load()  # type: ignore[no-any-return]

    async def save(self, snapshot: bytes) -> None:
        self.saves += 1
        if self.saves == 2:
            raise BusError("state store away")
        await self.store.save(snapshot)

    async def close(self) -> None:
        await self.store.close()


async def test_a_failure_while_reading_is_reported_and_reading_starts_again(kafka_broker: str) -> None:
    """The offset after the first batch cannot be kept: the entry says so, reconnects, and reads that batch
    again (the same event ids, which the bus deduplicates): nothing is lost."""
    topic = await new_topic(kafka_broker)
    bus = MemoryBus(MemoryBroker())
    await bus.start()

    async def state(name: str) -> FailingOnce:
        return FailingOnce(await bus.state_store(name))

    events = Events()
    source = await reading(KafkaSource([("s", "e", spec(kafka_broker, topic, partition="0"))], events.publish,
                                       Secrets(None, {}), state))
    try:
        await produce(kafka_broker, topic, (None, b"x"), partition=0)
        await until(lambda: len(events.got) >= 2, timeout=30)  # read, failed to keep, read again
        assert events.got[0].id == events.got[1].id
    finally:
        await source.stop()
        await bus.close()

"""Kafka bus specifics on a real broker: wire format, offsets as acknowledgements, groups, errors, security.

The backend-independent behaviour is in tests/test_bus_contract.py (the `kafka` backend).
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from sensorium.buses.base import Consumer, ConsumerSpec, Delivery, EventKey, Health
from sensorium.buses.kafka.bus import DEFAULT_PARTITIONS, DEFAULT_TOPIC, KafkaBus
from sensorium.buses.kafka.consumer import PartitionOffsets
from sensorium.buses.kafka_broker import KafkaBroker, free_port
from sensorium.buses.spec import KafkaBus as KafkaBusSpec
from sensorium.engine.core.cloudevent import decode_structured
from sensorium.engine.core.errors import BusError, ConfigError, EventTooLarge
from sensorium.engine.core.kafkaclient import KafkaSecurity
from sensorium.engine.core.secrets import Secrets, env_name
from sensorium.engine.goport.sarama import sarama_hash
from tests.fixtures_kafka import KAFKA_PASSWORD, KAFKA_USER, RestartKafka

pytestmark = pytest.mark.kafka

# sarama NewHashPartitioner (Go hash/fnv New32a, int32 % n, sign dropped), computed with Go for n = 3, 7, 10
GO_SARAMA_HASH = {"a": (0, 6, 6), "foobar": (0, 4, 6), "webhook.example": (1, 0, 8), "es.ev0": (0, 0, 6),
                  "es.ev1": (1, 2, 7), "es.ev2": (1, 3, 4), "es.ev3": (2, 5, 5),
                  "calendar.example-with-interval": (1, 4, 4)}


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def spec(keys: list[EventKey], name: str | None = None, max_in_flight: int = 1000) -> ConsumerSpec:
    return ConsumerSpec(name=name or unique("sensor"), keys=keys, max_in_flight=max_in_flight)


async def fetch_n(consumer: Consumer, n: int, timeout: float = 5.0) -> list[Delivery]:
    got: list[Delivery] = []
    deadline = time.monotonic() + timeout
    while len(got) < n and time.monotonic() < deadline:
        got += await consumer.fetch(n - len(got), timeout=0.3)
    return got


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.1)


async def committed(bootstrap: str, group: str) -> dict[int, int]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(group)
    finally:
        await admin.close()
    return {tp.partition: meta.offset for tp, meta in offsets.items()}


@pytest.fixture
async def make_bus(kafka_broker: str) -> AsyncIterator[Callable[..., Awaitable[KafkaBus]]]:
    buses: list[KafkaBus] = []
    topic = unique("t")

    async def make(**options: object) -> KafkaBus:
        bus = KafkaBus(kafka_broker, **{"topic": topic, **options})  # type: ignore[arg-type]
        buses.append(bus)
        await bus.start()
        return bus

    yield make
    for bus in buses:
        await bus.close()


# -- without a broker --------------------------------------------------------------------------------
def test_partitioner_is_sarama_hash() -> None:
    for key, expected in GO_SARAMA_HASH.items():
        assert tuple(sarama_hash(key.encode(), n) for n in (3, 7, 10)) == expected


def test_url_and_spec() -> None:
    bus = KafkaBus.from_url("kafka://a:1,b:2")
    assert (bus.brokers, bus.topic, bus.url) == (["a:1", "b:2"], DEFAULT_TOPIC, "kafka://a:1,b:2")
    assert KafkaBus.from_url("h").brokers == ["h:9092"]
    with pytest.raises(ConfigError):
        KafkaBus.from_url("nats://a:1")
    group = {"groupName": "g", "oldest": True, "rebalanceStrategy": "sticky"}
    doc = {"url": "k1:9093", "consumerGroup": group,
           "sasl": {"mechanism": "SCRAM-SHA-512", "userSecret": {"name": "kafka", "key": "user"},
                    "passwordSecret": {"name": "kafka", "key": "password"}}}
    secrets = Secrets(environ={env_name("kafka", "user"): "u", env_name("kafka", "password"): "p4ss-w0rd"})
    bus = KafkaBus.from_spec(KafkaBusSpec.model_validate(doc), secrets)
    assert (bus.topic, bus.group_name, bus.oldest) == (DEFAULT_TOPIC, "g", True)
    assert bus.rebalance_strategy == "sticky"
    assert (bus.security.protocol, bus.security.username) == ("SASL_PLAINTEXT", "u")
    assert "p4ss-w0rd" not in repr(bus.security)
    assert bus.group_for(spec([], name="s1")) == "g"
    with pytest.raises(BusError, match="shared"):
        bus.group_for(spec([], name="s2"))
    with pytest.raises(BusError, match="secret 'kafka/user' not found"):
        KafkaBus.from_spec(KafkaBusSpec.model_validate(doc), Secrets(environ={}))


def test_commit_offset_is_lowest_unsettled() -> None:
    part = PartitionOffsets(TopicPartition("t", 0))
    for offset, deliver in ((5, True), (6, False), (7, True), (8, True)):
        part.seen(offset, deliver)
    part.settle(8)
    part.settle(7)
    assert part.committable() == 5
    part.settle(5)
    assert part.committable() == 9
    part.committed = 9
    assert part.committable() is None


# -- on the broker --------------------------------------------------------------------------------
async def test_start_creates_the_default_topic(kafka_broker: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_broker)
    await admin.start()
    try:
        if DEFAULT_TOPIC in await admin.list_topics():
            await admin.delete_topics([DEFAULT_TOPIC])
            await eventually(lambda: _missing(admin, DEFAULT_TOPIC))
        bus = KafkaBus.from_url(f"kafka://{kafka_broker}")
        await bus.start()
        await bus.close()
        (meta,) = await admin.describe_topics([DEFAULT_TOPIC])
        assert meta["error_code"] == 0 and len(meta["partitions"]) == DEFAULT_PARTITIONS
    finally:
        await admin.close()


async def _missing(admin: AIOKafkaAdminClient, topic: str) -> bool:
    return topic not in await admin.list_topics()


async def test_wire_format_is_argo_events(kafka_broker: str,
                                          make_bus: Callable[..., Awaitable[KafkaBus]]) -> None:
    bus = await make_bus()
    body = b'{"specversion":"1.0","id":"1","source":"webhook","type":"webhook","subject":"example","data":{}}'
    await bus.publish(EventKey("webhook", "example"), "1", body)
    raw = AIOKafkaConsumer(bootstrap_servers=kafka_broker, auto_offset_reset="earliest")
    await raw.start()
    try:
        raw.assign([TopicPartition(bus.topic, p) for p in range(DEFAULT_PARTITIONS)])
        batches = await raw.getmany(timeout_ms=5000)
    finally:
        await raw.stop()
    [(tp, [record])] = batches.items()
    assert (record.key, record.value, list(record.headers)) == (b"webhook.example", body, [])
    assert tp.partition == sarama_hash(b"webhook.example", DEFAULT_PARTITIONS)


async def test_binary_mode_cloudevent_is_delivered_structured(
        kafka_broker: str, make_bus: Callable[..., Awaitable[KafkaBus]]) -> None:
    bus = await make_bus()
    consumer = await bus.consumer(spec([EventKey("orders", "created")]))
    producer = AIOKafkaProducer(bootstrap_servers=kafka_broker)
    await producer.start()
    headers = [("ce_specversion", b"1.0"), ("ce_id", b"abc"), ("ce_source", b"orders"), ("ce_type", b"order"),
               ("ce_subject", b"created"), ("content-type", b"application/json")]
    try:  # keyless, and keyed by something else (a CloudEvents `partitionkey`): both routed by ce_source/subject
        await producer.send_and_wait(bus.topic, b'{"n":1}', headers=headers)
        await producer.send_and_wait(bus.topic, b'{"n":2}', key=b"order-42", headers=headers)
    finally:
        await producer.stop()
    deliveries = await fetch_n(consumer, 2)
    events = sorted((decode_structured(d.body) for d in deliveries), key=lambda e: e.data or b"")
    assert [(e.id, e.source, e.subject, e.type, e.data) for e in events] == [
        ("abc", "orders", "created", "order", b'{"n":1}'), ("abc", "orders", "created", "order", b'{"n":2}')]
    assert deliveries[0].headers["ce_id"] == "abc"


async def test_undecodable_value_is_still_delivered(make_bus: Callable[..., Awaitable[KafkaBus]]) -> None:
    bus = await make_bus()
    key = EventKey(unique("src"), "ev")
    consumer = await bus.consumer(spec([key]))
    await bus.publish(key, "x", b"\xff not json")
    [delivery] = await fetch_n(consumer, 1)
    assert delivery.body == b"\xff not json"
    assert delivery.position.startswith(f"{bus.topic}[{sarama_hash(key.dotted().encode(), DEFAULT_PARTITIONS)}]@")


async def test_out_of_order_acks_commit_only_up_to_lowest_unsettled(
        kafka_broker: str, make_bus: Callable[..., Awaitable[KafkaBus]]) -> None:
    bus = await make_bus()
    key, name = EventKey(unique("src"), "ev"), unique("sensor")
    partition = sarama_hash(key.dotted().encode(), DEFAULT_PARTITIONS)
    consumer = await bus.consumer(spec([key], name=name))
    await bus.publish_many([(key, str(i), f"e{i}".encode()) for i in range(3)])
    first, second, third = await fetch_n(consumer, 3)
    base = int(first.position.rsplit("@", 1)[1])
    await third.ack()
    await second.ack()
    await asyncio.sleep(0.6)  # several commit flushes
    assert (await committed(kafka_broker, name))[partition] == base
    await first.ack()
    await eventually(lambda: _committed_is(kafka_broker, name, partition, base + 3))


async def _committed_is(bootstrap: str, group: str, partition: int, offset: int) -> bool:
    return (await committed(bootstrap, group)).get(partition) == offset


async def test_nak_redelivers_that_record_and_holds_the_commit(
        kafka_broker: str, make_bus: Callable[..., Awaitable[KafkaBus]]) -> None:
    bus = await make_bus()
    key, name = EventKey(unique("src"), "ev"), unique("sensor")
    partition = sarama_hash(key.dotted().encode(), DEFAULT_PARTITIONS)
    consumer = await bus.consumer(spec([key], name=name))
    await bus.publish_many([(key, str(i), f"e{i}".encode()) for i in range(3)])
    first, second, third = await fetch_n(consumer, 3)
    await second.nak(delay=0.3)
    await first.ack()
    await third.ack()
    [again] = await fetch_n(consumer, 1)
    assert (again.body, again.position) == (second.body, second.position)
    assert await consumer.fetch(10, timeout=0.5) == []  # later records are not replayed
    assert (await committed(kafka_broker, name))[partition] == int(second.position.rsplit("@", 1)[1])
    await again.ack()
    end = int(third.position.rsplit("@", 1)[1]) + 1
    await eventually(lambda: _committed_is(kafka_broker, name, partition, end))


async def test_other_keys_are_skipped_and_committed(
        kafka_broker: str, make_bus: Callable[..., Awaitable[KafkaBus]]) -> None:
    bus = await make_bus()
    mine, name = EventKey(unique("src"), "mine"), unique("sensor")
    consumer = await bus.consumer(spec([mine], name=name))
    others = [(EventKey("es", f"ev{i}"), str(i), b"other") for i in range(4)]  # partitions 0, 1, 1, 2
    await bus.publish_many([*others, (mine, "m", b"mine")])
    [delivery] = await fetch_n(consumer, 1)
    assert delivery.body == b"mine"
    assert await consumer.fetch(10, timeout=0.5) == []
    await delivery.ack()

    async def all_committed() -> bool:
        return sum((await committed(kafka_broker, name)).values()) == 5

    await eventually(all_committed)


async def test_two_members_of_a_group_share_partitions(make_bus: Callable[..., Awaitable[KafkaBus]]) -> None:
    keys = [EventKey("es", f"ev{i}") for i in range(4)]  # spread over the 3 partitions
    name = unique("sensor")
    a, b = await make_bus(), await make_bus()
    ca = await a.consumer(spec(keys, name=name))
    cb = await b.consumer(spec(keys, name=name))
    batch = [(keys[i % 4], str(i), f"e{i}".encode()) for i in range(60)]
    await a.publish_many(batch)
    seen: dict[str, list[bytes]] = {"a": [], "b": []}

    async def work(label: str, consumer: Consumer) -> None:
        deadline = time.monotonic() + 8.0
        while sum(map(len, seen.values())) < len(batch) and time.monotonic() < deadline:
            for d in await consumer.fetch(10, timeout=0.3):
                seen[label].append(d.body)
                await d.ack()

    await asyncio.gather(work("a", ca), work("b", cb))
    assert sorted(seen["a"] + seen["b"]) == sorted(body for _, _, body in batch)  # each record exactly once
    assert seen["a"] and seen["b"]


async def test_consumer_position_is_pinned_before_it_returns(
        make_bus: Callable[..., Awaitable[KafkaBus]]) -> None:
    bus = await make_bus()
    key, name = EventKey(unique("src"), "ev"), unique("sensor")
    consumer = await bus.consumer(spec([key], name=name))
    await bus.publish(key, "1", b"right after")
    [delivery] = await fetch_n(consumer, 1)
    assert delivery.body == b"right after"
    await delivery.ack()
    await consumer.close()
    await bus.publish(key, "2", b"while away")  # the group's stored position predates this record
    again = await bus.consumer(spec([key], name=name))
    assert [d.body for d in await fetch_n(again, 1)] == [b"while away"]


async def test_max_in_flight_holds_back_fetches(make_bus: Callable[..., Awaitable[KafkaBus]]) -> None:
    bus = await make_bus()
    key = EventKey(unique("src"), "ev")
    consumer = await bus.consumer(spec([key], max_in_flight=2))
    await bus.publish_many([(key, str(i), f"e{i}".encode()) for i in range(5)])
    held = await fetch_n(consumer, 2)
    assert len(held) == 2 and await consumer.fetch(10, timeout=0.5) == []
    await held[0].ack()
    assert [d.body for d in await fetch_n(consumer, 1)] == [b"e2"]


async def test_unreachable_broker_is_one_clear_error_quickly() -> None:
    port = free_port()
    for address, cause in ((f"127.0.0.1:{port}", "connection refused"),
                           ("no-such-host.invalid:9092", "cannot resolve host")):
        bus = KafkaBus(address)
        started = time.monotonic()
        with pytest.raises(BusError) as caught:
            await bus.start()
        assert time.monotonic() - started < 6.0
        message = str(caught.value)
        assert address in message and cause in message and "\n" not in message
        assert bus.health is Health.DISCONNECTED
        await bus.close()


async def test_invalid_topic_is_a_clear_error(kafka_broker: str) -> None:
    bus = KafkaBus(kafka_broker, topic="no spaces allowed")
    with pytest.raises(BusError, match="topic 'no spaces allowed'"):
        await bus.start()
    await bus.close()


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"])
async def test_sasl_from_eventbus_secrets(kafka_server: KafkaBroker, mechanism: str) -> None:
    doc = {"url": kafka_server.sasl_bootstrap, "topic": unique("sasl"),
           "sasl": {"mechanism": mechanism, "userSecret": {"name": "kafka", "key": "user"},
                    "passwordSecret": {"name": "kafka", "key": "password"}}}
    secrets = Secrets(environ={env_name("kafka", "user"): KAFKA_USER,
                               env_name("kafka", "password"): KAFKA_PASSWORD})
    bus = KafkaBus.from_spec(KafkaBusSpec.model_validate(doc), secrets)
    await bus.start()
    try:
        key = EventKey("s", mechanism)
        consumer = await bus.consumer(spec([key]))
        await bus.publish(key, "1", b"authenticated")
        assert [d.body for d in await fetch_n(consumer, 1)] == [b"authenticated"]
    finally:
        await bus.close()


async def test_wrong_sasl_password_is_one_clear_error(kafka_server: KafkaBroker) -> None:
    security = KafkaSecurity(sasl_mechanism="SCRAM-SHA-256", username=KAFKA_USER, password="not-the-password")
    bus = KafkaBus(kafka_server.sasl_bootstrap, security=security)
    with pytest.raises(BusError) as caught:
        await bus.start()
    message = str(caught.value)
    assert kafka_server.sasl_bootstrap in message and "SASL authentication failed" in message
    assert "not-the-password" not in message
    await bus.close()


async def test_health_follows_the_broker(kafka_server: KafkaBroker, restart_kafka: RestartKafka,
                                         make_bus: Callable[..., Awaitable[KafkaBus]]) -> None:
    bus = await make_bus(request_timeout=2.0)
    key = EventKey(unique("src"), "ev")
    consumer = await bus.consumer(spec([key]))
    assert bus.health is Health.CONNECTED
    await asyncio.to_thread(kafka_server.stop)
    assert await consumer.fetch(10, timeout=0.5) == []  # no exception while the broker is away

    async def disconnected() -> bool:
        return bus.health is Health.DISCONNECTED

    await eventually(disconnected, timeout=10.0)
    assert "connection refused" in bus.cause and kafka_server.bootstrap in bus.cause
    started = time.monotonic()
    with pytest.raises(BusError, match="connection refused"):  # bounded wait, naming the cause
        await bus.publish(key, "1", b"unconfirmed")
    assert time.monotonic() - started < 4.0
    await asyncio.to_thread(kafka_server.start)
    await bus.publish(key, "2", json.dumps({"back": True}).encode())
    got: list[bytes] = []
    deadline = time.monotonic() + 10.0
    while b'{"back": true}' not in got and time.monotonic() < deadline:
        got += [d.body for d in await consumer.fetch(10, timeout=0.5)]
    assert got in ([b'{"back": true}'], [b"unconfirmed", b'{"back": true}'])  # unconfirmed: maybe stored later
    assert bus.health is Health.CONNECTED


async def test_an_event_larger_than_the_producer_takes_is_too_large_not_retried(
        make_bus: Callable[..., Awaitable[KafkaBus]]) -> None:
    """EventTooLarge (a BusError): sources log such an event once and move on instead of retrying forever."""
    bus = await make_bus()
    with pytest.raises(EventTooLarge, match=r"an event of 2000000 bytes for s\.e is larger than"):
        await bus.publish(EventKey("s", "e"), "big", b"x" * 2_000_000)
    await bus.publish(EventKey("s", "e"), "small", b"{}")  # the bus goes on

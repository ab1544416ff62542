"""The Kafka trigger against the real Kafka broker: the record a consumer reads (value, key, headers, the
partition sarama would pick), parameters, SASL from secrets, unreachable brokers, a record too large, and no
secret in any outcome or log."""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from sensorium.buses.kafka_broker import KafkaBroker, free_port
from sensorium.engine.core.secrets import Secrets, env_name
from sensorium.engine.goport.sarama import sarama_hash
from sensorium.triggers.kafka import KafkaProducers, KafkaTrigger, build_record
from sensorium.triggers.policy import VerdictKind
from sensorium.triggers.spec import Trigger
from tests.fixtures_kafka import KAFKA_PASSWORD, KAFKA_USER

from .helpers import event

pytestmark = pytest.mark.kafka

HEADER_SECRET = "hdr-s3cr3t-value"
SECRETS = Secrets(environ={env_name("kafka", "user"): KAFKA_USER, env_name("kafka", "password"): KAFKA_PASSWORD,
                           env_name("hdr", "token"): HEADER_SECRET})
EVENTS = {"d": event(b'{"id":"o-17","total":12.5,"region":"eu"}')}
PAYLOAD = [{"src": {"dependencyName": "d", "dataKey": "id"}, "dest": "orderId"},
           {"src": {"dependencyName": "d", "dataKey": "total", "useRawData": True}, "dest": "total"}]
FAST = {"steps": 3, "duration": "10ms", "factor": 2.0, "jitter": 0.0}
PARTITIONS = 3


class NoJitter:
    def random(self) -> float:
        return 0.0


def make(url: str, topic: str, kafka: dict[str, Any] | None = None, **extra: Any) -> Trigger:
    spec = {"url": url, "topic": topic, "payload": PAYLOAD, **(kafka or {})}
    return Trigger.model_validate({"template": {"name": "t1", "kafka": spec}, **extra})


@pytest.fixture
async def topic(kafka_broker: str) -> str:
    name = f"trigger-{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_broker)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, num_partitions=PARTITIONS, replication_factor=1)])
    finally:
        await admin.close()
    return name


@pytest.fixture
async def producers() -> AsyncIterator[KafkaProducers]:
    async with KafkaProducers() as pool:
        yield pool


async def records(bootstrap: str, topic: str, count: int) -> list[ConsumerRecord[bytes, bytes]]:
    """The first `count` records of `topic`, from every partition."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign([TopicPartition(topic, p) for p in range(PARTITIONS)])
        got: list[ConsumerRecord[bytes, bytes]] = []
        for _ in range(50):
            batch = await consumer.getmany(timeout_ms=200)
            got += [r for rs in batch.values() for r in rs]
            if len(got) >= count:
                return got
        return got
    finally:
        await consumer.stop()


async def test_the_consumer_reads_the_record(kafka_broker: str, topic: str, producers: KafkaProducers) -> None:
    trigger = make(kafka_broker, topic, {
        "partitioningKey": "customer-42", "headers": {"X-Origin": "sensorium"},
        "secureHeaders": [{"name": "X-Token", "valueFrom": {"secretKeyRef": {"name": "hdr", "key": "token"}}}]})
    outcome = await KafkaTrigger(trigger, producers, SECRETS).fire(EVENTS)
    assert outcome.success, outcome.error
    assert outcome.note == f"produced 31 bytes to {topic}"
    [record] = await records(kafka_broker, topic, 1)
    assert record.value == b'{"orderId":"o-17","total":12.5}'
    assert record.key == b"customer-42"
    assert record.partition == sarama_hash(b"customer-42", PARTITIONS)  # where Argo's producer puts it
    assert list(record.headers) == [("X-Origin", b"sensorium"), ("X-Token", HEADER_SECRET.encode())]
    assert outcome.request is not None
    assert (outcome.request.method, outcome.request.url) == ("PRODUCE", f"kafka://{kafka_broker}/{topic}"
                                                                        "?key=customer-42")
    assert dict(outcome.request.headers)["X-Token"] == "***" and HEADER_SECRET not in repr(outcome)


async def test_parameters_set_the_key(kafka_broker: str, topic: str, producers: KafkaProducers) -> None:
    trigger = make(kafka_broker, topic, {"parameters": [
        {"src": {"dependencyName": "d", "dataKey": "region"}, "dest": "partitioningKey"}]})
    assert (await KafkaTrigger(trigger, producers, SECRETS).fire(EVENTS)).success
    [record] = await records(kafka_broker, topic, 1)
    assert record.key == b"eu" and record.partition == sarama_hash(b"eu", PARTITIONS)


async def test_sasl_from_secrets(kafka_server: KafkaBroker, kafka_broker: str, topic: str,
                                 producers: KafkaProducers, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    sasl = {"mechanism": "SCRAM-SHA-256", "userSecret": {"name": "kafka", "key": "user"},
            "passwordSecret": {"name": "kafka", "key": "password"}}
    outcome = await KafkaTrigger(make(kafka_server.sasl_bootstrap, topic, {"sasl": sasl}), producers,
                                 SECRETS).fire(EVENTS)
    assert outcome.success, outcome.error
    assert len(await records(kafka_broker, topic, 1)) == 1
    wrong = Secrets(environ={env_name("kafka", "user"): KAFKA_USER,
                             env_name("kafka", "password"): "not-" + KAFKA_PASSWORD})
    async with KafkaProducers() as others:
        refused = await KafkaTrigger(make(kafka_server.sasl_bootstrap, topic, {"sasl": sasl}), others, wrong,
                                     timeout=5.0).fire(EVENTS)
    assert not refused.success and "SASL authentication failed" in refused.error, refused.error
    for text in (refused.error, caplog.text, repr(refused), repr(outcome)):
        assert KAFKA_PASSWORD not in text


async def test_unreachable_brokers_are_retried_then_the_firing_fails(producers: KafkaProducers) -> None:
    url = f"127.0.0.1:{free_port()}"
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    outcome = await KafkaTrigger(make(url, "orders", retryStrategy=FAST), producers, SECRETS, rng=NoJitter(),
                                 sleep=sleep, timeout=3.0).fire(EVENTS)
    assert not outcome.success and slept == [0.01, 0.02]
    assert [a.verdict.kind for a in outcome.attempts] == [VerdictKind.RETRYABLE] * 3
    assert f"kafka://{url}/orders" in outcome.error


async def test_a_record_too_large_fails_at_once(kafka_broker: str, topic: str, producers: KafkaProducers) -> None:
    big = {"d": event(b'{"total":1,"id":"' + b"x" * (2 * 1024 * 1024) + b'"}')}
    outcome = await KafkaTrigger(make(kafka_broker, topic, retryStrategy=FAST), producers, SECRETS,
                                 rng=NoJitter()).fire(big)
    assert not outcome.success and len(outcome.attempts) == 1
    assert "is larger than the producer's limit (1048576 bytes)" in outcome.error


async def test_the_pool_s_headers_go_with_every_record(kafka_broker: str, topic: str) -> None:
    """How `sensorium replay` marks its records, as it marks its HTTP requests."""
    async with KafkaProducers(headers={"X-Sensorium-Replay": "r-0123abcd"}) as marked:
        assert (await KafkaTrigger(make(kafka_broker, topic), marked, SECRETS).fire(EVENTS)).success
    [record] = await records(kafka_broker, topic, 1)
    assert list(record.headers) == [("X-Sensorium-Replay", b"r-0123abcd")]


def test_the_record_a_dry_run_shows() -> None:
    t = make("k1:9092,k2", "orders", {"partitioningKey": "a b", "secureHeaders": [
        {"name": "X-Token", "valueFrom": {"secretKeyRef": {"name": "hdr", "key": "token"}}}]})
    request = build_record(t.template, t.parameters, EVENTS, SECRETS)
    assert (request.method, request.url) == ("PRODUCE", "kafka://k1:9092,k2:9092/orders?key=a%20b")
    assert request.body == b'{"orderId":"o-17","total":12.5}'
    assert request.redacted_headers() == [("X-Token", "***")]


async def test_compress_is_snappy(kafka_broker: str, topic: str, producers: KafkaProducers) -> None:
    assert (await KafkaTrigger(make(kafka_broker, topic, {"compress": True}), producers, SECRETS).fire(EVENTS)).success
    [record] = await records(kafka_broker, topic, 1)
    assert record.value == b'{"orderId":"o-17","total":12.5}'

"""Sensors with NATS and Kafka triggers in the running engine: an event on the bus becomes a message on a NATS
subject or a record on a Kafka topic, and the trace shows what was sent, or why it was not."""

from __future__ import annotations

import asyncio
from pathlib import Path

import nats
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from nats.aio.msg import Msg

from sensorium.engine.trace.fmt import HumanFormat
from sensorium.engine.trace.records import FiringDone, RequestBuilt, ResponseReceived
from tests.engine_harness import Engine, event, free_port, publish, unique, write_config
from tests.trace_log import TraceLog

pytestmark = pytest.mark.nats  # (the bus of every test here)


def sensor(source: str, url: str, subject: str, retries: int = 1) -> str:
    return f"""
apiVersion: argoproj.io/v1alpha1
kind: Sensor
metadata: {{name: {unique("to-nats")}}}
spec:
  dependencies: [{{name: order, eventSourceName: {source}, eventName: created}}]
  triggers:
    - template:
        name: publish
        nats:
          url: {url}
          subject: {subject}
          payload:
            - {{src: {{dependencyName: order, dataKey: id}}, dest: orderId}}
            - {{src: {{dependencyName: order, dataKey: total, useRawData: true}}, dest: total}}
      retryStrategy: {{steps: {retries}, duration: 10ms}}
"""


async def test_an_event_becomes_a_message_on_the_subject(nats_url: str, tmp_path: Path) -> None:
    source, subject = unique("shop"), f"{unique('orders')}.created"
    got: list[Msg] = []
    arrived = asyncio.Event()

    async def on(msg: Msg) -> None:
        got.append(msg)
        arrived.set()

    nc = await nats.connect(nats_url)
    try:
        await nc.subscribe(subject, cb=on)
        await nc.flush()
        trace = TraceLog()
        order = event(source, "created", b'{"id":"o-17","total":12.5}')
        async with Engine(write_config(tmp_path, sensor(source, nats_url, subject)), nats_url, tracer=trace):
            await publish(nats_url, order)
            await trace.acked(order)
        await asyncio.wait_for(arrived.wait(), 5)
        assert [(m.subject, m.data) for m in got] == [(subject, b'{"orderId":"o-17","total":12.5}')]
        [request] = [r for r in trace.of(order) if isinstance(r, RequestBuilt)]
        assert (request.method, request.url) == ("PUB", f"{nats_url}/{subject}")
        assert request.body_preview == '{"orderId":"o-17","total":12.5}'
        shown = HumanFormat(color=False, times=False).lines(r.to_json() for r in trace.of(order))
        assert "request    publish" in shown and f"PUB {nats_url}/{subject} body 31 bytes" in shown
        assert "attempt 1: confirmed in" in shown and "(published 31 bytes to " in shown
    finally:
        await nc.close()


async def test_an_unreachable_server_is_retried_and_the_trace_says_why(nats_url: str, tmp_path: Path) -> None:
    source, nowhere = unique("shop"), f"nats://127.0.0.1:{free_port()}"
    trace = TraceLog()
    order = event(source, "created", b'{"id":"o-18","total":3}')
    async with Engine(write_config(tmp_path, sensor(source, nowhere, "orders.created", retries=2)), nats_url,
                      tracer=trace):
        await publish(nats_url, order)
        await trace.acked(order)
    responses = [r for r in trace.of(order) if isinstance(r, ResponseReceived)]
    assert [r.verdict for r in responses] == ["retryable", "retryable"]
    assert all(f"cannot connect to NATS at {nowhere}" in (r.error or "") for r in responses)
    [done] = [r for r in trace.of(order) if isinstance(r, FiringDone)]
    assert not done.success and (done.error or "").startswith("failed after retries: cannot connect to NATS")


@pytest.mark.kafka
async def test_an_event_becomes_a_kafka_record(nats_url: str, kafka_broker: str, tmp_path: Path) -> None:
    source, topic = unique("shop"), unique("orders")
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_broker)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])
    finally:
        await admin.close()
    doc = f"""
apiVersion: argoproj.io/v1alpha1
kind: Sensor
metadata: {{name: {unique("to-kafka")}}}
spec:
  dependencies: [{{name: order, eventSourceName: {source}, eventName: created}}]
  triggers:
    - template:
        name: produce
        kafka:
          url: {kafka_broker}
          topic: {topic}
          partitioningKey: orders
          payload:
            - {{src: {{dependencyName: order, dataKey: id}}, dest: orderId}}
"""
    trace = TraceLog()
    order = event(source, "created", b'{"id":"o-19"}')
    async with Engine(write_config(tmp_path, doc), nats_url, tracer=trace):
        await publish(nats_url, order)
        await trace.acked(order)
    consumer = AIOKafkaConsumer(bootstrap_servers=kafka_broker, auto_offset_reset="earliest")
    await consumer.start()
    try:
        consumer.assign([TopicPartition(topic, 0)])
        batch = await consumer.getmany(timeout_ms=5000)
    finally:
        await consumer.stop()
    assert [(r.key, r.value) for rs in batch.values() for r in rs] == [(b"orders", b'{"orderId":"o-19"}')]
    [request] = [r for r in trace.of(order) if isinstance(r, RequestBuilt)]
    assert (request.method, request.url) == ("PRODUCE", f"kafka://{kafka_broker}/{topic}?key=orders")

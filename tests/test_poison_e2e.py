"""Issue 11, "Done when" 1: 10,000 fuzzed messages interleaved with 500 valid events, published straight onto the
subject / topic a sensor consumes, on JetStream and on Kafka. The engine stays up, all 500 valid events fire,
every fuzzed message is dead-lettered (its original bytes, counted on the bus's `sensorium-dlq`) and logged once,
and the consumer ends with nothing pending. Also: a deep-JSON message no longer wedges the loop, and /healthz
stays truthful."""

from __future__ import annotations

import asyncio
import json
import logging
import time
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path

import pytest

from sensorium.buses.base import Bus, EventKey
from sensorium.engine.busconfig import from_url
from sensorium.engine.core.cloudevent import encode_structured, new_id
from sensorium.engine.intake import DEFAULT_GROUP
from tests.engine_harness import Engine, event, free_port, unique, write_config
from tests.fixtures_http import HttpSink
from tests.poison_corpus import fuzzed
from tests.trace_log import TraceLog

FUZZED, VALID = 10_000, 500



def sensor_yaml(name: str, source: str, sink: str) -> str:
    return f"""
apiVersion: argoproj.io/v1alpha1
kind: Sensor
metadata: {{name: {name}}}
spec:
  dependencies: [{{name: d, eventSourceName: {source}, eventName: e}}]
  triggers:
    - template:
        name: t
        http:
          url: {sink}/fired
          payload: [{{src: {{dependencyName: d, dataKey: n}}, dest: n}}]
"""


def health(port: int) -> tuple[int, dict[str, object]]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


async def publish_headers(bootstrap: str, key: EventKey, items: list[tuple[bytes, dict[str, bytes]]]) -> None:
    """Binary-mode records with (garbage) `ce_*` headers, straight onto the Kafka topic (pipelined)."""
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, max_request_size=2_000_000)
    await producer.start()
    try:
        futures = [await producer.send("argo-events", value=body, key=key.dotted().encode(),
                                       headers=list(headers.items())) for body, headers in items]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def dead_letters_jetstream(url: str, sensor: str) -> list[tuple[dict[str, str], bytes]]:
    """Every dead letter of `sensor` stored on the `sensorium-dlq` stream (read after every message was acked:
    the engine acks a message only once its dead letter is stored, so this is all there will be)."""
    import nats
    from nats.js import api

    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        subject = f"sensorium-dlq.{sensor}"
        info = await js.stream_info("sensorium-dlq", subjects_filter=subject)
        stored = (info.state.subjects or {}).get(subject, 0)
        config = api.ConsumerConfig(ack_policy=api.AckPolicy.NONE, deliver_policy=api.DeliverPolicy.ALL,
                                    inactive_threshold=30.0)
        psub = await js.pull_subscribe(subject, stream="sensorium-dlq", config=config)
        out: list[tuple[dict[str, str], bytes]] = []
        while len(out) < stored:
            for msg in await psub.fetch(1000, timeout=10):
                out.append((dict(msg.headers or {}), msg.data))
        return out
    finally:
        await nc.close()


async def dead_letters_kafka(bootstrap: str, sensor: str) -> list[tuple[dict[str, str], bytes]]:
    """Every dead letter of `sensor` on the `sensorium-dlq` topic, read up to its end offset (after every message
    was acked, as for JetStream)."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                auto_offset_reset="earliest", fetch_max_bytes=50_000_000)
    await consumer.start()
    out: list[tuple[dict[str, str], bytes]] = []
    try:
        tp = TopicPartition("sensorium-dlq", 0)
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        end = (await consumer.end_offsets([tp]))[tp]
        async with asyncio.timeout(120):
            while await consumer.position(tp) < end:
                batches = await consumer.getmany(timeout_ms=500, max_records=2000)
                for record in batches.get(tp, []):
                    if record.key == sensor.encode():
                        out.append(({k: v.decode("utf-8", "replace") for k, v in record.headers}, record.value))
        return out
    finally:
        await consumer.stop()


async def nothing_pending(bus_url: str, sensor: str, timeout: float = 30.0) -> str:
    """Wait until the consumer that fed the sensor (the engine's shared intake) has nothing pending; returns what
    was seen last (for the assertion)."""
    deadline = time.monotonic() + timeout
    while True:
        if bus_url.startswith("kafka://"):
            state = await kafka_lag(bus_url.removeprefix("kafka://"), DEFAULT_GROUP)
            done = all(committed == end for committed, end in state.values())
        else:
            import nats

            nc = await nats.connect(bus_url)
            try:
                info = await nc.jetstream().consumer_info("default", DEFAULT_GROUP)
            finally:
                await nc.close()
            state = {"num_pending": info.num_pending, "num_ack_pending": info.num_ack_pending}  # type: ignore[dict-item]
            done = info.num_pending == 0 and info.num_ack_pending == 0
        if done or time.monotonic() > deadline:
            return f"{'nothing pending' if done else 'still pending'}: {state}"
        await asyncio.sleep(0.5)


async def kafka_lag(bootstrap: str, group: str) -> dict[object, tuple[int | None, int]]:
    from aiokafka import AIOKafkaConsumer, TopicPartition
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await admin.start()
    await consumer.start()
    try:
        committed = await admin.list_consumer_group_offsets(group)
        tps = [TopicPartition("argo-events", p) for p in sorted(consumer.partitions_for_topic("argo-events") or [])
               ] or [tp for tp in committed if tp.topic == "argo-events"]
        ends = await consumer.end_offsets(tps)
        return {tp: (committed[tp].offset if tp in committed else None, ends[tp]) for tp in tps}
    finally:
        await consumer.stop()
        await admin.close()


async def test_10000_fuzzed_messages_are_dead_lettered_and_500_valid_events_fire(
        bus_url: str, http_sink: HttpSink, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    kafka = bus_url.startswith("kafka://")
    source, name = unique("fuzz"), unique("poison")
    key = EventKey(source, "e")
    messages = fuzzed(FUZZED, binary_headers=kafka)
    health_port = free_port()
    trace = TraceLog()
    engine = Engine(write_config(tmp_path, sensor_yaml(name, source, http_sink.url)), bus_url, tracer=trace)
    engine.options.health_port = health_port
    per_chunk = FUZZED // VALID  # one valid event after every 20 fuzzed messages
    caplog.set_level(logging.WARNING, "sensorium.engine")
    async with engine:
        bus: Bus = from_url(bus_url)
        await bus.start()
        started = time.monotonic()
        try:
            for chunk in range(0, FUZZED, 25 * per_chunk):  # 500 fuzzed + 25 valid per publish round
                plain, headed = [], []
                for i in range(chunk, chunk + 25 * per_chunk):
                    _, body, headers = messages[i]
                    if headers:
                        headed.append((body, headers))
                    else:
                        plain.append((key, new_id(), body))
                    if i % per_chunk == per_chunk - 1:
                        valid = event(source, "e", json.dumps({"n": i // per_chunk}).encode())
                        plain.append((key, valid.id, encode_structured(valid)))
                await bus.publish_many(plain)
                if headed:
                    await publish_headers(bus_url.removeprefix("kafka://"), key, headed)
        finally:
            await bus.close()
        published = time.monotonic() - started
        acks = await trace.settled(FUZZED + VALID, timeout=240)  # each message settled: fired or dead-lettered
        fired = time.monotonic() - started
        if kafka:
            letters = await dead_letters_kafka(bus_url.removeprefix("kafka://"), name)
        else:
            letters = await dead_letters_jetstream(bus_url, name)
        settled = await nothing_pending(bus_url, name)
        took = time.monotonic() - started
        assert engine._task is not None and not engine._task.done()  # the engine stayed up
        status, body = await asyncio.to_thread(health, health_port)
    print(f"\n{bus_url.split(':')[0]}: published {FUZZED + VALID} in {published:.1f}s, all settled after {fired:.1f}s, "
          f"{len(letters)} dead letters read and consumer settled after {took:.1f}s")
    assert sorted(int(r.json()["n"]) for r in http_sink.requests) == list(range(VALID))
    assert sum(a.event is None and a.reason.startswith("dead-lettered to sensorium-dlq (undecodable)")
               for a in acks) == FUZZED
    assert Counter(body for _, body in letters) == Counter(body for _, body, _ in messages)  # each one, once
    prefix = "ce_" if kafka else "ce-"
    for headers, _ in letters:
        assert headers[prefix + "dlqsensor"] == name and headers[prefix + "dlqreason"] == "undecodable"
        assert headers[prefix + "dlqerror"].startswith("not a CloudEvent: ")
        if kafka:
            assert headers["ce_dlqtopic"] == "argo-events" and headers["ce_dlqkey"] == key.dotted()
            assert int(headers["ce_dlqoffset"]) >= 0 and int(headers["ce_dlqpartition"]) >= 0
        else:
            assert headers["ce-dlqsubject"] == f"default.{source}.e" and int(headers["ce-dlqsequence"]) > 0
    assert settled.startswith("nothing pending"), settled
    logged = [r.getMessage() for r in caplog.records if "dead-lettered to sensorium-dlq" in r.getMessage()]
    assert len(logged) == FUZZED
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], [r.getMessage() for r in caplog.records
                                                                          if r.levelno >= logging.ERROR][:5]
    assert status == 200 and "failing" not in body, body


async def test_deep_json_message_no_longer_wedges_the_loop(bus_url: str, http_sink: HttpSink, tmp_path: Path,
                                                           caplog: pytest.LogCaptureFixture) -> None:
    """The issue's report: one structured CloudEvent whose data is nested 10,000 deep stopped the sensor forever
    (the same message fetched again and again) while /healthz answered 200. Now it is dead-lettered at once and
    the events behind it fire; /healthz answers 200 throughout, and truthfully: the loop never failed."""
    source, name = unique("deep"), unique("deep")
    key = EventKey(source, "e")
    health_port = free_port()
    trace = TraceLog()
    engine = Engine(write_config(tmp_path, sensor_yaml(name, source, http_sink.url)), bus_url, tracer=trace)
    engine.options.health_port = health_port
    deep = (b'{"specversion":"1.0","id":"deep-1","source":"' + source.encode() + b'","type":"t","subject":"e",'
            b'"data":' + b"[" * 10_000 + b"]" * 10_000 + b"}")
    caplog.set_level(logging.INFO)
    async with engine:
        bus: Bus = from_url(bus_url)
        await bus.start()
        try:
            valid = [event(source, "e", json.dumps({"n": n}).encode()) for n in range(20)]
            await bus.publish_many([(key, "deep-1", deep)] + [(key, e.id, encode_structured(e)) for e in valid])
        finally:
            await bus.close()
        statuses = []
        async with asyncio.timeout(30):
            while len(http_sink.requests) < 20:
                statuses.append((await asyncio.to_thread(health, health_port))[0])
                await asyncio.sleep(0.2)
        await trace.settled(21)
        letters = await (dead_letters_kafka(bus_url.removeprefix("kafka://"), name) if bus_url.startswith(
            "kafka://") else dead_letters_jetstream(bus_url, name))
        settled = await nothing_pending(bus_url, name)
        statuses.append((await asyncio.to_thread(health, health_port))[0])
    assert sorted(int(r.json()["n"]) for r in http_sink.requests) == list(range(20))
    assert [body for _, body in letters] == [deep]
    assert settled.startswith("nothing pending"), settled
    assert set(statuses) == {200}
    messages = [r.getMessage() for r in caplog.records]
    assert not any("loop failed" in m or "Traceback" in m for m in messages)
    [line] = [m for m in messages if "dead-lettered" in m]
    assert line.endswith("dead-lettered to sensorium-dlq: not a CloudEvent: not JSON: nested deeper than 512 levels")
    assert f"sensor {name}: message at " in line

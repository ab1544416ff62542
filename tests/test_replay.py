"""`sensorium replay` end to end on a real bus (JetStream and Kafka), as a child process, against a real HTTP sink:
the replay re-fires exactly what the sensor matched, marked, and the live consumer keeps its position."""

from __future__ import annotations

import asyncio
import json
import os
import pty
import re
import signal
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import nats
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, RecordsToDelete

from sensorium.buses.base import EventKey
from sensorium.buses.embedded import EmbeddedNats
from sensorium.buses.kafka.bus import DEFAULT_PARTITIONS, KafkaBus
from sensorium.engine.core.cloudevent import encode_structured
from sensorium.engine.goport.sarama import sarama_hash
from tests.engine_harness import Engine, event, publish, unique, write_config
from tests.fixtures_http import HttpSink
from tests.trace_log import TraceLog


def sensor_yaml(name: str, source: str, sink: str) -> str:
    """`notify` fires for every paid order; `audit` only for replayed ones (a context filter on the extension)."""
    return f"""
apiVersion: argoproj.io/v1alpha1
kind: Sensor
metadata: {{name: {name}}}
spec:
  dependencies:
    - name: order
      eventSourceName: {source}
      eventName: orders
      filters:
        data:
          - {{path: kind, type: string, value: ["paid"]}}
    - name: replayed
      eventSourceName: {source}
      eventName: orders
      filters:
        context:
          extensions: {{sensoriumreplay: "true"}}
        data:
          - {{path: kind, type: string, value: ["paid"]}}
  triggers:
    - template:
        name: notify
        conditions: order
        http:
          url: {sink}/orders
          method: POST
          payload:
            - src: {{dependencyName: order, dataKey: n, useRawData: true}}
              dest: n
    - template:
        name: audit
        conditions: replayed
        http:
          url: {sink}/audit
          method: POST
          payload:
            - src: {{dependencyName: replayed, dataKey: n, useRawData: true}}
              dest: n
"""


async def sensorium(*args: str, timeout: float = 90.0) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "sensorium", *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"})
    out, err = await asyncio.wait_for(proc.communicate(), timeout)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def live_position(bus_url: str, consumer: str) -> Any:
    """Where the live consumer is, once it has settled what it was handed: JetStream's durable consumer info
    (delivered, ack floor, unacknowledged, pending), Kafka's committed offsets of the group (waited for until they
    reach the topic's end: the group commits in batches); and the replay consumers on the stream (JetStream) or
    every consumer group (Kafka: the replay must not create one)."""
    if bus_url.startswith("kafka://"):
        brokers = bus_url.removeprefix("kafka://")
        admin = AIOKafkaAdminClient(bootstrap_servers=brokers)
        reader = AIOKafkaConsumer(bootstrap_servers=brokers)
        await admin.start()
        await reader.start()
        try:
            for _ in range(100):
                offsets = await admin.list_consumer_group_offsets(consumer)
                committed = {tp: meta.offset for tp, meta in offsets.items()}
                ends = await reader.end_offsets(list(committed))
                if committed and committed == ends:
                    break
                await asyncio.sleep(0.1)
            assert committed, f"the live group {consumer} committed nothing"
            groups = sorted(g[0] for g in await admin.list_consumer_groups())
        finally:
            await reader.stop()
            await admin.close()
        return {tp.partition: offset for tp, offset in committed.items()}, groups
    nc = await nats.connect(bus_url)
    try:
        js = nc.jetstream()
        info = await js.consumer_info("default", consumer)
        names = [c.name for c in await js.consumers_info("default")]
    finally:
        await nc.close()
    return ((info.delivered.stream_seq if info.delivered else None,
             info.ack_floor.stream_seq if info.ack_floor else None, info.num_ack_pending, info.num_pending),
            [n for n in names if n.startswith("sensorium-replay-")])


async def test_replay_refires_exactly_what_matched_and_live_keeps_position(bus_url: str, http_sink: HttpSink,
                                                                           tmp_path: Path) -> None:
    source, name = unique("shop"), unique("orders")
    config = write_config(tmp_path / "config", sensor_yaml(name, source, http_sink.url))
    kinds = ["paid", "draft", "paid", "paid", "draft"]
    events = [event(source, "orders", json.dumps({"n": i, "kind": k}).encode()) for i, k in enumerate(kinds)]
    other = event(source, "refunds", b'{"n":99,"kind":"paid"}')  # not the sensor's key
    trace = TraceLog()
    engine = Engine(config, bus_url, tracer=trace)
    engine.options.intake_group = group = unique("intake")  # the live consumer: the shared intake's, of this test
    async with engine:
        await publish(bus_url, *events, other)
        await trace.acked(*events)
        live = await http_sink.wait_for(3)
        # the live sensor fires events concurrently: any order
        assert sorted((r.path, r.json()["n"]) for r in live) == [("/orders", 0), ("/orders", 2), ("/orders", 3)]
        assert all(r.header("X-Sensorium-Replay") is None for r in live)
        before = await live_position(bus_url, group)

        code, out, err = await sensorium("replay", str(config), "--bus", bus_url, "--sensor", name, "--since", "1h")
        assert code == 0, err
        replayed = http_sink.requests[3:]
        replay_id = replayed[0].header("X-Sensorium-Replay")
        assert replay_id and replay_id.startswith("r-")
        assert sorted((r.path, r.json()["n"]) for r in replayed) == [
            ("/audit", 0), ("/audit", 2), ("/audit", 3), ("/orders", 0), ("/orders", 2), ("/orders", 3)]
        assert [r.json()["n"] for r in replayed if r.path == "/orders"] == [0, 2, 3]  # in stored order
        assert {r.header("X-Sensorium-Replay") for r in replayed} == {replay_id}
        assert f"replayed {replay_id} to sensor {name}: 5 event(s) read, 3 matched, 6 firing(s) fired" in out
        code, out, err = await sensorium("trace", "--bus", bus_url, "--sensor", name, "--format", "json")
        assert code == 0, err
        received = [r for r in map(json.loads, out.splitlines()) if r["step"] == "received"]
        assert [r["event"] for r in received] == [e.id for e in events]  # the replay's records, on the bus
        assert {(r["attributes"]["sensoriumreplay"], r["attributes"]["sensoriumreplayid"]) for r in received} == {
            ("true", replay_id)}
        after = await live_position(bus_url, group)
        assert after == before  # the same position, no replay consumer left, no consumer group made
        if bus_url.startswith("nats://"):
            assert after[1] == []

        fresh = event(source, "orders", b'{"n":5,"kind":"paid"}')
        await publish(bus_url, fresh)
        await trace.acked(fresh)
    assert [(r.path, r.json()) for r in http_sink.requests[9:]] == [("/orders", {"n": 5})]
    assert len(http_sink.requests) == 10


async def test_replay_dry_run_sends_nothing(nats_url: str, http_sink: HttpSink, tmp_path: Path) -> None:
    source, name = unique("shop"), unique("orders")
    config = write_config(tmp_path / "config", sensor_yaml(name, source, http_sink.url))
    events = [event(source, "orders", json.dumps({"n": i, "kind": "paid"}).encode()) for i in range(2)]
    await publish(nats_url, *events)
    code, out, err = await sensorium("replay", str(config), "--bus", nats_url, "--subscription", name,
                                     "--since", "1h", "--dry-run")
    assert code == 0, err
    lines = [line for line in out.splitlines() if line.startswith("would fire")]
    assert sorted(line.split(" at ")[0] for line in lines) == sorted(
        f"would fire {t} for event {e.id}" for e in events for t in ("notify", "audit"))
    assert f"POST {http_sink.url}/orders" in lines[0]
    assert "dry run r-" in out and "2 event(s) read, 2 matched, 4 firing(s) would fire" in out
    assert http_sink.requests == []


async def test_replay_range_past_retention_names_the_oldest_event(fresh_nats: EmbeddedNats, http_sink: HttpSink,
                                                                  tmp_path: Path) -> None:
    source, name = unique("shop"), unique("orders")
    bus = f"""
apiVersion: argoproj.io/v1alpha1
kind: EventBus
metadata: {{name: default}}
spec:
  jetstream:
    url: {fresh_nats.url}
    streamConfig: |
      maxMsgs: 3
"""
    config = write_config(tmp_path / "config", sensor_yaml(name, source, http_sink.url), bus)
    async with Engine(config, None):  # creates the stream with the EventBus's settings
        pass
    await publish(fresh_nats.url, *[event(source, "orders", json.dumps({"n": i, "kind": "paid"}).encode())
                                    for i in range(5)])
    code, _, err = await sensorium("replay", str(config), "--sensor", name, "--from-sequence", "1")
    assert code == 2
    assert err.strip().startswith("--from-sequence 1 is past the retention of stream 'default': the oldest event "
                                  "retained is sequence 3 (stored ")
    code, _, err = await sensorium("replay", str(config), "--sensor", name, "--since", "1h")
    assert code == 2 and "past the retention of stream 'default': the oldest event retained is sequence 3" in err
    code, out, err = await sensorium("replay", str(config), "--sensor", name, "--from-sequence", "4")
    assert code == 0, err
    assert "2 event(s) read, 2 matched, 4 firing(s) fired" in out
    assert [r.json()["n"] for r in http_sink.requests if r.path == "/orders"] == [3, 4]


@pytest.mark.kafka
async def test_replay_kafka_offsets_and_the_wrong_start_flag(kafka_broker: str, http_sink: HttpSink,
                                                             tmp_path: Path) -> None:
    source, name = unique("shop"), unique("orders")
    config = write_config(tmp_path / "config", sensor_yaml(name, source, http_sink.url))
    url = f"kafka://{kafka_broker}"
    await publish(url, *[event(source, "orders", json.dumps({"n": i, "kind": "paid"}).encode()) for i in range(3)])
    code, _, err = await sensorium("replay", str(config), "--bus", url, "--sensor", name, "--from-sequence", "1")
    assert code == 2 and err.strip().startswith("--from-sequence is for a JetStream bus")
    code, out, err = await sensorium("replay", str(config), "--bus", url, "--sensor", name, "--from-offset", "0")
    assert code == 0, err
    assert "3 event(s) read, 3 matched, 6 firing(s) fired" in out
    assert [r.json()["n"] for r in http_sink.requests if r.path == "/orders"] == [0, 1, 2]


async def test_replay_ctrl_c_stops_cleanly_with_a_summary(nats_url: str, http_sink: HttpSink,
                                                          tmp_path: Path) -> None:
    source, name = unique("shop"), unique("orders")
    config = write_config(tmp_path / "config", sensor_yaml(name, source, http_sink.url))
    await publish(nats_url, *[event(source, "orders", json.dumps({"n": i, "kind": "paid"}).encode())
                              for i in range(20)])
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "sensorium", "replay", str(config), "--bus", nats_url, "--sensor", name,
        "--since", "1h", "--rate", "5", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    await http_sink.wait_for(4, timeout=60)  # two events fired: the replay is under way
    proc.send_signal(signal.SIGINT)
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 130, err
    summary = out.decode().strip().splitlines()[-1]
    read = len({r.json()["n"] for r in http_sink.requests})
    assert summary.startswith("interrupted r-") and f": {read} event(s) read, {read} matched" in summary
    assert "Traceback" not in err.decode() and 0 < read < 20
    resume = summary.rsplit("; continue with ", 1)[1].split()
    assert resume[0] == "--from-sequence"
    code, _, rest = await sensorium("replay", str(config), "--bus", nats_url, "--sensor", name, *resume)
    assert code == 0, rest  # continuing where it stopped replays exactly the rest
    assert [r.json()["n"] for r in http_sink.requests if r.path == "/orders"] == list(range(20))
    nc = await nats.connect(nats_url)
    try:
        names = [c.name for c in await nc.jetstream().consumers_info("default")]
    finally:
        await nc.close()
    assert not [n for n in names if n.startswith(f"sensorium-replay-{name}")]  # deleted on the way out


async def test_replay_of_a_range_without_the_sensors_events_is_refused(nats_url: str, http_sink: HttpSink,
                                                                       tmp_path: Path) -> None:
    source, name = unique("shop"), unique("orders")
    config = write_config(tmp_path / "config", sensor_yaml(name, source, http_sink.url))
    await publish(nats_url, event(source, "refunds", b'{"kind":"paid"}'))  # not a key of the sensor
    code, out, err = await sensorium("replay", str(config), "--bus", nats_url, "--sensor", name, "--since", "1h")
    assert (code, out) == (2, "")
    assert err == (f"the range holds no event for sensor {name} (it listens to {source}.orders): nothing to "
                   "replay\n")


@pytest.mark.kafka
async def test_replay_kafka_range_past_retention_names_the_oldest_record(kafka_broker: str, http_sink: HttpSink,
                                                                         tmp_path: Path) -> None:
    source, name, topic = unique("shop"), unique("orders"), unique("replay-topic")
    bus = f"""
apiVersion: argoproj.io/v1alpha1
kind: EventBus
metadata: {{name: default}}
spec:
  kafka: {{url: "{kafka_broker}", topic: {topic}}}
"""
    config = write_config(tmp_path / "config", sensor_yaml(name, source, http_sink.url), bus)
    writer = KafkaBus(kafka_broker, topic)
    await writer.start()
    try:
        events = [event(source, "orders", json.dumps({"n": i, "kind": "paid"}).encode()) for i in range(5)]
        await writer.publish_many([(EventKey(e.source, e.subject), e.id, encode_structured(e)) for e in events])
    finally:
        await writer.close()
    partition = sarama_hash(f"{source}.orders".encode(), DEFAULT_PARTITIONS)  # the five are offsets 0-4 here
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_broker)
    await admin.start()
    try:
        await admin.delete_records({TopicPartition(topic, partition): RecordsToDelete(before_offset=2)})
    finally:
        await admin.close()
    code, _, err = await sensorium("replay", str(config), "--sensor", name, "--from-offset", "0")
    assert (code, err) == (2, f"--from-offset 0 is past the retention of partition {partition} of topic '{topic}': "
                              "its oldest retained record is offset 2\n")
    code, _, err = await sensorium("replay", str(config), "--sensor", name, "--since", "1h")
    assert code == 2 and re.fullmatch(
        rf"the range starts at [0-9T:-]+Z, past the retention of topic '{topic}': the oldest record retained in "
        rf"partition {partition} is offset 2 \(stored [0-9T:-]+Z\)\n", err), err
    code, out, err = await sensorium("replay", str(config), "--sensor", name, "--from-offset", f"{partition}:3")
    assert code == 0, err
    assert "2 event(s) read, 2 matched, 4 firing(s) fired" in out
    assert [r.json()["n"] for r in http_sink.requests if r.path == "/orders"] == [3, 4]


async def test_replay_until_ends_the_range(bus_url: str, http_sink: HttpSink, tmp_path: Path) -> None:
    source, name = unique("shop"), unique("orders")
    config = write_config(tmp_path / "config", sensor_yaml(name, source, http_sink.url))
    start = datetime.now(UTC) - timedelta(seconds=1)
    await publish(bus_url, *[event(source, "orders", json.dumps({"n": i, "kind": "paid"}).encode()) for i in range(2)])
    await asyncio.sleep(0.2)
    cut = datetime.now(UTC)
    await asyncio.sleep(0.2)
    await publish(bus_url, event(source, "orders", b'{"n":2,"kind":"paid"}'))
    code, out, err = await sensorium("replay", str(config), "--bus", bus_url, "--sensor", name,
                                     "--from-time", start.isoformat(), "--until", cut.isoformat())
    assert code == 0, err
    assert "2 event(s) read, 2 matched, 4 firing(s) fired" in out
    assert [r.json()["n"] for r in http_sink.requests if r.path == "/orders"] == [0, 1]


async def test_replay_draws_a_progress_bar_on_a_terminal(nats_url: str, http_sink: HttpSink, tmp_path: Path) -> None:
    source, name = unique("shop"), unique("orders")
    config = write_config(tmp_path / "config", sensor_yaml(name, source, http_sink.url))
    await publish(nats_url, *[event(source, "orders", json.dumps({"n": i, "kind": "paid"}).encode())
                              for i in range(6)])
    leader, follower = pty.openpty()
    try:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "sensorium", "replay", str(config), "--bus", nats_url, "--sensor", name,
            "--since", "1h", "--rate", "10", stdout=asyncio.subprocess.PIPE, stderr=follower)
        out, _ = await asyncio.wait_for(proc.communicate(), 60)
        os.close(follower)
        follower = -1
        screen = b""
        while chunk := await asyncio.to_thread(_read_pty, leader):
            screen += chunk
    finally:
        os.close(leader)
        if follower >= 0:
            os.close(follower)
    assert proc.returncode == 0
    text = screen.decode()
    assert re.search(rf"\r\x1b\[2Kreplay {name} \[#+-*\] ([1-5])/6 · \1 event\(s\), \1 matched, \d+ fired", text), text
    assert text.endswith("\r\x1b[2K")  # cleared before the summary (on standard output)
    assert "6 event(s) read, 6 matched, 12 firing(s) fired" in out.decode()


def _read_pty(fd: int) -> bytes:
    try:
        return os.read(fd, 65536)
    except OSError:  # EIO: the other side is closed and everything was read
        return b""


async def test_replay_condition_state_is_its_own(nats_url: str, http_sink: HttpSink, tmp_path: Path) -> None:
    """The live sensor holds `a` of `a && b` (on the bus); a replay neither uses nor consumes that."""
    source, name = unique("pair"), unique("pair")
    sensor = f"""
apiVersion: argoproj.io/v1alpha1
kind: Sensor
metadata: {{name: {name}}}
spec:
  dependencies:
    - {{name: a, eventSourceName: {source}, eventName: a}}
    - {{name: b, eventSourceName: {source}, eventName: b}}
  triggers:
    - template:
        name: both
        conditions: "a && b"
        http:
          url: {http_sink.url}/both
          method: POST
          payload:
            - {{src: {{dependencyName: a, dataKey: n, useRawData: true}}, dest: a}}
            - {{src: {{dependencyName: b, dataKey: n, useRawData: true}}, dest: b}}
"""
    config = write_config(tmp_path / "config", sensor)
    first, second = event(source, "a", b'{"n":1}'), event(source, "b", b'{"n":2}')
    trace = TraceLog()
    async with Engine(config, nats_url, tracer=trace):
        await publish(nats_url, first)
        await trace.acked(first)  # the live sensor now holds `a`
    between = datetime.now(UTC)
    await asyncio.sleep(0.1)
    await publish(nats_url, second)  # stored; the live sensor is stopped

    code, out, err = await sensorium("replay", str(config), "--bus", nats_url, "--sensor", name,
                                     "--from-time", between.isoformat())
    assert code == 0, err
    assert "1 event(s) read, 1 matched, 0 firing(s) fired" in out  # `b` alone: the replay holds no `a`
    code, out, err = await sensorium("replay", str(config), "--bus", nats_url, "--sensor", name, "--since", "1h")
    assert code == 0, err
    assert "2 event(s) read, 2 matched, 1 firing(s) fired" in out
    assert [(r.json(), r.header("X-Sensorium-Replay") is not None) for r in http_sink.requests] == [
        ({"a": 1, "b": 2}, True)]

    async with Engine(config, nats_url, tracer=trace):  # the live sensor still holds `a`: `b` completes it
        await trace.acked(second)
    assert [(r.json(), r.header("X-Sensorium-Replay") is not None) for r in http_sink.requests] == [
        ({"a": 1, "b": 2}, True), ({"a": 1, "b": 2}, False)]

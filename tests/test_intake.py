"""The shared intake (issue 13 item 1) on a real nats-server (and Kafka where named), real engines, real HTTP
sinks: one consumer for many sensors, each sensor seeing only its events; a message acked only after every
sensor's firings; a sensor added by a reload starting at new events; a restart losing nothing."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from sensorium.buses.kafka.bus import DEFAULT_PARTITIONS
from sensorium.engine.assemble import load_checked
from sensorium.engine.intake import DEFAULT_GROUP
from sensorium.engine.trace.records import Acknowledged, Received
from tests.engine_harness import Engine, EngineProcess, event, publish, unique, write_config
from tests.fixtures_http import HttpSink, Reply
from tests.markers import BUSES
from tests.trace_log import TraceLog


def sensor_yaml(name: str, source: str, url: str, customer: str | None = None, event_name: str = "e") -> str:
    filters = (f"""
      filters:
        data:
          - {{path: customer, type: string, value: ["^{customer}$"]}}""" if customer is not None else "")
    return f"""
apiVersion: argoproj.io/v1alpha1
kind: Sensor
metadata: {{name: {name}}}
spec:
  dependencies:
    - name: d
      eventSourceName: {source}
      eventName: {event_name}{filters}
  triggers:
    - template:
        name: t
        http:
          url: {url}
          payload: [{{src: {{dependencyName: d, dataKey: n}}, dest: n}}]
"""


def engine_with_group(folder: Path, nats_url: str, **options: Any) -> tuple[Engine, str]:
    """An in-process engine whose intake has a name of its own (no other test's messages reach it)."""
    engine = Engine(folder, nats_url, **options)
    engine.options.intake_group = unique("intake")
    return engine, engine.options.intake_group


async def ack_pending(nats_url: str, group: str = DEFAULT_GROUP) -> tuple[int, int]:
    """(num_ack_pending, num_pending) of the intake's durable consumer."""
    import nats

    nc = await nats.connect(nats_url)
    try:
        info = await nc.jetstream().consumer_info("default", group)
        return info.num_ack_pending, info.num_pending
    finally:
        await nc.close()


@pytest.mark.integration
async def test_200_sensors_with_exact_filters_each_see_only_their_events(nats_url: str, http_sink: HttpSink,
                                                                         tmp_path: Path) -> None:
    source = unique("route")
    names = [unique(f"c{i}") for i in range(200)]
    folder = write_config(tmp_path / "config", *(sensor_yaml(name, source, f"{http_sink.url}/{i}", f"cust-{i}")
                                                 for i, name in enumerate(names)))
    wanted = [event(source, "e", json.dumps({"customer": f"cust-{i % 200}", "n": n}).encode())
              for n, i in enumerate(range(600))]
    unwanted = [event(source, "e", json.dumps({"customer": f"cust-{i}x", "n": -1}).encode()) for i in range(50)]
    trace = TraceLog()
    engine, group = engine_with_group(folder, nats_url, tracer=trace)
    async with engine:
        await publish(nats_url, *[e for pair in zip(wanted[:50], unwanted, strict=True) for e in pair],
                      *wanted[50:])
        await trace.wait(lambda r: isinstance(r, Acknowledged), len(wanted), timeout=120)
        for _ in range(100):  # the intake acks the unwanted ones itself (no sensor saw them)
            if await ack_pending(nats_url, group) == (0, 0):
                break
            await asyncio.sleep(0.1)
        assert await ack_pending(nats_url, group) == (0, 0)
    paths = Counter(r.path for r in http_sink.requests)
    assert paths == Counter({f"/{i}": 3 for i in range(200)})
    for r in http_sink.requests:
        assert int(r.json()["n"]) % 200 == int(r.path[1:])
    received = Counter(r.sensor for r in trace.records if isinstance(r, Received))
    assert received == Counter(dict.fromkeys(names, 3))  # no sensor was handed an event it does not want


@pytest.mark.integration
async def test_a_message_is_acked_only_after_every_sensors_firings(nats_url: str, http_sink: HttpSink,
                                                                    tmp_path: Path) -> None:
    slow_sink = HttpSink()
    await slow_sink.start()
    slow_sink.default = Reply(delay=4.0)
    try:
        source = unique("shared")
        folder = write_config(tmp_path / "config", sensor_yaml(unique("slow"), source, f"{slow_sink.url}/slow"),
                              sensor_yaml(unique("fast"), source, f"{http_sink.url}/fast"))
        engine, group = engine_with_group(folder, nats_url, ack_wait=2.0)
        async with engine:
            first = event(source, "e", b'{"n": 0}')
            started = time.monotonic()
            await publish(nats_url, first)
            await http_sink.wait_for(1, timeout=10)
            fast_latency = time.monotonic() - started
            await slow_sink.wait_for(1, timeout=10)
            assert await ack_pending(nats_url, group) == (1, 0)  # the slow sensor's firing is still running
            # the other sensor goes on meanwhile: its firings are not held by the slow one
            more = [event(source, "e", json.dumps({"n": n}).encode()) for n in range(1, 11)]
            started = time.monotonic()
            await publish(nats_url, *more)
            await http_sink.wait_for(11, timeout=10)
            more_latency = time.monotonic() - started
            await asyncio.sleep(2.5)  # past ack_wait: the heartbeat keeps the held messages from redelivery
            pending, _ = await ack_pending(nats_url, group)
            assert pending >= 1
            await slow_sink.wait_for(11, timeout=30)
            for _ in range(100):
                if await ack_pending(nats_url, group) == (0, 0):
                    break
                await asyncio.sleep(0.1)
            assert await ack_pending(nats_url, group) == (0, 0)
        assert fast_latency < 2.0 and more_latency < 2.0, (fast_latency, more_latency)
        assert sorted(int(r.json()["n"]) for r in http_sink.requests) == list(range(11))  # once each
        assert sorted(int(r.json()["n"]) for r in slow_sink.requests) == list(range(11))
    finally:
        await slow_sink.stop()


@pytest.mark.integration
async def test_a_sensor_added_by_a_reload_does_not_fire_on_older_events(nats_url: str, http_sink: HttpSink,
                                                                        tmp_path: Path,
                                                                        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "sensorium.engine")
    source = unique("late")
    folder = write_config(tmp_path / "config", sensor_yaml(unique("early"), source, f"{http_sink.url}/early",
                                                           event_name="a"))
    trace = TraceLog()
    engine, group = engine_with_group(folder, nats_url, tracer=trace)
    engine.options.reload = lambda: load_checked([folder])
    engine.options.watch = [folder]
    async with engine:
        first = event(source, "a", b'{"n": 0}')
        await publish(nats_url, first)
        await trace.acked(first)
        # published before the sensor on `b` exists, after the intake's last delivered message: once the
        # consumer's filter takes `b` in, the bus would deliver them
        old = [event(source, "b", json.dumps({"n": n}).encode()) for n in range(1, 4)]
        await publish(nats_url, *old)
        (folder / "late.yaml").write_text(sensor_yaml(unique("added"), source, f"{http_sink.url}/added",
                                                      event_name="b"))
        for _ in range(200):
            if any("reloaded:" in r.getMessage() for r in caplog.records):
                break
            await asyncio.sleep(0.05)
        new = [event(source, "b", json.dumps({"n": n}).encode()) for n in range(4, 6)]
        await publish(nats_url, *new)
        await trace.acked(*new)
        for _ in range(100):
            if await ack_pending(nats_url, group) == (0, 0):
                break
            await asyncio.sleep(0.1)
    assert sorted(int(r.json()["n"]) for r in http_sink.requests if r.path == "/added") == [4, 5]
    assert [int(r.json()["n"]) for r in http_sink.requests if r.path == "/early"] == [0]


async def produce_at(broker: str, e: Any, timestamp_ms: int) -> None:
    """`e` on the bus topic as a producer whose clock says `timestamp_ms` stores it (CreateTime)."""
    from aiokafka import AIOKafkaProducer

    from sensorium.engine.core.cloudevent import encode_structured

    producer = AIOKafkaProducer(bootstrap_servers=broker)
    await producer.start()
    try:
        await producer.send_and_wait("argo-events", value=encode_structured(e), key=f"{e.source}.{e.subject}".encode(),
                                     timestamp_ms=timestamp_ms)
    finally:
        await producer.stop()


@pytest.mark.integration
async def test_kafka_a_new_sensor_starts_at_offsets_whatever_the_producers_clock(kafka_broker: str,
                                                                                http_sink: HttpSink,
                                                                                tmp_path: Path) -> None:
    """A sensor's start on Kafka is each partition's next offset: a backlog published before the sensor existed
    is not handed to it, and a record whose producer's clock is an hour behind, published after, is."""
    bus_url = f"kafka://{kafka_broker}"
    source, group = unique("clock"), unique("clock")
    folder = write_config(tmp_path / "config", sensor_yaml(unique("first"), source, f"{http_sink.url}/first",
                                                           event_name="a"))
    engine = EngineProcess(folder, bus_url, "--group", group)
    await engine.start()  # the group exists, at the end of the topic
    await engine.terminate()
    await publish(bus_url, *(event(source, "b", json.dumps({"n": n}).encode()) for n in range(3)))  # the backlog
    (folder / "added.yaml").write_text(sensor_yaml(unique("added"), source, f"{http_sink.url}/added", event_name="b"))
    engine = EngineProcess(folder, bus_url, "--group", group)
    await engine.start()
    try:
        await produce_at(kafka_broker, event(source, "b", b'{"n": 10}'), int((time.time() - 3600) * 1000))
        await publish(bus_url, event(source, "b", b'{"n": 11}'))
        await http_sink.wait_for(2, timeout=30)
        await asyncio.sleep(1.0)  # (anything else would come now: the same key, one partition, in order)
    finally:
        await engine.terminate()
    assert sorted(int(r.json()["n"]) for r in http_sink.requests if r.path == "/added") == [10, 11]
    assert not [r for r in http_sink.requests if r.path == "/first"]


@pytest.mark.integration
@pytest.mark.parametrize("bus", BUSES)
async def test_a_restart_resumes_with_nothing_lost(bus: str, request: pytest.FixtureRequest,
                                                   http_sink: HttpSink, tmp_path: Path) -> None:
    bus_url = request.getfixturevalue("nats_url") if bus == "jetstream" else (
        "kafka://" + request.getfixturevalue("kafka_broker"))
    source = unique("restart")
    folder = write_config(tmp_path / "config", sensor_yaml(unique("keep"), source, f"{http_sink.url}/keep"),
                          sensor_yaml(unique("also"), source, f"{http_sink.url}/also"))
    http_sink.default = Reply(delay=0.05)
    group = unique("restart")
    engine = EngineProcess(folder, bus_url, "--ack-wait", "3", "--group", group)
    await engine.start()
    events = [event(source, "e", json.dumps({"n": n}).encode()) for n in range(100)]
    try:
        await publish(bus_url, *events[:50])
        await http_sink.wait_for(20, timeout=30)
        await engine.kill()  # firings in flight, messages unacked
        await publish(bus_url, *events[50:])  # while no engine runs
        engine = EngineProcess(folder, bus_url, "--ack-wait", "3", "--group", group)
        await engine.start()

        async def covered() -> None:
            while True:
                keep = {int(r.json()["n"]) for r in list(http_sink.requests) if r.path == "/keep"}
                also = {int(r.json()["n"]) for r in list(http_sink.requests) if r.path == "/also"}
                if keep == also == set(range(100)):
                    return
                await asyncio.sleep(0.1)
        await asyncio.wait_for(covered(), 90)
    finally:
        await engine.terminate()


async def legacy_consumer(bus_url: str, sensor: str, source: str) -> None:
    """What an engine of an earlier version left: the sensor's own durable consumer / consumer group, at the end
    of the bus now."""
    if bus_url.startswith("kafka://"):
        from aiokafka import AIOKafkaConsumer, TopicPartition

        consumer = AIOKafkaConsumer(bootstrap_servers=bus_url.removeprefix("kafka://"),
                                    group_id=f"sensorium-{sensor}", enable_auto_commit=False)
        await consumer.start()
        try:
            parts = [TopicPartition("argo-events", p) for p in range(DEFAULT_PARTITIONS)]  # as the bus creates it
            consumer.assign(parts)
            await consumer.commit(await consumer.end_offsets(parts))
        finally:
            await consumer.stop()
        return
    import nats
    from nats.js import api

    nc = await nats.connect(bus_url)
    try:
        await nc.jetstream().add_consumer("default", api.ConsumerConfig(
            durable_name=f"sensorium-{sensor}", deliver_policy=api.DeliverPolicy.NEW,
            ack_policy=api.AckPolicy.EXPLICIT, filter_subjects=[f"default.{source}.e"]))
    finally:
        await nc.close()


@pytest.mark.integration
@pytest.mark.parametrize("bus", BUSES)
async def test_an_upgrade_takes_over_what_per_sensor_consumers_held(bus: str, request: pytest.FixtureRequest,
                                                                    http_sink: HttpSink, tmp_path: Path) -> None:
    """An engine of an earlier version left `sensorium-<sensor>` with messages it had not acknowledged: the
    intake delivers them (and nothing older); on JetStream it then deletes that consumer."""
    bus_url = request.getfixturevalue("nats_url") if bus == "jetstream" else (
        "kafka://" + request.getfixturevalue("kafka_broker"))
    group = unique("upgrade")  # a deployment whose intake does not exist yet
    source, sensor = unique("old"), unique("legacy")
    before = [event(source, "e", json.dumps({"n": -n}).encode()) for n in range(1, 3)]
    held = [event(source, "e", json.dumps({"n": n}).encode()) for n in range(5)]
    await publish(bus_url, *before)
    await legacy_consumer(bus_url, sensor, source)
    if bus == "kafka":  # the last one from a producer whose clock is an hour behind: still held, still delivered
        await publish(bus_url, *held[:-1])
        await produce_at(bus_url.removeprefix("kafka://"), held[-1], int((time.time() - 3600) * 1000))
    else:
        await publish(bus_url, *held)
    folder = write_config(tmp_path / "config", sensor_yaml(sensor, source, f"{http_sink.url}/s"))
    trace = TraceLog()
    engine = Engine(folder, bus_url, tracer=trace)
    engine.options.intake_group = group
    async with engine:
        await trace.acked(*held, timeout=60)
        after = event(source, "e", b'{"n": 5}')
        await publish(bus_url, after)
        await trace.acked(after, timeout=60)
    assert sorted(int(r.json()["n"]) for r in http_sink.requests) == list(range(6))
    if bus == "jetstream":
        import nats
        from nats.js.errors import NotFoundError

        nc = await nats.connect(bus_url)
        try:
            with pytest.raises(NotFoundError):
                await nc.jetstream().consumer_info("default", f"sensorium-{sensor}")
        finally:
            await nc.close()


@pytest.mark.integration
async def test_a_sensor_with_its_own_consumer_keeps_it_beside_the_intake(nats_url: str, http_sink: HttpSink,
                                                                         tmp_path: Path) -> None:
    import nats

    source, own = unique("own"), unique("subscription")
    mine = sensor_yaml(unique("mine"), source, f"{http_sink.url}/own").replace(
        "spec:\n", f"spec:\n  consumer: {{name: {own}, maxInFlight: 8}}\n", 1)
    folder = write_config(tmp_path / "config", mine, sensor_yaml(unique("shared"), source, f"{http_sink.url}/in"))
    trace = TraceLog()
    events = [event(source, "e", json.dumps({"n": n}).encode()) for n in range(20)]
    async with Engine(folder, nats_url, tracer=trace):
        await publish(nats_url, *events)
        await trace.wait(lambda r: isinstance(r, Acknowledged), 2 * len(events))
        nc = await nats.connect(nats_url)
        try:
            info = await nc.jetstream().consumer_info("default", own)
        finally:
            await nc.close()
    assert info.config.max_ack_pending == 1000 and info.config.filter_subjects == [f"default.{source}.e"]
    assert (info.num_ack_pending, info.num_pending) == (0, 0)
    for path in ("/own", "/in"):
        assert sorted(int(r.json()["n"]) for r in http_sink.requests if r.path == path) == list(range(20))


@pytest.mark.integration
async def test_a_second_deployment_under_the_same_group_name_is_named_in_an_error(
        nats_url: str, http_sink: HttpSink, tmp_path: Path) -> None:
    """Two engines with different sensors and one `--group` would take (or filter away) each other's events: the
    one that starts second says so, naming the fix, while the first is pulling."""
    group = unique("shared")
    first = EngineProcess(write_config(tmp_path / "a", sensor_yaml(unique("a"), unique("srca"), http_sink.url)),
                          nats_url, "--group", group)
    second = EngineProcess(write_config(tmp_path / "b", sensor_yaml(unique("b"), unique("srcb"), http_sink.url)),
                           nats_url, "--group", group)
    await first.start()
    try:
        await second.start()
        await second.terminate()
    finally:
        await first.terminate()
    errors = [line for line in second.output if "is being read by another engine" in line]
    assert len(errors) == 1, second.output[-20:]
    assert f"consumer {group} on {nats_url}" in errors[0] and "sensorium run --group NAME" in errors[0]
    assert not any("is being read by another engine" in line for line in first.output)


@pytest.mark.integration
async def test_kafka_members_of_one_group_with_different_sensors_are_named_in_an_error(
        kafka_broker: str, http_sink: HttpSink, tmp_path: Path) -> None:
    """The same on Kafka: the group's leader compares its members' event keys when it assigns partitions."""
    group = unique("shared")
    bus_url = f"kafka://{kafka_broker}"
    first = EngineProcess(write_config(tmp_path / "a", sensor_yaml(unique("a"), unique("srca"), http_sink.url)),
                          bus_url, "--group", group)
    second = EngineProcess(write_config(tmp_path / "b", sensor_yaml(unique("b"), unique("srcb"), http_sink.url)),
                           bus_url, "--group", group)
    alike, other = sensor_yaml(unique("c"), unique("srcc"), http_sink.url), unique("alike")
    twins = [EngineProcess(write_config(tmp_path / f"twin{i}", alike), bus_url, "--group", other) for i in (1, 2)]
    await first.start()
    try:
        await second.start()
        for twin in twins:
            await twin.start()
        await asyncio.sleep(1.0)
        for engine in (second, *twins):
            await engine.terminate()
    finally:
        await first.terminate()
    errors = [line for line in first.output + second.output if "listen to 2 different sets of events" in line]
    assert errors, (first.output[-20:], second.output[-20:])
    assert f"group '{group}'" in errors[0] and "sensorium run --group NAME" in errors[0]
    assert not any("different sets of events" in line for twin in twins for line in twin.output)

"""Trace records on the bus (JetStream stream `sensorium-trace`, Kafka topic `sensorium-trace`), read back by
`read_traces` and by `sensorium trace` from another process."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import nats
import pytest

from sensorium.buses.embedded import EmbeddedNats
from sensorium.buses.jetstream.bus import JetStreamBus
from sensorium.buses.jetstream.trace import trace_subject
from sensorium.buses.kafka.bus import KafkaBus
from sensorium.buses.memory import MemoryBroker, MemoryBus
from sensorium.engine.busconfig import from_url
from sensorium.engine.trace.bus import NOT_STORED, read_traces
from sensorium.engine.trace.bus import _lines as trace_lines
from sensorium.engine.trace.holding import HOLD_LIMIT
from sensorium.engine.trace.hub import TraceHub
from sensorium.engine.trace.records import DETAILS
from tests.engine_harness import Engine, event, publish, unique, write_config
from tests.fixtures_http import HttpSink, Reply
from tests.trace_log import TraceLog


def sensor(name: str, source: str, url: str) -> str:
    return f"""
apiVersion: argoproj.io/v1alpha1
kind: Sensor
metadata: {{name: {name}}}
spec:
  dependencies:
    - name: d
      eventSourceName: {source}
      eventName: e
      filters:
        data: [{{path: ok, type: bool, value: ["true"]}}]
  triggers:
    - template:
        name: t
        http:
          url: {url}/hit
          payload: [{{src: {{dependencyName: d, dataKey: ok}}, dest: ok}}]
"""


async def collect(url: str, **kwargs: Any) -> list[dict[str, Any]]:
    return [r async for r in read_traces(url, **kwargs)]


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "sensorium", "trace", *args], capture_output=True, text=True,
                          timeout=120, check=False, env={"NO_COLOR": "1", "PATH": ""})


FIRED = {"all": ["received", "dependency", "filter", "condition", "firing", "param", "request", "response", "outcome",
                 "ack"],
         # what the others imply is left out: the check that passed, the condition that is that dependency, and
         # the firing of this event that succeeded at once (its parameter, start and outcome)
         "decisions": ["received", "dependency", "request", "response", "ack"]}


@pytest.mark.parametrize("detail", DETAILS)
async def test_engine_publishes_records_and_trace_reads_them(bus_url: str, http_sink: HttpSink, tmp_path: Path,
                                                             detail: str) -> None:
    name, source = unique("bus-traced"), unique("src")
    engine = Engine(write_config(tmp_path, sensor(name, source, http_sink.url)), bus_url)
    trace = TraceLog()
    hub = TraceHub([trace], bus_trace=True, interval=0.01, detail=detail)
    engine.options.tracer = hub
    fired, dropped = event(source, "e", b'{"ok":true}'), event(source, "e", b'{"ok":false}')
    async with engine:
        await publish(bus_url, fired, dropped)
        await trace.acked(fired, dropped)
    await hub.close()
    assert hub.sink_errors == 0 and hub.dropped == 0

    records = await collect(bus_url, sensor=name)
    mine = [r for r in records if r["event"] == fired.id]
    assert [r["step"] for r in mine] == FIRED[detail]
    assert trace.routines == (detail == "decisions")  # (told in one record on the bus: the next test)
    assert {r["sensor"] for r in records} == {name}
    # the event that did not pass keeps its check in both: it says why
    assert [r["step"] for r in records if r["event"] == dropped.id] == ["received", "dependency", "filter", "ack"]
    # what the bus stores is compressed (one Zstandard frame per message) and far smaller than its lines
    bodies = [body async for body in from_url(bus_url).read_trace(name, None, False, 1.0)]
    assert bodies and all(body.startswith(b"\x28\xb5\x2f\xfd") for body in bodies)
    lines = sum(len(json.dumps(r, separators=(",", ":"), ensure_ascii=False)) + 1 for r in records)
    assert sum(map(len, bodies)) < lines / 2
    assert [r["passed"] for r in records if r["step"] == "filter" and r["event"] == dropped.id] == [False]
    assert await collect(bus_url, sensor=name, since=3600.0) == records
    assert await collect(bus_url, sensor=unique("nobody")) == []

    done = cli("--bus", bus_url, "--sensor", name, "--event", fired.id, "--format", "json")
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert lines == mine
    human = cli("--bus", bus_url, "--sensor", name, "--event", dropped.id, "--since", "1h")
    assert human.returncode == 0, human.stderr
    assert human.stdout.splitlines()[0] == f"event {dropped.id} · sensor {name}"
    assert "saw \"false\"" in human.stdout and "-> FAIL" in human.stdout


async def test_a_routine_event_is_one_record_on_the_bus_and_its_steps_when_read(
        bus_url: str, http_sink: HttpSink, tmp_path: Path) -> None:
    """At `sensorium run`'s default detail, an event that went as it should is one `routine` record on the bus;
    whoever reads the trace gets the five records it stands for. Any other event is told step by step."""
    name, source = unique("routine"), unique("src")
    engine = Engine(write_config(tmp_path, sensor(name, source, http_sink.url)), bus_url)
    trace = TraceLog()
    hub = TraceHub([trace], bus_trace=True, interval=0.01, detail="decisions")
    engine.options.tracer = hub
    engine.options.runner = replace(engine.options.runner, drain_timeout=0.2)
    ok, failing, cut = (event(source, "e", b'{"ok":true}') for _ in range(3))
    async with engine:
        await publish(bus_url, ok)
        await trace.acked(ok)
        http_sink.program(500, Reply(delay=5.0))
        await publish(bus_url, failing)
        await trace.acked(failing)
        await publish(bus_url, cut)  # in flight when the engine stops: cancelled, nak'ed
        await http_sink.wait_for(3)
        # its firing takes long: what was held for a routine record is told meanwhile (a live trace shows it)
        await trace.wait(lambda r: r.step == "received" and r.event == cut.id, timeout=HOLD_LIMIT + 2.0)
        assert not [r for r in trace.records if r.event == cut.id and r.step in ("request", "ack")]
    await hub.close()
    assert hub.compact and hub.sink_errors == 0 and hub.dropped == 0

    bodies = [body async for body in from_url(bus_url).read_trace(name, None, False, 1.0)]
    stored = [json.loads(line) for body in bodies for line in trace_lines(body).splitlines()]
    assert [r["step"] for r in stored if r["event"] == ok.id] == ["routine"]
    # it names where its event is stored instead of copying the data; the reader makes the preview from there
    assert [r["data_preview"] for r in stored if r["event"] == ok.id] == [None]
    told = [r for r in stored if r["event"] == failing.id]  # its firing failed: every step that says why
    assert [r["step"] for r in told][:2] == ["received", "dependency"] and "outcome" in [r["step"] for r in told]
    assert told[-1]["step"] == "ack" and trace.routines == 1

    records = await collect(bus_url, sensor=name)
    mine = [r for r in records if r["event"] == ok.id]
    assert [r["step"] for r in mine] == FIRED["decisions"]
    own = [r.to_json() for r in trace.records if r.event == ok.id]  # the engine's own steps (the preview not made)
    assert own[0]["data_preview"] == "" and mine == [{**own[0], "data_preview": '{"ok":true}'}, *own[1:]]
    received, dependency, request, response, ack = mine
    assert received["position"] == ack["position"] and received["attributes"]["id"] == ok.id
    assert received["data_preview"] == '{"ok":true}' and dependency["passed"] and dependency["dependency"] == "d"
    assert request["url"] == f"{http_sink.url}/hit" and request["body_preview"] == '{"ok":"true"}'
    assert (response["status"], response["attempt"], response["verdict"]) == (200, 1, "success")
    assert request["firing"] == response["firing"]
    assert received["time"] <= request["time"] <= response["time"] <= ack["time"]
    assert ack["action"] == "ack" and ack["reason"] == "1 firing(s) finished"
    assert [r for r in records if r["event"] == failing.id] == told
    # the firing cut short by the stop: its event's records were told before its nak
    steps = [(r["step"], r.get("action")) for r in records if r["event"] == cut.id]
    assert steps[:2] == [("received", None), ("dependency", None)] and steps[-1] == ("ack", "nak"), steps


async def test_follow_prints_records_as_they_arrive(nats_url: str, http_sink: HttpSink, tmp_path: Path) -> None:
    name, source = unique("follow"), unique("src")
    engine = Engine(write_config(tmp_path, sensor(name, source, http_sink.url)), nats_url)
    hub = TraceHub(bus_trace=True, interval=0.01, detail="decisions")  # (`sensorium run`'s: routine records)
    engine.options.tracer = hub
    got: list[dict[str, Any]] = []

    async def follow() -> None:
        async for record in read_traces(nats_url, sensor=name, follow=True, idle=0.2):
            got.append(record)

    async with engine:
        reader = asyncio.create_task(follow())
        first = event(source, "e", b'{"ok":true}')
        await publish(nats_url, first)
        for _ in range(200):
            if any(r["step"] == "ack" and r["event"] == first.id for r in got):
                break
            await asyncio.sleep(0.05)
        reader.cancel()
    await hub.close()
    assert [r["step"] for r in got if r["event"] == first.id] == FIRED["decisions"]
    assert [r["data_preview"] for r in got if r["event"] == first.id and r["step"] == "received"] == ['{"ok":true}']


async def test_the_trace_reads_each_routine_events_data_where_it_is_stored(
        bus_url: str, http_sink: HttpSink, tmp_path: Path) -> None:
    """A routine record names where its event is stored; the reader makes every preview from there (many
    events of one subject are read as one range, among events that were not routine), and once the bus no longer
    has an event (past the stream's limits, or deleted) it says so instead."""
    name, source = unique("stored"), unique("src")
    engine = Engine(write_config(tmp_path, sensor(name, source, http_sink.url)), bus_url)
    trace = TraceLog()
    hub = TraceHub([trace], bus_trace=True, interval=0.5, detail="decisions")  # (one batch: the range read)
    engine.options.tracer = hub
    routine = [event(source, "e", b'{"ok":true,"n":%d}' % n) for n in range(24)]
    dropped = [event(source, "e", b'{"ok":false,"n":%d}' % n) for n in range(3)]
    mixed = routine[:8] + dropped + routine[8:]
    async with engine:
        await publish(bus_url, *mixed)
        await trace.acked(*mixed)
    await hub.close()
    assert trace.routines == len(routine)
    gone = routine[10]
    if bus_url.startswith("nats://"):  # (a Kafka record cannot be deleted alone)
        (position,) = [r.position for r in trace.records if r.event == gone.id and r.step == "received"]
        subject, _, seq = position.rpartition(" seq ")
        nc = await nats.connect(bus_url)
        try:
            js = nc.jetstream()
            await js.delete_msg(await js.find_stream_name_by_subject(subject), int(seq))
        finally:
            await nc.close()
    previews = {r["event"]: r["data_preview"] for r in await collect(bus_url, sensor=name)
                if r["step"] == "received"}
    expected = {e.id: (e.data or b"").decode() for e in mixed}
    if bus_url.startswith("nats://"):
        expected[gone.id] = NOT_STORED
    assert previews == expected


async def test_a_stream_that_drops_acknowledged_events_gets_the_preview_copied(
        fresh_nats: EmbeddedNats, http_sink: HttpSink, tmp_path: Path) -> None:
    """An event stream with interest retention (`streamConfig: retention: 1`) drops an event once the engine
    acknowledged it, so there would be nothing to look up: the routine record carries the preview instead."""
    url = fresh_nats.url
    interest = JetStreamBus(url, "retention: 1")
    await interest.start()  # (creates the stream so)
    assert not interest.keeps_delivered
    await interest.close()
    plain = JetStreamBus(url)  # (the stream exists: what it does is read from the server)
    await plain.start()
    assert not plain.keeps_delivered
    await plain.close()

    name, source = unique("interest"), unique("src")
    engine = Engine(write_config(tmp_path, sensor(name, source, http_sink.url)), url)
    trace = TraceLog()
    hub = TraceHub([trace], bus_trace=True, interval=0.01, detail="decisions")
    engine.options.tracer = hub
    ok = event(source, "e", b'{"ok":true}')
    async with engine:
        await publish(url, ok)
        await trace.acked(ok)
    await hub.close()
    assert trace.routines == 1
    bodies = [body async for body in from_url(url).read_trace(name, None, False, 1.0)]
    stored = [json.loads(line) for body in bodies for line in trace_lines(body).splitlines()]
    assert [(r["step"], r["data_preview"]) for r in stored] == [("routine", '{"ok":true}')]
    assert [r["data_preview"] for r in await collect(url, sensor=name) if r["step"] == "received"] == ['{"ok":true}']


def test_kafka_memory_and_a_default_jetstream_stream_keep_delivered_events() -> None:
    assert JetStreamBus("nats://127.0.0.1:1").keeps_delivered and KafkaBus("kafka://127.0.0.1:1").keeps_delivered
    assert MemoryBus(MemoryBroker()).keeps_delivered


def test_trace_subject_is_one_token_per_sensor() -> None:
    assert trace_subject("a.b c*d>") == "sensorium.trace.a_b_c_d_"
    assert trace_subject("orders") == "sensorium.trace.orders"


@pytest.mark.integration  # starts a child process
def test_trace_without_a_bus_is_a_config_error(tmp_path: Path) -> None:
    done = cli("--data-dir", str(tmp_path))
    assert done.returncode == 2
    assert done.stderr.startswith("no bus: pass --bus")
    bad = cli("--bus", "nats://127.0.0.1:1", "--since", "ten minutes")
    assert bad.returncode == 2 and bad.stderr.startswith("--since: time: invalid duration")


async def test_a_batch_of_many_sensors_is_stored_whole_and_each_sensors_messages_in_order(bus_url: str) -> None:
    bus = from_url(bus_url)
    await bus.start()
    try:
        channel = bus.trace_channel()
        assert channel is not None
        names = [unique(f"many{i}") for i in range(150)]
        first, second = names[0], names[1]
        bodies = [(name, json.dumps({"step": "ack", "sensor": name, "event": f"{name}-1"}).encode() + b"\n")
                  for name in names]
        bodies += [(first, json.dumps({"step": "ack", "sensor": first, "event": f"{first}-{n}"}).encode() + b"\n")
                   for n in range(2, 6)]
        await channel.publish(bodies)
        await channel.close()
    finally:
        await bus.close()
    assert [r["event"] for r in await collect(bus_url, sensor=first)] == [f"{first}-{n}" for n in range(1, 6)]
    assert [r["event"] for r in await collect(bus_url, sensor=second)] == [f"{second}-1"]
    everything = {r["sensor"] for r in await collect(bus_url) if r["sensor"] in set(names)}
    assert everything == set(names)

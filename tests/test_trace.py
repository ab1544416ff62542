"""Trace records: their JSON form, the non-blocking hub, the human format, and what a real engine emits."""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import Sequence
from pathlib import Path

from sensorium.engine.trace.fmt import HumanFormat, StreamSink, use_color
from sensorium.engine.trace.hub import TraceHub
from sensorium.engine.trace.records import (
    CHUNK_RECORDS,
    Acknowledged,
    ConditionChecked,
    DependencyMatched,
    EmittingTracer,
    FilterChecked,
    FiringDone,
    FiringStarted,
    ParamResolved,
    Received,
    RequestBuilt,
    ResponseReceived,
    RetryScheduled,
    TraceRecord,
    Transformed,
    Unmatched,
    encode_chunks,
)
from tests.engine_harness import Engine, event, publish, unique, write_config
from tests.fixtures_http import HttpSink
from tests.trace_log import TraceLog

TRICKY = 'quote " backslash \\ newline \n tab \t ünïcödé ✓ \x01'
SAMPLES: list[TraceRecord] = [
    Received(sensor=TRICKY, event="e", bus="nats://h:1", position="default.a.b seq 3", delivery=2,
             attributes={"type": TRICKY, "id": "e"}, data_bytes=12),
    Received(sensor="s", event=None, bus="kafka://h:1", position="argo-events[0]@7", error="not JSON"),
    Unmatched(sensor="s", event="e", source="x", subject="y", listening=("a.b", "c.d")),
    DependencyMatched(sensor="s", event="e", dependency="d", passed=True, error=TRICKY, reason="r"),
    Transformed(sensor="s", event="e", dependency="d", kind="jq", passed=True, data_bytes=2, data_preview="{}",
                reason=""),
    Transformed(sensor="s", event="e", dependency="d", kind="script", passed=False, data_bytes=0,
                data_preview="", reason="", error="lua: boom"),
    FilterChecked(sensor="s", event="e", dependency="d", kind="data", target="path 'a'", seen=None,
                  wanted=("1", "2"), comparator=">=", type="number", passed=False, reason="r", error=None),
    ConditionChecked(sensor="s", event="e", trigger="t", expression="a && b", dependency="a", held=("a",),
                     satisfied=False, immediate=False),
    FiringStarted(sensor="s", event="e", firing="f-1", trigger="t", kind="http", events={"a": "e"}),
    ParamResolved(sensor="s", event="e", firing="f-1", trigger="t", where="payload", dependency="a",
                  source="dataKey", path="x.y", value=None, dest="z"),
    RequestBuilt(sensor="s", event="e", firing="f-1", trigger="t", method="POST", url="http://u",
                 headers={"X-Token": "***"}, body_bytes=3, body_preview="{}✓"),
    ResponseReceived(sensor="s", event="e", firing="f-1", trigger="t", attempt=1, status=None, latency_ms=1.25,
                     verdict="retryable", reason="r", error="timeout", rate_limited_ms=0.5),
    RetryScheduled(sensor="s", event="e", firing="f-1", trigger="t", attempt=2, delay_s=0.25),
    FiringDone(sensor="s", event="e", firing="f-1", trigger="t", success=False, attempts=2, error="x", note=""),
    Acknowledged(sensor="s", event="e", position="p", action="nak", reason="shutdown"),
]


def test_json_line_is_exactly_json_dumps_of_to_json() -> None:
    for record in SAMPLES:
        expected = json.dumps(record.to_json(), ensure_ascii=False, separators=(",", ":")) + "\n"
        assert record.json_line() == expected, record.step
        assert json.loads(record.json_line()) == json.loads(json.dumps(record.to_json()))


def test_encode_chunks_keeps_order_and_splits_by_sensor_and_size() -> None:
    """The writer's encoding: every record's line in order, each chunk of one sensor and at most CHUNK_RECORDS
    lines (a thread encoding a large batch lets the event loop run between chunks)."""
    batch: list[TraceRecord] = [ack(n) for n in range(CHUNK_RECORDS + 5)]
    batch[3:3] = [Acknowledged(sensor="other", event="x", position="p", action="ack", reason="r")]
    chunks, sensors, skipped = encode_chunks(batch)
    assert skipped == 0
    assert b"".join(chunks).decode() == "".join(r.json_line() for r in batch)
    assert sensors == ["s", "other", "s", "s"]
    assert [c.count(b"\n") for c in chunks] == [3, 1, CHUNK_RECORDS, 2]


def test_odd_values_still_make_valid_json_lines_in_a_file(tmp_path: Path) -> None:
    """A value of a type a field does not declare (from event data, or a bug) never breaks the trace file:
    every line stays one JSON object, NaN becomes null, other objects their text."""
    odd = FilterChecked(sensor="s", event="e", dependency="d", kind="data", target="x",
                        seen=[float("nan"), {"b", "a"}, b"raw", {(1, 2): "tuple key"}, object()], wanted=(),
                        comparator="", type="", passed=True, reason="")
    path = tmp_path / "trace.jsonl"

    async def write() -> TraceHub:
        hub = TraceHub([StreamSink(path.open("w"), "json", owns=True)])
        for record in (SAMPLES[0], odd, SAMPLES[1]):
            hub.emit(record)
        await hub.close()
        return hub

    hub = asyncio.run(write())
    lines = path.read_text().splitlines()
    assert [json.loads(line)["step"] for line in lines] == ["received", "filter", "received"]
    seen = json.loads(lines[1])["seen"]
    assert seen[0] is None and sorted(seen[1]) == ["a", "b"] and seen[2] == "cmF3"  # bytes: base64
    assert seen[3] == {"(1, 2)": "tuple key"} and seen[4].startswith("<object")
    assert hub.written == 3 and hub.sink_errors == 0


def test_json_form_starts_with_the_common_keys() -> None:
    data = SAMPLES[8].to_json()
    assert list(data)[:4] == ["step", "time", "sensor", "event"]
    assert data["step"] == "firing" and data["events"] == {"a": "e"} and data["time"].endswith("Z")


class ListSink:
    def __init__(self) -> None:
        self.batches: list[list[TraceRecord]] = []

    async def write(self, batch: Sequence[TraceRecord]) -> None:
        self.batches.append(list(batch))

    async def close(self) -> None:
        return None


class FailingSink:
    async def write(self, batch: Sequence[TraceRecord]) -> None:
        raise RuntimeError("disk on fire")

    async def close(self) -> None:
        raise RuntimeError("still on fire")


class StuckSink:
    async def write(self, batch: Sequence[TraceRecord]) -> None:
        await asyncio.Event().wait()

    async def close(self) -> None:
        return None


def ack(n: int) -> Acknowledged:
    return Acknowledged(sensor="s", event=str(n), position="p", action="ack", reason="r")


async def test_hub_drops_and_counts_when_full_instead_of_blocking() -> None:
    sink = ListSink()
    hub = TraceHub([sink], capacity=5, interval=0.01)
    for n in range(12):
        hub.emit(ack(n))
    assert hub.dropped == 7
    await hub.close()
    assert [r.event for batch in sink.batches for r in batch] == ["0", "1", "2", "3", "4"]
    hub.emit(ack(99))  # after close: ignored, never raises


class LinesSink:
    """A sink that takes JSON Lines (as the bus and file sinks do)."""

    accepts_lines = True

    def __init__(self) -> None:
        self.written: list[tuple[bytes, str]] = []

    async def write(self, batch: Sequence[TraceRecord]) -> None:
        raise AssertionError("a line sink is handed lines")

    async def write_lines(self, chunks: Sequence[bytes], sensors: Sequence[str]) -> None:
        self.written += zip(chunks, sensors, strict=True)

    async def close(self) -> None:
        return None

    def events(self) -> list[tuple[str, str]]:
        return [(sensor, json.loads(line)["event"]) for chunk, sensor in self.written for line in chunk.splitlines()]


def two_acks(out: list[TraceRecord], sensor: str, n: int) -> None:
    out += [Acknowledged(sensor=sensor, event=f"{n}a", position="p", action="ack", reason="r"),
            Acknowledged(sensor=sensor, event=f"{n}b", position="p", action="ack", reason="r")]


async def test_a_hub_whose_sinks_take_lines_encodes_records_as_they_are_built_in_order() -> None:
    """With only line sinks the records are encoded when built (no record outlives its deferred call's batch):
    every sink gets every record once, in order, each chunk with its sensor, emitted records in their place."""
    sinks = [LinesSink(), LinesSink()]
    hub = TraceHub(sinks, interval=0.01)
    for n in range(150):  # more than EXPAND_EVERY calls: some are encoded before the writer runs
        hub.defer(two_acks, "s1" if n % 3 else "s2", n)
        if n == 70:
            hub.emit(Acknowledged(sensor="s2", event="emitted", position="p", action="ack", reason="r"))
    assert hub._chunks and not hub._records  # encoded already, before any flush
    await hub.close()
    want = [("s1" if n % 3 else "s2", f"{n}{x}") for n in range(71) for x in "ab"] + [("s2", "emitted")] + [
        ("s1" if n % 3 else "s2", f"{n}{x}") for n in range(71, 150) for x in "ab"]
    assert sinks[0].events() == sinks[1].events() == want
    assert hub.written == 301 and hub.dropped == 0 and hub.sink_errors == 0


async def test_a_hub_that_encodes_early_still_drops_and_counts_when_full() -> None:
    sink = LinesSink()
    hub = TraceHub([sink], capacity=5, interval=0.01)
    for n in range(100):  # 2 records per call: a call is taken while fewer than 5 are held, the fourth is not
        hub.defer(two_acks, "s", n)
    hub.emit(ack(1000))
    await hub.close()
    assert [event for _, event in sink.events()] == ["0a", "0b", "1a", "1b", "2a", "2b"]
    assert hub.dropped == 98  # 97 calls and the emitted record


class SlowSink(ListSink):
    """A sink whose writes take a while, as a bus publish waits for the server's acknowledgement."""

    async def write(self, batch: Sequence[TraceRecord]) -> None:
        await asyncio.sleep(0.02)
        await super().write(batch)


async def test_the_writer_writes_one_batch_per_interval_while_records_keep_coming() -> None:
    """Records that come while a batch is being written wait for the next interval (a batch per write's round
    trip would publish several times as many bus messages, each smaller); flush() still writes them all."""
    sink = SlowSink()
    hub = TraceHub([sink], interval=0.08)
    loop = asyncio.get_running_loop()
    started, n = loop.time(), 0
    while loop.time() - started < 0.4:  # records all the time, as during a burst of events
        hub.emit(ack(n))
        n += 1
        await asyncio.sleep(0.002)
    await hub.flush()
    written = [r.event for batch in sink.batches for r in batch]
    assert written == [str(i) for i in range(n)]  # every record once, in order
    # 0.4 s / (0.08 s + 0.02 s) is 4 batches, and the flush's; one per write (0.02 s) would be about 20
    assert 2 <= len(sink.batches) <= 7, [len(b) for b in sink.batches]
    await hub.close()


async def test_a_failing_sink_never_reaches_the_caller_and_others_still_write() -> None:
    good = ListSink()
    hub = TraceHub([FailingSink(), good], interval=0.01)
    hub.emit(ack(1))
    await hub.flush()
    await hub.close()
    assert hub.sink_errors == 1
    assert [r.event for batch in good.batches for r in batch] == ["1"]


async def test_a_stuck_sink_does_not_stall_emit() -> None:
    hub = TraceHub([StuckSink()], capacity=100, interval=0.0)
    loop = asyncio.get_running_loop()
    started = loop.time()
    for n in range(1000):
        hub.emit(ack(n))
        if n % 100 == 0:
            await asyncio.sleep(0)  # let the writer take a batch and get stuck in it
    assert loop.time() - started < 1.0
    assert hub.dropped > 0
    task = hub._task
    assert task is not None
    task.cancel()


def test_emit_without_a_running_loop_does_not_raise() -> None:
    hub = TraceHub([ListSink()])
    hub.emit(ack(1))


async def test_stream_sink_writes_json_lines_and_human_lines() -> None:
    out = io.StringIO()
    await StreamSink(out, "json").write(SAMPLES[:2])
    assert [json.loads(line)["step"] for line in out.getvalue().splitlines()] == ["received", "received"]
    human = io.StringIO()
    await StreamSink(human, "human").write([SAMPLES[3]])
    assert "\x1b[" not in human.getvalue()
    assert not use_color(human)


def test_human_format_groups_by_event_one_line_per_step() -> None:
    fmt = HumanFormat(color=False, times=False)
    records = [SAMPLES[3].to_json(), SAMPLES[6].to_json(), SAMPLES[7].to_json(), SAMPLES[1].to_json()]
    assert fmt.lines(records).splitlines() == [
        "event e · sensor s",
        "  dependency d matched the event: filters pass, error: " + TRICKY.replace("\n", "\\n") + " (r)",
        '  filter     d data path \'a\': saw nothing (missing), wanted number >= ["1", "2"] -> FAIL: r',
        '  condition  t "a && b" after a: not satisfied yet (held: a)',
        "message at argo-events[0]@7 · sensor s",
        "  received   argo-events[0]@7 on kafka://h:1: not a CloudEvent: not JSON",
    ]
    coloured = HumanFormat(color=True, times=False).lines([SAMPLES[7].to_json()])
    assert "\x1b[33mnot satisfied yet\x1b[0m" in coloured


def test_every_step_has_a_human_line() -> None:
    fmt = HumanFormat(color=False, times=True)
    for record in SAMPLES:
        line = fmt.line(record.to_json())
        assert line.split()[1] == record.step, line  # after the time column
        assert "=" not in line.split(record.step, 1)[1][:3]


SENSOR = """
apiVersion: argoproj.io/v1alpha1
kind: Sensor
metadata: {{name: {name}}}
spec:
  dependencies:
    - name: a
      eventSourceName: {source}
      eventName: a
      filters:
        data:
          - {{path: n, type: number, comparator: ">", value: ["1"]}}
    - {{name: b, eventSourceName: {source}, eventName: b}}
  triggers:
    - template:
        name: both
        conditions: "a && b"
        http:
          url: {url}/both
          secureHeaders:
            - name: X-Token
              valueFrom: {{secretKeyRef: {{name: api, key: token}}}}
          payload:
            - src: {{dependencyName: a, dataKey: n, useRawData: true}}
              dest: n
            - src: {{dependencyName: b, contextKey: type}}
              dest: kind
      retryStrategy: {{steps: 2, duration: 20ms, factor: 1, jitter: 0}}
"""


async def test_engine_emits_every_step_with_shared_ids(nats_url: str, http_sink: HttpSink, tmp_path: Path) -> None:
    source, name = unique("src"), unique("traced")
    (tmp_path / "secrets" / "api").mkdir(parents=True)
    (tmp_path / "secrets" / "api" / "token").write_text("very-secret-token\n")
    config = write_config(tmp_path / "config", SENSOR.format(name=name, source=source, url=http_sink.url))
    tracer = TraceLog()
    engine = Engine(config, nats_url, secrets_dir=tmp_path / "secrets", tracer=tracer)
    http_sink.program(503)
    first, skipped, second = event(source, "a", b'{"n":5}'), event(source, "a", b'{"n":0}'), event(source, "b")
    async with engine:
        await publish(nats_url, first)
        await publish(nats_url, skipped)
        await tracer.acked(first, skipped)
        await publish(nats_url, second)
        await tracer.acked(second, timeout=20)
    by_event = {e.id: [r for r in tracer.records if r.event == e.id] for e in (first, skipped, second)}
    assert [r.step for r in by_event[first.id]] == ["received", "dependency", "filter", "condition", "ack"]
    received, dep, flt, cond, acked = by_event[first.id]
    assert isinstance(received, Received) and received.position.startswith(f"default.{source}.a seq ")
    assert isinstance(dep, DependencyMatched) and (dep.dependency, dep.passed, dep.error) == ("a", True, None)
    assert received.attributes["source"] == source and received.data_bytes == 7 and received.delivery == 1
    assert isinstance(flt, FilterChecked)
    assert (flt.target, flt.seen, flt.wanted, flt.comparator, flt.passed) == ("path 'n'", "5", ("1",), ">", True)
    assert isinstance(cond, ConditionChecked) and (cond.held, cond.satisfied) == (("a",), False)
    assert isinstance(acked, Acknowledged) and (acked.action, acked.reason) == ("ack", "condition state stored")
    skipped_filter = by_event[skipped.id][2]
    assert isinstance(skipped_filter, FilterChecked) and not skipped_filter.passed
    assert skipped_filter.reason == "0 is not > any value"

    steps = [r.step for r in by_event[second.id]]
    assert steps == ["received", "dependency", "condition", "firing", "param", "param", "request", "response",
                     "retry", "response", "outcome", "ack"]
    records = by_event[second.id]
    firing_ids = {getattr(r, "firing", None) for r in records[3:11]}
    assert len(firing_ids) == 1 and None not in firing_ids
    started, p1, p2, request = records[3:7]
    assert isinstance(started, FiringStarted) and started.events == {"a": first.id, "b": second.id}
    assert isinstance(p1, ParamResolved) and (p1.where, p1.source, p1.path, p1.value, p1.dest) == (
        "payload", "dataKey", "n", "5", "n")
    assert isinstance(p2, ParamResolved) and (p2.source, p2.value) == ("contextKey", "webhook")
    assert isinstance(request, RequestBuilt)
    assert (request.method, request.url, request.headers) == ("POST", f"{http_sink.url}/both", {"X-Token": "***"})
    assert request.body_preview == '{"n":5,"kind":"webhook"}' and request.body_bytes == 24
    r1, retry, r2, outcome, final = records[7:]
    assert isinstance(r1, ResponseReceived) and (r1.attempt, r1.status, r1.verdict) == (1, 503, "retryable")
    assert r1.latency_ms > 0 and r1.reason == "http response status 503 is retryable (no policy: 408, 429, 5xx)"
    assert isinstance(retry, RetryScheduled) and (retry.attempt, retry.delay_s) == (2, 0.02)
    assert isinstance(r2, ResponseReceived) and (r2.status, r2.verdict) == (200, "success")
    assert isinstance(outcome, FiringDone) and (outcome.success, outcome.attempts) == (True, 2)
    assert isinstance(final, Acknowledged) and final.reason == "1 firing(s) finished"
    assert all("very-secret-token" not in r.json_line() for r in tracer.records)


class ExplodingTracer(EmittingTracer):
    def emit(self, record: TraceRecord) -> None:
        raise RuntimeError("tracer bug")


async def test_a_broken_tracer_never_breaks_the_pipeline(nats_url: str, http_sink: HttpSink,
                                                         tmp_path: Path) -> None:
    source = unique("src")
    sensor = f"""
apiVersion: argoproj.io/v1alpha1
kind: Sensor
metadata: {{name: {unique("explode")}}}
spec:
  dependencies: [{{name: d, eventSourceName: {source}, eventName: e}}]
  triggers: [{{template: {{name: t, http: {{url: "{http_sink.url}/ok"}}}}}}]
"""
    engine = Engine(write_config(tmp_path, sensor), nats_url)
    engine.options.tracer = ExplodingTracer()
    async with engine:
        await publish(nats_url, event(source, "e"), event(source, "e"))
        got = await http_sink.wait_for(2, timeout=20)
    assert len(got) == 2

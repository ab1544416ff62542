"""A running engine, end to end on a real bus: events no sensor listens to are traced as `unmatched` (issue 14's
`eventName: Example` typo), `sensorium run --log-format json` writes every line on stderr as JSON with the fields
of a failed firing, and `sensorium trace --follow` starts at now."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from sensorium.engine.trace.hub import TraceHub
from sensorium.engine.trace.records import Received, Unmatched
from tests.engine_harness import Engine, event, free_port, publish, unique, write_config
from tests.fixtures_http import HttpSink, Reply
from tests.test_e2e import post, webhook_source
from tests.trace_log import JsonTraceFile, TraceLog


def sensor(name: str, source: str, event_name: str, trigger: str) -> str:
    return f"""
apiVersion: argoproj.io/v1alpha1
kind: Sensor
metadata: {{name: {name}}}
spec:
  dependencies: [{{name: d, eventSourceName: {source}, eventName: {event_name}}}]
  triggers: [{{template: {{name: t, {trigger}}}, retryStrategy: {{steps: 2, duration: 300ms}}}}]
"""


async def test_a_webhook_event_no_sensor_listens_to_is_traced_unmatched(nats_url: str, tmp_path: Path,
                                                                        caplog: pytest.LogCaptureFixture) -> None:
    source, typo, port = unique("hook"), unique("typo"), free_port()
    config = write_config(tmp_path, webhook_source(source, port), sensor(typo, source, "Example", "log: {}"))
    trace = TraceLog()
    caplog.set_level(logging.WARNING, "sensorium.engine.unmatched")
    async with Engine(config, nats_url, tracer=trace):
        for _ in range(2):
            status, _ = await post(f"http://127.0.0.1:{port}/example", b'{"message":"hello"}',
                                   {"Content-Type": "application/json", "Authorization": "Bearer s3cr3t"})
            assert status == 200
        records = await trace.wait(lambda r: r.step == "unmatched", 2)
    first = records[0]
    assert isinstance(first, Unmatched)
    assert (first.sensor, first.source, first.subject, first.listening) == (
        typo, source, "example", (f"{source}.Example",))
    assert not any(isinstance(r, Received) for r in trace.records)  # the sensor's consumer never saw them
    warnings = [r.getMessage() for r in caplog.records if r.name == "sensorium.engine.unmatched"]
    assert len(warnings) == 1  # once per name, not per event
    assert "eventName 'example'" in warnings[0] and f"did you mean {source}.Example?" in warnings[0]
    assert "s3cr3t" not in caplog.text


async def read_json_lines(stream: asyncio.StreamReader, into: list[dict[str, Any]], raw: list[str]) -> None:
    while line := (await stream.readline()).decode():
        raw.append(line)
        into.append(json.loads(line))  # every line is JSON, or the test fails here


async def wait_until(check: Any, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met")
        await asyncio.sleep(0.05)


@pytest.mark.integration  # starts `sensorium run` as a child process
async def test_run_with_json_logs_writes_json_lines_on_stderr_only(nats_url: str, http_sink: HttpSink,
                                                                   tmp_path: Path) -> None:
    source, port, other, other_port = unique("hook"), free_port(), unique("hook"), free_port()
    failing, typo = unique("failing"), unique("typo")
    http_sink.default = Reply(500, body=b'{"error":"db down","password":"pw-123"}')
    config = write_config(tmp_path / "config", webhook_source(source, port, "orders"),
                          webhook_source(other, other_port, "example"),
                          sensor(failing, source, "orders", f'http: {{url: "{http_sink.url}/orders"}}'),
                          sensor(typo, other, "Example", "log: {}"))
    traced = JsonTraceFile(tmp_path / "trace.jsonl")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "sensorium", "run", str(config), "--bus", nats_url, "--webhook-host", "127.0.0.1",
        "--no-bus-trace", "--log-format", "json", *traced.args(),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    assert proc.stdout is not None and proc.stderr is not None
    logged: list[dict[str, Any]] = []
    raw: list[str] = []
    reader = asyncio.create_task(read_json_lines(proc.stderr, logged, raw))
    try:
        await wait_until(lambda: any(r["message"].startswith("engine running") for r in logged) or reader.done())
        status, _ = await post(f"http://127.0.0.1:{port}/orders", b'{"id":7}',
                                    {"Content-Type": "application/json"})
        assert status == 200
        status, _ = await post(f"http://127.0.0.1:{other_port}/example", b"{}", {"Content-Type": "application/json"})
        assert status == 200
        await wait_until(lambda: any(r["level"] == "ERROR" for r in logged) or reader.done())
        await wait_until(lambda: any(r["step"] == "ack" for r in traced.records()))
    finally:
        with contextlib.suppress(ProcessLookupError):
            proc.terminate()
        await asyncio.wait_for(proc.wait(), 30)
        await asyncio.wait_for(reader, 10)
    stdout = await proc.stdout.read()
    assert stdout == b""  # everything on stderr
    assert all(set(r) >= {"time", "level", "logger", "message"} for r in logged)
    (failed,) = [r for r in logged if r["level"] == "ERROR"]
    event_id = next(r["event"] for r in traced.records() if r["step"] == "ack")
    assert (failed["logger"], failed["sensor"], failed["trigger"], failed["event_id"], failed["status"],
            failed["attempts"]) == ("sensorium.engine", failing, "t", event_id, 500, 2)
    assert failed["response"] == '{"error":"db down","password":"***"}'
    assert "pw-123" not in "".join(raw)
    (unmatched,) = [r for r in logged if r["logger"] == "sensorium.engine.unmatched"]
    assert (unmatched["level"], unmatched["event_source"], unmatched["event_name"]) == ("WARNING", other, "example")
    assert unmatched["message"].endswith(f"did you mean {other}.Example?")
    # the trace: the retry's response stamped ~300 ms after the first one, the request's typo sensor unmatched
    responses = [r for r in traced.records() if r["step"] == "response"]
    assert [r["status"] for r in responses] == [500, 500] and responses[0]["time"] < responses[1]["time"]
    assert responses[0]["body_preview"] == '{"error":"db down","password":"***"}'
    unmatched_records = [r for r in traced.records() if r["step"] == "unmatched"]
    assert sorted((r["sensor"], r["subject"]) for r in unmatched_records) == sorted(
        [(typo, "example"), (failing, "example")])  # one per sensor, each with what it listens to


async def test_trace_follow_starts_at_now_and_since_reaches_back(nats_url: str, http_sink: HttpSink,
                                                                  tmp_path: Path) -> None:
    name, source = unique("follow-now"), unique("src")
    config = write_config(tmp_path, sensor(name, source, "e", f'http: {{url: "{http_sink.url}/hit"}}'))
    engine = Engine(config, nats_url)
    trace = TraceLog()
    hub = TraceHub([trace], bus_trace=True, interval=0.01)
    engine.options.tracer = hub
    base = [sys.executable, "-m", "sensorium", "trace", "--bus", nats_url, "--sensor", name, "--format", "json"]

    async def follow(*extra: str) -> asyncio.subprocess.Process:
        return await asyncio.create_subprocess_exec(*base, "--follow", *extra, stdout=asyncio.subprocess.PIPE,
                                                    stderr=asyncio.subprocess.DEVNULL)

    async def events_seen(proc: asyncio.subprocess.Process, until: str) -> set[str]:
        assert proc.stdout is not None
        seen: set[str] = set()
        while until not in seen:
            line = await asyncio.wait_for(proc.stdout.readline(), 30)
            assert line, "sensorium trace --follow ended"
            seen.add(json.loads(line)["event"])
        return seen

    async with engine:
        before = event(source, "e")
        await publish(nats_url, before)
        await trace.acked(before)
        await asyncio.sleep(0.2)  # the bus trace is written every 0.01 s: `before` is on the bus by now
        now_proc, since_proc = await follow(), await follow("--since", "1h")
        try:
            # keep publishing until the follower prints one: it started reading at some moment after `before`
            later: list[str] = []

            async def keep_publishing() -> None:
                while True:
                    e = event(source, "e")
                    later.append(e.id)
                    await publish(nats_url, e)
                    await asyncio.sleep(0.5)

            publisher = asyncio.create_task(keep_publishing())
            try:
                await wait_until(lambda: bool(later))
                seen_now: set[str] = set()
                assert now_proc.stdout is not None
                while not seen_now & set(later):
                    line = await asyncio.wait_for(now_proc.stdout.readline(), 30)
                    assert line, "sensorium trace --follow ended"
                    seen_now.add(json.loads(line)["event"])
                seen_since = await events_seen(since_proc, before.id)
            finally:
                publisher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await publisher
        finally:
            for proc in (now_proc, since_proc):
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
    await hub.close()
    assert before.id not in seen_now  # --follow starts at now
    assert before.id in seen_since  # --since reaches back

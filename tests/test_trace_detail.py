"""A trace that shows everything (issue 14 item 5), and the log lines of events that matter (item 3): records stamped
when their step happened, bounded and masked previews of event data and response bodies, JSON log lines."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest

from sensorium.engine.core.cloudevent import CloudEvent
from sensorium.engine.core.preview import PREVIEW_BYTES, mask_credentials, preview
from sensorium.engine.core.secrets import Secrets, env_name
from sensorium.engine.logs import JsonFormatter, firing_failed, setup_logging
from sensorium.engine.trace.fmt import HumanFormat
from sensorium.engine.trace.records import (
    ParamResolved,
    Received,
    RequestBuilt,
    ResponseReceived,
    RetryScheduled,
    TraceRecord,
    now,
)
from sensorium.engine.trace.steps import fired_rows, received_rows, rows_of
from sensorium.triggers.http import HttpClient, HttpTrigger
from sensorium.triggers.spec import Trigger
from tests.fixtures_http import HttpSink, Reply

TOKEN = "tok-s3cr3t-value"
SECRETS = Secrets(environ={env_name("tok", "value"): TOKEN})


def when(record: TraceRecord) -> datetime:
    return datetime.fromisoformat(record.time.replace("Z", "+00:00"))


def cloud_event(data: bytes, content_type: str = "application/json") -> CloudEvent:
    return CloudEvent(id="e-1", source="hook", type="webhook", subject="example", datacontenttype=content_type,
                      data=data)


def http_trigger(url: str) -> Trigger:
    return Trigger.model_validate({"template": {"name": "t", "http": {
        "url": url, "secureHeaders": [{"name": "X-Token", "valueFrom": {"secretKeyRef": {"name": "tok",
                                                                                          "key": "value"}}}],
        "payload": [{"src": {"dependencyName": "d", "dataKey": "body.n"}, "dest": "n"}]}},
        "retryStrategy": {"steps": 3, "duration": "150ms", "factor": 2, "jitter": 0}})


async def test_a_firing_with_retries_stamps_each_attempt_when_it_happened(http_sink: HttpSink) -> None:
    """Three attempts over ~0.45 s: request and params at the first attempt's start, each response and its retry
    when that response came, times increasing by at least the backoff; the outcome when the firing finished."""
    echo = json.dumps({"error": "down", "echo": f"you sent {TOKEN}", "token": "abc123", "pad": "x" * 2000})
    http_sink.program(Reply(503, body=echo.encode()), Reply(500, body=b"still down"), Reply(200, body=b"ok"))
    async with HttpClient() as client:
        trigger = http_trigger(http_sink.url)
        outcome = await HttpTrigger(trigger, client, SECRETS).fire(
            {"d": cloud_event(b'{"header":{},"body":{"n":5}}')})
    assert outcome.success and [a.status for a in outcome.attempts] == [503, 500, 200]
    records = rows_of(fired_rows, "s", now(), "e-1", "f-1", trigger, outcome)
    assert [r.step for r in records] == ["param", "request", "response", "retry", "response", "retry", "response",
                                         "outcome"]
    param, request, r1, retry1, r2, retry2, r3, done = records
    assert isinstance(param, ParamResolved) and isinstance(request, RequestBuilt)
    assert param.time == request.time
    assert when(request) <= when(r1) < when(r2) < when(r3) <= when(done)
    assert (when(r2) - when(r1)).total_seconds() >= 0.15 and (when(r3) - when(r2)).total_seconds() >= 0.3
    assert (retry1.time, retry2.time) == (r1.time, r2.time)
    assert isinstance(retry1, RetryScheduled) and retry1.attempt == 2
    assert isinstance(r1, ResponseReceived) and isinstance(r2, ResponseReceived) and isinstance(r3, ResponseReceived)
    # the response previews: bounded, the request's secret and credential-looking members masked
    assert r1.body_preview.startswith('{"error": "down", "echo": "you sent ***", "token": "***", "pad": "xxx')
    assert r1.body_preview.endswith("…") and len(r1.body_preview) <= PREVIEW_BYTES + 1
    assert (r2.body_preview, r3.body_preview) == ("still down", "ok")
    assert all(TOKEN not in r.json_line() and "abc123" not in r.json_line() for r in records)
    assert "body: still down" in HumanFormat().line(r2.to_json())


async def test_a_secret_echoed_across_the_preview_end_is_masked_whole(http_sink: HttpSink) -> None:
    body = b"x" * (PREVIEW_BYTES - 5) + TOKEN.encode() + b"y" * 100
    http_sink.program(Reply(200, body=body))
    async with HttpClient() as client:
        outcome = await HttpTrigger(http_trigger(http_sink.url), client, SECRETS).fire(
            {"d": cloud_event(b'{"header":{},"body":{"n":5}}')})
    shown = outcome.attempts[0].response
    assert "x***y" in shown and shown.endswith("…") and TOKEN[:5] not in shown


def test_received_carries_a_bounded_masked_preview_and_the_content_type() -> None:
    data = json.dumps({"header": {"Authorization": ["Bearer hunter2"], "Content-Type": ["text/plain"],
                                  "Cookie": ["sid=abc"]},
                       "body": "user=bob&password=hunter3&note=" + "y" * 5000}).encode()
    (record,) = rows_of(received_rows, "s", now(), "nats://h:1", "default.hook.example seq 1", 1, cloud_event(data))
    assert isinstance(record, Received)
    assert record.content_type == "application/json" and record.data_bytes == len(data)
    shown = record.data_preview
    assert shown.startswith('{"header": {"Authorization": ["***"], "Content-Type": ["text/plain"], '
                            '"Cookie": ["***"]}, "body": "user=bob&password=***&note=yyy')
    assert shown.endswith(f"… ({len(data)} bytes)") and len(shown.encode()) <= PREVIEW_BYTES + 20
    assert "hunter" not in record.json_line()
    line = HumanFormat().line(record.to_json())
    assert f"({len(data)} bytes of data): " in line and "text/plain" in line


@pytest.mark.parametrize(("text", "masked"), [
    ('{"api_key":"k","x":"v"}', '{"api_key":"***","x":"v"}'),
    ('{"X-Hub-Signature":["sha1=ab","sha256=cd"]}', '{"X-Hub-Signature":["***"]}'),
    ('{"session": "a\\"b", "n": 1}', '{"session": "***", "n": 1}'),
    ('{"Authorization":["Bearer cut-by-the-bou', '{"Authorization":["***"]'),
    ("a=1&access_token=zzz&b=2", "a=1&access_token=***&b=2"),
    ('{"author":{"name":"ann"}}', '{"author":{"name":"ann"}}'),  # an object's name is kept: its members show
    ('{"message":"hello"}', '{"message":"hello"}'),
])
def test_credentials_are_masked_by_name(text: str, masked: str) -> None:
    assert mask_credentials(text) == masked


def test_previews_of_hostile_data_stay_bounded() -> None:
    assert preview(None) == preview(b"") == ""
    for data in (b"\xff" * 100_000, b'{"token":"' + b"a" * 100_000, b"[" * 100_000, "é".encode() * 50_000):
        assert len(preview(data)) <= PREVIEW_BYTES + 30


@pytest.fixture
def log_stream() -> Iterator[io.StringIO]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    stream = io.StringIO()
    setup_logging("INFO", "json", stream)
    try:
        yield stream
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in handlers:
            root.addHandler(handler)
        root.setLevel(level)


def json_lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


async def test_a_failed_firing_is_one_json_log_line_with_its_fields(http_sink: HttpSink,
                                                                    log_stream: io.StringIO) -> None:
    http_sink.default = Reply(502, body=f'{{"error":"bad gateway","token":"{TOKEN}"}}'.encode())
    trigger = Trigger.model_validate({"template": {"name": "notify", "http": {"url": http_sink.url}},
                                      "retryStrategy": {"steps": 2, "duration": "10ms"}})
    async with HttpClient() as client:
        outcome = await HttpTrigger(trigger, client, SECRETS).fire({"d": cloud_event(b"{}")})
    firing_failed(logging.getLogger("sensorium.engine"), "orders", "notify", "e-1", outcome)
    (line,) = [r for r in json_lines(log_stream) if r["logger"] == "sensorium.engine"]
    assert set(line) >= {"time", "level", "logger", "message", "sensor", "trigger", "event_id", "status",
                         "response", "attempts"}
    assert (line["level"], line["sensor"], line["trigger"], line["event_id"], line["status"], line["attempts"]) == (
        "ERROR", "orders", "notify", "e-1", 502, 2)
    assert line["response"] == '{"error":"bad gateway","token":"***"}'
    assert line["message"].startswith("sensor orders: trigger notify failed for event e-1: failed after retries: ")
    assert line["message"].endswith('; response: {"error":"bad gateway","token":"***"}')
    assert TOKEN not in log_stream.getvalue()
    assert datetime.fromisoformat(line["time"].replace("Z", "+00:00")).tzinfo is not None


def test_json_log_lines_carry_extras_and_exceptions_bounded(log_stream: io.StringIO) -> None:
    log = logging.getLogger("sensorium.test")
    log.warning("plain %s", "text", extra={"sensor": "s", "big": "z" * 10_000, "keys": ("a", "b")})
    try:
        raise ValueError("boom")
    except ValueError:
        log.exception("failed")
    first, second = json_lines(log_stream)
    assert (first["message"], first["sensor"], first["keys"]) == ("plain text", "s", ["a", "b"])
    assert len(first["big"]) < 2010
    assert second["level"] == "ERROR" and "ValueError: boom" in second["exception"]
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "line\nbreak", None, None)
    assert "\n" not in JsonFormatter().format(record)


def test_a_message_that_is_not_a_cloudevent_shows_its_start_masked() -> None:
    body = b'{"specversion":"1.0","token":"zzz-secret",' + b" " * 1000
    (record,) = rows_of(received_rows, "s", now(), "kafka://h:1", "argo-events[0]@7", 1, None, len(body),
                        "not JSON", body)
    assert isinstance(record, Received) and record.error == "not JSON"
    assert record.data_preview.startswith('{"specversion":"1.0","token":"***",')
    assert record.data_preview.endswith(f"… ({len(body)} bytes)") and "zzz-secret" not in record.json_line()
    assert HumanFormat().line(record.to_json()).endswith(f'; message: {record.data_preview}')

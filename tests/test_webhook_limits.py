"""Webhook hardening against hostile clients: deep JSON, slow headers and bodies, early disconnects, connection
floods. Real servers on free ports, raw sockets as clients (issue 11, item 4)."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from pathlib import Path

import pytest

from sensorium.sources.webhook import MAX_JSON_DEPTH, WebhookLimits, json_depth_exceeds
from tests.engine_harness import Engine, free_port, unique, write_config
from tests.fixtures_http import HttpSink
from tests.webhook_harness import exchange, parse_answer, post, webhook


def nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


@pytest.mark.parametrize("body", [nested(MAX_JSON_DEPTH + 1), b"[" * 100_000, b'{"a":' * 5000 + b"1" + b"}" * 5000,
                                  b"  " + nested(20_000)])
async def test_json_nested_deeper_than_the_limit_gets_400(body: bytes) -> None:
    async with webhook() as hook:
        answer = await exchange(hook.port, post("/hook", body, "Content-Type: application/json"))
        assert answer.status == 400
        assert answer.body == f"JSON body nested deeper than {MAX_JSON_DEPTH} levels\n".encode()
        assert hook.published == []
        assert (await exchange(hook.port, post("/hook", b'{"ok": [1]}'))).status == 200  # still serving


async def test_json_at_the_limit_is_kept_byte_for_byte() -> None:
    body = b"[" * MAX_JSON_DEPTH + b' "a<b" ' + b"]" * MAX_JSON_DEPTH
    async with webhook() as hook:
        assert (await exchange(hook.port, post("/hook", body))).status == 200
        data = hook.published[0].data or b""
        assert data.endswith(b',"body":' + b"[" * MAX_JSON_DEPTH + b'"a\\u003cb"' + b"]" * MAX_JSON_DEPTH + b"}")


@pytest.mark.parametrize("body,expected", [
    (b"NaN", "NaN"),  # Go refuses NaN as JSON: a string, never invalid event data
    (b"[1, Infinity]", "[1, Infinity]"),
    (b"1" * 5000, None),  # a number over Python's int-string limit is still valid JSON (Go keeps it)
    (b'{"s": "\\ud800"}', {"s": "\ud800"}),
    (b"\xff\xfe[1]", "\ufffd\ufffd[1]"),
    (b'["unterminated', '["unterminated'),
])
async def test_odd_bodies_become_valid_event_data(body: bytes, expected: object) -> None:
    async with webhook() as hook:
        assert (await exchange(hook.port, post("/hook", body))).status == 200
        if expected is None:
            assert (hook.published[0].data or b"").endswith(b',"body":' + body + b"}")
        else:
            assert hook.bodies()[0] == expected


@pytest.mark.parametrize("raw,limit,deeper", [
    (b"[]", 1, False), (b"[[]]", 1, True), (b'{"a":{"b":1}}', 2, False), (b'{"a":{"b":{}}}', 2, True),
    (b'["[[[[", "]]"]', 1, False),  # brackets in strings do not count
    (b'["\\"[[[["]', 1, False),  # nor after an escaped quote
    (b'["\\\\", [[]]]', 2, True),  # an escaped backslash does not escape the closing quote
    (b'"[[[[[["', 0, False), (b"  7", 0, False), (b"[" * 10, 9, True),
])
def test_depth_scan(raw: bytes, limit: int, deeper: bool) -> None:
    assert json_depth_exceeds(raw, limit) is deeper


def test_depth_scan_is_linear_on_escaped_quotes() -> None:
    body = b"[" * 600 + b'"' + b'\\"' * 500_000  # quadratic for a string regex
    start = time.perf_counter()
    assert json_depth_exceeds(body, MAX_JSON_DEPTH)
    assert time.perf_counter() - start < 0.5


@pytest.mark.slow  # waits out the 1.5 s head timeout
async def test_slow_header_senders_are_closed_and_others_served() -> None:
    limits = WebhookLimits(head_timeout=1.5)
    async with webhook(limits) as hook:
        slow = [await asyncio.open_connection("127.0.0.1", hook.port) for _ in range(50)]

        async def trickle(writer: asyncio.StreamWriter) -> None:
            with pytest.raises(ConnectionError):
                for byte in b"POST /hook HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 100:
                    writer.write(bytes([byte]))
                    await writer.drain()
                    await asyncio.sleep(0.2)

        start = time.monotonic()
        trickles = [asyncio.create_task(trickle(w)) for _, w in slow]
        await asyncio.sleep(0.3)
        normal = await exchange(hook.port, post("/hook", b'{"a":1}'))  # served while 50 connections trickle
        assert normal.status == 200 and time.monotonic() - start < 1.0
        closed = await asyncio.gather(*(asyncio.wait_for(r.read(), 5) for r, _ in slow))
        assert closed == [b""] * 50  # closed by the server, nothing answered
        assert time.monotonic() - start < limits.head_timeout + 1.0
        await asyncio.gather(*trickles)  # each writer saw its connection reset


@pytest.mark.slow  # waits out idle and head timeouts
async def test_kept_alive_connection_waits_idle_then_its_next_head_has_the_head_timeout() -> None:
    async with webhook(WebhookLimits(head_timeout=1.0, idle_timeout=2.5)) as hook:
        reader, writer = await asyncio.open_connection("127.0.0.1", hook.port)
        writer.write(b"POST /hook HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}")
        assert (await reader.readuntil(b"success")).startswith(b"HTTP/1.1 200")
        await asyncio.sleep(1.5)  # idle longer than the head timeout: a client pool may reuse it
        writer.write(b"POST /hook HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}")
        assert (await reader.readuntil(b"success")).startswith(b"HTTP/1.1 200")
        start = time.monotonic()
        writer.write(b"POST /hook HTTP/1.1\r\n")  # the next request's head never completes
        assert await asyncio.wait_for(reader.read(), 5) == b""
        assert 0.8 < time.monotonic() - start < 2.0
        writer.close()


@pytest.mark.slow  # waits out the 1.5 s idle timeout
async def test_idle_keepalive_connection_is_closed_after_the_idle_timeout() -> None:
    async with webhook(WebhookLimits(head_timeout=0.5, idle_timeout=1.5)) as hook:
        reader, writer = await asyncio.open_connection("127.0.0.1", hook.port)
        writer.write(b"POST /hook HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}")
        assert (await reader.readuntil(b"success")).startswith(b"HTTP/1.1 200")
        start = time.monotonic()
        assert await asyncio.wait_for(reader.read(), 5) == b""
        assert 1.3 < time.monotonic() - start < 2.5
        writer.close()


@pytest.mark.slow  # waits out the 1 s body timeout
async def test_slow_body_gets_408() -> None:
    async with webhook(WebhookLimits(body_timeout=1.0)) as hook:
        reader, writer = await asyncio.open_connection("127.0.0.1", hook.port)
        writer.write(b"POST /hook HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\nConnection: close\r\n\r\n{")
        start = time.monotonic()
        answer = parse_answer(await asyncio.wait_for(reader.readuntil(b"within 1s\n"), 5))
        assert answer.status == 408 and answer.body == b"request body not received within 1s\n"
        assert time.monotonic() - start < 2.0
        writer.close()
        await writer.wait_closed()  # else the server's stop waits for this connection's head timeout (10 s)
        assert hook.published == []


async def test_connections_over_the_limit_get_503() -> None:
    async with webhook(WebhookLimits(max_connections=5)) as hook:
        held = [await asyncio.open_connection("127.0.0.1", hook.port) for _ in range(5)]
        await asyncio.sleep(0.1)
        refused = await exchange(hook.port, post("/hook", b"{}"))
        assert refused.status == 503 and refused.headers["Retry-After"] == "1"
        for _, writer in held:
            writer.close()
        await asyncio.sleep(0.2)
        assert (await exchange(hook.port, post("/hook", b"{}"))).status == 200


@pytest.mark.slow  # waits for the server to see each disconnect
async def test_clients_that_disconnect_early_log_no_error(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    async with webhook() as hook:
        # aborted mid-body
        _, writer = await asyncio.open_connection("127.0.0.1", hook.port)
        writer.write(b"POST /hook HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{\"a\":")
        await writer.drain()
        await asyncio.sleep(0.2)
        writer.transport.abort()
        # aborted right after sending a whole request, before the answer
        _, writer = await asyncio.open_connection("127.0.0.1", hook.port)
        writer.write(post("/hook", b'{"a":1}'))
        await writer.drain()
        writer.transport.abort()
        # aborted in the middle of the headers, and a request line that is not HTTP
        _, writer = await asyncio.open_connection("127.0.0.1", hook.port)
        writer.write(b"POST /hook HTTP/1.1\r\nHost")
        await writer.drain()
        writer.transport.abort()
        assert (await exchange(hook.port, b"\x16\x03\x01 garbage\r\n\r\n")).status == 400
        assert (await exchange(hook.port, post("/hook", b"x", "Bad Header: y"))).status == 400
        await asyncio.sleep(0.5)
        assert (await exchange(hook.port, post("/hook", b"{}"))).status == 200
    loud = [r for r in caplog.records if r.levelno >= logging.WARNING or r.exc_info]
    assert loud == [], [(r.name, r.getMessage()) for r in loud]
    assert "Traceback" not in caplog.text
    assert any("not received: ConnectionResetError" in r.getMessage() for r in caplog.records)
    assert json.loads(hook.published[0].data or b"")["body"] == {"a": 1}  # stored although the client left


async def test_deepest_accepted_body_reaches_a_sensor_on_jetstream(nats_url: str, http_sink: HttpSink,
                                                                   tmp_path: Path) -> None:
    """What the webhook accepts, the bus decoder and the sensor stage must handle: a body at the depth limit
    fires a trigger that receives it whole."""
    source, port = unique("deep"), free_port()
    body = b'{"kind":"deep","tree":' + nested(MAX_JSON_DEPTH - 1) + b"}"
    folder = write_config(tmp_path, f"""
apiVersion: argoproj.io/v1alpha1
kind: EventSource
metadata: {{name: {source}}}
spec:
  webhook:
    deep: {{port: "{port}", endpoint: /deep, method: POST}}
""", f"""
apiVersion: argoproj.io/v1alpha1
kind: Sensor
metadata: {{name: {unique("deep-sensor")}}}
spec:
  dependencies:
    - name: d
      eventSourceName: {source}
      eventName: deep
      filters:
        data: [{{path: body.kind, type: string, value: ["^deep$"]}}]
  triggers:
    - template:
        name: t
        http:
          url: {http_sink.url}/deep
          payload: [{{src: {{dependencyName: d, dataKey: body}}, dest: body}}]
""")
    async with Engine(folder, nats_url):
        answer = await exchange(port, post("/deep", body, "Content-Type: application/json"))
        assert answer.status == 200
        [request] = await http_sink.wait_for(1, timeout=20)
    assert request.json() == {"body": body.decode()}  # Argo's payload: the body's JSON text as a string

"""Fuzzing the webhook's request handling (issue 11, item 5): generated methods, paths, headers, content types
and bodies (deep JSON, invalid UTF-8, huge numbers, odd form encodings, empty) sent as raw HTTP to a real
webhook server on a free port. Every answer is one of 200/400/401/404/405/413/503 with a one-line body, every
stored event is valid JSON, nothing is logged at WARNING or above or with a traceback, and the server keeps
serving. Bounded (400 examples, a few seconds) and deterministic (derandomized, no example database)."""

from __future__ import annotations

import asyncio
import gzip
import json
import logging
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from sensorium.buses.memory import MemoryBus
from sensorium.engine.app import publish_event
from sensorium.engine.core.cloudevent import CloudEvent
from sensorium.engine.core.secrets import Secrets
from sensorium.sources.spec import WebhookContext
from sensorium.sources.webhook import MAX_JSON_DEPTH, Endpoint, WebhookLimits, WebhookServer
from tests.engine_harness import free_port
from tests.webhook_harness import parse_answer

ALLOWED = {200, 400, 401, 404, 405, 413, 503}
TOKEN = "fuzz-token"
PAYLOAD_LIMIT = 4096


@dataclass
class Live:
    port: int
    published: list[CloudEvent]


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    """Webhook endpoints /hook (POST), /get (GET), /auth (POST, bearer token), /small (POST, 4 KiB limit), served
    from an event loop in a thread so the synchronous hypothesis test talks to it over real sockets."""
    secrets = tmp_path_factory.mktemp("secrets")
    (secrets / "hook").mkdir()
    (secrets / "hook" / "token").write_text(TOKEN)
    port, published = free_port(), []
    contexts: dict[str, dict[str, object]] = {
        "/hook": {}, "/get": {"method": "GET"}, "/auth": {"authSecret": {"name": "hook", "key": "token"}},
        "/small": {"maxPayloadSize": PAYLOAD_LIMIT}}
    endpoints = [Endpoint("fuzz", path[1:], WebhookContext.model_validate({"endpoint": path, "port": str(port), **c}))
                 for path, c in contexts.items()]
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()

    async def start() -> tuple[MemoryBus, WebhookServer]:
        bus = MemoryBus()
        await bus.start()

        async def publish(event: CloudEvent) -> None:
            await publish_event(bus, event)
            published.append(event)

        server = WebhookServer(endpoints, publish, Secrets(Path(secrets)), "127.0.0.1",
                               WebhookLimits(head_timeout=2.0, body_timeout=2.0))
        await server.start()
        return bus, server

    bus, server = asyncio.run_coroutine_threadsafe(start(), loop).result(10)
    try:
        yield Live(port, published)
    finally:
        asyncio.run_coroutine_threadsafe(server.stop(), loop).result(10)
        asyncio.run_coroutine_threadsafe(bus.close(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)


def send(port: int, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
        return b"".join(chunks)


def deep(depth: int, kind: str) -> bytes:
    if kind == "array":
        return b"[" * depth + b"]" * depth
    if kind == "object":
        return b'{"a":' * depth + b"1" + b"}" * depth
    return b"[" * depth  # unclosed


TOKEN_CHARS = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
json_values = st.recursive(
    st.none() | st.booleans() | st.floats(allow_nan=False) | st.integers() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20)

bodies = st.one_of(
    st.just(b""),
    st.builds(deep, st.integers(0, 3 * MAX_JSON_DEPTH), st.sampled_from(["array", "object", "open"])),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.binary(max_size=600),
    st.text(max_size=200).map(lambda t: t.encode("utf-8", "surrogatepass")),
    st.sampled_from([b"9" * 5000, b"-1e99999", b"1e400", b"NaN", b"[Infinity]", b"0x10", b'"\\ud800"', b"\xff\xfe{}",
                     b"a=%ff%fe&b=%&c==&&", b"%E9t%E9=caf%E9", b"a=1;b=2", b"=&=&", b"x" * (PAYLOAD_LIMIT + 1)]),
)
content_types = st.sampled_from([None, "application/json", "application/x-www-form-urlencoded", "text/plain",
                                 "application/x-www-form-urlencoded; charset=latin-1", "text/plain; charset=utf-16",
                                 "multipart/form-data; boundary=x", "application/json; charset=\xe9"])
header_names = st.text(TOKEN_CHARS, min_size=1, max_size=20).filter(
    lambda n: n.lower() not in ("content-length", "transfer-encoding", "connection", "host", "content-encoding",
                                "expect", "upgrade"))
header_values = st.text(st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"),
                        max_size=40).map(str.strip)
# Mostly the right method and path, so that most requests reach the handler and its body processing.
methods = st.sampled_from(["POST"] * 12 + ["GET", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "BREW", "post"])
queries = st.text(TOKEN_CHARS + "%=&+", max_size=40).map(lambda q: "?" + q)
good_paths = st.tuples(st.sampled_from(["/hook"] * 4 + ["/get", "/auth", "/small"]), st.just("") | queries)
odd_paths = st.one_of(
    st.sampled_from(["/nope", "/", "/hook/", "/get?a=%ff&b=%zz&&=", "/get?" + "q=1&" * 500, "//hook", "/%00",
                     "/hook#f"]),
    st.text(TOKEN_CHARS + "/%?=&", max_size=30).map(lambda p: "/" + p))
# Three of four requests go to an endpoint (one_of alone favours its simplest branch far more).
paths = st.sampled_from([True, True, True, False]).flatmap(
    lambda good: good_paths.map("".join) if good else odd_paths)


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    headers: tuple[tuple[str, str], ...]
    content_type: str | None
    auth: str | None
    body: bytes
    chunked: bool
    encoding: str | None = None  # Content-Encoding, the body sent as is (valid gzip or not)

    def encode(self) -> bytes:
        head = [f"{self.method} {self.path} HTTP/1.1", "Host: fuzz", "Connection: close"]
        head += [f"{k}: {v}" for k, v in self.headers]
        if self.content_type is not None:
            head.append(f"Content-Type: {self.content_type}")
        if self.auth is not None:
            head.append(f"Authorization: {self.auth}")
        if self.encoding is not None:
            head.append(f"Content-Encoding: {self.encoding}")
        if self.chunked:
            head.append("Transfer-Encoding: chunked")
            body = b"".join(b"%x\r\n%s\r\n" % (len(part), part)
                            for part in (self.body[i:i + 100] for i in range(0, len(self.body), 100)))
            body += b"0\r\n\r\n"
        else:
            head.append(f"Content-Length: {len(self.body)}")
            body = self.body
        return "\r\n".join(head).encode("latin-1") + b"\r\n\r\n" + body


requests = st.builds(
    Request, methods, paths, st.lists(st.tuples(header_names, header_values), max_size=5).map(tuple),
    content_types, st.sampled_from([None, f"Bearer {TOKEN}", "Bearer wrong", "Basic x", "Bearer " + TOKEN + "\xe9"]),
    bodies, st.booleans(), st.sampled_from([None] * 6 + ["gzip", "deflate", "br", "x-unknown"]))


def check_answer(raw: bytes, request: Request) -> None:
    answer = parse_answer(raw)
    assert answer.status in ALLOWED, (answer, request)
    assert b"Traceback" not in answer.body
    assert answer.body.rstrip(b"\n").count(b"\n") == 0, answer.body  # one line


@pytest.mark.slow  # fuzz (hypothesis)
def test_any_request_gets_an_allowed_one_line_answer(live: Live, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)

    @settings(max_examples=400, deadline=None, derandomize=True, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @example(Request("POST", "/hook", (), "application/json", None, b"[" * 100_000, False))
    @example(Request("POST", "/hook", (), "application/json", None, b"[" * 100_000, True))
    @example(Request("POST", "/small", (), None, None, b"x" * (PAYLOAD_LIMIT + 1), True))
    @example(Request("GET", "/get?a=%ff%fe", (("X", "\xe9"),), None, None, b"", False))
    @example(Request("POST", "/auth", (), None, f"Bearer {TOKEN}\xe9", b"", False))  # found: 500 on a latin-1 byte
    @example(Request("POST", "/hook", (), None, None, b"\x1f\x8b garbage", False, "gzip"))  # found: 500
    @example(Request("POST", "/small", (), None, None, gzip.compress(b"0" * 10_000_000), False, "gzip"))  # bomb
    @example(Request("POST", "/hook", (), None, None, gzip.compress(b'{"a": [1]}'), True, "gzip"))
    @given(request=requests)
    def one(request: Request) -> None:
        check_answer(send(live.port, request.encode()), request)

    one()
    loud = [r for r in caplog.records if r.levelno >= logging.WARNING or r.exc_info]
    assert loud == [], [(r.name, r.levelname, r.getMessage()[:200]) for r in loud]
    assert "Traceback" not in caplog.text
    assert live.published, "some generated requests are valid and must be stored"
    for event in live.published:
        json.loads(event.data or b"", parse_int=str, parse_float=str)  # valid JSON, as sensors will parse it
    answer = parse_answer(send(live.port, b"POST /hook HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                                          b"Content-Length: 7\r\n\r\n{\"a\":1}"))
    assert answer.status == 200  # still serving

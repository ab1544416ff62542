"""The HTTP trigger against a real local HTTP server (tests.fixtures_http.HttpSink)."""

from __future__ import annotations

import base64
import logging
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from sensorium.engine.core.secrets import Secrets, env_name
from sensorium.triggers.http import HttpClient, HttpTrigger
from sensorium.triggers.httprequest import HttpRequest
from sensorium.triggers.policy import VerdictKind
from sensorium.triggers.ratelimit import RateLimiter
from sensorium.triggers.spec import Trigger
from tests.fixtures_http import HttpSink, Reply

from .helpers import event

TOKEN, PASSWORD = "tok-s3cr3t-value", "pa55-w0rd-xyz"
SECRETS = Secrets(environ={env_name("tok", "value"): TOKEN, env_name("creds", "user"): "alice",
                           env_name("creds", "pass"): PASSWORD})
EVENTS = {"d": event(b'{"id":"abc","n":7}')}
FAST = {"steps": 3, "duration": "10ms", "factor": 2.0, "jitter": 0.0}


class NoJitter:
    def random(self) -> float:
        return 0.0


@pytest_asyncio.fixture
async def client() -> AsyncIterator[HttpClient]:
    async with HttpClient() as c:
        yield c


def make(url: str, http: dict[str, Any] | None = None, **extra: Any) -> Trigger:
    return Trigger.model_validate({"template": {"name": "t1", "http": {"url": url, **(http or {})}}, **extra})


def no_secrets(*texts: str) -> None:
    for text in texts:
        assert TOKEN not in text and PASSWORD not in text
        assert base64.b64encode(f"alice:{PASSWORD}".encode()).decode() not in text


async def test_exact_request_received(http_sink: HttpSink, client: HttpClient,
                                      caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    t = make(http_sink.url + "/hooks/in?x=1", {
        "method": "PUT",
        "headers": {"X-Static": "s"},
        "dynamicHeaders": [{"src": {"dependencyName": "d", "dataKey": "id"}, "dest": "X-Event-Id"}],
        "secureHeaders": [{"name": "X-Token", "valueFrom": {"secretKeyRef": {"name": "tok", "key": "value"}}}],
        "basicAuth": {"username": {"name": "creds", "key": "user"}, "password": {"name": "creds", "key": "pass"}},
        "payload": [{"src": {"dependencyName": "d", "dataKey": "n", "useRawData": True}, "dest": "count"},
                    {"src": {"dependencyName": "d", "dataKey": "id"}, "dest": "ids.-1"}],
        "host": "virtual.example",
    })
    outcome = await HttpTrigger(t, client, SECRETS).fire(EVENTS)
    assert outcome.success and outcome.error == "" and len(outcome.attempts) == 1
    assert outcome.attempts[0].status == 200 and outcome.attempts[0].verdict.kind is VerdictKind.SUCCESS
    [got] = await http_sink.wait_for(1)
    assert (got.method, got.path, got.query) == ("PUT", "/hooks/in", "x=1")
    assert got.body == b'{"count":7,"ids":["abc"]}'
    assert got.header("X-Static") == "s" and got.header("X-Event-Id") == "abc" and got.header("X-Token") == TOKEN
    assert got.header("Authorization") == "Basic " + base64.b64encode(f"alice:{PASSWORD}".encode()).decode()
    assert got.header("Host") == "virtual.example"
    assert got.header("Content-Type") is None  # no default Content-Type, as in Argo
    assert {"X-Static", "X-Event-Id", "X-Token"} <= set(got.header_names())  # names sent verbatim
    assert outcome.request is not None and ("X-Token", "***") in outcome.request.headers
    no_secrets(repr(outcome), caplog.text)


async def test_without_details_the_outcome_keeps_what_the_runner_reads(http_sink: HttpSink,
                                                                       client: HttpClient) -> None:
    """`details=False` (`sensorium run --no-bus-trace`): no request summary, no parameters, no attempt start
    time and no preview of a successful response (only traces read them); the same request is sent, and a failed
    attempt keeps its preview (the runner's ERROR line shows it)."""
    t = make(http_sink.url, {"payload": [{"src": {"dependencyName": "d", "dataKey": "id"}, "dest": "id"}]},
             retryStrategy=FAST)
    http_sink.program(Reply(200, body=b"fine"))
    full = await HttpTrigger(t, client, SECRETS).fire(EVENTS)
    http_sink.program(Reply(200, body=b"fine"))
    bare = await HttpTrigger(t, client, SECRETS, details=False).fire(EVENTS)
    first, second = await http_sink.wait_for(2)
    assert first.body == second.body == b'{"id":"abc"}'
    assert full.success and full.request is not None and len(full.params) == 1
    assert full.attempts[0].response == "fine"
    assert bare.success and bare.request is None and bare.params == () and bare.attempts[0].response == ""
    assert full.attempts[0].at > 0 and bare.attempts[0].at == 0.0  # (0.0: not known)
    assert (bare.trigger, bare.kind, bare.error, bare.attempts[0].status) == (full.trigger, full.kind, "", 200)
    http_sink.program(Reply(404, body=b"no such order"))
    failed = await HttpTrigger(t, client, SECRETS, details=False).fire(EVENTS)
    assert not failed.success and failed.attempts[-1].response == "no such order"


async def test_fixed_headers_are_redacted_in_every_firings_summary(http_sink: HttpSink, client: HttpClient) -> None:
    """A trigger whose headers are the same every firing has its summary's headers worked out once: a plain
    header whose name says credential is still "***" in every firing's summary, and still sent as written."""
    t = make(http_sink.url, {"headers": {"Authorization": f"Bearer {TOKEN}", "X-Plain": "v"},
                             "payload": [{"src": {"dependencyName": "d", "dataKey": "id"}, "dest": "id"}]})
    trigger = HttpTrigger(t, client, SECRETS)
    outcomes = [await trigger.fire(EVENTS) for _ in range(2)]
    sent = await http_sink.wait_for(2)
    assert [got.header("Authorization") for got in sent] == [f"Bearer {TOKEN}"] * 2
    for outcome in outcomes:
        assert outcome.success and outcome.request is not None
        assert outcome.request.headers == (("Authorization", "***"), ("X-Plain", "v"))
        no_secrets(repr(outcome))


async def test_content_type_only_when_given(http_sink: HttpSink, client: HttpClient) -> None:
    t = make(http_sink.url, {"headers": {"Content-Type": "application/json"},
                             "payload": [{"src": {"dependencyName": "d"}, "dest": ""}]})
    assert (await HttpTrigger(t, client, SECRETS).fire(EVENTS)).success
    [got] = await http_sink.wait_for(1)
    assert got.header("Content-Type") == "application/json" and got.json()["context"]["id"] == "e1"


async def test_retryable_statuses_are_retried_until_success(http_sink: HttpSink, client: HttpClient) -> None:
    http_sink.program(503, 503, 200)
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    t = make(http_sink.url, retryStrategy=FAST)
    outcome = await HttpTrigger(t, client, SECRETS, rng=NoJitter(), sleep=sleep).fire(EVENTS)
    assert outcome.success and [a.status for a in outcome.attempts] == [503, 503, 200]
    assert [a.verdict.kind for a in outcome.attempts] == [VerdictKind.RETRYABLE, VerdictKind.RETRYABLE,
                                                          VerdictKind.SUCCESS]
    assert [a.delay_s for a in outcome.attempts] == pytest.approx([0.01, 0.02, None])
    assert slept == pytest.approx([0.01, 0.02])
    assert len(await http_sink.wait_for(3)) == 3
    assert all(a.latency_s >= 0 for a in outcome.attempts)


async def test_real_sleeps_between_attempts(http_sink: HttpSink, client: HttpClient) -> None:
    http_sink.program(500, 500, 500)
    outcome = await HttpTrigger(make(http_sink.url, retryStrategy=FAST), client, SECRETS).fire(EVENTS)
    assert not outcome.success and len(outcome.attempts) == 3
    assert outcome.error == "failed after retries: http response status 500 is retryable (no policy: 408, 429, 5xx)"


async def test_terminal_status_stops_after_one_attempt(http_sink: HttpSink, client: HttpClient) -> None:
    http_sink.program(404)
    outcome = await HttpTrigger(make(http_sink.url, retryStrategy=FAST), client, SECRETS).fire(EVENTS)
    assert not outcome.success and len(outcome.attempts) == 1
    assert outcome.attempts[0].verdict.kind is VerdictKind.TERMINAL and outcome.attempts[0].delay_s is None
    assert outcome.error == "failed after retries: http response status 404 is not 2xx (no policy)"
    assert len(http_sink.requests) == 1


async def test_allow_list_policy(http_sink: HttpSink, client: HttpClient) -> None:
    http_sink.program(404, 500, 200)
    t = make(http_sink.url, retryStrategy=FAST, policy={"status": {"allow": [404]}})
    outcome = await HttpTrigger(t, client, SECRETS).fire(EVENTS)
    assert outcome.success and outcome.last_status == 404
    t = make(http_sink.url, retryStrategy=FAST, policy={"status": {"allow": ["201-204"]}})
    outcome = await HttpTrigger(t, client, SECRETS, rng=NoJitter()).fire(EVENTS)
    assert not outcome.success and [a.status for a in outcome.attempts] == [500, 200]
    assert outcome.error == ("failed after retries: policy application resulted in failure. "
                             "http response status 200 is not allowed")


@pytest.mark.slow  # waits out the 1 s request timeout
async def test_timeout_is_retryable(http_sink: HttpSink, client: HttpClient) -> None:
    http_sink.program(Reply(status=200, delay=3.0), 200)
    t = make(http_sink.url, {"timeout": 1}, retryStrategy={"steps": 2, "duration": "1ms", "jitter": 0.0})
    outcome = await HttpTrigger(t, client, SECRETS).fire(EVENTS)
    first = outcome.attempts[0]
    assert outcome.success and first.status is None and first.verdict.kind is VerdictKind.RETRYABLE
    assert first.error == f'Post "{http_sink.url}": timeout: no response within 1s'
    assert 0.9 < first.latency_s < 2.5


async def test_client_timeout_per_request(http_sink: HttpSink, client: HttpClient) -> None:
    http_sink.program(Reply(delay=1.0))
    request = HttpRequest("GET", http_sink.url + "/slow", (), b"", timeout=0.1)
    with pytest.raises(Exception, match="timeout") as info:
        await client.send(request)
    assert getattr(info.value, "retryable", False)


async def test_connection_refused_is_retryable_and_redacted(client: HttpClient) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    t = make(f"http://user:{PASSWORD}@127.0.0.1:{port}/x",
             {"secureHeaders": [{"name": "X-Token", "valueFrom": {"secretKeyRef": {"name": "tok", "key": "value"}}}]},
             retryStrategy={"steps": 2, "duration": "1ms"})
    outcome = await HttpTrigger(t, client, SECRETS).fire(EVENTS)
    assert not outcome.success and len(outcome.attempts) == 2
    assert all(a.verdict.kind is VerdictKind.RETRYABLE and a.status is None for a in outcome.attempts)
    assert outcome.error.startswith(f'failed after retries: Post "http://user:***@127.0.0.1:{port}/x"')
    no_secrets(repr(outcome))


async def test_build_failures(http_sink: HttpSink, client: HttpClient) -> None:
    bad_param = make(http_sink.url, {"payload": [{"src": {"dependencyName": "d", "dataKey": "nope"}, "dest": "a"}]},
                     retryStrategy=FAST)
    outcome = await HttpTrigger(bad_param, client, SECRETS).fire(EVENTS)
    assert not outcome.success and len(outcome.attempts) == 1
    assert outcome.attempts[0].verdict.kind is VerdictKind.TERMINAL
    assert "unable to resolve 'd' parameter value" in outcome.error
    no_secret = make(http_sink.url, {"secureHeaders": [
        {"name": "X", "valueFrom": {"secretKeyRef": {"name": "absent", "key": "k"}}}]},
        retryStrategy={"steps": 2, "duration": "1ms"})
    outcome = await HttpTrigger(no_secret, client, SECRETS).fire(EVENTS)
    assert len(outcome.attempts) == 2 and outcome.attempts[0].verdict.kind is VerdictKind.RETRYABLE
    assert http_sink.requests == []


async def test_redirects_are_followed(http_sink: HttpSink, client: HttpClient) -> None:
    http_sink.program(Reply(status=307, headers=(("Location", "/moved"),)), 200)
    outcome = await HttpTrigger(make(http_sink.url + "/first"), client, SECRETS).fire(EVENTS)
    assert outcome.success
    assert [r.path for r in await http_sink.wait_for(2)] == ["/first", "/moved"]


async def test_one_pool_reuses_connections(http_sink: HttpSink, client: HttpClient) -> None:
    http_sink.default = Reply(status=200, body=b'{"ignored":"body"}')
    a = HttpTrigger(make(http_sink.url + "/a"), client, SECRETS)
    b = HttpTrigger(make(http_sink.url + "/b"), client, SECRETS)
    for _ in range(3):
        assert (await a.fire(EVENTS)).success and (await b.fire(EVENTS)).success
    peers = {r.peer for r in await http_sink.wait_for(6)}
    assert len(peers) == 1


async def test_rate_limit_is_awaited_before_each_attempt(http_sink: HttpSink, client: HttpClient) -> None:
    http_sink.program(503, 200)
    t = make(http_sink.url, retryStrategy={"steps": 2, "duration": "1ms"}, rateLimit={"requestsPerUnit": 20})
    trigger = HttpTrigger(t, client, SECRETS)
    assert isinstance(trigger.limiter, RateLimiter)
    outcome = await trigger.fire(EVENTS)
    assert outcome.success and outcome.attempts[0].waited_s == 0.0 and outcome.attempts[1].waited_s > 0.0


async def test_fire_never_raises(http_sink: HttpSink, client: HttpClient, monkeypatch: pytest.MonkeyPatch,
                                 caplog: pytest.LogCaptureFixture) -> None:
    async def explode(*_: Any) -> tuple[int, bytes]:
        raise RuntimeError(f"bug holding {TOKEN}")

    monkeypatch.setattr(client, "exchange", explode)
    t = make(http_sink.url, {"secureHeaders": [{"name": "X-Token", "valueFrom": {
        "secretKeyRef": {"name": "tok", "key": "value"}}}]})
    outcome = await HttpTrigger(t, client, SECRETS).fire(EVENTS)
    assert not outcome.success and outcome.error == "failed after retries: internal error: RuntimeError"
    no_secrets(repr(outcome), caplog.text)


async def test_bad_header_value_is_terminal(http_sink: HttpSink, client: HttpClient) -> None:
    t = make(http_sink.url, {"dynamicHeaders": [{"src": {"dependencyName": "d", "value": "a\r\nX-Evil: 1"},
                                                 "dest": "X-H"}]}, retryStrategy=FAST)
    outcome = await HttpTrigger(t, client, SECRETS).fire(EVENTS)
    assert not outcome.success and len(outcome.attempts) == 1
    assert outcome.attempts[0].verdict.kind is VerdictKind.TERMINAL
    assert outcome.error.startswith("failed after retries: failed to construct request for")
    assert http_sink.requests == []

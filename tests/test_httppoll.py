"""The httpPoll source against a real local HTTP server serving a changing JSON list with an ETag, keeping its seen
keys in the memory bus's state store (shared by a fresh bus client after a "restart"): each new item is published
once, across restarts; a 304 publishes nothing; errors are one log line each and polling goes on."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from jsonpath_ng.ext.parser import parse as jsonpath_parse
from pydantic import ValidationError

from sensorium.buses.memory import MemoryBroker, MemoryBus
from sensorium.engine.core.cloudevent import CloudEvent
from sensorium.engine.core.secrets import Secrets
from sensorium.engine.registry import REGISTRY
from sensorium.sources.httppoll import HttpPollContext, HttpPollSource, SeenKeys, select_items
from tests.httpfeed import Feed, etag_of, serving


@pytest.fixture
async def feed() -> AsyncIterator[Feed]:
    async with serving() as f:
        yield f


def spec(url: str, **extra: Any) -> HttpPollContext:
    return HttpPollContext.model_validate({"url": url, "pollingInterval": "100ms", "responsePath": "$.orders",
                                           "keyPath": "$.id", **extra})


class Run:
    """One engine lifetime: a source publishing into a list, its state on `broker`'s state store."""

    def __init__(self, broker: MemoryBroker, context: HttpPollContext, secrets: Secrets | None = None) -> None:
        self.bus = MemoryBus(broker)
        self.events: list[CloudEvent] = []

        async def publish(event: CloudEvent) -> None:
            self.events.append(event)

        self.source = HttpPollSource([("shop", "orders", context)], publish, secrets or Secrets(environ={}),
                                     self.bus.state_store)

    def ids(self) -> list[int]:
        return [json.loads(e.data or b"null")["id"] for e in self.events]

    async def __aenter__(self) -> Run:
        await self.bus.start()
        await self.source.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.source.stop()
        await self.bus.close()

    async def wait_for(self, count: int, timeout: float = 5.0) -> None:
        async with asyncio.timeout(timeout):
            while len(self.events) < count:
                await asyncio.sleep(0.02)


async def polls(feed: Feed, count: int, timeout: float = 5.0) -> None:
    start = len(feed.statuses)
    async with asyncio.timeout(timeout):
        while len(feed.statuses) < start + count:
            await asyncio.sleep(0.02)


async def test_each_new_item_is_published_once_across_restarts(feed: Feed) -> None:
    broker = MemoryBroker()
    feed.items = [{"id": 1, "total": 10}, {"id": 2, "total": 20}]
    async with Run(broker, spec(feed.url)) as first:
        await first.wait_for(2)
        feed.items.append({"id": 3, "total": 30})
        await first.wait_for(3)
        await polls(feed, 3)
    assert first.ids() == [1, 2, 3]
    assert {e.source for e in first.events} == {"shop"} and {e.subject for e in first.events} == {"orders"}
    assert json.loads(first.events[0].data or b"null") == {"id": 1, "total": 10}

    feed.items.append({"id": 4, "total": 40})
    async with Run(broker, spec(feed.url)) as second:
        await second.wait_for(1)
        await polls(feed, 3)
    assert second.ids() == [4]
    assert len({e.id for e in first.events + second.events}) == 4


async def test_an_unchanged_list_is_answered_304_and_publishes_nothing(feed: Feed) -> None:
    feed.items = [{"id": 1}]
    async with Run(MemoryBroker(), spec(feed.url)) as run:
        await run.wait_for(1)
        await polls(feed, 3)
    assert feed.statuses[0] == 200 and set(feed.statuses[1:]) == {304}
    assert "If-None-Match" not in feed.headers[0] and feed.headers[1]["If-None-Match"] == etag_of(feed.items)
    assert run.ids() == [1]


async def test_last_modified_is_sent_back_as_if_modified_since(feed: Feed) -> None:
    feed.items, feed.last_modified = [{"id": 1}], "Sun, 06 Dec 2026 13:00:00 GMT"
    async with Run(MemoryBroker(), spec(feed.url)) as run:
        await run.wait_for(1)
        await polls(feed, 2)
        assert set(feed.statuses[1:]) == {304}
        feed.items.append({"id": 2})
        feed.last_modified = "Sun, 06 Dec 2026 13:05:00 GMT"
        await run.wait_for(2)
    assert feed.headers[1]["If-Modified-Since"] == "Sun, 06 Dec 2026 13:00:00 GMT"
    assert run.ids() == [1, 2]


async def test_the_etag_survives_a_restart(feed: Feed) -> None:
    broker = MemoryBroker()
    feed.items = [{"id": 1}]
    async with Run(broker, spec(feed.url)) as run:
        await run.wait_for(1)
    feed.statuses.clear()
    async with Run(broker, spec(feed.url)) as again:
        await polls(feed, 2)
    assert feed.statuses[:2] == [304, 304] and again.events == []


async def test_without_a_key_path_items_are_told_apart_by_content(feed: Feed) -> None:
    feed.items = [{"id": 1, "v": "a"}, {"id": 1, "v": "a"}, {"id": 1, "v": "b"}]
    async with Run(MemoryBroker(), spec(feed.url, keyPath=None)) as run:
        await run.wait_for(2)
        await polls(feed, 2)
    assert [json.loads(e.data or b"null")["v"] for e in run.events] == ["a", "b"]


@pytest.mark.slow  # waits through real backoff
@pytest.mark.parametrize(("raw", "status", "extra", "reason"), [
    (b"<html>not json</html>", 200, {}, "not JSON"),
    (None, 500, {}, "HTTP 500"),
    (None, 302, {}, "HTTP 302"),  # a redirect is not followed
    (b'{"orders": [' + b'{"id": 9}, ' * 200 + b'{"id": 10}]}', 200, {"maxResponseSize": 1000}, "over the 1000-byte"),
])
async def test_a_bad_answer_is_one_log_line_and_polling_goes_on(feed: Feed, caplog: pytest.LogCaptureFixture,
                                                                raw: bytes | None, status: int,
                                                                extra: dict[str, Any], reason: str) -> None:
    feed.raw, feed.status = raw, status
    caplog.set_level(logging.ERROR, "sensorium.sources.httppoll")
    async with Run(MemoryBroker(), spec(feed.url, **extra)) as run:
        await polls(feed, 2)
        failures = [r.getMessage() for r in caplog.records]
        feed.raw, feed.status, feed.items = None, 200, [{"id": 7}]
        await run.wait_for(1, timeout=10)
    assert run.ids() == [7]
    assert failures and all(reason in line for line in failures), failures
    assert all("next poll in" in line for line in failures)
    delays = [float(line.rsplit("next poll in ", 1)[1].rstrip("s")) for line in failures]
    assert delays == sorted(delays) and delays[0] == 0.2  # backoff doubles from the interval


async def test_an_unreachable_url_is_logged_and_the_source_keeps_running(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, "sensorium.sources.httppoll")
    async with Run(MemoryBroker(), spec("http://127.0.0.1:1/orders?token=hidden")) as run:
        async with asyncio.timeout(5):
            while len(caplog.records) < 2:
                await asyncio.sleep(0.02)
        assert not run.source._running.tasks[0].done()
    lines = [r.getMessage() for r in caplog.records]
    assert all("http://127.0.0.1:1/orders failed" in line for line in lines), lines
    assert not any("hidden" in line for line in lines)


async def test_secure_headers_are_sent_and_never_logged(feed: Feed, tmp_path: Path,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / "feed-token").mkdir()
    (tmp_path / "feed-token" / "token").write_text("s3cr3t-value")
    caplog.set_level(logging.DEBUG)
    feed.status = 503
    context = spec(feed.url, headers={"Accept": "application/json"},
                   secureHeaders=[{"name": "Authorization",
                                   "valueFrom": {"secretKeyRef": {"name": "feed-token", "key": "token"}}}])
    async with Run(MemoryBroker(), context, Secrets(tmp_path, environ={})):
        await polls(feed, 2)
    assert feed.headers[0]["Authorization"] == "s3cr3t-value" and feed.headers[0]["Accept"] == "application/json"
    assert caplog.records and "s3cr3t" not in caplog.text


def test_seen_keys_keep_only_the_newest() -> None:
    seen = SeenKeys(limit=3)
    for key in "abcde":
        seen.add(key)
    assert list(seen.keys) == ["c", "d", "e"]
    again = SeenKeys.load(seen.dump(), limit=2)
    assert list(again.keys) == ["d", "e"]


def test_items_are_an_arrays_elements_or_each_match() -> None:
    doc = {"orders": [{"id": 1}, {"id": 2}], "one": {"id": 3}}
    assert select_items(doc, jsonpath_parse("$.orders")) == [{"id": 1}, {"id": 2}]
    assert select_items(doc, jsonpath_parse("$.orders[*].id")) == [1, 2]
    assert select_items(doc, jsonpath_parse("$.one")) == [{"id": 3}]
    assert select_items([1, 2], None) == [1, 2]
    assert select_items(doc, jsonpath_parse("$.missing")) == []


@pytest.mark.parametrize(("field", "value", "message"), [
    ("url", "ftp://x/y", "scheme"), ("pollingInterval", "10ms", "at least 100ms"),
    ("responsePath", "$[", "invalid JSONPath"), ("method", "DELETE", "unsupported method"),
    ("maxSeenKeys", 0, "greater than or equal"),
])
def test_bad_entries_are_refused_at_load(field: str, value: Any, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        HttpPollContext.model_validate({"url": "http://example.test/x", field: value})


def test_the_kind_is_registered_as_http_poll() -> None:
    assert REGISTRY.sources["httpPoll"].spec is HttpPollContext

"""The httpPoll source in a running engine on a real nats-server: a real local JSON feed with an ETag, a sensor
posting each order to a real HTTP sink. Each order is posted once across an engine restart (the seen keys are in
the bus's state store), and the restarted engine's first poll is a 304."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.engine_harness import Engine, unique, write_config
from tests.fixtures_http import HttpSink
from tests.httpfeed import Feed, serving

SOURCE = """\
apiVersion: argoproj.io/v1alpha1
kind: EventSource
metadata: {name: %(source)s}
spec:
  httpPoll:
    orders:
      url: %(feed)s
      pollingInterval: 200ms
      responsePath: $.orders
      keyPath: $.id
      secureHeaders:
        - {name: Authorization, valueFrom: {secretKeyRef: {name: feed, key: token}}}
"""

SENSOR = """\
apiVersion: argoproj.io/v1alpha1
kind: Sensor
metadata: {name: %(source)s-sensor}
spec:
  dependencies: [{name: d, eventSourceName: %(source)s, eventName: orders}]
  triggers:
    - template:
        name: post
        http:
          url: %(sink)s/order
          method: POST
          payload:
            - {src: {dependencyName: d, dataKey: id}, dest: id}
"""


@pytest.fixture
async def feed() -> AsyncIterator[Feed]:
    async with serving() as f:
        yield f


async def polled(feed: Feed, count: int) -> None:
    start = len(feed.statuses)
    async with asyncio.timeout(10):
        while len(feed.statuses) < start + count:
            await asyncio.sleep(0.05)


async def test_each_order_is_posted_once_across_a_restart(nats_url: str, tmp_path: Path, http_sink: HttpSink,
                                                          feed: Feed) -> None:
    values = {"source": unique("poll"), "feed": feed.url, "sink": http_sink.url}
    folder = write_config(tmp_path / "cfg", SOURCE % values, SENSOR % values)
    (tmp_path / "secrets" / "feed").mkdir(parents=True)
    (tmp_path / "secrets" / "feed" / "token").write_text("Bearer t0ken")
    feed.items = [{"id": 1}, {"id": 2}]
    async with Engine(folder, nats_url, secrets_dir=tmp_path / "secrets"):
        await http_sink.wait_for(2, timeout=15)
        feed.items.append({"id": 3})
        await http_sink.wait_for(3, timeout=15)
        await polled(feed, 2)
    feed.statuses.clear()
    async with Engine(folder, nats_url, secrets_dir=tmp_path / "secrets"):
        await polled(feed, 3)
        assert feed.statuses[0] == 304  # the ETag was kept on the bus
        feed.items.append({"id": 4})
        await http_sink.wait_for(4, timeout=15)
        await polled(feed, 3)
    assert sorted(r.json()["id"] for r in http_sink.requests) == ["1", "2", "3", "4"]
    assert {h["Authorization"] for h in feed.headers} == {"Bearer t0ken"}

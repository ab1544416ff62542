"""The calendar source in a running engine on a real nats-server, firing a sensor's HTTP trigger (a real sink):
an interval of 1 s fires about one event a second, and a restart either fires each missed tick once (catch-up)
or skips them (no catch-up), the last fired tick being kept in the bus's state store."""

from __future__ import annotations

import asyncio
import itertools
from datetime import datetime
from pathlib import Path

from tests.engine_harness import Engine, unique, write_config
from tests.fixtures_http import HttpSink

SOURCE = """\
apiVersion: argoproj.io/v1alpha1
kind: EventSource
metadata: {name: %(source)s}
spec:
  calendar:
    tick:
      interval: 1s
      metadata: {run: test}
%(persistence)s"""

CATCHUP = """\
      persistence:
        catchup: {enabled: true, maxDuration: 1m}
"""

SENSOR = """\
apiVersion: argoproj.io/v1alpha1
kind: Sensor
metadata: {name: %(source)s-sensor}
spec:
  dependencies: [{name: d, eventSourceName: %(source)s, eventName: tick}]
  triggers:
    - template:
        name: post
        http:
          url: %(url)s/tick
          method: POST
          payload:
            - {src: {dependencyName: d, dataKey: eventTime}, dest: tick}
            - {src: {dependencyName: d, dataKey: metadata.run}, dest: run}
"""


def config(folder: Path, sink: HttpSink, catchup: bool) -> Path:
    source = unique("cal")
    values = {"source": source, "url": sink.url, "persistence": CATCHUP if catchup else ""}
    return write_config(folder, SOURCE % values, SENSOR % values)


def ticks(sink: HttpSink) -> list[datetime]:
    """The fired ticks, from the event data's Go-formatted `eventTime` (`2026-12-06 13:00:01 +0000 UTC`)."""
    out = []
    for request in sink.requests:
        body = request.json()
        assert body["run"] == "test"
        out.append(datetime.strptime(body["tick"].rsplit(" ", 1)[0], "%Y-%m-%d %H:%M:%S %z"))
    return out


def gaps(times: list[datetime]) -> list[float]:
    return [(b - a).total_seconds() for a, b in itertools.pairwise(times)]


async def test_an_interval_of_one_second_fires_about_one_event_a_second(nats_url: str, tmp_path: Path,
                                                                          http_sink: HttpSink) -> None:
    async with Engine(config(tmp_path / "cfg", http_sink, catchup=False), nats_url):
        await http_sink.wait_for(1, timeout=10)
        first = len(http_sink.requests)
        await asyncio.sleep(4.0)
        fired = len(http_sink.requests) - first
    assert 3 <= fired <= 5, fired
    assert gaps(ticks(http_sink)) == [1.0] * (len(http_sink.requests) - 1)


async def restart_after_two_ticks(folder: Path, nats_url: str, sink: HttpSink) -> tuple[int, list[datetime]]:
    """Run until 2 ticks fired, stop, wait past two ticks, run again until 3 more requests; (ticks before, all)."""
    engine = Engine(folder, nats_url)
    async with engine:
        await sink.wait_for(2, timeout=10)
    before = len(sink.requests)
    await asyncio.sleep(2.5)
    async with Engine(folder, nats_url):
        await sink.wait_for(before + 3, timeout=10)
    return before, ticks(sink)


async def test_a_restart_with_catchup_fires_each_missed_tick_once(nats_url: str, tmp_path: Path,
                                                                    http_sink: HttpSink) -> None:
    before, times = await restart_after_two_ticks(config(tmp_path / "cfg", http_sink, catchup=True), nats_url,
                                                  http_sink)
    assert len(set(times)) == len(times), f"a tick fired twice: {times}"
    assert gaps(times) == [1.0] * (len(times) - 1), f"a tick was skipped: {times}"
    assert len(times) >= before + 3


async def test_a_restart_without_catchup_skips_the_missed_ticks(nats_url: str, tmp_path: Path,
                                                                  http_sink: HttpSink) -> None:
    before, times = await restart_after_two_ticks(config(tmp_path / "cfg", http_sink, catchup=False), nats_url,
                                                  http_sink)
    assert len(set(times)) == len(times), f"a tick fired twice: {times}"
    across = gaps(times)[before - 1]
    assert across >= 3.0, f"missed ticks were fired: {times}"
    assert gaps(times[before:]) == [1.0] * (len(times) - before - 1)

"""`sensorium run --workers 2` as a user runs it: a parent, two engine processes sharing the sensor's durable
JetStream consumer, webhooks on one port shared with SO_REUSEPORT, the embedded nats-server started once."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import sys
from collections import Counter
from pathlib import Path

import aiohttp
import pytest

from sensorium.buses.embedded import free_port
from tests.fixtures_http import HttpSink, Reply

pytestmark = pytest.mark.integration  # runs `sensorium run --workers 2` and its nats-server as child processes

CONFIG = """\
apiVersion: argoproj.io/v1alpha1
kind: EventSource
metadata: {{name: shop}}
spec:
  webhook:
    orders: {{port: "{port}", endpoint: /orders, method: POST}}
---
apiVersion: argoproj.io/v1alpha1
kind: Sensor
metadata: {{name: orders}}
spec:
  dependencies:
    - {{name: order, eventSourceName: shop, eventName: orders}}
  triggers:
    - template:
        name: notify
        http:
          url: {sink}/orders
          method: POST
          headers: {{X-Worker: "${{SENSORIUM_WORKER_ID}}"}}
          payload:
            - src: {{dependencyName: order, dataKey: body.n}}
              dest: n
"""


class Output:
    """The parent's and workers' standard error (they share it), read line by line as it comes."""

    def __init__(self, stream: asyncio.StreamReader) -> None:
        self.lines: list[str] = []
        self._changed = asyncio.Event()
        self._task = asyncio.create_task(self._read(stream))

    async def _read(self, stream: asyncio.StreamReader) -> None:
        while line := await stream.readline():
            self.lines.append(line.decode(errors="replace").rstrip())
            self._changed.set()

    async def wait(self, pattern: str, count: int = 1, timeout: float = 30.0) -> list[re.Match[str]]:
        async def enough() -> list[re.Match[str]]:
            while True:
                found = [m for line in self.lines if (m := re.search(pattern, line))]
                if len(found) >= count:
                    return found
                self._changed.clear()
                await self._changed.wait()

        try:
            return await asyncio.wait_for(enough(), timeout)
        except TimeoutError:
            raise AssertionError(f"no {count} x {pattern!r} in:\n" + "\n".join(self.lines[-40:])) from None


async def post_all(url: str, numbers: range) -> None:
    """POST each number, a new connection each (so the kernel spreads them), retrying until it is answered 200."""
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True, limit=20)) as session:
        async def one(n: int) -> None:
            for _ in range(100):
                with contextlib.suppress(aiohttp.ClientError):
                    async with session.post(url, json={"n": n}) as response:
                        if response.status == 200:
                            return
                await asyncio.sleep(0.1)
            raise AssertionError(f"event {n} never accepted")

        await asyncio.gather(*(one(n) for n in numbers))


async def sink_counts(sink: HttpSink, total: int, timeout: float = 60.0) -> Counter[int]:
    """Wait until every number 0..total-1 was fired at least once; returns how many times each was."""
    async def covered() -> Counter[int]:
        while True:
            counts = Counter(int(r.json()["n"]) for r in list(sink.requests))
            if len(counts) >= total:
                return counts
            await asyncio.sleep(0.1)

    return await asyncio.wait_for(covered(), timeout)


async def test_two_workers_share_the_work_and_a_killed_one_is_restarted(tmp_path: Path, http_sink: HttpSink) -> None:
    port = free_port()
    (tmp_path / "shop.yaml").write_text(CONFIG.format(port=port, sink=http_sink.url))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    parent = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "sensorium", "run", str(tmp_path / "shop.yaml"), "--workers", "2",
        "--webhook-host", "127.0.0.1", "--ack-wait", "3", "--no-bus-trace", "--max-in-flight", "64",
        "--data-dir", str(tmp_path / "data"), cwd=tmp_path, env=env,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
    assert parent.stderr is not None
    out = Output(parent.stderr)
    try:
        await out.wait(r"engine running: 1 sensor", count=2)
        url = f"http://127.0.0.1:{port}/orders"

        # A clean run: 300 events, each fired exactly once, by both workers.
        await post_all(url, range(300))
        counts = await sink_counts(http_sink, 300)
        await asyncio.sleep(1.0)  # a duplicate would arrive by now
        counts = Counter(int(r.json()["n"]) for r in http_sink.requests)
        assert set(counts) == set(range(300))
        assert [n for n, c in counts.items() if c > 1] == []
        by_worker = Counter(r.header("X-Worker") for r in http_sink.requests)
        print(f"clean run: 300 events, firings by worker {dict(by_worker)}")
        assert set(by_worker) == {"0", "1"}, by_worker
        assert min(by_worker.values()) >= 20, by_worker  # both share the work, not one taking a token few

        # kill -9 worker 1 while events flow: the parent restarts it and no event is lost.
        pid = int((await out.wait(r"worker 1 started \(pid (\d+)\)"))[0].group(1))
        http_sink.reset()
        http_sink.default = Reply(delay=0.05)  # firings in flight when the kill lands
        posting = asyncio.create_task(post_all(url, range(300, 500)))
        await asyncio.sleep(0.5)
        os.kill(pid, signal.SIGKILL)
        await out.wait(r"worker 1 \(pid \d+\) exited with status -9; restarting")
        await out.wait(r"worker 1 started \(pid (\d+)\)", count=2)
        await posting
        counts = await sink_counts(http_sink, 200)
        assert set(counts) == set(range(300, 500))
        duplicates = sum(c - 1 for c in counts.values())
        print(f"after kill -9: 200 events, {duplicates} fired twice (at-least-once)")

        # SIGHUP to the parent: every worker reloads its configuration (once the restarted one runs).
        await out.wait(r"engine running: 1 sensor", count=3)
        await asyncio.sleep(1.0)  # its SIGHUP handler follows that line; until then SIGHUP is ignored (documented)
        parent.send_signal(signal.SIGHUP)
        await out.wait(r"reloaded: 0 sensor\(s\) started or replaced", count=2)
    finally:
        if parent.returncode is None:
            parent.send_signal(signal.SIGTERM)
            code = await asyncio.wait_for(parent.wait(), 60)
            assert code == 0, "\n".join(out.lines[-30:])
    assert any("all 2 workers stopped" in line for line in out.lines)
    assert not (tmp_path / "data" / "bus.url").exists()  # the parent stopped the embedded bus

"""Benchmark: what sensors cost with the shared intake (issue 13 item 1), ratios measured in one run.

    python -m bench.intake [--sizes 1000,10000] [--idle 10] [--events 2000] [--rounds 2]

One harness process starts an embedded nats-server (JetStream, temporary directory) and an HTTP sink (aiohttp on
127.0.0.1, answers 200 at once, counts requests), then runs each engine as `python -m sensorium run DIR --bus URL`
in a child process, a fresh intake name (`--group`) each time:

1. **Distinct events**, N sensors (each `--sizes` value), sensor i on its own event `e<i>` with one HTTP trigger:
   start-up time (spawn to the log line `engine running`), RSS after start-up, idle CPU (the child's user+system
   time from /proc over `--idle` seconds, as a share of one core, from 10 s after that line: launching every
   sensor's task and the first collections of a large heap come after it), then 20 events on 20 sensors, each fired
   exactly once (counted at the sink).
2. **One shared event**, 1,000 sensors on the same event differing by an exact data-filter value
   (`customer: ^c-<i>$`), against 1 sensor (`^c-0$`), rounds alternating: `--events` events, each for one
   customer (uniform over the 1,000; all `c-0` for the single sensor), so each event fires exactly one trigger in
   both; CPU per event = the child's CPU over the burst (publish to the last sink request) / events. Every
   event must arrive exactly once.

Prints a table and the ratios (1,000 sensors / 1 sensor CPU per event; N distinct / 1,000 distinct).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from aiohttp import web

from bench.procs import cpu_seconds
from sensorium.buses.base import EventKey
from sensorium.buses.embedded import EmbeddedNats
from sensorium.buses.jetstream.bus import JetStreamBus
from sensorium.engine.core.cloudevent import CloudEvent, encode_structured, new_id, now_rfc3339


class Sink:
    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.last = 0.0
        self.port = 0
        self._runner: web.AppRunner | None = None

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.counts[json.loads(body)["id"]] += 1
        self.last = time.monotonic()
        return web.Response()

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


def sensor(name: str, source: str, event_name: str, sink: str, customer: str | None = None) -> str:
    filters = (f"\n      filters: {{data: [{{path: customer, type: string, value: [\"^{customer}$\"]}}]}}"
               if customer is not None else "")
    return f"""---
apiVersion: argoproj.io/v1alpha1
kind: Sensor
metadata: {{name: {name}}}
spec:
  dependencies:
    - name: d
      eventSourceName: {source}
      eventName: {event_name}{filters}
  triggers:
    - template:
        name: t
        http:
          url: {sink}
          payload: [{{src: {{dependencyName: d, contextKey: id}}, dest: id}}]
"""


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


class Child:
    def __init__(self, folder: Path, bus_url: str, group: str) -> None:
        self.args = [sys.executable, "-m", "sensorium", "run", str(folder), "--bus", bus_url, "--group", group,
                     "--no-bus-trace", "--log-level", "WARNING"]
        self.proc: asyncio.subprocess.Process | None = None
        self.startup = 0.0

    async def start(self) -> None:
        started = time.monotonic()
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.args[-1] = "INFO"  # the `engine running` line is INFO
        self.proc = await asyncio.create_subprocess_exec(*self.args, stdout=asyncio.subprocess.DEVNULL,
                                                         stderr=asyncio.subprocess.PIPE, env=env)
        assert self.proc.stderr is not None
        seen: list[bytes] = []
        while True:
            line = await asyncio.wait_for(self.proc.stderr.readline(), 600)
            seen.append(line)
            if not line:
                raise RuntimeError("engine exited before it was ready:\n" + b"".join(seen[-20:]).decode())
            if b"engine running" in line:
                break
        self.startup = time.monotonic() - started
        asyncio.get_running_loop().create_task(self._drain())

    async def _drain(self) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        while await self.proc.stderr.readline():
            pass

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    async def stop(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.terminate()
            try:
                await asyncio.wait_for(self.proc.wait(), 60)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()


def event(source: str, name: str, data: dict[str, object]) -> CloudEvent:
    return CloudEvent(id=new_id(), source=source, type="bench", subject=name, datacontenttype="application/json",
                      time=now_rfc3339(), data=json.dumps(data).encode())


async def wait_count(sink: Sink, ids: Sequence[str], timeout: float = 300.0) -> None:
    deadline = time.monotonic() + timeout
    while any(sink.counts[i] == 0 for i in ids):
        if time.monotonic() > deadline:
            missing = sum(1 for i in ids if sink.counts[i] == 0)
            raise RuntimeError(f"{missing} of {len(ids)} events never arrived")
        await asyncio.sleep(0.05)


async def distinct(n: int, tmp: Path, bus: JetStreamBus, url: str, sink: Sink, idle: float) -> dict[str, float]:
    source = f"d{uuid.uuid4().hex[:6]}"
    folder = tmp / f"distinct-{n}"
    folder.mkdir()
    sink_url = f"http://127.0.0.1:{sink.port}/d"
    for chunk in range(0, n, 200):  # at most 200 documents per file
        (folder / f"s{chunk}.yaml").write_text("".join(
            sensor(f"{source}-{i}", source, f"e{i}", sink_url) for i in range(chunk, min(n, chunk + 200))))
    child = Child(folder, url, f"bench-{source}")
    await child.start()
    try:
        await asyncio.sleep(10.0)  # let start-up work settle (launching every sensor's task, the first collections)
        rss = rss_mib(child.pid)
        before = cpu_seconds(child.pid)
        await asyncio.sleep(idle)
        idle_cpu = (cpu_seconds(child.pid) - before) / idle
        events = [event(source, f"e{i}", {"n": i}) for i in random.sample(range(n), 20)]
        await bus.publish_many([(EventKey(e.source, e.subject), e.id, encode_structured(e)) for e in events])
        await wait_count(sink, [e.id for e in events])
        await asyncio.sleep(1.0)
        twice = [e.id for e in events if sink.counts[e.id] != 1]
        if twice:
            raise RuntimeError(f"{len(twice)} events fired more than once")
    finally:
        await child.stop()
    return {"startup_s": child.startup, "rss_mib": rss, "idle_core_pct": 100 * idle_cpu}


async def shared(sensors: int, events: int, tmp: Path, bus: JetStreamBus, url: str, sink: Sink) -> float:
    source = f"s{uuid.uuid4().hex[:6]}"
    folder = tmp / f"shared-{source}"
    folder.mkdir()
    sink_url = f"http://127.0.0.1:{sink.port}/s"
    for chunk in range(0, sensors, 200):
        (folder / f"s{chunk}.yaml").write_text("".join(
            sensor(f"{source}-{i}", source, "e", sink_url, f"c-{i}") for i in range(chunk, min(sensors, chunk + 200))))
    child = Child(folder, url, f"bench-{source}")
    await child.start()
    try:
        warm = [event(source, "e", {"customer": f"c-{random.randrange(sensors)}"}) for _ in range(100)]
        await bus.publish_many([(EventKey(e.source, e.subject), e.id, encode_structured(e)) for e in warm])
        await wait_count(sink, [e.id for e in warm])
        load = [event(source, "e", {"customer": f"c-{random.randrange(sensors)}"}) for _ in range(events)]
        before, started = cpu_seconds(child.pid), time.monotonic()
        for chunk in range(0, events, 500):
            await bus.publish_many([(EventKey(e.source, e.subject), e.id, encode_structured(e))
                                    for e in load[chunk:chunk + 500]])
        await wait_count(sink, [e.id for e in load])
        used = cpu_seconds(child.pid) - before
        elapsed = sink.last - started
        await asyncio.sleep(1.0)
        twice = [e.id for e in load if sink.counts[e.id] != 1]
        if twice:
            raise RuntimeError(f"{len(twice)} events fired more than once")
        print(f"  shared {sensors:>5} sensors: {events} events in {elapsed:.2f}s, "
              f"{1e6 * used / events:.0f} us CPU per event", file=sys.stderr, flush=True)
        return used / events
    finally:
        await child.stop()


async def main(args: argparse.Namespace) -> None:
    sizes = [int(s) for s in args.sizes.split(",") if s]
    with tempfile.TemporaryDirectory(prefix="sensorium-bench-intake-") as name:
        tmp = Path(name)
        server = EmbeddedNats(tmp / "nats")
        await server.start()
        sink = Sink()
        await sink.start()
        bus = JetStreamBus(server.url)
        try:
            await bus.start()
            print(f"load average before: {os.getloadavg()}", file=sys.stderr)
            one: list[float] = []
            many: list[float] = []
            for round_no in range(args.rounds):
                order = [(1, one), (1000, many)] if round_no % 2 == 0 else [(1000, many), (1, one)]
                for count, out in order:
                    out.append(await shared(count, args.events, tmp, bus, server.url, sink))
            rows = {}
            for n in sizes:
                rows[n] = await distinct(n, tmp, bus, server.url, sink, args.idle)
                print(f"  distinct {n:>5} sensors: {rows[n]}", file=sys.stderr, flush=True)
        finally:
            await bus.close()
            await sink.stop()
            with contextlib.suppress(Exception):
                await server.stop()
    print(f"\nload average after: {os.getloadavg()}")
    print("\nsensors on distinct events (JetStream, one engine process):")
    print(f"{'sensors':>8} {'start-up s':>11} {'RSS MiB':>8} {'idle % core':>12}")
    for n, row in rows.items():
        print(f"{n:>8} {row['startup_s']:>11.2f} {row['rss_mib']:>8.0f} {row['idle_core_pct']:>12.2f}")
    base = sizes[0] if sizes else None
    for n in sizes[1:]:
        assert base is not None
        idle_base = rows[base]["idle_core_pct"]
        idle_ratio = f"{rows[n]['idle_core_pct'] / idle_base:.2f}x" if idle_base > 0 else "n/a (0 at the base)"
        print(f"ratio {n}/{base}: start-up {rows[n]['startup_s'] / rows[base]['startup_s']:.2f}x, "
              f"idle CPU {idle_ratio}")
    print("\none event, sensors differing by an exact data-filter value (CPU per event, each round):")
    print(f"     1 sensor : {', '.join(f'{1e6 * v:.0f} us' for v in one)}")
    print(f"  1000 sensors: {', '.join(f'{1e6 * v:.0f} us' for v in many)}")
    ratios = [m / o for m, o in zip(many, one, strict=True)]
    print(f"ratio 1000/1 per round: {', '.join(f'{r:.2f}x' for r in ratios)}; median {statistics.median(ratios):.2f}x")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.intake", description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="1000,10000", help="sensor counts on distinct events")
    parser.add_argument("--idle", type=float, default=10.0, help="seconds of idle CPU measured")
    parser.add_argument("--events", type=int, default=2000, help="events per shared-event round")
    parser.add_argument("--rounds", type=int, default=2, help="rounds of 1 vs 1,000 sensors")
    return parser.parse_args(argv)


if __name__ == "__main__":
    asyncio.run(main(parse_args()))

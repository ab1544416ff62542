"""Benchmark: the engine and an HTTP sink in one process on the memory bus, for steady instruction counts.

    python -m bench.inprocess [--events 2000] [--bursts 3]

`engine.app.run_engine` with the bench's sensor (bench.engine.sensor_yaml: a context and a data filter, an HTTP
trigger with three payload parameters) on an in-process `MemoryBus`, POSTing to an aiohttp sink in the same
loop. One warm-up burst of --events events, then --bursts bursts; prints the process CPU per event of each
(sink and publisher included). Times on a shared machine scatter; instruction counts do not. Per event, from
two runs under callgrind whose difference is 2,000 events (the warm-up burst is as large as the measured one):

    valgrind --tool=callgrind --callgrind-out-file=a.out python -m bench.inprocess --events 200 --bursts 1
    valgrind --tool=callgrind --callgrind-out-file=b.out python -m bench.inprocess --events 1200 --bursts 1
    # (totals of b.out - totals of a.out) / 2000  (`grep ^totals: *.out`; use the interpreter itself, not a
    # pyenv shim, which valgrind would count instead)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

from aiohttp import web

from bench.engine import EVENT_NAME, WorkerSpec, encode_event, sensor_yaml
from sensorium.buses.base import Bus, EventKey
from sensorium.buses.memory import MemoryBroker, MemoryBus
from sensorium.engine.app import EngineOptions, run_engine
from sensorium.engine.assemble import load_checked
from sensorium.engine.registry import REGISTRY, BusKind
from sensorium.engine.runner import RunnerSettings
from sensorium.engine.trace.records import Tracer

SOURCE = "src"


class Counter:
    """The sink: counts POSTs, sets `done` at `want`."""

    def __init__(self) -> None:
        self.got, self.want, self.done = 0, 0, asyncio.Event()

    def expect(self, n: int) -> None:
        self.got, self.want = 0, n
        self.done.clear()

    async def handle(self, request: web.Request) -> web.Response:
        await request.read()
        self.got += 1
        if self.got >= self.want:
            self.done.set()
        return web.Response()


async def burst(bus: Bus, sink: Counter, n: int, tag: str) -> float:
    """CPU seconds per event of the process for one burst of `n` events, published 1,000 at a time."""
    key = EventKey(SOURCE, EVENT_NAME)
    items = [(key, f"{tag}-{i}", encode_event(SOURCE, f"{tag}-{i}", i)) for i in range(n)]
    sink.expect(n)
    start = time.process_time()
    for i in range(0, n, 1000):
        await bus.publish_many(items[i:i + 1000])
    await asyncio.wait_for(sink.done.wait(), 300)
    return (time.process_time() - start) / n


@contextlib.asynccontextmanager
async def sink_server() -> AsyncIterator[tuple[Counter, str]]:
    """An aiohttp sink in this loop counting POSTs to /engine; yields it and its base URL. Stops it."""
    sink = Counter()
    app = web.Application()
    app.router.add_post("/engine", sink.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield sink, f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


@contextlib.asynccontextmanager
async def running(tracer: Tracer | None = None) -> AsyncIterator[tuple[Bus, Counter]]:
    """The engine with the bench's sensor on a memory bus, POSTing to an aiohttp sink in this loop, started and
    ready (with `tracer`: otherwise EngineOptions' own); yields the bus to publish on and the sink. Stops both."""
    async with sink_server() as (sink, sink_url):
        async with _engine(tracer, sink_url) as bus:
            yield bus, sink


@contextlib.asynccontextmanager
async def _engine(tracer: Tracer | None, sink_url: str) -> AsyncIterator[Bus]:
    broker = MemoryBroker()
    bus = MemoryBus(broker)
    await bus.start()
    registry = REGISTRY.with_bus(BusKind("memory", None, ("memory",), lambda url: MemoryBus(broker), "in-process"))
    spec = WorkerSpec(kind="engine", bus_url="memory://", sink_url=sink_url, source=SOURCE,
                      in_flight=50, batch=64, fetch_timeout=1.0)
    with tempfile.TemporaryDirectory(prefix="sensorium-bench-") as tmp:
        (Path(tmp) / "sensor.yaml").write_text(sensor_yaml(spec))
        checked = load_checked([Path(tmp) / "sensor.yaml"], registry=registry)
        stop, ready = asyncio.Event(), asyncio.Event()
        options = EngineOptions(bus_url="memory://", data_dir=Path(tmp) / "data", handle_signals=False,
                                runner=RunnerSettings(batch=spec.batch, fetch_timeout=spec.fetch_timeout,
                                                      max_in_flight=spec.in_flight))
        if tracer is not None:
            options = dataclasses.replace(options, tracer=tracer)
        engine = asyncio.create_task(run_engine(checked, options, stop, ready))
        await asyncio.wait_for(ready.wait(), 60)
        try:
            yield bus
        finally:
            stop.set()
            await engine


async def main(events: int, bursts: int, tracer: Tracer | None = None) -> list[float]:
    """CPU seconds per event of each of `bursts` bursts after a warm-up one (`running` with `tracer`)."""
    out: list[float] = []
    async with running(tracer) as (bus, sink):
        for n in range(bursts + 1):
            cpu = await burst(bus, sink, events, f"b{n}")
            if n:  # the first is the warm-up
                out.append(cpu)
    return out


def cli(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=2000, help="events per burst (default 2000)")
    parser.add_argument("--bursts", type=int, default=3, help="measured bursts after the warm-up (default 3)")
    args = parser.parse_args(argv)
    if args.events < 1 or args.bursts < 1:
        parser.error("--events and --bursts must be positive")
    cpu = asyncio.run(main(args.events, args.bursts))
    print("CPU per event (engine + sink + publisher):", ", ".join(f"{c * 1e6:.0f} us" for c in cpu))


if __name__ == "__main__":
    cli()

"""Benchmark: what the number of sensors costs, from the outside of `sensorium run`.

    python -m bench.scaling [--sensors 1,10,100,1000] [--shapes distinct,shared] [--events 1000]
                            [--idle 10] [--ready-timeout 300]

For each shape and each count N, one `sensorium run DIR --bus URL --no-bus-trace --ops-port P` (a child
process, as a user runs it, so it measures whatever runner the checkout has) loads N sensors:

  distinct  sensor i depends on `scale.e<i>`: N event names, one sensor each;
  shared    every sensor depends on `scale.shared` with an exact data filter `body.customer` = `cust-<i>` (the
            "route by customer" case): one event name, N sensors that differ by one value.

Each sensor has one HTTP trigger to the harness's sink. The harness measures:

  start-up  seconds from the process start to /readyz answering 200;
  RSS       of the engine process once ready (MiB);
  idle CPU  per cent of one core over --idle seconds with no events;
  CPU/event engine CPU (user+system) per event over --events events, each meant for exactly one sensor
            (distinct: event j goes to e<j mod N>; shared: customer cust-<j mod N>), published at once;
  bus CPU   the nats-server's CPU per event over the same window;
  lost/dup  events that reached the sink never or twice (each event fires exactly one sensor once).

The last lines print each figure against N=1 of the same shape, measured in the same run. A count that cannot
start (e.g. a bus that refuses that many consumers) is reported as FAILED with the reason, and the run goes on.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.engine import Sink, _load
from bench.procs import bench_event, cpu_seconds, publish, start_engine
from sensorium.buses.base import EventKey

SOURCE = "scale"


PER_FILE = 100  # sensorium reads at most 200 documents per file


def sensors_yaml(shape: str, count: int, sink_url: str, first: int = 0) -> str:
    """Sensor documents `first` to `count - 1` of one shape (see the module)."""
    docs = []
    for i in range(first, count):
        if shape == "distinct":
            dependency = f"""    - name: d
      eventSourceName: {SOURCE}
      eventName: e{i}"""
        else:
            dependency = f"""    - name: d
      eventSourceName: {SOURCE}
      eventName: shared
      filters:
        data:
          - path: body.customer
            type: string
            value: ["cust-{i:05d}"]"""
        docs.append(f"""apiVersion: argoproj.io/v1alpha1
kind: Sensor
metadata:
  name: scale-{shape}-{i}
spec:
  dependencies:
{dependency}
  triggers:
    - template:
        name: sink
        http:
          url: {sink_url}/scale
          method: POST
          payload:
            - src: {{dependencyName: d, contextKey: id}}
              dest: id
            - src: {{dependencyName: d, dataKey: body.ts, useRawData: true}}
              dest: ts
""")
    return "---\n".join(docs)


def load(shape: str, count: int, events: int) -> list[tuple[EventKey, str, bytes]]:
    items = []
    for j in range(events):
        event_id = f"{shape}-{count}-{j:08d}-{os.urandom(4).hex()}"
        body: dict[str, object]
        if shape == "distinct":
            name, body = f"e{j % count}", {"n": j}
        else:
            name, body = "shared", {"customer": f"cust-{j % count:05d}", "n": j}
        items.append((EventKey(SOURCE, name), event_id, bench_event(SOURCE, name, event_id, body)))
    return items


@dataclass
class Result:
    shape: str
    count: int
    startup: float | None = None
    rss: float | None = None
    idle: float | None = None
    cpu_us: float | None = None
    bus_us: float | None = None
    rate: float | None = None
    lost: int = 0
    dup: int = 0
    failed: str = ""


async def measure(shape: str, count: int, args: argparse.Namespace, bus_url: str, bus_pid: int, sink: Sink,
                  bus: object, tmp: Path) -> Result:
    result = Result(shape, count)
    folder = tmp / f"{shape}-{count}"
    (folder / "sensors").mkdir(parents=True)
    for first in range(0, count, PER_FILE):
        (folder / "sensors" / f"{first:05d}.yaml").write_text(
            sensors_yaml(shape, min(count, first + PER_FILE), sink.url, first))
    engine = start_engine([folder / "sensors"], bus_url, folder / "data", folder / "engine.log")
    try:
        try:
            result.startup = await engine.ready(args.ready_timeout)
        except (TimeoutError, RuntimeError) as exc:
            result.failed = str(exc).splitlines()[0][:300]
            return result
        await asyncio.sleep(1.0)  # let start-up work (consumer creation, imports) settle
        result.rss = engine.rss()
        before = sum(engine.cpu().values())
        await asyncio.sleep(args.idle)
        result.idle = 100 * (sum(engine.cpu().values()) - before) / args.idle
        items = load(shape, count, args.events)
        sink.reset()
        sink.expect(i for _, i, _ in items)
        cpu0, bus0, t0 = sum(engine.cpu().values()), cpu_seconds(bus_pid), time.monotonic()
        await publish(bus, items)  # type: ignore[arg-type]
        done = await sink.wait(args.timeout, 30.0, lambda: engine.process.poll() is None)
        elapsed = time.monotonic() - t0
        await asyncio.sleep(0.5)  # a duplicate arriving late still counts
        cpu1, bus1 = sum(engine.cpu().values()), cpu_seconds(bus_pid)
        arrived = len(sink.arrivals)
        result.lost, result.dup = len(items) - arrived, sink.duplicates
        if arrived:
            result.cpu_us = (cpu1 - cpu0) / arrived * 1e6
            result.bus_us = (bus1 - bus0) / arrived * 1e6
            result.rate = arrived / elapsed
        if not done:
            result.failed = f"{arrived} of {len(items)} events arrived"
        return result
    finally:
        await asyncio.to_thread(engine.stop)


def _f(value: float | None, digits: int, width: int) -> str:
    return f"{value:{width}.{digits}f}" if value is not None else f"{'-':>{width}s}"


def report(results: list[Result], args: argparse.Namespace) -> None:
    print(f"\nsensorium bench.scaling: {args.events} events per count, idle window {args.idle:g}s, "
          f"CPUs={os.cpu_count()}, load average {_load()}")
    print(f"{'shape':9s}{'sensors':>8s} |{'start s':>8s}{'RSS MiB':>9s}{'idle %':>8s} |{'CPU us/ev':>10s}"
          f"{'bus us/ev':>10s}{'ev/s':>7s} |{'lost/dup':>9s}")
    for r in results:
        tail = f"  FAILED: {r.failed}" if r.failed else ""
        print(f"{r.shape:9s}{r.count:8d} |{_f(r.startup, 1, 8)}{_f(r.rss, 0, 9)}{_f(r.idle, 2, 8)} |"
              f"{_f(r.cpu_us, 0, 10)}{_f(r.bus_us, 0, 10)}{_f(r.rate, 0, 7)} |{f'{r.lost}/{r.dup}':>9s}{tail}")
    for shape in args.shapes:
        rows = [r for r in results if r.shape == shape]
        base = next((r for r in rows if r.count == min(args.sensors) and not r.failed), None)
        if base is None:
            continue
        for r in rows:
            if r is base or r.cpu_us is None or not base.cpu_us:
                continue
            print(f"{shape} {r.count} / {base.count} sensor(s): CPU per event x{r.cpu_us / base.cpu_us:.2f}, "
                  f"start-up x{(r.startup or 0) / max(base.startup or 0, 1e-9):.1f}, "
                  f"RSS +{(r.rss or 0) - (base.rss or 0):.0f} MiB, idle {r.idle:.2f}% of a core")


async def main_async(args: argparse.Namespace) -> None:
    from sensorium.buses.embedded import EmbeddedNats
    from sensorium.buses.jetstream.bus import JetStreamBus

    with tempfile.TemporaryDirectory(prefix="sensorium-bench-scaling-") as name:
        tmp = Path(name)
        nats = EmbeddedNats(tmp / "nats")
        await nats.start()
        sink = Sink()
        await sink.start()
        bus = JetStreamBus(nats.url)
        results: list[Result] = []
        try:
            await bus.start()
            bus_pid = nats._proc.pid if nats._proc is not None else 0  # the server process, for its CPU
            for shape in args.shapes:
                for count in args.sensors:
                    print(f"  {shape} x{count} ...", file=sys.stderr, flush=True)
                    result = await measure(shape, count, args, nats.url, bus_pid, sink, bus, tmp)
                    results.append(result)
                    print(f"  {shape} x{count}: {result}", file=sys.stderr, flush=True)
                    with contextlib.suppress(Exception):  # next count starts on an empty stream
                        await bus.js.purge_stream("default")
                        for info in await bus.js.consumers_info("default"):
                            await bus.js.delete_consumer("default", info.name)
        finally:
            await bus.close()
            await sink.stop()
            await nats.stop()
        report(results, args)


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.scaling", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sensors", type=_ints, default=[1, 10, 100, 1000],
                        help="sensor counts (default 1,10,100,1000; add 10000 for the issue's largest)")
    parser.add_argument("--shapes", type=lambda s: [x for x in s.split(",") if x], default=["distinct", "shared"])
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--idle", type=float, default=10.0, help="idle window, s")
    parser.add_argument("--ready-timeout", type=float, default=300.0)
    parser.add_argument("--timeout", type=float, default=300.0, help="max wait for one count's events, s")
    args = parser.parse_args(argv)
    if set(args.shapes) - {"distinct", "shared"}:
        parser.error("--shapes: distinct and/or shared")
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()

"""Benchmark: one engine process against two (`sensorium run --workers 2`), on JetStream and on Kafka.

    python -m bench.workers [--buses jetstream,kafka] [--events 5000] [--rounds 2] [--warmup 300]

One sensor with six dependencies (`work.<name>` for six event names, `d0 || d1 || ... || d5`) and an HTTP
trigger to the harness's sink; events spread round-robin over the six names. On Kafka a record's key is
`<eventSourceName>.<eventName>` (Argo's), so the names are picked so that the topic's 3 partitions get two names
each (sarama's hash): two workers then share the work through the consumer group. On JetStream the workers
share the sensor's durable pull consumer.

Per bus, rounds alternate one process and two (`--workers 2`, whatever the checkout's `sensorium run` does
with it), each a new `sensorium run` started as a user starts it. Each round: wait for /readyz of every
worker, a warm-up of --warmup events (all must arrive: the consumer group has settled), then a burst of --events
events published at once; the harness reports events/s (first publish to last arrival at the sink), the CPU
seconds per event of all engine processes together (parent and workers, user+system, /proc), the cores each
process used over the burst (its CPU seconds / the burst's wall time), and lost/duplicated events (nothing may
be lost; duplicates are allowed by at-least-once but counted). The table prints medians over rounds and the
two-process figures against one process's in the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bench.engine import Sink, _load
from bench.procs import bench_event, command, publish, start_engine
from sensorium.buses.base import Bus, EventKey

SOURCE = "work"
PARTITIONS = 3  # what Sensorium creates a Kafka topic with


def event_names(count: int = 6) -> list[str]:
    """`count` event names whose Kafka keys hash evenly over PARTITIONS partitions (sarama's FNV-1a)."""
    from sensorium.buses.kafka.connection import sarama_hash

    per = count // PARTITIONS
    chosen: dict[int, list[str]] = {p: [] for p in range(PARTITIONS)}
    n = 0
    while any(len(v) < per for v in chosen.values()):
        name = f"e{n}"
        part = sarama_hash(f"{SOURCE}.{name}".encode(), PARTITIONS)
        if len(chosen[part]) < per:
            chosen[part].append(name)
        n += 1
    return [name for names in chosen.values() for name in names]


def sensor_yaml(names: Sequence[str], sink_url: str) -> str:
    deps = "\n".join(f"""    - name: d{i}
      eventSourceName: {SOURCE}
      eventName: {name}""" for i, name in enumerate(names))
    condition = " || ".join(f"d{i}" for i in range(len(names)))
    params = "\n".join(f"""            - src: {{dependencyName: d{i}, contextKey: id}}
              dest: id
            - src: {{dependencyName: d{i}, dataKey: body.ts, useRawData: true}}
              dest: ts""" for i in range(len(names)))
    return f"""apiVersion: argoproj.io/v1alpha1
kind: Sensor
metadata:
  name: workers-bench
spec:
  dependencies:
{deps}
  triggers:
    - template:
        name: sink
        conditions: "{condition}"
        http:
          url: {sink_url}/workers
          method: POST
          payload:
{params}
"""


@dataclass
class Round:
    bus: str
    workers: int
    rate: float = 0.0
    cpu_us: float = 0.0
    cores: dict[str, float] = field(default_factory=dict)
    lost: int = 0
    dup: int = 0
    failed: str = ""


def _items(names: Sequence[str], count: int, tag: str) -> list[tuple[EventKey, str, bytes]]:
    items = []
    for j in range(count):
        name = names[j % len(names)]
        event_id = f"{tag}-{j:08d}-{os.urandom(4).hex()}"
        items.append((EventKey(SOURCE, name), event_id, bench_event(SOURCE, name, event_id, {"n": j})))
    return items


async def one_round(bus_name: str, bus_url: str, bus: Bus, workers: int, number: int, args: argparse.Namespace,
                    sink: Sink, names: Sequence[str], tmp: Path) -> Round:
    result = Round(bus_name, workers)
    folder = tmp / f"{bus_name}-{workers}-{number}"
    folder.mkdir()
    (folder / "sensor.yaml").write_text(sensor_yaml(names, sink.url))
    engine = start_engine([folder / "sensor.yaml"], bus_url, folder / "data", folder / "engine.log", workers)
    alive = lambda: engine.process.poll() is None  # noqa: E731
    try:
        try:
            await engine.ready(args.ready_timeout)
            warm = _items(names, args.warmup, f"warm{number}")
            sink.reset()
            sink.expect(i for _, i, _ in warm)
            await publish(bus, warm)
            if not await sink.wait(args.timeout, 60.0, alive):
                raise RuntimeError(f"warm-up: {len(sink.arrivals)} of {len(warm)} events arrived")
        except (TimeoutError, RuntimeError) as exc:
            result.failed = str(exc).splitlines()[0][:300]
            return result
        await asyncio.sleep(0.5)
        items = _items(names, args.events, f"burst{number}")
        sink.reset()
        sink.expect(i for _, i, _ in items)
        pids = engine.pids()
        before = engine.cpu()
        started = time.time_ns()
        await publish(bus, items)
        done = await sink.wait(args.timeout, 30.0, alive)
        after = engine.cpu()  # (the engines are idle once the last event arrived)
        last = max((arrived for _, arrived in sink.arrivals.values()), default=time.time_ns())
        elapsed = max((last - started) / 1e9, 1e-9)
        await asyncio.sleep(0.5)
        arrived = len(sink.arrivals)
        result.lost, result.dup = len(items) - arrived, sink.duplicates
        spent = {pid: after.get(pid, 0.0) - before.get(pid, 0.0) for pid in pids}
        if arrived:
            result.rate = arrived / elapsed
            result.cpu_us = sum(spent.values()) / arrived * 1e6
        result.cores = {_role(pid, engine.process.pid): cpu / elapsed for pid, cpu in spent.items()}
        if not done:
            result.failed = f"{arrived} of {len(items)} events arrived"
        return result
    finally:
        await asyncio.to_thread(engine.stop)


def _role(pid: int, parent: int) -> str:
    if pid == parent:
        return "parent"
    text = command(pid)
    return f"worker {text.split('--worker-id', 1)[1].split()[0]}" if "--worker-id" in text else f"pid {pid}"


def report(rounds: list[Round], args: argparse.Namespace) -> None:
    print(f"\nsensorium bench.workers: {args.events}-event bursts, {args.rounds} round(s) per variant (medians), "
          f"CPUs={os.cpu_count()}, load average {_load()}")
    print(f"{'bus':10s}{'processes':>10s} |{'ev/s':>7s}{'CPU us/ev':>11s} |{'lost/dup':>9s} | cores used (per round)")
    medians: dict[tuple[str, int], tuple[float, float]] = {}
    for bus in args.buses:
        for workers in (1, 2):
            mine = [r for r in rounds if r.bus == bus and r.workers == workers and not r.failed]
            failed = [r for r in rounds if r.bus == bus and r.workers == workers and r.failed]
            if not mine:
                reason = failed[0].failed if failed else "not run"
                print(f"{bus:10s}{workers:10d} | FAILED: {reason}")
                continue
            rate = statistics.median(r.rate for r in mine)
            cpu = statistics.median(r.cpu_us for r in mine)
            medians[(bus, workers)] = (rate, cpu)
            cores = "; ".join(", ".join(f"{k} {v:.2f}" for k, v in sorted(r.cores.items())) for r in mine)
            lost, dup = sum(r.lost for r in mine), sum(r.dup for r in mine)
            print(f"{bus:10s}{workers:10d} |{rate:7.0f}{cpu:11.0f} |{f'{lost}/{dup}':>9s} | {cores}"
                  + (f"  ({len(failed)} round(s) FAILED: {failed[0].failed})" if failed else ""))
        one, two = medians.get((bus, 1)), medians.get((bus, 2))
        if one and two:
            print(f"{bus}: two processes / one: events/s x{two[0] / one[0]:.2f}, CPU per event (all engine "
                  f"processes) x{two[1] / one[1]:.2f}")


async def run_bus(bus_name: str, args: argparse.Namespace, sink: Sink, tmp: Path, rounds: list[Round]) -> None:
    from sensorium.engine.busconfig import from_url

    names = event_names()
    async with contextlib.AsyncExitStack() as stack:
        if bus_name == "jetstream":
            from sensorium.buses.embedded import EmbeddedNats

            nats = EmbeddedNats(tmp / "nats")
            await nats.start()
            stack.push_async_callback(nats.stop)
            url = nats.url
        else:
            from sensorium.buses.kafka_broker import KafkaBroker, free_port

            broker = KafkaBroker(free_port(), tmp / "kafka")
            await asyncio.to_thread(broker.start)
            stack.callback(broker.stop)
            url = f"kafka://{broker.bootstrap}"
        bus = from_url(url)
        await bus.start()
        stack.push_async_callback(bus.close)
        for number in range(1, args.rounds + 1):
            order = (1, 2) if number % 2 else (2, 1)
            for workers in order:
                print(f"  {bus_name} round {number}, {workers} process(es) ...", file=sys.stderr, flush=True)
                result = await one_round(bus_name, url, bus, workers, number, args, sink, names, tmp)
                rounds.append(result)
                print(f"    {result}", file=sys.stderr, flush=True)


async def main_async(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="sensorium-bench-workers-") as name:
        sink = Sink()
        await sink.start()
        rounds: list[Round] = []
        try:
            for bus_name in args.buses:
                await run_bus(bus_name, args, sink, Path(name), rounds)
        finally:
            await sink.stop()
        report(rounds, args)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.workers", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--buses", type=lambda s: [x for x in s.split(",") if x], default=["jetstream", "kafka"])
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--warmup", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--ready-timeout", type=float, default=120.0)
    parser.add_argument("--timeout", type=float, default=300.0)
    args = parser.parse_args(argv)
    if set(args.buses) - {"jetstream", "kafka"}:
        parser.error("--buses: jetstream and/or kafka")
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()

"""Benchmark: one engine process against two (`sensorium run --workers 2`), on JetStream and on Kafka.

    python -m bench.workers [--buses jetstream,kafka] [--events 5000] [--rounds 4] [--bursts 3] [--warmup 300]
    python -m bench.workers --instructions --rounds 2 --bursts 2 --events 1000 --warmup 100

One sensor with twelve dependencies (`work.<name>` for twelve event names, `d0 || d1 || ... || d11`) and an HTTP
trigger to the sink; events spread round-robin over the names. On Kafka a record's key is
`<eventSourceName>.<eventName>` (Argo's), so the names are picked one per partition of the topic Sensorium
creates (12, sarama's hash): two workers then get six partitions and half the events each through the consumer
group. On JetStream the workers share the intake's durable pull consumer.

Per bus, --rounds times: one `sensorium run` (one process) and one `sensorium run --workers 2`, started as a user
starts them, side by side on the bus, each with its own event source (`one`, `two`) and intake group. Wait for
/readyz of every worker, a warm-up of --warmup events each (all must arrive: the consumer groups have settled),
then --bursts pairs of bursts: one to each deployment, in an order that alternates, the other deployment stopped
meanwhile. Paired bursts run seconds apart, so their ratio sees nearly the same machine (its speed drifts by
+-20% over minutes on this shared 2-core machine); the table prints the median of the per-pair ratios besides
the ratio of the medians. A burst's --events
events are published while every engine process is stopped (SIGSTOP), and the window is measured from SIGCONT
to the last arrival: the engines drain a backlog while the bus and the sink run beside them on the same cores,
and the harness's publishing (0.4 of a core when it ran inside the window) is not in it. Per burst: events/s
over the window, the CPU seconds per event of all engine processes together (parent and workers, user+system,
/proc), the cores each process used over the window (its CPU seconds / the window, medians: the engines, `bus` =
nats-server or the Kafka broker's JVM, `sink`, `harness`), and lost/duplicated events (nothing may be lost;
duplicates are allowed by at-least-once but counted), and the context switches of the engine processes'
threads per event (voluntary: the loop waiting for I/O; involuntary: preempted, which rises when no core is
idle), the part of their CPU spent in the kernel, and how often the scheduler moved a process to the other CPU.
The sink is `bench.fastsink`, a process of its own (~0.1 of a core at 6,000 requests/s, against ~100 us
per request for an aiohttp server). The table prints medians over all bursts of a variant and the two-process
figures against one process's in the same run.

`--instructions` runs the engines under callgrind (`sensorium run --workers 2` starts its workers under it too)
and prints instructions per event of all engine processes, one process against two, instead of times: whether
scaling out adds work per event, without the noise of the shared cores (bench/README.md).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bench import callgrind
from bench.engine import _load
from bench.fastsink import ProcessSink
from bench.procs import (
    Engine,
    bench_event,
    command,
    cpu_seconds,
    cpu_split,
    migrations,
    publish,
    start_engine,
    switches,
)
from sensorium.buses.base import Bus, EventKey
from sensorium.buses.kafka.bus import DEFAULT_PARTITIONS


def event_names(source: str, count: int = DEFAULT_PARTITIONS) -> list[str]:
    """`count` event names whose Kafka keys hash evenly over the partitions of a topic Sensorium creates
    (sarama's FNV-1a)."""
    from sensorium.engine.goport.sarama import sarama_hash

    per = count // DEFAULT_PARTITIONS
    chosen: dict[int, list[str]] = {p: [] for p in range(DEFAULT_PARTITIONS)}
    n = 0
    while any(len(v) < per for v in chosen.values()):
        name = f"e{n}"
        part = sarama_hash(f"{source}.{name}".encode(), DEFAULT_PARTITIONS)
        if len(chosen[part]) < per:
            chosen[part].append(name)
        n += 1
    return [name for names in chosen.values() for name in names]


def sensor_yaml(source: str, names: Sequence[str], sink_url: str) -> str:
    deps = "\n".join(f"""    - name: d{i}
      eventSourceName: {source}
      eventName: {name}""" for i, name in enumerate(names))
    condition = " || ".join(f"d{i}" for i in range(len(names)))
    params = "\n".join(f"""            - src: {{dependencyName: d{i}, contextKey: id}}
              dest: id
            - src: {{dependencyName: d{i}, dataKey: body.ts, useRawData: true}}
              dest: ts""" for i in range(len(names)))
    return f"""apiVersion: argoproj.io/v1alpha1
kind: Sensor
metadata:
  name: workers-bench-{source}
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
    switches: tuple[float, float] = (0.0, 0.0)  # engine processes' (voluntary, involuntary) switches per event
    moves: float = 0.0  # engine processes' moves from one CPU to another per event
    others_moves: dict[str, float] = field(default_factory=dict)  # the same for the bus, the sink, the harness
    others_switches: dict[str, tuple[float, float]] = field(default_factory=dict)  # their switches per event
    system_us: float = 0.0  # the part of cpu_us spent in the kernel
    instructions: float = 0.0  # --instructions: of all engine processes per event (the rest is then unmeasured)
    pair: tuple[int, int] = (0, 0)  # (round, burst): the bursts of one pair ran seconds apart


def _items(source: str, names: Sequence[str], count: int, tag: str) -> list[tuple[EventKey, str, bytes]]:
    items = []
    for j in range(count):
        name = names[j % len(names)]
        event_id = f"{tag}-{j:08d}-{os.urandom(4).hex()}"
        items.append((EventKey(source, name), event_id, bench_event(source, name, event_id, {"n": j})))
    return items


@dataclass
class Deployment:
    """One `sensorium run` (with `workers` processes) on its own event source and intake group."""

    workers: int
    source: str
    names: list[str]
    engine: Engine
    folder: Path

    def alive(self) -> bool:
        return self.engine.process.poll() is None

    def signal(self, number: int) -> None:
        for pid in self.engine.pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, number)


async def one_round(bus_name: str, bus_url: str, bus: Bus, number: int, args: argparse.Namespace,
                    sink: ProcessSink, tmp: Path, bus_pid: int) -> list[Round]:
    """Both deployments started side by side, warmed up, then --bursts pairs of bursts (a Round each)."""
    deployments: list[Deployment] = []
    try:
        for workers, source in ((1, "one"), (2, "two")):
            folder = tmp / f"{bus_name}-{number}-{source}"
            folder.mkdir()
            names = event_names(source)
            (folder / "sensor.yaml").write_text(sensor_yaml(source, names, sink.url))
            prefix = callgrind.command(folder / "callgrind.%p", children=True) if args.instructions else ()
            engine = start_engine([folder / "sensor.yaml"], bus_url, folder / "data", folder / "engine.log",
                                  workers, extra=("--group", f"bench-{source}-{number}"), prefix=prefix)
            deployments.append(Deployment(workers, source, names, engine, folder))
        try:
            for d in deployments:
                await d.engine.ready(args.ready_timeout)
            for d in deployments:
                warm = _items(d.source, d.names, args.warmup, f"warm{number}")
                await sink.clear()
                sink.expect(i for _, i, _ in warm)
                await publish(bus, warm)
                if not await sink.wait(args.timeout, 300.0 if args.instructions else 60.0, d.alive):
                    raise RuntimeError(f"warm-up of {d.workers} process(es): {len(sink.arrivals)} of {len(warm)} "
                                       "events arrived")
        except (TimeoutError, RuntimeError) as exc:
            return [Round(bus_name, d.workers, failed=str(exc).splitlines()[0][:300]) for d in deployments]
        rounds = []
        for burst in range(args.bursts):
            order = deployments if (number + burst) % 2 else deployments[::-1]
            for d in order:
                await asyncio.sleep(0.3)
                other = next(o for o in deployments if o is not d)
                tag = f"burst{number}.{burst}"
                if args.instructions:  # counts do not depend on what else runs
                    result = await counted_burst(bus_name, bus, tag, args, sink, d)
                    result.pair = (number, burst)
                    rounds.append(result)
                    print(f"    {result}", file=sys.stderr, flush=True)
                    continue
                other.signal(signal.SIGSTOP)  # nothing of it runs while the other is measured
                try:
                    result = await one_burst(bus_name, bus, tag, args, sink, d, bus_pid)
                finally:
                    other.signal(signal.SIGCONT)
                result.pair = (number, burst)
                rounds.append(result)
                print(f"    {result}", file=sys.stderr, flush=True)
                if result.failed:
                    return rounds
        return rounds
    finally:
        for d in deployments:
            await asyncio.to_thread(d.engine.stop)


async def counted_burst(bus_name: str, bus: Bus, tag: str, args: argparse.Namespace, sink: ProcessSink,
                        deployment: Deployment) -> Round:
    """--instructions: callgrind counts every engine process of `deployment` from just before the burst is
    published until its last event arrived; the instructions per event are their sum over the arrivals."""
    result = Round(bus_name, deployment.workers)
    items = _items(deployment.source, deployment.names, args.events, tag)
    await sink.clear()
    sink.expect(i for _, i, _ in items)
    pids = deployment.engine.pids()
    await asyncio.gather(*(callgrind.control(pid, "-i", "on") for pid in pids))
    await publish(bus, items)
    done = await sink.wait(args.timeout, 300.0, deployment.alive)
    counted = await asyncio.gather(*(callgrind.dump(pid, deployment.folder / f"callgrind.{pid}") for pid in pids))
    await asyncio.sleep(0.5)
    await sink.collect()
    arrived = len(set(sink.arrivals) & {i for _, i, _ in items})
    result.lost, result.dup = len(items) - arrived, sink.duplicates
    if arrived:
        result.instructions = sum(counted) / arrived
    if not done:
        result.failed = f"{arrived} of {len(items)} events arrived"
    return result


async def one_burst(bus_name: str, bus: Bus, tag: str, args: argparse.Namespace, sink: ProcessSink,
                    deployment: Deployment, bus_pid: int) -> Round:
    result = Round(bus_name, deployment.workers)
    engine = deployment.engine
    items = _items(deployment.source, deployment.names, args.events, tag)
    await sink.clear()
    sink.expect(i for _, i, _ in items)
    pids = engine.pids()
    others = {"bus": bus_pid, "sink": sink.pid, "harness": os.getpid()}
    # The burst waits on the bus while every engine process is stopped (SIGSTOP), so that the measured window
    # (from SIGCONT to the last arrival) holds the engines draining a backlog, the bus and the sink, and not the
    # harness's publishing (0.4 of a core at these rates, on the same two cores, when it published meanwhile).
    deployment.signal(signal.SIGSTOP)
    try:
        await publish(bus, items)
    finally:
        before = engine.cpu()
        switched = [switches(pid) for pid in pids]
        moved = sum(migrations(pid) for pid in pids)
        system = sum(cpu_split(pid)[1] for pid in pids)
        before_others = {role: cpu_seconds(pid) for role, pid in others.items()}
        moved_others = {role: migrations(pid) for role, pid in others.items()}
        others_switched = {role: switches(pid) for role, pid in others.items()}
        started = time.time_ns()
        deployment.signal(signal.SIGCONT)
    done = await sink.wait(args.timeout, 30.0, deployment.alive)
    after = engine.cpu()  # (the engines are idle once the last event arrived)
    switched_after = [switches(pid) for pid in pids]
    moved = sum(migrations(pid) for pid in pids) - moved
    system = sum(cpu_split(pid)[1] for pid in pids) - system
    after_others = {role: cpu_seconds(pid) for role, pid in others.items()}
    moved_others = {role: migrations(pid) - moved_others[role] for role, pid in others.items()}
    switched_others = {role: (switches(pid)[0] - others_switched[role][0], switches(pid)[1] - others_switched[role][1])
                       for role, pid in others.items()}
    last = max((arrived for _, arrived in sink.arrivals.values()), default=time.time_ns())
    elapsed = max((last - started) / 1e9, 1e-9)
    await asyncio.sleep(0.5)
    await sink.collect()  # a late duplicate is counted too
    arrived = len(set(sink.arrivals) & {i for _, i, _ in items})
    result.lost, result.dup = len(items) - arrived, sink.duplicates
    spent = {pid: after.get(pid, 0.0) - before.get(pid, 0.0) for pid in pids}
    if arrived:
        result.rate = arrived / elapsed
        result.cpu_us = sum(spent.values()) / arrived * 1e6
        result.switches = (sum(a[0] - b[0] for a, b in zip(switched_after, switched, strict=True)) / arrived,
                           sum(a[1] - b[1] for a, b in zip(switched_after, switched, strict=True)) / arrived)
        result.moves = moved / arrived
        result.others_moves = {role: n / arrived for role, n in moved_others.items()}
        result.others_switches = {role: (v / arrived, i / arrived) for role, (v, i) in switched_others.items()}
        result.system_us = system / arrived * 1e6
    result.cores = {_role(pid, engine.process.pid): cpu / elapsed for pid, cpu in spent.items()}
    result.cores.update({role: (after_others[role] - before_others[role]) / elapsed for role in others})
    if not done:
        result.failed = f"{arrived} of {len(items)} events arrived"
    return result


def _role(pid: int, parent: int) -> str:
    if pid == parent:
        return "parent"
    text = command(pid)
    return f"worker {text.split('--worker-id', 1)[1].split()[0]}" if "--worker-id" in text else f"pid {pid}"


def _pairs(rounds: Sequence[Round]) -> list[tuple[float, float]]:
    """(events/s, CPU per event) of two processes over one process, per pair of bursts run seconds apart."""
    by_pair: dict[tuple[int, int], dict[int, Round]] = {}
    for r in rounds:
        by_pair.setdefault(r.pair, {})[r.workers] = r
    return [(p[2].rate / p[1].rate, p[2].cpu_us / p[1].cpu_us) for p in by_pair.values()
            if 1 in p and 2 in p and p[1].rate and p[1].cpu_us]


def report_instructions(rounds: list[Round], args: argparse.Namespace) -> None:
    print(f"\nsensorium bench.workers --instructions: {args.events}-event bursts, {args.rounds} x {args.bursts} per "
          "variant (medians), instructions of all engine processes per event (callgrind)")
    for bus in args.buses:
        medians = {}
        for workers in (1, 2):
            mine = [r for r in rounds if r.bus == bus and r.workers == workers and not r.failed]
            failed = [r for r in rounds if r.bus == bus and r.workers == workers and r.failed]
            if not mine:
                print(f"{bus:10s}{workers:10d} | FAILED: {failed[0].failed if failed else 'not run'}")
                continue
            medians[workers] = statistics.median(r.instructions for r in mine)
            lost, dup = sum(r.lost for r in mine), sum(r.dup for r in mine)
            print(f"{bus:10s}{workers:10d} | {medians[workers] / 1e6:8.3f} M/ev | lost/dup {lost}/{dup} | "
                  + " ".join(f"{r.instructions / 1e6:.3f}" for r in mine))
        if 1 in medians and 2 in medians:
            print(f"{bus}: two processes / one: instructions per event x{medians[2] / medians[1]:.3f}")


def report(rounds: list[Round], args: argparse.Namespace) -> None:
    if args.instructions:
        report_instructions(rounds, args)
        return
    print(f"\nsensorium bench.workers: {args.events}-event bursts, {args.rounds} x {args.bursts} per variant "
          f"(medians), CPUs={os.cpu_count()}, load average {_load()}")
    print(f"{'bus':10s}{'processes':>10s} |{'ev/s':>7s}{'CPU us/ev':>11s}{'of it sys':>10s} |{'lost/dup':>9s} |"
          f"{'switches/ev vol/invol':>22s}{'moves/ev':>9s} | cores used (medians)")
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
            system = statistics.median(r.system_us for r in mine)
            medians[(bus, workers)] = (rate, cpu)
            roles = sorted({k for r in mine for k in r.cores})
            cores = ", ".join(f"{k} {statistics.median(r.cores.get(k, 0.0) for r in mine):.2f}" for k in roles)
            voluntary = statistics.median(r.switches[0] for r in mine)
            involuntary = statistics.median(r.switches[1] for r in mine)
            moves = statistics.median(r.moves for r in mine)
            others_moved = ", ".join(f"{k} {statistics.median(r.others_moves.get(k, 0.0) for r in mine):.3f}"
                                     for k in sorted({k for r in mine for k in r.others_moves}))
            others_switched = ", ".join(
                f"{k} {statistics.median(r.others_switches[k][0] for r in mine):.2f} / "
                f"{statistics.median(r.others_switches[k][1] for r in mine):.3f}"
                for k in sorted({k for r in mine for k in r.others_switches}))
            lost, dup = sum(r.lost for r in mine), sum(r.dup for r in mine)
            print(f"{bus:10s}{workers:10d} |{rate:7.0f}{cpu:11.0f}{system:10.0f} |{f'{lost}/{dup}':>9s} |"
                  f"{f'{voluntary:.2f} / {involuntary:.3f}':>22s}{moves:9.3f} | {cores}; moves/ev {others_moved}; "
                  f"switches/ev vol/invol {others_switched}"
                  + (f"  ({len(failed)} round(s) FAILED: {failed[0].failed})" if failed else ""))
        one, two = medians.get((bus, 1)), medians.get((bus, 2))
        if one and two:
            pairs = _pairs([r for r in rounds if r.bus == bus and not r.failed])
            print(f"{bus}: two processes / one: events/s x{two[0] / one[0]:.2f}, CPU per event (all engine "
                  f"processes) x{two[1] / one[1]:.2f} (ratios of the medians)")
            if pairs:
                rates, cpus = [p[0] for p in pairs], [p[1] for p in pairs]
                print(f"{bus}: per pair (median of {len(pairs)}): events/s x{statistics.median(rates):.2f}, CPU per "
                      f"event x{statistics.median(cpus):.2f}; events/s " + " ".join(f"x{r:.2f}" for r in rates)
                      + "; CPU " + " ".join(f"x{c:.2f}" for c in cpus))


async def run_bus(bus_name: str, args: argparse.Namespace, sink: ProcessSink, tmp: Path, rounds: list[Round]) -> None:
    from sensorium.engine.busconfig import from_url

    async with contextlib.AsyncExitStack() as stack:
        if bus_name == "jetstream":
            from sensorium.buses.embedded import EmbeddedNats

            nats = EmbeddedNats(tmp / "nats")
            await nats.start()
            stack.push_async_callback(nats.stop)
            url = nats.url
            assert nats._proc is not None
            bus_pid = nats._proc.pid
        else:
            from sensorium.buses.kafka_broker import KafkaBroker, free_port

            broker = KafkaBroker(free_port(), tmp / "kafka")
            await asyncio.to_thread(broker.start)
            stack.callback(broker.stop)
            url = f"kafka://{broker.bootstrap}"
            assert broker.proc is not None
            bus_pid = broker.proc.pid
        bus = from_url(url)
        await bus.start()
        stack.push_async_callback(bus.close)
        for number in range(1, args.rounds + 1):
            print(f"  {bus_name} round {number} ...", file=sys.stderr, flush=True)
            rounds.extend(await one_round(bus_name, url, bus, number, args, sink, tmp, bus_pid))


async def main_async(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="sensorium-bench-workers-") as name:
        sink = ProcessSink()
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
    parser.add_argument("--rounds", type=int, default=4, help="engine starts per variant (default 4)")
    parser.add_argument("--bursts", type=int, default=3, help="measured bursts per engine start (default 3)")
    parser.add_argument("--ready-timeout", type=float, default=120.0)
    parser.add_argument("--timeout", type=float, default=300.0)
    parser.add_argument("--instructions", action="store_true",
                        help="run the engines under valgrind (callgrind, children traced) and report instructions "
                             "per event instead of times: steady where times are not, but ~30x slower; e.g. "
                             "--instructions --rounds 1 --bursts 2 --events 600 --warmup 60")
    args = parser.parse_args(argv)
    if args.instructions:
        args.ready_timeout, args.timeout = max(args.ready_timeout, 900.0), max(args.timeout, 3600.0)
    if set(args.buses) - {"jetstream", "kafka"}:
        parser.error("--buses: jetstream and/or kafka")
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()

"""Benchmark: what the default bus trace costs in CPU per event, from two engines running their bursts at once.

    python -m bench.tracepair [--pairs 400] [--events 1000] [--stage calls|build|encode|bus]

Two child processes each run `bench.inprocess`'s engine (the bench's sensor on a memory bus, its HTTP sink in
the same loop) with the bus trace as `sensorium run` has it by default (`--trace-detail decisions`, routine
records, Zstandard frames) into a trace channel that drops what it is given: everything but the bus's own
publishing. For each pair the harness tells one child to trace and the other not to (tracing switched as
`--no-bus-trace` has it: the runners stop tracing, the HTTP triggers stop keeping what only traces read), and
both run a burst of --events at the same moment, one on each core; the traced child alternates. It prints the
median over pairs of the traced burst's extra CPU per event against its partner's, with the quartiles, the
median for each child traced (a child or a core that is slower all along shows as a difference between them),
the ratio of the summed CPU, and the difference in microseconds per event.

`--stage` cuts the traced child's trace short, as `bench.engine`'s `engine-trace-calls`, `-build` and `-encode`
(`bench.tracebuild.cut_short`): the runner's and the triggers' tracing branches only, the records built and
dropped, or built, encoded and dropped; `bus` (the default) is the whole default trace but the bus's publishing.

Why this design: on this shared 2-core machine a burst's CPU per event scatters by ±20% from one burst to the next
(bench/README.md), and `bench.engine`'s side-by-side processes run their bursts one after another. Here the two
bursts of a pair run at once, in processes that differ only in tracing, and many pairs are cheap (400 take about
four minutes), so the medians settle within a point or two. Each child's CPU includes its sink's (about a fifth of
it), which makes the percentage smaller than against the engine alone; the microseconds are the trace's own.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import subprocess
import sys
from collections.abc import Iterator, Sequence
from typing import IO

from bench.engine import tracing_switch
from bench.inprocess import burst, running
from bench.tracebuild import cut_short
from sensorium.buses.base import TraceChannel
from sensorium.engine.trace.bus import BusTraceSink
from sensorium.engine.trace.hub import TraceHub

WARMUP = 1000
STAGES = ("calls", "build", "encode", "bus")  # bench.tracebuild.cut_short's, then the whole
SETTLE = 0.15  # seconds before and after a burst: the switch takes effect, the trace's last batch is written


class Dropped(TraceChannel):
    """A trace channel that takes the compressed bodies and drops them (no bus)."""

    async def publish(self, bodies: Sequence[tuple[str, bytes]]) -> None:
        return None

    async def close(self) -> None:
        return None


async def child(stage: str = "bus") -> None:
    """Run bursts as the parent says on stdin (`on N`, `off N`, `quit`); print each burst's CPU us per event."""
    switch = tracing_switch()
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    hub = TraceHub([BusTraceSink(Dropped())], detail="decisions")
    if stage != "bus":  # the trace cut short, as bench.engine's engine-trace-calls/-build/-encode
        cut_short(hub, stage)
    async with running(hub) as (bus, sink):
        await burst(bus, sink, WARMUP, "warm")
        print("ready", flush=True)
        n = 0
        while True:
            words = (await reader.readline()).decode().split()
            if len(words) != 2:
                break
            switch(words[0] == "on")
            await asyncio.sleep(SETTLE)
            n += 1
            cpu = await burst(bus, sink, int(words[1]), f"b{n}")
            await asyncio.sleep(SETTLE)
            print(f"{cpu * 1e6:.3f}", flush=True)
    await hub.close()


def _send(pipe: IO[str] | None, line: str) -> None:
    assert pipe is not None
    pipe.write(line + "\n")
    pipe.flush()


def _read(pipe: IO[str] | None) -> str:
    assert pipe is not None
    line = pipe.readline()
    if not line:
        raise SystemExit("a child process ended early (run it alone: python -m bench.tracepair --child)")
    return line.strip()


@contextlib.contextmanager
def children(count: int = 2, stage: str = "bus") -> Iterator[list[subprocess.Popen[str]]]:
    """`count` child processes (`--child`, tracing to `stage`), each warmed up and ready for bursts; told to quit
    at the end (and killed if one does not stop within 30 s)."""
    kids = [subprocess.Popen([sys.executable, "-m", "bench.tracepair", "--child", "--stage", stage],
                             stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True) for _ in range(count)]
    try:
        for kid in kids:
            if _read(kid.stdout) != "ready":
                raise SystemExit("a child process did not start")
        yield kids
        for kid in kids:
            _send(kid.stdin, "quit")
    finally:
        for kid in kids:
            if kid.stdin is not None:
                with contextlib.suppress(OSError):
                    kid.stdin.close()  # (end of input: a child still waiting for a command stops)
            try:
                kid.wait(timeout=30)
            except subprocess.TimeoutExpired:
                kid.kill()


def parent(pairs: int, events: int, stage: str = "bus") -> None:
    extras: list[float] = []
    by_kid: list[list[float]] = [[], []]
    traced_cpu: list[float] = []
    plain_cpu: list[float] = []
    with children(stage=stage) as kids:
        for p in range(pairs):
            traced = p % 2
            for i, kid in enumerate(kids):
                _send(kid.stdin, f"{'on' if i == traced else 'off'} {events}")
            cpu = [float(_read(kid.stdout)) for kid in kids]
            extra = cpu[traced] / cpu[1 - traced] - 1
            extras.append(extra)
            by_kid[traced].append(extra)
            traced_cpu.append(cpu[traced])
            plain_cpu.append(cpu[1 - traced])
    q1, _, q3 = statistics.quantiles(extras, n=4)
    print(f"bench.tracepair: {pairs} pairs of {events}-event bursts, both bursts of a pair at once, the traced child "
          f"alternating; traced to stage {stage}")
    print(f"  traced against not, CPU per event: median {100 * statistics.median(extras):+.1f}% (quartiles "
          f"{100 * q1:+.1f}% .. {100 * q3:+.1f}%); child 0 traced {100 * statistics.median(by_kid[0]):+.1f}%, "
          f"child 1 traced {100 * statistics.median(by_kid[1]):+.1f}%; summed CPU "
          f"{100 * (sum(traced_cpu) / sum(plain_cpu) - 1):+.1f}%")
    print(f"  medians: traced {statistics.median(traced_cpu):.1f} us, not traced {statistics.median(plain_cpu):.1f} "
          f"us per event (engine and its in-process sink); difference of the pairs' medians "
          f"{statistics.median(t - u for t, u in zip(traced_cpu, plain_cpu, strict=True)):+.1f} us")


def cli(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--pairs", type=int, default=400, help="pairs of bursts (default 400)")
    parser.add_argument("--events", type=int, default=1000, help="events per burst (default 1000)")
    parser.add_argument("--stage", choices=STAGES, default="bus",
                        help="how far the traced child's trace goes: the runner's calls only, records built, "
                             "encoded, or all of the bus trace but the publish (default)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        asyncio.run(child(args.stage))
        return
    if args.pairs < 4 or args.events < 1:
        parser.error("--pairs must be at least 4 and --events positive")
    parent(args.pairs, args.events, args.stage)


if __name__ == "__main__":
    cli()

"""Benchmark: what building and encoding the trace records of one event costs, replayed without the engine.

    python -m bench.tracebuild [--events 2000] [--repeat 5]

Runs `bench.inprocess` (the engine on the memory bus, the bench's sensor and events, a warm-up burst and one
measured burst of --events each) with a tracer that keeps every `defer(rows_fn, *args)` call the runner makes
instead of building it. Then replays those calls: per deferred function, the records it appends (best of
--repeat, `time.process_time`, so the neighbours' load matters little), and the encoding of all of them as JSON
Lines (`engine.trace.records.encode_chunks`, as the trace writer does). Prints microseconds per event and per
record, and bytes per event. `--callgrind` runs under callgrind started with `--instr-atstart=no`: it switches
counting on (`callgrind_control -i on`) just before the replay, replays each step once and dumps the counts after
building and after encoding (`callgrind_control -d`), so the dump files hold instructions of the build and of the
encode alone (divide by the events, 2 x --events; the `callgrind_control` calls add a constant):

    valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file=/tmp/tb.out \
        python -m bench.tracebuild --events 1000 --callgrind      # then grep ^totals: /tmp/tb.out.*

`--engine` runs the engine in-process with a real `TraceHub` whose sink drops the encoded lines: under callgrind
beside `bench.inprocess` (same events), what tracing adds to the whole engine except the bus's publishing:

    valgrind --tool=callgrind --callgrind-out-file=off.out python -m bench.inprocess --events 1200 --bursts 1
    valgrind --tool=callgrind --callgrind-out-file=on.out python -m bench.tracebuild --events 1200 --engine
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import subprocess
import time
from collections.abc import Callable, Sequence
from typing import Any

import bench.inprocess as inprocess
from sensorium.engine.trace.hub import TraceHub
from sensorium.engine.trace.records import DETAILS, TraceRecord, encode_chunks

Call = tuple[Callable[..., None], tuple[Any, ...]]
DETAIL = "decisions"  # what `sensorium run` records without --trace (engine.cli._trace_hub)


class _Capture(TraceHub):
    """A hub that only keeps the deferred calls (nothing is built, nothing written)."""

    def __init__(self, calls: list[Call], detail: str) -> None:
        super().__init__(detail=detail)
        self.calls = calls

    @property
    def enabled(self) -> bool:
        return True

    def defer(self, rows_fn: Callable[..., None], *args: Any) -> None:
        self.calls.append((rows_fn, args))

    def emit(self, record: TraceRecord) -> None:
        return None


def capture(events: int, detail: str = DETAIL) -> list[Call]:
    """The deferred calls of 2 x `events` benchmark events through the engine (warm-up burst included)."""
    calls: list[Call] = []
    asyncio.run(inprocess.main(events, 1, _Capture(calls, detail)))
    return calls


class _NullRecords:
    """A sink that takes the records and drops them (nothing is encoded). Like the bus trace it stands in for, it
    takes a routine event as one `Routine` record."""

    accepts_routine = True

    async def write(self, batch: Sequence[TraceRecord]) -> None:
        return None

    async def close(self) -> None:
        return None


class _Dropping(TraceHub):
    """A hub that drops every deferred call (the runner's tracing branches alone)."""

    def defer(self, rows_fn: Callable[..., None], *args: Any) -> None:
        return None


class _NullLines:
    """A sink that takes the encoded JSON Lines and drops them (the hub encodes every batch for it). Like the bus
    trace it stands in for, it takes a routine event as one `Routine` record."""

    accepts_lines = True
    accepts_routine = True

    async def write(self, batch: Sequence[TraceRecord]) -> None:
        return None

    async def write_lines(self, chunks: Sequence[bytes], sensors: Sequence[str]) -> None:
        return None

    async def close(self) -> None:
        return None


def cut_short(hub: TraceHub, stage: str) -> None:
    """Make `hub` (the run's tracer, records not published on the bus) stop at `stage`: "calls" drops the
    deferred calls (the runner's tracing branches alone), "build" builds the records and drops them, "encode"
    also encodes them (as JSON Lines, as the hub does for a sink that takes lines) and drops the lines."""
    hub.bus_trace = False
    if stage == "calls":
        hub.sinks = [_NullRecords()]
        hub.defer = _Dropping.defer.__get__(hub)  # type: ignore[method-assign]
    else:
        hub.sinks = [_NullRecords() if stage == "build" else _NullLines()]


def engine(events: int, bursts: int, what: str = "lines", detail: str = DETAIL) -> None:
    """`bench.inprocess` with a real `TraceHub` whose one sink drops the JSON Lines it is given (`what` "lines"):
    the engine's tracing cost but for the bus's publishing (compare with `python -m bench.inprocess` under
    callgrind). "records": the sink takes the records and drops them (no encoding); "calls": the hub drops the
    deferred calls (the runner's tracing branches alone)."""
    hub = _Dropping([_NullRecords()], detail=detail) if what == "calls" else TraceHub(
        [_NullRecords() if what == "records" else _NullLines()], detail=detail)
    cpu = asyncio.run(inprocess.main(events, bursts, hub))
    print("CPU per event (engine + sink + publisher):", ", ".join(f"{c * 1e6:.0f} us" for c in cpu))


def _callgrind(*options: str) -> None:
    subprocess.run(["callgrind_control", *options, str(os.getpid())], check=True, stdout=subprocess.DEVNULL)


def replay(calls: Sequence[Call], n_events: int, repeat: int, callgrind: bool = False) -> None:
    """Build the records of `calls` per deferred function, then encode them all; print the costs."""
    by_fn: dict[str, list[Call]] = collections.defaultdict(list)
    for call in calls:
        by_fn[call[0].__name__].append(call)
    times: dict[str, float] = {}
    outs: dict[str, list[TraceRecord]] = {}
    if callgrind:
        _callgrind("-i", "on")
    for name, group in by_fn.items():
        best = float("inf")
        for _ in range(repeat):
            out: list[TraceRecord] = []
            start = time.process_time()
            for fn, args in group:
                fn(out, *args)
            best = min(best, time.process_time() - start)
        times[name], outs[name] = best, out
    if callgrind:
        _callgrind("-d", "build")
    records = [record for out in outs.values() for record in out]
    best = float("inf")
    size = 0
    for _ in range(repeat):
        start = time.process_time()
        chunks, _, _ = encode_chunks(records)
        best = min(best, time.process_time() - start)
        size = sum(map(len, chunks))
    if callgrind:
        _callgrind("-d", "encode")
    for name, took in times.items():
        made = len(outs[name])
        print(f"  {name:16s} calls {len(by_fn[name]):6d} records {made:6d}  {took / n_events * 1e6:6.2f} us/event"
              f"  {took / max(made, 1) * 1e6:5.2f} us/record")
    print(f"build  {sum(times.values()) / n_events * 1e6:6.2f} us/event, {len(records) / n_events:.1f} records/event")
    print(f"encode {best / n_events * 1e6:6.2f} us/event, {size / n_events:.0f} bytes/event")


def cli(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=2000, help="events per burst (default 2000; two bursts)")
    parser.add_argument("--repeat", type=int, default=5, help="replays of each step, best taken (default 5)")
    parser.add_argument("--callgrind", action="store_true", help="one replay of each step (for callgrind)")
    parser.add_argument("--detail", choices=DETAILS, default=DETAIL,
                        help=f"the trace's detail (`sensorium run --trace-detail`; default {DETAIL})")
    parser.add_argument("--engine", nargs="?", const="lines", choices=("lines", "records", "calls"),
                        help="run bench.inprocess with a TraceHub that encodes and drops the records (lines), only "
                             "builds them (records) or drops the calls (calls), and stop")
    args = parser.parse_args(argv)
    if args.engine:
        engine(args.events, 1, args.engine, args.detail)
        return
    calls = capture(args.events, args.detail)
    n_events = 2 * args.events
    print(f"{len(calls)} deferred calls for {n_events} events")
    replay(calls, n_events, 1 if args.callgrind else args.repeat, args.callgrind)


if __name__ == "__main__":
    cli()

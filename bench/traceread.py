"""Benchmark: what reading the bus trace back costs now that routine records leave their event's data on the bus.

    python -m bench.traceread [--events 10000] [--rounds 3]

Starts an embedded nats-server and runs the engine in this process (`run_engine`, the bench's sensor, the bus
trace as `sensorium run` has it: `decisions`, routine records) against an aiohttp sink in the same loop;
publishes --events events (`publish_many`) and waits until the sink has them all and the trace is written. Then,
--rounds times in alternation, reads the whole trace back with `read_traces` two ways: as `sensorium trace` does
(every routine event's data looked up at its position: one `get_msg` per event, `engine.trace.bus`), and with
`event=` naming no event, which reads the same records and looks nothing up (the baseline: what reading cost when
routine records carried the preview). Prints records/s and wall seconds of each, the ratio, and checks that
every routine event's preview was made from its stored event (none "not shown").
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from bench.engine import EVENT_NAME, WorkerSpec, encode_event, sensor_yaml
from bench.inprocess import sink_server
from sensorium.buses.base import EventKey
from sensorium.buses.embedded import EmbeddedNats
from sensorium.buses.jetstream.bus import JetStreamBus
from sensorium.engine.app import EngineOptions, run_engine
from sensorium.engine.assemble import load_checked
from sensorium.engine.runner import RunnerSettings
from sensorium.engine.trace.bus import read_traces
from sensorium.engine.trace.hub import TraceHub

SOURCE = "src"


async def _traced(url: str, events: int, tmp: Path) -> None:
    """Run the engine with the default bus trace on `url` until `events` events reached the sink."""
    async with sink_server() as (sink, sink_url):
        spec = WorkerSpec(kind="engine", bus_url=url, sink_url=sink_url, source=SOURCE, in_flight=50, batch=64)
        (tmp / "sensor.yaml").write_text(sensor_yaml(spec))
        hub = TraceHub(bus_trace=True, detail="decisions")
        options = EngineOptions(bus_url=url, data_dir=tmp / "data", handle_signals=False, tracer=hub,
                                runner=RunnerSettings(batch=spec.batch, max_in_flight=spec.in_flight))
        stop, ready = asyncio.Event(), asyncio.Event()
        engine = asyncio.create_task(run_engine(load_checked([tmp / "sensor.yaml"]), options, stop, ready))
        bus = JetStreamBus(url)
        try:
            await asyncio.wait_for(ready.wait(), 60)
            await bus.start()
            sink.expect(events)
            key = EventKey(SOURCE, EVENT_NAME)
            items = [(key, f"e-{i}", encode_event(SOURCE, f"e-{i}", i)) for i in range(events)]
            for start in range(0, events, 1000):
                await bus.publish_many(items[start:start + 1000])
            await asyncio.wait_for(sink.done.wait(), 300)
        finally:
            stop.set()
            await engine
            await hub.close()
            await bus.close()


async def _read(url: str, lookup: bool) -> tuple[float, int, int, int]:
    """(seconds, records, received records with a preview made from the bus, with "not shown")."""
    started = time.perf_counter()
    records = made = missing = 0
    async for record in read_traces(url, idle=1.0, event=None if lookup else "no such event"):
        records += 1
        if record["step"] == "received":
            preview = record.get("data_preview") or ""
            made += preview.startswith("{")
            missing += preview.startswith("(not shown")
    return time.perf_counter() - started, records, made, missing


async def main(events: int, rounds: int) -> None:
    with tempfile.TemporaryDirectory(prefix="sensorium-bench-traceread-") as tmp:
        nats_server = EmbeddedNats(Path(tmp) / "nats")
        await nats_server.start()
        try:
            await _traced(nats_server.url, events, Path(tmp))
            times: dict[bool, list[float]] = {True: [], False: []}
            for n in range(rounds):
                for lookup in ((True, False) if n % 2 == 0 else (False, True)):
                    seconds, records, made, missing = await _read(nats_server.url, lookup)
                    times[lookup].append(seconds)
                    print(f"  round {n + 1} {'looked up' if lookup else 'baseline '}: {records} records in "
                          f"{seconds:.2f} s ({records / seconds:.0f}/s), previews made {made}, not shown {missing}",
                          flush=True)
                    if lookup and (made != events or missing):
                        raise SystemExit(f"{made} of {events} previews made, {missing} not shown")
        finally:
            await nats_server.stop()
    looked, base = statistics.median(times[True]), statistics.median(times[False])
    print(f"\nsensorium bench.traceread: {events} routine events, {rounds} rounds (medians)")
    print(f"reading the trace with each event's data looked up on the bus: {looked:.2f} s "
          f"({events / looked:.0f} events/s); without: {base:.2f} s; x{looked / base:.2f}")


def cli(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=10_000, help="events traced (default 10000)")
    parser.add_argument("--rounds", type=int, default=3, help="reads of each kind (default 3)")
    args = parser.parse_args(argv)
    if args.events < 1 or args.rounds < 1:
        parser.error("--events and --rounds must be positive")
    asyncio.run(main(args.events, args.rounds))


if __name__ == "__main__":
    cli()

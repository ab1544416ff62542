"""Benchmark: the CPU one event costs on the engine's pure path, step by step, without I/O.

    python -m bench.eventpath [--events 20000] [--repeat 5] [--profile]

The benchmark's sensor (bench.engine.sensor_yaml: a context and a data filter, an HTTP trigger with three payload
parameters) and its events (bench.engine.encode_event), taken through what the engine does per event on the
loop and in the stage thread, each step timed on its own (`time.process_time`, best of --repeat runs of
--events events):

  decode    engine.core.cloudevent.decode_delivery (the bus message -> CloudEvent)
  evaluate  SensorStage.evaluate (dependency match, filters)
  decide    SensorStage.decide (conditions, firings)
  request   triggers.httprequest.RequestPlan.build (parameters resolved, payload, headers), as the HTTP
            trigger calls it

No bus, no HTTP, no thread hop: what these steps cost, not what the engine spends around them (bench.engine
measures that). `--profile` prints cProfile's top functions over one more run of all steps.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import pstats
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.engine import EVENT_NAME, WorkerSpec, encode_event, sensor_yaml


def _pipeline(events: int) -> tuple[list[bytes], Any, Any]:
    from sensorium.engine.assemble import load_checked
    from sensorium.engine.core.secrets import Secrets

    spec = WorkerSpec(kind="engine", bus_url="nats://127.0.0.1:1", sink_url="http://127.0.0.1:1", source="bench",
                      in_flight=50, batch=64)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "sensor.yaml"
        path.write_text(sensor_yaml(spec))
        config = load_checked([path])
    compiled = config.compiled[0]
    bodies = [encode_event("bench", f"{n:032x}", n) for n in range(events)]
    return bodies, compiled, Secrets(None)


class _PerFiring:
    """What a checkout older than `RequestPlan` ran per firing: `build_request` from the spec."""

    def __init__(self, template: Any, parameters: Any) -> None:
        self.template, self.parameters = template, parameters

    def build(self, events: Any, secrets: Any, used: Any = None) -> Any:
        from sensorium.triggers.httprequest import build_request

        return build_request(self.template, self.parameters, events, secrets, used)


def _plan(trigger: Any) -> Any:
    """The request plan as the HTTP trigger builds it, once (on older checkouts, `build_request` per firing:
    `PYTHONPATH=OLD python -m bench.eventpath` from this checkout compares them)."""
    try:
        from sensorium.triggers.httprequest import RequestPlan
    except ImportError:
        return _PerFiring(trigger.template, trigger.parameters)
    return RequestPlan(trigger.template, trigger.parameters)


def measure(events: int, repeat: int) -> dict[str, float]:
    """Microseconds of CPU per event for each step (best of `repeat`)."""
    from sensorium.engine.core.cloudevent import decode_delivery

    bodies, compiled, secrets = _pipeline(events)
    stage = compiled.stage
    trigger = compiled.triggers[0]
    plan = _plan(trigger)
    now = datetime.now(UTC)
    decoded = [decode_delivery(b, {}) for b in bodies]
    verdicts = [stage.evaluate(e) for e in decoded]
    results = [stage.decide(e, v, now) for e, v in zip(decoded, verdicts, strict=True)]
    firings = [r.firings[0].events for r in results]
    assert all(len(r.firings) == 1 for r in results), "every benchmark event must fire"
    steps: dict[str, Callable[[], object]] = {
        "decode": lambda: [decode_delivery(b, {}) for b in bodies],
        "evaluate": lambda: [stage.evaluate(e) for e in decoded],
        "decide": lambda: [stage.decide(e, v, now) for e, v in zip(decoded, verdicts, strict=True)],
        "request": lambda: [plan.build(f, secrets) for f in firings],
    }
    best: dict[str, float] = {}
    # What the steps keep alive (10,000s of events, verdicts, results) is frozen out of the collector's
    # generations, as the engine freezes what start-up built: otherwise the full collections its allocations
    # trigger walk all of it and land on whichever step runs then (`decide` took 9.3 us instead of 2.4 so).
    gc.collect()
    gc.freeze()
    for _ in range(repeat):
        for name, step in steps.items():
            start = time.process_time()
            step()
            spent = (time.process_time() - start) / events * 1e6
            best[name] = min(best.get(name, spent), spent)
    return best


def profile(events: int) -> None:
    from sensorium.engine.core.cloudevent import decode_delivery
    bodies, compiled, secrets = _pipeline(events)
    stage, trigger, now = compiled.stage, compiled.triggers[0], datetime.now(UTC)
    plan = _plan(trigger)

    def run() -> None:
        for body in bodies:
            event = decode_delivery(body, {})
            result = stage.decide(event, stage.evaluate(event), now)
            for firing in result.firings:
                plan.build(firing.events, secrets)

    profiler = cProfile.Profile()
    profiler.runcall(run)
    pstats.Stats(profiler, stream=sys.stdout).sort_stats("tottime").print_stats(25)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.eventpath", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=20000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args(argv)
    best = measure(args.events, args.repeat)
    total = sum(best.values())
    print(f"event path of bench.engine's sensor ({EVENT_NAME}), us of CPU per event, best of {args.repeat} x "
          f"{args.events}:")
    for name, spent in best.items():
        print(f"  {name:9s} {spent:7.1f}")
    print(f"  {'total':9s} {total:7.1f}")
    if args.profile:
        profile(args.events)


if __name__ == "__main__":
    main()

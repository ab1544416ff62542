"""Per-call cost of a script filter: Lua in process (sensors.lua.run_script_here) vs the worker process
(sensors.lua.run_script). `python -m bench.lua_worker [CALLS]`; prints wall and CPU microseconds per call, the
worker's CPU split between this process and the child (the child's read from its CPU-time clock, bench.cpuclock)."""

from __future__ import annotations

import resource
import sys
import time

from bench.cpuclock import process_cpu_seconds
from sensorium.sensors.lua import _worker, close_workers, run_script, run_script_here

SCRIPT = "return event.body.a == 1"
DATA = {"body": {"a": 1.0, "b": "hello", "c": [1.0, 2.0]}}


def _self_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _child_cpu(pid: int) -> float:
    return process_cpu_seconds(pid) or 0.0


def main() -> None:
    calls = int(sys.argv[1]) if len(sys.argv) > 1 else 5000
    for _ in range(100):
        run_script_here(SCRIPT, DATA)
        run_script(SCRIPT, DATA)
    wall, cpu = time.perf_counter(), _self_cpu()
    for _ in range(calls):
        run_script_here(SCRIPT, DATA)
    print(f"in process: {(time.perf_counter() - wall) / calls * 1e6:.0f} us wall, "
          f"{(_self_cpu() - cpu) / calls * 1e6:.0f} us CPU per call")
    proc = _worker()._proc
    assert proc is not None
    wall, cpu, child = time.perf_counter(), _self_cpu(), _child_cpu(proc.pid)
    for _ in range(calls):
        run_script(SCRIPT, DATA)
    parent_us = (_self_cpu() - cpu) / calls * 1e6
    child_us = (_child_cpu(proc.pid) - child) / calls * 1e6
    print(f"worker: {(time.perf_counter() - wall) / calls * 1e6:.0f} us wall, {parent_us:.0f} us CPU here + "
          f"{child_us:.0f} us in the child = {parent_us + child_us:.0f} us CPU per call")
    close_workers()


if __name__ == "__main__":
    main()

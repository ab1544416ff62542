"""Another process's CPU time, to the nanosecond: the benchmarks' one way of reading it.

`/proc/<pid>/stat` counts in clock ticks (10 ms here): a 2,000-event burst of ~0.33 s of CPU reads as 33 ticks,
give or take one, so each burst's CPU per event was quantised in steps of 5 us (about 3% of the engine's 155-175
us) and a median of such bursts stayed on those steps. Linux gives every process a CPU-time clock
(`clock_getcpuclockid(3)`; user + system, every thread, exited ones included) that any process may read;
Python has `time.clock_gettime` but not `clock_getcpuclockid`, so its id is made here as glibc makes it.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

_CPUCLOCK_SCHED = 2  # the kernel's CPU-time clock that counts the scheduler's runtime (ns)
TICKS = os.sysconf("SC_CLK_TCK")


def process_clock(pid: int) -> int:
    """The clock id of process `pid`'s CPU time (glibc's MAKE_PROCESS_CPUCLOCK)."""
    return (~pid << 3) | _CPUCLOCK_SCHED


def process_cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of process `pid`, every thread, to the nanosecond; from /proc in clock ticks
    where the clock cannot be read; None once the process is gone."""
    try:
        return time.clock_gettime(process_clock(pid))
    except OSError:
        pass
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICKS
    except (OSError, IndexError, ValueError):
        return None

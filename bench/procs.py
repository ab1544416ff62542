"""Helpers shared by the benchmarks that drive `sensorium run` as a user does (bench.scaling, bench.workers):
start it as a child process, wait until `/readyz` answers 200, read the CPU time and RSS of it and every process
it started (from /proc, Linux), publish events, stop it.

Whatever `sensorium run` is on the checkout (one runner per sensor, or a shared intake), these measure it from
the outside: nothing here imports the runner.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from bench.cpuclock import process_cpu_seconds
from bench.engine import SEPARATORS
from sensorium.buses.base import Bus, EventKey
from sensorium.engine.core.cloudevent import CloudEvent, encode_structured, now_rfc3339

TICKS = os.sysconf("SC_CLK_TCK")
ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def children(pid: int) -> list[int]:
    """Every descendant of `pid` (Linux /proc/<pid>/task/*/children)."""
    out: list[int] = []
    todo = [pid]
    while todo:
        for text in _per_task(todo.pop(), "children"):
            for child in text.split():
                out.append(int(child))
                todo.append(int(child))
    return out


def _per_task(pid: int, name: str) -> Iterator[str]:
    """The text of /proc/<pid>/task/<each thread>/<name>, for the threads still there (none once pid is gone)."""
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return
    for task in tasks:
        try:
            yield Path(f"/proc/{pid}/task/{task}/{name}").read_text()
        except OSError:
            continue


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of one process, to the nanosecond (`bench.cpuclock`; 0 once it is gone)."""
    return process_cpu_seconds(pid) or 0.0


def cpu_split(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds of one process ((0, 0) once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0, 0.0
    return int(fields[11]) / TICKS, int(fields[12]) / TICKS


def switches(pid: int) -> tuple[int, int]:
    """(voluntary, involuntary) context switches of every thread of one process so far (0s once it is gone):
    involuntary ones are preemptions, which rise when the machine has no idle core."""
    voluntary = involuntary = 0
    for text in _per_task(pid, "status"):
        for line in text.splitlines():
            if line.startswith("voluntary_ctxt_switches:"):
                voluntary += int(line.split()[1])
            elif line.startswith("nonvoluntary_ctxt_switches:"):
                involuntary += int(line.split()[1])
    return voluntary, involuntary


def migrations(pid: int) -> int:
    """How many times the scheduler moved a thread of one process to another CPU so far (0 once it is gone): a
    moved thread finds its caches cold on the new core."""
    moved = 0
    for text in _per_task(pid, "sched"):
        for line in text.splitlines():
            if line.startswith("se.nr_migrations"):
                moved += int(line.rsplit(None, 1)[1])
    return moved


def rss_mib(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def command(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


@dataclass
class Engine:
    """A `sensorium run` child process (and its workers, and anything else it started)."""

    process: subprocess.Popen[bytes]
    ops_ports: tuple[int, ...]
    log: Path

    def pids(self, engines_only: bool = True) -> list[int]:
        """The parent and its descendants; `engines_only` leaves out processes that are not Sensorium (an
        embedded nats-server)."""
        every = [self.process.pid, *children(self.process.pid)]
        return [p for p in every if not engines_only or "sensorium" in command(p)]

    def cpu(self) -> dict[int, float]:
        return {pid: cpu_seconds(pid) for pid in self.pids()}

    def rss(self) -> float:
        return sum(rss_mib(pid) for pid in self.pids())

    async def ready(self, timeout: float) -> float:
        """Seconds until every worker's /readyz answered 200; raises TimeoutError (or RuntimeError on exit)."""
        started = time.monotonic()
        async with aiohttp.ClientSession() as session:
            for port in self.ops_ports:
                while True:
                    if self.process.poll() is not None:
                        raise RuntimeError(f"sensorium run exited with {self.process.returncode}; log: "
                                           f"{self.log.read_text()[-2000:]}")
                    if time.monotonic() - started > timeout:
                        raise TimeoutError(f"not ready within {timeout:.0f}s; log: {self.log.read_text()[-2000:]}")
                    try:
                        async with session.get(f"http://127.0.0.1:{port}/readyz",
                                               timeout=aiohttp.ClientTimeout(total=2)) as response:
                            if response.status == 200:
                                break
                    except (aiohttp.ClientError, TimeoutError, OSError):
                        pass
                    await asyncio.sleep(0.1)
        return time.monotonic() - started

    def stop(self, timeout: float = 40.0) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_engine(paths: Sequence[Path], bus_url: str, data_dir: Path, log: Path, workers: int = 1,
                 extra: Sequence[str] = (), prefix: Sequence[str] = ()) -> Engine:
    """`python -m sensorium run PATHS --bus URL --no-bus-trace --ops-port P [--workers N]` as the CLI runs it
    (uvloop where installed), after `prefix` (a command such as valgrind's); worker i answers on P + i."""
    port = free_port()
    while any(_busy(port + i) for i in range(max(workers, 1))):
        port = free_port()
    argv = [*prefix, sys.executable, "-m", "sensorium", "run", *map(str, paths), "--bus", bus_url, "--no-bus-trace",
            "--data-dir", str(data_dir), "--ops-port", str(port), "--webhook-host", "127.0.0.1",
            "--log-level", "WARNING", *extra]
    if workers > 1:
        argv += ["--workers", str(workers)]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    handle = log.open("wb")
    process = subprocess.Popen(argv, stdout=handle, stderr=subprocess.STDOUT, env=env, cwd=str(data_dir.parent))
    return Engine(process, tuple(port + i for i in range(max(workers, 1))), log)


def _busy(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def bench_event(source: str, name: str, event_id: str, body: dict[str, object]) -> bytes:
    """A webhook-shaped structured CloudEvent; `body` gets `ts` (publish time, ns) for the sink."""
    data = {"header": {"Content-Type": ["application/json"]}, "body": {"ts": time.time_ns(), **body}}
    event = CloudEvent(id=event_id, source=source, type="webhook", subject=name,
                       datacontenttype="application/json", time=now_rfc3339(),
                       data=json.dumps(data, separators=SEPARATORS).encode())
    return encode_structured(event)


async def publish(bus: Bus, items: Sequence[tuple[EventKey, str, bytes]], chunk: int = 500) -> None:
    for start in range(0, len(items), chunk):
        await bus.publish_many(items[start:start + chunk])

"""Waiting on trace records instead of sleeping: a test tracer that keeps every record and wakes waiters.

    log = TraceLog()
    async with Engine(config, bus_url, tracer=log):
        await publish(bus_url, first, second)
        await log.acked(first, second)   # both settled: every firing they caused has finished
    assert len(http_sink.requests) == 1   # so nothing more can arrive for them

The runner acknowledges an event only after every firing it caused finished (and emits the `ack` record after
the bus took the ack), so the `ack` record of the last event is the moment "nothing more arrives" becomes true;
a sleep only guesses it. `TraceLog` is a `Tracer` (`emit`) and also a `TraceHub` sink (`write`, `close`), for
tests that run the engine's own hub. `JsonTraceFile` waits the same way on a `--trace-file` a `sensorium run`
child process writes (JSON Lines).
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sensorium.engine.core.cloudevent import CloudEvent
from sensorium.engine.trace.records import Acknowledged, EmittingTracer, Routine, TraceRecord

Match = Callable[[TraceRecord], bool]


@dataclass
class _Waiter:
    match: Match
    count: int
    loop: asyncio.AbstractEventLoop
    done: asyncio.Future[None]
    seen: int = 0
    found: list[TraceRecord] = field(default_factory=list)


def _id(event: CloudEvent | str) -> str:
    return event if isinstance(event, str) else event.id


class TraceLog(EmittingTracer):
    """Every record the engine emitted, in order; `wait` returns once enough records match (or times out)."""

    def __init__(self) -> None:
        self.records: list[TraceRecord] = []
        self.routines = 0  # Routine records a hub wrote here (each kept as its steps)
        self._waiters: list[_Waiter] = []
        self._lock = threading.Lock()  # emit may come from a thread (the hub's sinks run in the loop, today)

    # -- Tracer ---------------------------------------------------------------------------------------------
    def emit(self, record: TraceRecord) -> None:
        with self._lock:
            self.records.append(record)
            for waiter in self._waiters:
                if waiter.seen < waiter.count and waiter.match(record):
                    waiter.seen += 1
                    waiter.found.append(record)
                    if waiter.seen == waiter.count:
                        waiter.loop.call_soon_threadsafe(_finish, waiter.done)

    # -- TraceHub sink --------------------------------------------------------------------------------------
    accepts_routine = True  # a hub may hand it `Routine` records: it keeps their steps, as bus readers do

    async def write(self, batch: Sequence[TraceRecord]) -> None:
        for record in batch:
            if isinstance(record, Routine):
                self.routines += 1
                for step in record.steps():
                    self.emit(step)
            else:
                self.emit(record)

    async def close(self) -> None:
        return None

    # -- waiting --------------------------------------------------------------------------------------------
    async def wait(self, match: Match, count: int = 1, timeout: float = 30.0) -> list[TraceRecord]:
        """The first `count` records `match` accepts, once they were emitted; TimeoutError (naming what was
        seen) if they are not there within `timeout` seconds."""
        loop = asyncio.get_running_loop()
        with self._lock:
            found = [r for r in self.records if match(r)][:count]
            if len(found) >= count:
                return found
            waiter = _Waiter(match, count, loop, loop.create_future(), len(found), found)
            self._waiters.append(waiter)
        try:
            await asyncio.wait_for(waiter.done, timeout)
        except TimeoutError:
            raise TimeoutError(f"{waiter.seen} of {count} records within {timeout} s; steps seen: "
                               f"{[r.step for r in self.records][-40:]}") from None
        finally:
            with self._lock:
                self._waiters.remove(waiter)
        return waiter.found

    async def acked(self, *events: CloudEvent | str, timeout: float = 30.0) -> list[Acknowledged]:
        """The `ack` records of these events (one each, in the order given), once all are there: each event
        was settled on the bus, after every firing it caused finished."""
        ids = {_id(e) for e in events}
        found = await self.wait(lambda r: r.step == "ack" and r.event in ids, len(ids), timeout)
        by_id = {r.event: r for r in found if isinstance(r, Acknowledged)}
        return [by_id[_id(e)] for e in events]

    async def settled(self, count: int, timeout: float = 30.0) -> list[Acknowledged]:
        """The first `count` `ack` records of any delivery (also those that were not a CloudEvent)."""
        found = await self.wait(lambda r: r.step == "ack", count, timeout)
        return [r for r in found if isinstance(r, Acknowledged)]

    # -- reading --------------------------------------------------------------------------------------------
    def of(self, event: CloudEvent | str) -> list[TraceRecord]:
        """The records of one event, in order."""
        wanted = _id(event)
        return [r for r in self.records if r.event == wanted]

    def steps(self, event: CloudEvent | str | None = None) -> list[str]:
        """The steps of one event's records, or of all records."""
        return [r.step for r in (self.records if event is None else self.of(event))]


def _finish(done: asyncio.Future[None]) -> None:
    if not done.done():
        done.set_result(None)


class JsonTraceFile:
    """The JSON Lines trace a `sensorium run --trace-format json --trace-file PATH` child writes."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def args(self) -> list[str]:
        """The command-line arguments that make the engine write this file."""
        return ["--trace-format", "json", "--trace-file", str(self.path)]

    def records(self) -> list[dict[str, Any]]:
        """The whole lines written so far."""
        try:
            text = self.path.read_text()
        except FileNotFoundError:
            return []
        return [json.loads(line) for line in text.splitlines(keepends=True) if line.endswith("\n")]

    async def acked(self, *events: CloudEvent | str, timeout: float = 30.0) -> list[dict[str, Any]]:
        """The `ack` records of these events once all were written (the engine writes its trace every 0.1 s)."""
        return await acked_in([self], *events, timeout=timeout)


async def acked_in(files: Sequence[JsonTraceFile], *events: CloudEvent | str,
                   timeout: float = 30.0) -> list[dict[str, Any]]:
    """The `ack` records of these events, found in any of the trace files of several engines sharing a sensor
    (one per event, in the order given), once all were written."""
    ids = [_id(e) for e in events]
    deadline = time.monotonic() + timeout
    while True:
        acks = {r["event"]: r for f in files for r in f.records() if r["step"] == "ack" and r["event"] in ids}
        if len(acks) == len(set(ids)):
            return [acks[i] for i in ids]
        if time.monotonic() > deadline:
            raise TimeoutError(f"acks of {sorted(set(ids) - set(acks))} not in {[str(f.path) for f in files]} "
                               f"within {timeout} s")
        await asyncio.sleep(0.05)  # polling files: the child processes have no way to wake us

"""The engine's tracer: a bounded in-memory queue that a writer task drains in batches into the trace sinks.

`emit()` only appends to a list: it never blocks, never raises and never serialises. When the queue is full
the record is dropped and counted (the pipeline is never slowed down to keep a trace). Sink failures are
counted and logged once in a while, never raised. Serialisation and I/O happen in the writer task.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from typing import Protocol

from buses.base import Bus
from engine.trace import TraceRecord

log = logging.getLogger("sensorium.trace")

DEFAULT_CAPACITY = 100_000
DEFAULT_INTERVAL = 0.05
MAX_BATCH = 2000
_REPORT_EVERY = 10.0


class TraceSink(Protocol):
    async def write(self, batch: Sequence[TraceRecord]) -> None: ...

    async def close(self) -> None: ...


class TraceHub:
    """A Tracer. `bus_trace` True: the first runner that attaches its bus adds a bus sink (see tracebus)."""

    def __init__(self, sinks: Sequence[TraceSink] = (), *, capacity: int = DEFAULT_CAPACITY,
                 interval: float = DEFAULT_INTERVAL, bus_trace: bool = False) -> None:
        self.sinks: list[TraceSink] = list(sinks)
        self.capacity, self.interval, self.bus_trace = capacity, interval, bus_trace
        self.dropped = 0
        self.sink_errors = 0
        self.written = 0
        self._queue: list[TraceRecord] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._lock: asyncio.Lock | None = None
        self._bus: Bus | None = None
        self._reported = 0.0
        self._closed = False

    @property
    def enabled(self) -> bool:
        """False when nothing would receive the records: the engine then does not build them."""
        return bool(self.sinks) or self.bus_trace

    def emit(self, record: TraceRecord) -> None:
        try:
            if self._closed:
                return
            if len(self._queue) >= self.capacity:
                self.dropped += 1
                return
            self._queue.append(record)
            if self._task is None:
                self._task = asyncio.get_running_loop().create_task(self._writer(), name="trace-writer")
            if not self._wake.is_set():
                self._wake.set()
        except Exception:  # tracing must never break the pipeline (e.g. no running loop)
            return

    def attach_bus(self, bus: Bus) -> None:
        """Publish records on `bus` too (once; later calls with the same or another bus are ignored)."""
        if not self.bus_trace or self._bus is not None:
            return
        from engine.tracebus import bus_trace_sink

        try:
            sink = bus_trace_sink(bus)
        except Exception as exc:
            log.warning("trace records will not be published on %s: %s", bus.url, exc)
            return
        self._bus = bus
        if sink is not None:
            self.sinks.append(sink)

    async def _writer(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            await asyncio.sleep(self.interval)  # let a batch gather
            await asyncio.shield(self.flush())  # close() cancels this task: never mid-batch

    async def flush(self) -> None:
        """Write everything queued so far to every sink."""
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            while self._queue:
                batch = self._queue[:MAX_BATCH]
                del self._queue[:MAX_BATCH]
                for sink in list(self.sinks):
                    try:
                        await sink.write(batch)
                    except Exception as exc:
                        self.sink_errors += 1
                        self._report(f"a trace sink failed: {type(exc).__name__}: {exc}")
                self.written += len(batch)
            if self.dropped:
                self._report(f"{self.dropped} trace records dropped so far (trace queue full)")

    def _report(self, message: str) -> None:
        now = time.monotonic()
        if now - self._reported >= _REPORT_EVERY:
            self._reported = now
            log.warning("%s", message)

    async def close(self) -> None:
        """Flush, stop the writer and close the sinks; reports dropped records once."""
        if self._closed:
            return
        with contextlib.suppress(Exception):
            await self.flush()  # waits for a batch the writer is in the middle of
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        with contextlib.suppress(Exception):
            await self.flush()
        self._closed = True
        for sink in self.sinks:
            with contextlib.suppress(Exception):
                await sink.close()
        if self.dropped:
            log.warning("%d trace records were dropped (trace queue full)", self.dropped)

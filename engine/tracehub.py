"""The engine's tracer: a bounded in-memory queue that a writer task drains in batches into the trace sinks.

`emit()` and `defer()` only append to a list: they never block, never raise and never serialise. When the queue
is full the item is dropped and counted (the pipeline is never slowed down to keep a trace). Sink failures are
counted and logged once in a while, never raised. Building records, serialising and I/O happen in the writer.

`defer(rows_fn, *args)` is how the engine hands over the records of one step or event: the function that appends
their rows (`engine.tracesteps`) and the immutable values it reads, one list append on the event path. The
writer expands them in batches, renders each row to its JSON line once (`engine.trace.render_rows`) for the sinks
that take JSON Lines (`--trace-format json`, the bus) and builds record objects only for sinks that need them
(the human format). The cost and how it was measured are in bench/README.md ("Tracing cost").
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from typing import Any, Protocol, TypeGuard

from buses.base import Bus
from engine.trace import Row, TraceRecord, record_of, render_rows

log = logging.getLogger("sensorium.trace")

DEFAULT_CAPACITY = 100_000
DEFAULT_INTERVAL = 0.05
MAX_BATCH = 2000
_REPORT_EVERY = 10.0


class TraceSink(Protocol):
    async def write(self, batch: Sequence[TraceRecord]) -> None: ...

    async def close(self) -> None: ...


class LineSink(TraceSink, Protocol):
    """A sink that only needs each record's JSON line: `accepts_lines` True and `write_lines`, which gets
    the lines (each ends with a newline) and, at the same index, the sensor of each."""

    @property
    def accepts_lines(self) -> bool: ...

    async def write_lines(self, lines: Sequence[str], sensors: Sequence[str]) -> None: ...


def takes_lines(sink: TraceSink) -> TypeGuard[LineSink]:
    return bool(getattr(sink, "accepts_lines", False)) and callable(getattr(sink, "write_lines", None))


_Deferred = tuple[Any, ...]  # (function appending rows to its first argument, *its other arguments)


class TraceHub:
    """A Tracer. `bus_trace` True: the first runner that attaches its bus adds a bus sink (see tracebus)."""

    def __init__(self, sinks: Sequence[TraceSink] = (), *, capacity: int = DEFAULT_CAPACITY,
                 interval: float = DEFAULT_INTERVAL, bus_trace: bool = False) -> None:
        self.sinks: list[TraceSink] = list(sinks)
        self.capacity, self.interval, self.bus_trace = capacity, interval, bus_trace
        self.dropped = 0  # items (a record, or the records of one deferred step) dropped: queue full
        self.sink_errors = 0
        self.written = 0  # records handed to the sinks
        self._queue: list[TraceRecord | _Deferred] = []
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
        self._put(record)

    def defer(self, *item: Any) -> None:
        """`defer(rows_fn, *args)`: queue the records `rows_fn(out, *args)` appends rows of; the writer expands
        them. The arguments must not change afterwards. The event path's one call: kept to a list append."""
        queue = self._queue
        if len(queue) < self.capacity and not self._closed:
            queue.append(item)
            if len(queue) == 1:  # the writer sleeps until the queue stops being empty
                self._start()
        elif not self._closed:
            self.dropped += 1

    def _put(self, item: TraceRecord | _Deferred) -> None:
        if self._closed:
            return
        if len(self._queue) >= self.capacity:
            self.dropped += 1
            return
        self._queue.append(item)
        self._start()

    def _start(self) -> None:
        try:
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
            try:
                await asyncio.shield(self.flush())  # close() cancels this task: never mid-batch
            except Exception as exc:  # the writer outlives any failure
                self.sink_errors += 1
                self._report(f"the trace writer failed: {type(exc).__name__}: {exc}")

    def _expand(self, batch: Sequence[TraceRecord | _Deferred]) -> list[Row]:
        """The rows of the queued items. An item that fails to expand loses its records, nothing else."""
        rows: list[Row] = []
        for item in batch:
            try:
                if isinstance(item, TraceRecord):
                    rows.append(item.row())
                else:
                    item[0](rows, *item[1:])
            except Exception as exc:  # a bug in building a record loses that record, nothing else
                self.sink_errors += 1
                self._report(f"trace records could not be built: {type(exc).__name__}: {exc}")
        return rows

    def _records(self, rows: Sequence[Row]) -> list[TraceRecord]:
        records: list[TraceRecord] = []
        for row in rows:
            try:
                records.append(record_of(row))
            except Exception as exc:
                self.sink_errors += 1
                self._report(f"a trace record could not be built: {type(exc).__name__}: {exc}")
        return records

    async def flush(self) -> None:
        """Write everything queued so far to every sink."""
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            while self._queue:
                batch = self._queue[:MAX_BATCH]
                del self._queue[:MAX_BATCH]
                rows = self._expand(batch)
                sinks = list(self.sinks)
                lines: list[str] = []
                sensors: list[str] = []
                if any(takes_lines(sink) for sink in sinks):
                    skipped = render_rows(rows, lines, sensors)
                    if skipped:
                        self.sink_errors += skipped
                        self._report(f"{skipped} trace records could not be serialised")
                records = None if all(takes_lines(sink) for sink in sinks) else self._records(rows)
                for sink in sinks:
                    try:
                        if takes_lines(sink):
                            await sink.write_lines(lines, sensors)
                        else:
                            await sink.write(records or [])
                    except Exception as exc:
                        self.sink_errors += 1
                        self._report(f"a trace sink failed: {type(exc).__name__}: {exc}")
                self.written += len(rows)
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

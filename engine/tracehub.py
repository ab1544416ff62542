"""The engine's tracer: bounded in-memory buffers that a writer task drains in batches into the trace sinks.

Nothing here blocks or raises into the pipeline: when a buffer is full the record is dropped and counted (the
pipeline is never slowed down to keep a trace); sink failures are counted and logged once in a while. I/O
happens in the writer task (and the sinks' threads), never on the event path.

`defer(rows_fn, *args)` is how the engine hands over the records of one step or event: the function that
appends their rows (`engine.tracesteps`) and the immutable values it reads.

* When every sink takes JSON Lines (`--trace-format json`, the bus: the case that must stay cheap), the calls
  are expanded and rendered into JSON lines (`engine.trace.render_group`) at the end of the event-loop
  iteration that made them, and only the strings wait for the writer.
  Keeping the values (or rows, or records) until the writer runs instead costs more: thousands of objects per
  second outlive a young-generation collection, get promoted and make the garbage collector walk the engine's
  heap more often (measured: bench/README.md, "Tracing cost: what was tried").
* Otherwise (the human format, sinks that take record objects) the calls are queued as they are and the
  writer expands them into rows, lines and records.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from typing import Any, Protocol, TypeGuard

from buses.base import Bus
from engine.trace import Row, TraceRecord, record_of, render_group, render_rows

log = logging.getLogger("sensorium.trace")

DEFAULT_CAPACITY = 100_000
DEFAULT_INTERVAL = 0.1
MAX_BATCH = 2000
_REPORT_EVERY = 10.0


class TraceSink(Protocol):
    async def write(self, batch: Sequence[TraceRecord]) -> None: ...

    async def close(self) -> None: ...


class LineSink(TraceSink, Protocol):
    """A sink that only needs the records' JSON lines: `accepts_lines` True and `write_lines`, which gets
    chunks of JSON Lines (one or more whole lines each, each line ending with a newline) and, at the same
    index, the sensor of every record in the chunk."""

    @property
    def accepts_lines(self) -> bool: ...

    async def write_lines(self, chunks: Sequence[str], sensors: Sequence[str]) -> None: ...


def takes_lines(sink: TraceSink) -> TypeGuard[LineSink]:
    return bool(getattr(sink, "accepts_lines", False)) and callable(getattr(sink, "write_lines", None))


_Deferred = tuple[Any, ...]  # (function appending rows to its first argument, *its other arguments)


class TraceHub:
    """A Tracer. `bus_trace` True: the first runner that attaches its bus adds a bus sink (see tracebus).
    Add sinks through the constructor or `attach_bus` (they decide how records are buffered)."""

    def __init__(self, sinks: Sequence[TraceSink] = (), *, capacity: int = DEFAULT_CAPACITY,
                 interval: float = DEFAULT_INTERVAL, bus_trace: bool = False) -> None:
        self.sinks: list[TraceSink] = list(sinks)
        self.capacity, self.interval, self.bus_trace = capacity, interval, bus_trace
        self.dropped = 0  # records (or, queued calls: the records of one call) dropped because a buffer was full
        self.sink_errors = 0
        self.written = 0  # records handed to the sinks
        self._queue: list[TraceRecord | _Deferred] = []  # calls and records the writer expands
        self._lines: list[str] = []  # chunks of JSON lines rendered already (when every sink takes lines)
        self._sensors: list[str] = []  # the sensor of each chunk
        self._rendered = 0  # records in self._lines
        self._lines_only = False
        self._pending: list[_Deferred] = []  # calls to render at the end of the loop iteration
        self._wake = asyncio.Event()
        self._woken = False  # self._wake is set (a plain attribute: checked on every call)
        self._task: asyncio.Task[None] | None = None
        self._lock: asyncio.Lock | None = None
        self._bus: Bus | None = None
        self._reported = 0.0
        self._closed = False
        self._sinks_changed()

    @property
    def enabled(self) -> bool:
        """False when nothing would receive the records: the engine then does not build them."""
        return bool(self.sinks) or self.bus_trace

    def _sinks_changed(self) -> None:
        self._lines_only = bool(self.sinks) and all(takes_lines(sink) for sink in self.sinks)

    def defer(self, *call: Any) -> None:
        """`defer(rows_fn, *args)`: the records `rows_fn(out, *args)` appends rows of. The arguments must not
        change afterwards (they may be read later). Never raises, never blocks."""
        if self._closed:
            return
        if self._lines_only:
            if self._rendered >= self.capacity:
                self.dropped += 1
                return
            pending = self._pending
            pending.append(call)
            if len(pending) == 1:
                try:
                    asyncio.get_running_loop().call_soon(self._render_pending)
                except Exception:
                    self._render_pending()
            return
        if len(self._queue) >= self.capacity:
            self.dropped += 1
            return
        self._queue.append(call)
        if not self._woken:
            self._start()

    def _render_pending(self) -> None:
        """Expand and render the calls deferred since the last time (at the end of the current loop
        iteration: in a batch, before their values could outlive a young-generation collection)."""
        pending, self._pending = self._pending, []
        chunks, sensors = self._lines, self._sensors
        rendered = skipped = 0
        for call in pending:
            rows: list[Row] = []
            try:
                call[0](rows, *call[1:])
            except Exception as exc:  # a bug in building a record loses its call's records, nothing else
                self._failed(f"trace records could not be built: {type(exc).__name__}: {exc}")
                continue
            if rows:
                text, failed = render_group(rows)  # the rows of one call share sensor, event and time
                chunks.append(text)
                sensors.append(rows[0][1])
                rendered += len(rows) - failed
                skipped += failed
        self._rendered += rendered
        if skipped:
            self._failed(f"{skipped} trace records could not be serialised", skipped)
        if not self._woken:
            self._start()

    def emit(self, record: TraceRecord) -> None:
        """One record, made already. Never raises, never blocks."""
        if self._closed:
            return
        if self._lines_only:
            self.defer(_record_rows, record)
            return
        if len(self._queue) >= self.capacity:
            self.dropped += 1
            return
        self._queue.append(record)
        if not self._woken:
            self._start()

    def _start(self) -> None:
        """Wake the writer (starting it on first use)."""
        try:
            if self._task is None:
                self._task = asyncio.get_running_loop().create_task(self._writer(), name="trace-writer")
            self._wake.set()
            self._woken = True
        except Exception:  # tracing must never break the pipeline (e.g. no running loop)
            return

    def _failed(self, message: str, count: int = 1) -> None:
        self.sink_errors += count
        self._report(message)

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
            self._sinks_changed()

    async def _writer(self) -> None:
        while True:
            await self._wake.wait()
            await asyncio.sleep(self.interval)  # let a batch gather
            self._wake.clear()
            self._woken = False
            try:
                await asyncio.shield(self.flush())  # close() cancels this task: never mid-batch
            except Exception as exc:  # the writer outlives any failure
                self._failed(f"the trace writer failed: {type(exc).__name__}: {exc}")

    def _expand(self, batch: Sequence[TraceRecord | _Deferred]) -> list[Row]:
        """The rows of queued calls and records. A call that fails loses its records, nothing else."""
        rows: list[Row] = []
        for item in batch:
            try:
                if isinstance(item, TraceRecord):
                    rows.append(item.row())
                else:
                    item[0](rows, *item[1:])
            except Exception as exc:
                self._failed(f"trace records could not be built: {type(exc).__name__}: {exc}")
        return rows

    def _records(self, rows: Sequence[Row]) -> list[TraceRecord]:
        records: list[TraceRecord] = []
        for row in rows:
            try:
                records.append(record_of(row))
            except Exception as exc:
                self._failed(f"a trace record could not be built: {type(exc).__name__}: {exc}")
        return records

    async def _write(self, lines: list[str], sensors: list[str], records: list[TraceRecord] | None) -> None:
        for sink in list(self.sinks):
            try:
                if takes_lines(sink):
                    if lines:
                        await sink.write_lines(lines, sensors)
                elif records:
                    await sink.write(records)
            except Exception as exc:
                self._failed(f"a trace sink failed: {type(exc).__name__}: {exc}")

    async def flush(self) -> None:
        """Write everything buffered so far to every sink."""
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if self._pending:
                self._render_pending()
            while self._lines:
                lines, sensors = self._lines, self._sensors
                self._lines, self._sensors = [], []
                self.written += self._rendered
                self._rendered = 0
                await self._write(lines, sensors, None)
            while self._queue:
                batch = self._queue[:MAX_BATCH]
                del self._queue[:MAX_BATCH]
                rows = self._expand(batch)
                lines, sensors = [], []
                if any(takes_lines(sink) for sink in self.sinks):
                    skipped = render_rows(rows, lines, sensors)
                    if skipped:
                        self._failed(f"{skipped} trace records could not be serialised", skipped)
                records = None if self._lines_only else self._records(rows)
                self.written += len(rows)
                await self._write(lines, sensors, records)
            if self.dropped:
                self._report(f"{self.dropped} trace records dropped so far (trace buffer full)")

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
            log.warning("%d trace records were dropped (trace buffer full)", self.dropped)


def _record_rows(out: list[Row], record: TraceRecord) -> None:
    out.append(record.row())

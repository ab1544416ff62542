"""The engine's tracer: a bounded in-memory buffer that a writer task drains in batches into the trace sinks.

Nothing here blocks or raises into the pipeline: when the buffer is full the record is dropped and counted (the
pipeline is never slowed down to keep a trace); sink failures are counted and logged once in a while. I/O
happens in the writer task (and the sinks' threads), never on the event path.

`defer(rows_fn, *args)` is how the engine hands over the records of one step or event: the function that
appends them (`engine.trace.steps`) and the immutable values it reads. The calls are expanded into records
`EXPAND_EVERY` at a time (and whenever the writer runs): keeping the values (stage results, outcomes) until
the writer's next batch instead would let thousands of objects per second outlive a young-generation
collection, get promoted and make the garbage collector walk the engine's heap more often (records themselves
are not tracked by it). When every sink takes JSON Lines (the bus trace, `--trace-format json`), the records are
encoded right there (`engine.trace.records.encode_chunks`) and only their lines wait for the writer; otherwise
the writer encodes each batch once (on the loop a slice at a time, or in a thread with `encode_in_thread`) for
the sinks that take lines and hands the records to the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol, TypeGuard

from sensorium.buses.base import Bus
from sensorium.engine.trace.records import DETAILS, TraceRecord, encode_chunks

log = logging.getLogger("sensorium.trace")

DEFAULT_CAPACITY = 100_000
DEFAULT_INTERVAL = 0.1
# Deferred calls are built into records this many at a time (16 events' worth: a routine event is one call, the
# others three or more): few enough that the values they hold (stage results, outcomes) are mostly gone before the
# next young-generation collection, and no callback is scheduled per loop iteration. (64 while an event was three
# calls; with one, 16 measured +7.7% instructions against 64's +7.9%, within two runs' spread.)
EXPAND_EVERY = 16
SLICE_RECORDS = 2000  # records encoded on the loop at a time (about a millisecond)
_REPORT_EVERY = 10.0


class TraceSink(Protocol):
    async def write(self, batch: Sequence[TraceRecord]) -> None: ...

    async def close(self) -> None: ...


class LineSink(TraceSink, Protocol):
    """A sink that only needs the records' JSON Lines: `accepts_lines` True and `write_lines`, which gets
    chunks of JSON Lines (UTF-8, one or more whole lines each, each line ending with a newline) and, at the same
    index, the sensor of every record in the chunk."""

    @property
    def accepts_lines(self) -> bool: ...

    async def write_lines(self, chunks: Sequence[bytes], sensors: Sequence[str]) -> None: ...


def takes_lines(sink: TraceSink) -> TypeGuard[LineSink]:
    return bool(getattr(sink, "accepts_lines", False)) and callable(getattr(sink, "write_lines", None))


_Deferred = tuple[Callable[..., None], tuple[Any, ...]]  # (function appending records to its first argument, others)


def _append(out: list[TraceRecord], record: TraceRecord) -> None:
    """`TraceHub.emit`'s deferred call: the record made already."""
    out.append(record)


class TraceHub:
    """A Tracer. `bus_trace` True: the first runner that attaches its bus adds a bus sink (see tracebus);
    `detail`: one of `engine.trace.records.DETAILS`.
    Add sinks through the constructor or `attach_bus`."""

    encode_in_thread = False
    """Encode (and compress, for the bus) each batch in a worker thread (True) or on the event loop, a slice at a
    time (False). The loop is cheaper: in three side-by-side runs of `bench.engine` (tracing variants, 24-48
    rounds each) the thread's hand-overs and GIL contention cost 3-6% more CPU per event than the loop spent
    encoding; a slice (`SLICE_RECORDS`) holds the loop for about a millisecond."""

    routine_records = True
    """Whether a routine event may be one `Routine` record (`compact`); False tells every event step by step (the
    benchmark's `engine-trace-bus-steps`, to compare the two in one run)."""

    def __init__(self, sinks: Sequence[TraceSink] = (), *, capacity: int = DEFAULT_CAPACITY,
                 interval: float = DEFAULT_INTERVAL, bus_trace: bool = False, detail: str = "all") -> None:
        if detail not in DETAILS:
            raise ValueError(f"trace detail {detail!r}: not one of {', '.join(DETAILS)}")
        self.detail = detail
        self.sinks: list[TraceSink] = list(sinks)
        self.capacity, self.interval, self.bus_trace = capacity, interval, bus_trace
        self.dropped = 0  # records (or calls: the records of one call) dropped because the buffer was full
        self.sink_errors = 0
        self.written = 0  # records handed to the sinks
        self.batches = 0  # batches they were handed in
        self._records: list[TraceRecord] = []  # built records the writer hands to the sinks next
        self._chunks: list[bytes] = []  # or, when every sink takes lines, their JSON Lines (`_early`)
        self._chunk_sensors: list[str] = []  # the sensor of each chunk
        self._encoded = 0  # records in _chunks
        self._pending: list[_Deferred] = []  # calls waiting to be built into records
        self._wake = asyncio.Event()
        self._woken = False  # self._wake is set (a plain attribute: checked on every call)
        self._task: asyncio.Task[None] | None = None
        self._lock: asyncio.Lock | None = None
        self._bus: Bus | None = None
        self._reported = 0.0
        self._closed = False

    @property
    def enabled(self) -> bool:
        """False when nothing would receive the records: the engine then does not build them."""
        return bool(self.sinks) or self.bus_trace

    @property
    def compact(self) -> bool:
        """At DETAIL "decisions", when every sink says its readers get a `Routine` record's steps back
        (`accepts_routine`: the bus trace), a routine event may be told in one record (`Tracer.compact`)."""
        return self.routine_records and self.detail == "decisions" and all(
            getattr(sink, "accepts_routine", False) for sink in self.sinks)

    def defer(self, rows_fn: Callable[..., None], *args: Any) -> None:
        """The records `rows_fn(out, *args)` appends. The arguments must not change afterwards (they are read
        when the records are built: once `EXPAND_EVERY` calls are waiting, or when the writer runs). Never
        raises, never blocks: on the event path, one list append."""
        pending = self._pending
        pending.append((rows_fn, args))
        if len(pending) >= EXPAND_EVERY:
            self._expand_pending()
        elif not self._woken:
            self._start()

    def _early(self) -> bool:
        """Whether records are encoded as soon as they are built: when every sink takes JSON Lines and encoding
        is not left to a thread. The writer then only joins (and compresses) lines: the records live for
        microseconds instead of a writer interval, so the memory they take is reused while it is still in the
        CPU's cache, and the encoder reads them from there (bench/README.md, ninth session)."""
        return not self.encode_in_thread and all(takes_lines(sink) for sink in self.sinks)

    def _expand_pending(self) -> None:
        """Build the records of the calls deferred since the last time (dropping a call's records when the
        buffer is full or the hub closed), and encode them when `_early`. A call that fails loses its records,
        nothing else."""
        pending, self._pending = self._pending, []
        if self._closed:
            return
        early = self._early()
        out: list[TraceRecord] = [] if early else self._records
        held = self._encoded + (len(self._records) if early else 0)  # what the buffer holds besides `out`
        capacity = self.capacity - held
        for rows_fn, args in pending:
            size = len(out)
            if size >= capacity:
                self.dropped += 1
                continue
            try:
                rows_fn(out, *args)
            except Exception as exc:  # a bug in building a record
                del out[size:]
                self._failed(f"trace records could not be built: {type(exc).__name__}: {exc}")
        if early and out:
            chunks, sensors, skipped = encode_chunks(out)
            self._chunks += chunks
            self._chunk_sensors += sensors
            self._encoded += len(out) - skipped
            if skipped:
                self._failed(f"{skipped} trace records could not be serialised", skipped)
        if not self._woken:
            self._start()

    def emit(self, record: TraceRecord) -> None:
        """One record, made already (after the records of the calls deferred before it, or counted as dropped
        at once when the buffer is full). Never raises, never blocks."""
        self._pending.append((_append, (record,)))
        self._expand_pending()

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
        from sensorium.engine.trace.bus import bus_trace_sink

        try:
            sink = bus_trace_sink(bus)
        except Exception as exc:
            log.warning("trace records will not be published on %s: %s", bus.url, exc)
            return
        self._bus = bus
        if sink is not None:
            sink.in_thread = self.encode_in_thread
            self.sinks.append(sink)

    async def _writer(self) -> None:
        while True:
            await self._wake.wait()
            await asyncio.sleep(self.interval)  # let a batch gather
            self._wake.clear()
            self._woken = False
            try:
                await asyncio.shield(self._flush(drain=False))  # close() cancels this task: never mid-batch
            except Exception as exc:  # the writer outlives any failure
                self._failed(f"the trace writer failed: {type(exc).__name__}: {exc}")

    async def _write(self, batch: list[TraceRecord], chunks: list[bytes], sensors: list[str]) -> None:
        """Hand `batch` (records) and `chunks` (records encoded already, with their `sensors`) to every sink: the
        records' lines after the chunks' to sinks that take lines, the records alone to the others."""
        sinks = list(self.sinks)
        if batch and any(takes_lines(sink) for sink in sinks):
            if self.encode_in_thread:  # (records are frozen, and the hub no longer touches this batch)
                more, of, skipped = await asyncio.to_thread(encode_chunks, batch)
                chunks, sensors = chunks + more, sensors + of
            else:
                skipped = 0
                for start in range(0, len(batch), SLICE_RECORDS):
                    if start:
                        await asyncio.sleep(0)  # let the pipeline run between slices
                    more, of, failed = encode_chunks(batch[start:start + SLICE_RECORDS] if start or len(batch) >
                                                     SLICE_RECORDS else batch)
                    chunks, sensors = chunks + more, sensors + of
                    skipped += failed
            if skipped:
                self._failed(f"{skipped} trace records could not be serialised", skipped)
        for sink in sinks:
            try:
                if takes_lines(sink):
                    if chunks:
                        await sink.write_lines(chunks, sensors)
                elif batch:
                    await sink.write(batch)
            except Exception as exc:
                self._failed(f"a trace sink failed: {type(exc).__name__}: {exc}")

    async def flush(self) -> None:
        """Write everything buffered so far to every sink, and what comes meanwhile, until nothing is left."""
        await self._flush(drain=True)

    async def _flush(self, drain: bool) -> None:
        """One batch of what is buffered (`drain`: batches until nothing is left). The writer takes one batch per
        interval: records that come while a batch is being written (a bus publish waits for the server's
        acknowledgement) wait for the next one. Draining instead, the bus trace wrote a batch per round trip
        during a burst, about 90 records each instead of an interval's 400 (bench.engine, 2026-12-07)."""
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if self._pending:
                self._expand_pending()
            while self._records or self._chunks:
                batch, self._records = self._records, []
                chunks, sensors, encoded = self._chunks, self._chunk_sensors, self._encoded
                self._chunks, self._chunk_sensors, self._encoded = [], [], 0
                self.written += len(batch) + encoded
                self.batches += 1
                await self._write(batch, chunks, sensors)
                if not drain:
                    break
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

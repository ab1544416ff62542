"""Trace records: what each step did and why, and the `Tracer` interface the runner calls (composition root).

One record class per step, each a frozen `msgspec.Struct` tagged with its step. Records of one event share
`event` (the CloudEvent id); records of one firing share `firing`. Their JSON form (`step`, `time`, `sensor`,
`event`, then the step's own fields, in declaration order) is what `--trace-format json`, the bus trace stream
and `sensorium trace` use; `encode_lines` writes it in one call for a whole batch (msgspec's C encoder: a
hand-written template encoder this replaced cost three times as much, bench/README.md). Records never hold a
secret: headers are redacted before a record is made. Tracers must never raise or block.

Records are built on the event path in numbers (13 per event in the benchmark's sensor), so they are kept cheap:
`gc=False` (they never form reference cycles, so the garbage collector need not track them) and `time` is the
formatted millisecond (`stamp`, cached) rather than a float formatted again for every record.
"""

from __future__ import annotations

import logging
import time as _time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from itertools import groupby
from operator import attrgetter
from typing import Any, Protocol

import msgspec

from sensorium.buses.base import Bus
from sensorium.triggers.policy import VerdictKind

__all__ = [
    "CHUNK_RECORDS", "DETAILS", "NULL_TRACER", "Acknowledged", "ConditionChecked", "DependencyMatched",
    "EmittingTracer", "FilterChecked", "FiringDone", "FiringStarted", "ParamResolved", "Received",
    "RecordingTracer", "RequestBuilt", "ResponseReceived", "RetryScheduled", "Routine", "SourceProblem",
    "TraceRecord", "Tracer", "Transformed", "Unmatched", "encode_chunks", "encode_lines", "now", "stamp",
]

log = logging.getLogger("sensorium.trace")


def now() -> str:
    """The current time as a record's `time` (`stamp`)."""
    return stamp(_time.time())


class TraceRecord(msgspec.Struct, kw_only=True, frozen=True, gc=False, tag_field="step"):
    """A step's record. `time` is RFC 3339 UTC with milliseconds (`stamp`)."""

    time: str = msgspec.field(default_factory=now)
    sensor: str
    event: str | None

    @property
    def step(self) -> str:
        return str(self.__struct_config__.tag)

    def to_json(self) -> dict[str, Any]:
        """Plain JSON-able dict: step, time, sensor, event, then the step's fields in declaration order."""
        out: dict[str, Any] = msgspec.to_builtins(self, enc_hook=_fallback)
        return out

    def json_line(self) -> str:
        """The record's JSON line (compact, UTF-8 text, newline-terminated)."""
        data, _ = encode_lines((self,))
        return data.decode()


def _fallback(value: Any) -> Any:
    """JSON form of a value msgspec does not encode itself (a record field meant to hold event data or text got
    something else): mappings and collections as their JSON kin, anything else as its text."""
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, (set, frozenset)):
        return sorted(value, key=repr)
    return str(value)


_ENCODER = msgspec.json.Encoder(enc_hook=_fallback)


def encode_lines(records: Sequence[TraceRecord]) -> tuple[bytes, int]:
    """The JSON Lines of `records` in one piece, and how many records could not be encoded (left out)."""
    try:
        return _ENCODER.encode_lines(records), 0
    except Exception:  # one bad record (e.g. a dict with keys of mixed types): find it, keep the others
        lines: list[bytes] = []
        for record in records:
            try:
                lines.append(_ENCODER.encode(record) + b"\n")
            except Exception:
                continue
        return b"".join(lines), len(records) - len(lines)


def encode_chunks(batch: Sequence[TraceRecord]) -> tuple[list[bytes], list[str], int]:
    """The JSON Lines of `batch` in order, in chunks of records of one sensor (at most `CHUNK_RECORDS` each:
    encoding holds the GIL, so a thread that encodes a large batch lets the event loop in between chunks), each
    chunk's sensor, and how many records could not be encoded."""
    chunks: list[bytes] = []
    sensors: list[str] = []
    skipped = 0
    for sensor, run in groupby(batch, _SENSOR):  # C-level: this runs over every record
        records = list(run)
        for start in range(0, len(records), CHUNK_RECORDS):
            data, failed = encode_lines(records[start:start + CHUNK_RECORDS] if start or len(records) > CHUNK_RECORDS
                                        else records)
            skipped += failed
            if data:
                chunks.append(data)
                sensors.append(sensor)
    return chunks, sensors, skipped


CHUNK_RECORDS = 1000
_SENSOR = attrgetter("sensor")
_MILLIS = tuple(f".{milli:03d}Z" for milli in range(1000))
_SECONDS = tuple(f"{second:02d}" for second in range(60))
_ms, _ms_text = -1, ""  # the last millisecond stamped (steps come in time order, many in one millisecond)
_second, _second_text = -1, ""  # the last whole second formatted
_minute, _minute_text = -1, ""  # the last minute formatted (strftime, about 2 us, once a minute)


def stamp(at: float) -> str:
    """`at` (seconds since the epoch) as a record's `time`: RFC 3339 UTC with milliseconds. Called for every
    step on the event path: formats each minute once, then each second and each millisecond once."""
    global _ms, _ms_text, _second, _second_text, _minute, _minute_text
    ms = int(at * 1000)
    if ms != _ms:
        whole, milli = divmod(ms, 1000)
        if whole != _second:
            minute, second = divmod(whole, 60)
            if minute != _minute:
                _minute, _minute_text = minute, datetime.fromtimestamp(minute * 60, UTC).strftime("%Y-%m-%dT%H:%M:")
            _second, _second_text = whole, _minute_text + _SECONDS[second]
        _ms, _ms_text = ms, _second_text + _MILLIS[milli]
    return _ms_text


class Received(TraceRecord, kw_only=True, frozen=True, tag="received"):
    """A message arrived. `position` is `<subject> seq <n>` (JetStream) or `<topic>[<partition>]@<offset>`
    (Kafka); `attributes` the CloudEvent attributes; `content_type` the data's (`datacontenttype`);
    `data_preview` the start of the data (`engine.core.preview`: at most 512 bytes, credentials masked; a
    webhook's data shows the request's headers, Content-Type among them, then its body); `error` set when the
    message is not a CloudEvent."""

    bus: str
    position: str
    delivery: int | None = None
    attributes: Mapping[str, str] = msgspec.field(default_factory=dict)
    data_bytes: int = 0
    content_type: str = ""
    data_preview: str = ""
    error: str | None = None


class Unmatched(TraceRecord, kw_only=True, frozen=True, tag="unmatched"):
    """No dependency of `sensor` listens to the event's (source, subject). `sensorium test` records it for the
    sensor under test; the running engine records it, once per sensor, for an event one of its webhooks stored
    that no loaded sensor listens to (`engine.unmatched`: a sensor's consumer is only handed events some
    dependency listens to, so the publish path is where it can be seen)."""

    source: str
    subject: str
    listening: tuple[str, ...]  # "<eventSourceName>.<eventName>" of the sensor's dependencies


class SourceProblem(TraceRecord, kw_only=True, frozen=True, tag="source"):
    """A source could not turn what came in into a stored event: a webhook request refused (`status` 401
    signature, 403 network, 500 transform, 503 bus), a poll that failed, a custom source that raised. Recorded for
    every sensor listening to the entry's (source, subject), so `sensorium trace --sensor NAME` shows why an
    expected event never came (`engine.sourceproblems`). `problem` names no secret and no body."""

    source: str
    subject: str
    kind: str
    problem: str
    status: int | None = None


class DependencyMatched(TraceRecord, kw_only=True, frozen=True, tag="dependency"):
    """A dependency whose eventSourceName/eventName matched, with its filter decision. `passed` and `error`
    can both be set: Argo lets some filter errors pass (semantics reference section 2.2)."""

    dependency: str
    passed: bool
    error: str | None
    reason: str


class Transformed(TraceRecord, kw_only=True, frozen=True, tag="transform"):
    """A dependency's transform (jq or script) before its filters: the new data (size and start) or, when it
    failed, the error (the event is then dropped for this dependency)."""

    dependency: str
    kind: str
    passed: bool
    data_bytes: int
    data_preview: str
    reason: str
    error: str | None = None


class FilterChecked(TraceRecord, kw_only=True, frozen=True, tag="filter"):
    """One filter check: `target` looked at (a path or a context attribute), the value `seen` there (None when
    missing), the values `wanted`, the decision and why. A whole-kind decision has an empty target."""

    dependency: str
    kind: str
    target: str
    seen: str | None
    wanted: tuple[str, ...]
    comparator: str
    type: str
    passed: bool
    reason: str
    error: str | None = None


class ConditionChecked(TraceRecord, kw_only=True, frozen=True, tag="condition"):
    """A trigger's expression after `dependency` passed: the dependencies now held and whether it holds."""

    trigger: str
    expression: str
    dependency: str
    held: tuple[str, ...]
    satisfied: bool
    immediate: bool


class FiringStarted(TraceRecord, kw_only=True, frozen=True, tag="firing"):
    firing: str
    trigger: str
    kind: str
    events: Mapping[str, str]  # dependency -> event id


class ParamResolved(TraceRecord, kw_only=True, frozen=True, tag="param"):
    """One trigger parameter: `where` it is declared (parameters, http.parameters, payload, dynamicHeaders),
    its source (`dependency` and `source`: dataKey, contextKey, jsonPath, jmesPath, value or event), the
    `path` read, the resolved `value` (None: skipped) and `dest`."""

    firing: str
    trigger: str
    where: str
    dependency: str
    source: str
    path: str
    value: str | None
    dest: str


class RequestBuilt(TraceRecord, kw_only=True, frozen=True, tag="request"):
    """The HTTP request of a firing; secret header values are "***"; `body_preview` is the start of the body."""

    firing: str
    trigger: str
    method: str
    url: str
    headers: Mapping[str, str]
    body_bytes: int
    body_preview: str


class ResponseReceived(TraceRecord, kw_only=True, frozen=True, tag="response"):
    """One attempt: the status (None when no response arrived, `error` says why), the latency, the status
    policy's `verdict` on it (success, retryable or terminal) with its `reason`, and `body_preview`, the start
    of the body the target answered (at most 512 bytes, credentials and the request's secrets masked). `time`
    is when the response came."""

    firing: str
    trigger: str
    attempt: int
    status: int | None
    latency_ms: float
    verdict: str
    reason: str
    error: str | None = None
    rate_limited_ms: float = 0.0
    body_preview: str = ""


class RetryScheduled(TraceRecord, kw_only=True, frozen=True, tag="retry"):
    firing: str
    trigger: str
    attempt: int  # the attempt that will run next
    delay_s: float


class FiringDone(TraceRecord, kw_only=True, frozen=True, tag="outcome"):
    firing: str
    trigger: str
    success: bool
    attempts: int
    error: str | None = None
    note: str = ""


class Acknowledged(TraceRecord, kw_only=True, frozen=True, tag="ack"):
    """How the delivery was settled (`ack` or `nak`) and why."""

    position: str
    action: str
    reason: str


class Routine(TraceRecord, frozen=True, tag="routine"):
    """An event that went as it should, in one record: it was received, its one dependency passed (and nothing
    else in the sensor was decided), one trigger fired for it alone and its first request got a success, and the
    delivery was acknowledged. At DETAIL "decisions" the engine publishes this on the bus in place of the five
    records that say it step by step (`received`, `dependency`, `request`, `response`, `ack`): building and
    encoding one record costs less than half of five (bench/README.md, eleventh session). Readers of the bus
    trace (`engine.trace.bus`, `sensorium trace`) never see it: `steps()` gives them the five back, field for
    field.

    `time` is when the event was received (the `received` and `dependency` records' time). The engine writes one
    of these for every event that goes well, so what the five records work out is left to `steps()`, on the
    reader's side: the event's `attributes` (source, type, subject, datacontenttype, time) and `extensions`
    make the `received` record's; `timing` is when the request went out (seconds since the epoch), how long
    its response took and how long it waited for its rate limiter (seconds); `acked` is when the delivery was
    acknowledged (seconds since the epoch); `headers` are the request's (name, value) pairs. Its own fields are
    given by position (CPython passes more than 15 keywords through a dict built for the call: 13,000
    instructions more per record), so they have no defaults; tests/test_trace_build.py holds the call to that.

    `data_preview` None (what the engine writes on a bus that keeps delivered events, `Bus.keeps_delivered`):
    the event's data is not copied into the trace. The event is stored on the bus at `position`, within the
    bus's own limits, and the reader (`engine.trace.bus.read_traces`) looks it up there and makes the
    `received` record's preview with the same function the engine would have used; `steps()` alone leaves it
    "". A string: the engine copied the preview (on a bus that does not keep delivered events, or an engine
    before 2026-12-07). Making the preview was a quarter of the trace's cost per event (the credential scan of
    the data, then its escaped copy encoded and compressed: 18k of 71k instructions, bench/README.md,
    fourteenth session), and the trace stream then holds no copy of event data for the events that went well."""

    bus: str
    position: str
    delivery: int | None
    attributes: tuple[str, str, str, str, str]
    extensions: Mapping[str, str] | None
    data_bytes: int
    data_preview: str | None
    dependency: str
    dependency_reason: str
    firing: str
    trigger: str
    method: str
    url: str
    headers: tuple[tuple[str, str], ...]
    body_bytes: int
    body_preview: str
    status: int
    timing: tuple[float, float, float]
    verdict_reason: str
    response_preview: str
    acked: float
    ack_reason: str

    def steps(self) -> tuple[TraceRecord, ...]:
        """The five records this one stands for, as the engine writes them at DETAIL "decisions"."""
        sensor, event, firing, trigger = self.sensor, self.event, self.firing, self.trigger
        sent, latency, waited = self.timing
        source, type_, subject, content_type, event_time = self.attributes
        attributes = {"id": event or "", "source": source, "type": type_, "subject": subject,
                      "datacontenttype": content_type, "time": event_time}
        if self.extensions:  # (after the others: engine.trace.steps.attributes)
            attributes.update(self.extensions)
        return (
            Received(time=self.time, sensor=sensor, event=event, bus=self.bus, position=self.position,
                     delivery=self.delivery, attributes=attributes, data_bytes=self.data_bytes,
                     content_type=content_type, data_preview=self.data_preview or ""),
            DependencyMatched(time=self.time, sensor=sensor, event=event, dependency=self.dependency, passed=True,
                              error=None, reason=self.dependency_reason),
            RequestBuilt(time=stamp(sent), sensor=sensor, event=event, firing=firing, trigger=trigger,
                         method=self.method, url=self.url, headers=dict(self.headers), body_bytes=self.body_bytes,
                         body_preview=self.body_preview),
            ResponseReceived(time=stamp(sent + latency), sensor=sensor, event=event, firing=firing,
                             trigger=trigger, attempt=1, status=self.status, latency_ms=round(latency * 1000, 3),
                             verdict=SUCCESS, reason=self.verdict_reason,
                             # (as engine.trace.steps.fired_rows has it: round() of a zero is the zero itself)
                             rate_limited_ms=round(waited * 1000, 3) if waited else waited * 1000,
                             body_preview=self.response_preview),
            Acknowledged(time=stamp(self.acked), sensor=sensor, event=event, position=self.position, action="ack",
                         reason=self.ack_reason),
        )


SUCCESS = str(VerdictKind.SUCCESS)  # a response's verdict when its status was a success


DETAILS = ("decisions", "all")
"""How much a trace says about what went as it should (`Tracer.detail`). "all": every step, filter check and
resolved trigger parameter gets its record. "decisions" (`sensorium run`'s default without --trace: the records of
each event are built on its path, bench/README.md): what did not go as it should keeps every record, what did
loses the records the others imply; `engine.trace.steps.stage_rows` and `fired_rows` say which."""


class Tracer(Protocol):
    """What the runner calls on a tracer. None of it may raise into the pipeline or block it.

    `enabled` False lets the runner skip tracing altogether (none of the others is then called); `detail` is
    one of `DETAILS`, read once by each runner; `compact` True (at DETAIL "decisions" only) lets the runner tell
    a routine event in one `Routine` record (read by each runner once it attached its bus: every sink the tracer
    writes to must then give its readers the records the `Routine` stands for). `defer(rows_fn,
    *args)` is the event path's one call per step: the records are whatever `rows_fn(out, *args)` appends to the
    list `out`, built now or later (every argument is immutable); `emit` takes one finished record. `attach_bus`
    offers the bus the sensor runs on (once per sensor, after its consumer exists: a tracer may publish records
    there); `flush` writes what the tracer holds, while the bus is still open (the runner bounds it in time).
    `EmittingTracer` gives a tracer that only has `emit` the other three."""

    @property
    def enabled(self) -> bool: ...

    @property
    def detail(self) -> str: ...

    @property
    def compact(self) -> bool: ...

    def emit(self, record: TraceRecord) -> None: ...

    def defer(self, rows_fn: Callable[..., None], *args: Any) -> None: ...

    def attach_bus(self, bus: Bus) -> None: ...

    async def flush(self) -> None: ...


class EmittingTracer:
    """A tracer built on `emit` alone: `defer` builds the records at once and emits them (a failure is logged at
    DEBUG, never raised); it publishes nothing on the bus and holds nothing to flush."""

    enabled = True
    detail = "all"
    compact = False

    def emit(self, record: TraceRecord) -> None:
        raise NotImplementedError

    def defer(self, rows_fn: Callable[..., None], *args: Any) -> None:
        try:
            out: list[TraceRecord] = []
            rows_fn(out, *args)
            for record in out:
                self.emit(record)
        except Exception as exc:
            log.debug("trace record dropped: %r", exc)

    def attach_bus(self, bus: Bus) -> None:
        return None

    async def flush(self) -> None:
        return None


class _NullTracer(EmittingTracer):
    enabled = False

    def emit(self, record: TraceRecord) -> None:
        return None


NULL_TRACER: Tracer = _NullTracer()


class RecordingTracer(EmittingTracer):
    """Keeps every record in memory (tests, dry runs)."""

    def __init__(self) -> None:
        self.records: list[TraceRecord] = []

    def emit(self, record: TraceRecord) -> None:
        self.records.append(record)

    def steps(self) -> list[str]:
        return [r.step for r in self.records]

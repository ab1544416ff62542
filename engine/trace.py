"""Trace records: what each step did and why (kernel: imports nothing from the project).

One frozen dataclass per step. Records of one event share `event` (the CloudEvent id); records of one firing
share `firing`. `to_json()` gives the JSON Lines form (`step`, `time`, `sensor`, `event`, then the step's own
fields) that `--trace-format json`, the bus trace stream and `sensorium trace` use. Records never hold a
secret: headers are redacted before a record is made. Tracers must never raise or block.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from json.encoder import c_make_encoder, encode_basestring  # type: ignore[attr-defined]
from typing import Any, ClassVar, Protocol

__all__ = [
    "NULL_TRACER", "Acknowledged", "ConditionChecked", "DependencyMatched", "FilterChecked", "FiringDone",
    "FiringStarted", "ParamResolved", "Received", "RecordingTracer", "RequestBuilt",
    "ResponseReceived", "RetryScheduled", "TraceRecord", "Tracer", "Transformed", "Unmatched", "format_time",
]


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class TraceRecord:
    step: ClassVar[str] = ""

    sensor: str
    event: str | None
    at: float = dataclasses.field(default_factory=time.time)

    @classmethod
    def _fields(cls) -> tuple[str, ...]:
        names = cls.__dict__.get("_names_cache")
        if names is None:
            names = tuple(f.name for f in dataclasses.fields(cls) if f.name not in ("sensor", "event", "at"))
            type.__setattr__(cls, "_names_cache", names)
        return names

    def to_json(self) -> dict[str, Any]:
        """Plain JSON-able dict: step, time, sensor, event, then the step's fields in declaration order."""
        out: dict[str, Any] = {"step": self.step, "time": format_time(self.at), "sensor": self.sensor,
                               "event": self.event}
        for name in self._fields():
            out[name] = getattr(self, name)
        return out

    def json_line(self) -> str:
        """`json.dumps(self.to_json())` in compact form plus a newline, without building the dict: each
        record class gets an encoder generated from its field types on first use (the writer's hot path)."""
        encode = type(self).__dict__.get("_json_line")
        if encode is None:
            encode = _compile_json_line(type(self))
            type.__setattr__(type(self), "_json_line", encode)
        return encode(self)  # type: ignore[no-any-return]


_DUMPS = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
# The C encoder json.dumps uses, made once (json.dumps builds one per call): 3x faster for small values.
_C_ENCODE = (c_make_encoder(None, None, encode_basestring, None, ":", ",", False, False, True)
             if c_make_encoder is not None else None)


def _dumps(value: Any) -> str:
    if _C_ENCODE is not None:
        try:
            return "".join(_C_ENCODE(value, 0))
        except TypeError:  # not a dict/list/tuple/str/number (e.g. another Mapping): the general path
            pass
    return _DUMPS(value)
_BY_TYPE = {  # field annotation -> expression encoding the field `{0}` exactly as json.dumps would
    "str": "_s({0})", "str | None": "('null' if {0} is None else _s({0}))", "bool": "('true' if {0} else 'false')",
    "int": "str({0})", "int | None": "('null' if {0} is None else str({0}))", "float": "repr({0})",
}


def _compile_json_line(cls: type[TraceRecord]) -> Any:
    pieces = [repr('{"step":"' + cls.step + '","time":"'), "_time(self.at)"]
    first = True
    for f in dataclasses.fields(cls):
        if f.name == "at":
            continue
        pieces.append(repr(('","' if first else ',"') + f.name + '":'))
        first = False
        pieces.append(_BY_TYPE.get(str(f.type), "_dumps({0})").format(f"self.{f.name}"))
    pieces.append(repr("}\n"))
    source = f"def json_line(self):\n    return ''.join(({', '.join(pieces)}))\n"
    namespace: dict[str, Any] = {"_s": encode_basestring, "_dumps": _dumps, "_time": format_time}
    exec(source, namespace)  # the same technique dataclasses use to build __init__
    return namespace["json_line"]


_second: list[Any] = [-1, ""]  # cache: the last whole second formatted (records come in time order)


_milli: list[Any] = [-1, ""]  # cache: the last millisecond formatted


def format_time(at: float) -> str:
    """RFC 3339 UTC with milliseconds."""
    milli = int(at * 1000)
    if milli == _milli[0]:
        return str(_milli[1])
    whole = milli // 1000
    if whole != _second[0]:
        _second[0], _second[1] = whole, datetime.fromtimestamp(whole, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    text = f"{_second[1]}.{milli % 1000:03d}Z"
    _milli[0], _milli[1] = milli, text
    return text


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class Received(TraceRecord):
    """A message arrived. `position` is `<subject> seq <n>` (JetStream) or `<topic>[<partition>]@<offset>`
    (Kafka); `attributes` the CloudEvent attributes; `error` set when the message is not a CloudEvent."""

    step: ClassVar[str] = "received"
    bus: str
    position: str
    delivery: int | None = None
    attributes: Mapping[str, str] = dataclasses.field(default_factory=dict)
    data_bytes: int = 0
    error: str | None = None


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class Unmatched(TraceRecord):
    """No dependency listens to the event's (source, subject): `sensorium test` only (the engine's consumer
    is only handed events some dependency listens to)."""

    step: ClassVar[str] = "unmatched"
    source: str
    subject: str
    listening: tuple[str, ...]  # "<eventSourceName>.<eventName>" of the sensor's dependencies


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class DependencyMatched(TraceRecord):
    """A dependency whose eventSourceName/eventName matched, with its filter decision. `passed` and `error`
    can both be set: Argo lets some filter errors pass (semantics reference section 2.2)."""

    step: ClassVar[str] = "dependency"
    dependency: str
    passed: bool
    error: str | None
    reason: str


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class Transformed(TraceRecord):
    """A dependency's transform (jq or script) before its filters: the new data (size and start) or, when it
    failed, the error (the event is then dropped for this dependency)."""

    step: ClassVar[str] = "transform"
    dependency: str
    kind: str
    passed: bool
    data_bytes: int
    data_preview: str
    reason: str
    error: str | None = None


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class FilterChecked(TraceRecord):
    """One filter check: `target` looked at (a path or a context attribute), the value `seen` there (None when
    missing), the values `wanted`, the decision and why. A whole-kind decision has an empty target."""

    step: ClassVar[str] = "filter"
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


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class ConditionChecked(TraceRecord):
    """A trigger's expression after `dependency` passed: the dependencies now held and whether it holds."""

    step: ClassVar[str] = "condition"
    trigger: str
    expression: str
    dependency: str
    held: tuple[str, ...]
    satisfied: bool
    immediate: bool


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class FiringStarted(TraceRecord):
    step: ClassVar[str] = "firing"
    firing: str
    trigger: str
    kind: str
    events: Mapping[str, str]  # dependency -> event id


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class ParamResolved(TraceRecord):
    """One trigger parameter: `where` it is declared (parameters, http.parameters, payload, dynamicHeaders),
    its source (`dependency` and `source`: dataKey, contextKey, jsonPath, jmesPath, value or event), the
    `path` read, the resolved `value` (None: skipped) and `dest`."""

    step: ClassVar[str] = "param"
    firing: str
    trigger: str
    where: str
    dependency: str
    source: str
    path: str
    value: str | None
    dest: str


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class RequestBuilt(TraceRecord):
    """The HTTP request of a firing; secret header values are "***"; `body_preview` is the start of the body."""

    step: ClassVar[str] = "request"
    firing: str
    trigger: str
    method: str
    url: str
    headers: Mapping[str, str]
    body_bytes: int
    body_preview: str


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class ResponseReceived(TraceRecord):
    """One attempt: the status (None when no response arrived, `error` says why), the latency, and the status
    policy's `verdict` on it (success, retryable or terminal) with its `reason`."""

    step: ClassVar[str] = "response"
    firing: str
    trigger: str
    attempt: int
    status: int | None
    latency_ms: float
    verdict: str
    reason: str
    error: str | None = None
    rate_limited_ms: float = 0.0


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class RetryScheduled(TraceRecord):
    step: ClassVar[str] = "retry"
    firing: str
    trigger: str
    attempt: int  # the attempt that will run next
    delay_s: float


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class FiringDone(TraceRecord):
    step: ClassVar[str] = "outcome"
    firing: str
    trigger: str
    success: bool
    attempts: int
    error: str | None = None
    note: str = ""


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class Acknowledged(TraceRecord):
    """How the delivery was settled (`ack` or `nak`) and why."""

    step: ClassVar[str] = "ack"
    position: str
    action: str
    reason: str


class Tracer(Protocol):
    """Receives records. `enabled` False lets the engine skip building them; `emit` never raises, never blocks."""

    @property
    def enabled(self) -> bool: ...

    def emit(self, record: TraceRecord) -> None: ...


class _NullTracer:
    enabled = False

    def emit(self, record: TraceRecord) -> None:
        return None


NULL_TRACER: Tracer = _NullTracer()


class RecordingTracer:
    """Keeps every record in memory (tests, dry runs)."""

    enabled = True

    def __init__(self) -> None:
        self.records: list[TraceRecord] = []

    def emit(self, record: TraceRecord) -> None:
        self.records.append(record)

    def steps(self) -> list[str]:
        return [r.step for r in self.records]

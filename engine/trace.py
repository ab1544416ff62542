"""Trace records: what each step did and why (kernel: imports nothing from the project).

One dataclass per step (treat them as immutable). Records of one event share `event` (the CloudEvent id);
records of one firing share `firing`. `to_json()` gives the JSON Lines form (`step`, `time`, `sensor`, `event`,
then the step's own fields) that `--trace-format json`, the bus trace stream and `sensorium trace` use. Records
never hold a secret: headers are redacted before a record is made. Tracers must never raise or block.

A record also has a row form, a plain tuple `(record class, sensor, event, at, *the step's fields in declaration
order)`. The engine builds rows rather than records (a tuple costs a quarter of a dataclass), and `render_row`
turns a row into the record's JSON line with an encoder generated per record class (one `%` format, the
encodings of values that repeat from event to event cached): `record.json_line()` is `render_row(record.row())`,
so there is one serialiser. `record_of(row)` makes the record when one is needed (the human format, tests).
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from json.encoder import c_make_encoder, encode_basestring  # type: ignore[attr-defined]
from math import isfinite
from operator import itemgetter
from typing import Any, ClassVar, Protocol

__all__ = [
    "NULL_TRACER", "Acknowledged", "ConditionChecked", "DependencyMatched", "FilterChecked", "FiringDone",
    "FiringStarted", "ParamResolved", "Received", "RecordingTracer", "RequestBuilt",
    "ResponseReceived", "RetryScheduled", "Row", "TraceRecord", "Tracer", "Transformed", "Unmatched",
    "format_time", "record_of", "render_row",
]

Row = tuple[Any, ...]  # (record class, sensor, event, at, *the step's own fields in declaration order)


@dataclasses.dataclass(kw_only=True, slots=True)
class TraceRecord:
    step: ClassVar[str] = ""
    # Fields whose values change from event to event: the JSON encoder renders the other ones (runs of
    # consecutive fields) through caches keyed by their values (see `_compile_render`). Only a speed hint.
    varying: ClassVar[frozenset[str]] = frozenset()

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

    def row(self) -> Row:
        """The row form: `(type(self), sensor, event, at, *fields)`."""
        return (type(self), self.sensor, self.event, self.at, *(getattr(self, n) for n in self._fields()))

    def json_line(self) -> str:
        """`json.dumps(self.to_json())` in compact form plus a newline (see `render_row`)."""
        return render_row(self.row())


def record_of(row: Row) -> TraceRecord:
    """The record a row stands for."""
    cls: type[TraceRecord] = row[0]
    names = cls._fields()
    if len(row) != 4 + len(names):
        raise ValueError(f"a {cls.__name__} row has {4 + len(names)} items, not {len(row)}")
    return cls(sensor=row[1], event=row[2], at=row[3], **dict(zip(names, row[4:], strict=True)))


def _head(row: Row) -> str:
    """The text every line of a row's step shares between `"time":"` and the step's own fields:
    `<time>","sensor":<sensor>,"event":<event>`."""
    event = "null" if row[2] is None else encode_basestring(row[2])
    return f'{_TIMES[int(row[3] * 1000)]}","sensor":{_ENCODED[row[1]]},"event":{event}'


def render_row(row: Row) -> str:
    """The JSON line of the record `row` stands for: exactly `json.dumps(record_of(row).to_json(),
    ensure_ascii=False, separators=(",", ":")) + "\\n"`. Each record class gets its encoder on first use."""
    try:
        return _RENDERERS[(row[0],)]((row,), _head(row))  # type: ignore[no-any-return]
    except Exception:  # a value of another type than declared: the general (slow) path
        return _DUMPS(record_of(row).to_json()) + "\n"


def render_group(rows: Sequence[Row]) -> tuple[str, int]:
    """The JSON lines of rows that share their sensor, event and time (the rows of one step, as a
    `engine.tracesteps` function appends them), as one string, and how many rows could not be rendered.
    Rendered as a group (one template lookup for all of them) when it can be, else row by row."""
    if not rows:
        return "", 0
    try:
        return _RENDERERS[tuple(map(_first, rows))](rows, _head(rows[0])), 0
    except Exception:  # rows not shared, too many shapes, a value of an undeclared type: one by one
        lines: list[str] = []
        skipped = render_rows(rows, lines, [])
        return "".join(lines), skipped


def render_rows(rows: Iterable[Row], lines: list[str], sensors: list[str]) -> int:
    """`render_row` of each row appended to `lines`, and its sensor to `sensors` (the writer's batch loop).
    A row that cannot be rendered at all is skipped; returns how many were."""
    renderers = _RENDERERS
    append_line, append_sensor = lines.append, sensors.append
    skipped = 0
    shared: Any = None
    head = ""
    for row in rows:
        try:
            if shared is None or row[3] is not shared[3] or row[2] is not shared[2] or row[1] is not shared[1]:
                head = _head(row)  # the rows of one step share their time, sensor and event
                shared = row
            line = renderers[(row[0],)]((row,), head)
        except Exception:
            try:
                line = _DUMPS(record_of(row).to_json()) + "\n"
            except Exception:
                skipped += 1
                continue
        append_line(line)
        append_sensor(row[1])
    return skipped


_first = itemgetter(0)
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


class _Encoded(dict[Any, str]):
    """JSON text of values that repeat from record to record (names, paths, expressions, wanted values...),
    computed once: a dict lookup costs a fraction of encoding. Bounded: emptied when it reaches `limit`."""

    limit = 4096

    def __missing__(self, value: Any) -> str:
        if isinstance(value, str):
            text: str = encode_basestring(value)
        elif type(value) is tuple and all(isinstance(v, str) for v in value):
            text = _dumps(value)
        else:  # never cache other values: 0, 0.0 and False are one key
            raise TypeError(type(value).__name__)
        if len(self) >= self.limit:
            self.clear()
        self[value] = text
        return text


class _Times(dict[int, str]):
    """RFC 3339 text of a millisecond (records come in time order, so the cache is small and hits often)."""

    def __missing__(self, milli: int) -> str:
        text = _format_milli(milli)
        if len(self) >= 64:
            self.clear()
        self[milli] = text
        return text


_ENCODED = _Encoded()
_TIMES = _Times()
# String fields whose values seldom repeat (event data, ids): encoded each time rather than through the cache
# (a miss costs more than encoding).
_UNIQUE = frozenset({"value", "body_preview", "data_preview", "firing", "position"})


def _value(name: str, annotation: str, v: str) -> str:
    """An expression giving the JSON text of field `name` (declared as `annotation`) held in `v`, exactly as
    json.dumps writes it, or raising TypeError for a value of another type (the caller then takes the slow
    path). Strings go through the cache unless the field's values seldom repeat."""
    text = f"_s({v})" if name in _UNIQUE else f"_e[{v}]"
    if annotation == "str":
        return text
    if annotation == "str | None":
        return f'("null" if {v} is None else {text})'
    if annotation == "tuple[str, ...]":
        return f"_e[{v}]"
    if annotation == "bool":
        return f'("true" if {v} is True else "false" if {v} is False else _bad({v}))'
    if annotation == "int":
        return f"_int({v})"
    if annotation == "int | None":
        return f'("null" if {v} is None else _int({v}))'
    if annotation == "float":
        return f"_float({v})"
    if annotation.startswith("Mapping[str, str]"):
        return f"_map({v})"
    return f"_dumps({v})"


class _MapFormats(dict[tuple[str, ...], str]):
    """`%` format of a JSON object with these keys (in this order) and string values. Bounded."""

    def __missing__(self, keys: tuple[str, ...]) -> str:
        if not all(type(k) is str for k in keys):
            raise TypeError("keys that are not strings")
        text = "{" + ",".join(encode_basestring(k).replace("%", "%%") + ":%s" for k in keys) + "}"
        if len(self) >= 256:
            self.clear()
        self[keys] = text
        return text


_MAP_FORMATS = _MapFormats()


def _str_map(value: Any) -> str:
    """JSON text of a dict of strings (attributes, headers, events) as json.dumps writes it: a third of the
    C encoder's cost on small dicts (it builds a list of items and a string per key). Other values: C encoder."""
    if type(value) is dict:
        try:
            return _MAP_FORMATS[tuple(value)] % tuple(map(encode_basestring, value.values()))
        except TypeError:  # a key or value that is not a string
            pass
    return _dumps(value)


def _int(value: Any) -> str:
    if type(value) is not int:  # bool or anything else: json.dumps writes it differently
        raise TypeError(type(value).__name__)
    return str(value)


def _float(value: Any) -> str:
    if type(value) is not float or not isfinite(value):
        raise TypeError(type(value).__name__)  # json.dumps writes NaN/Infinity, and ints without ".0"
    return repr(value)


def _bad(value: Any) -> str:
    raise TypeError(type(value).__name__)


class _Templates(dict[Any, tuple[str, ...]]):
    """A record class's JSON line cut around its varying values, keyed by all its other values: the pieces
    between the holes, with every other value already encoded. Bounded like `_Encoded`. Equal keys of different
    types (1 and True) share an entry: only a value of another type than its field's declared one can tell them
    apart, and it then renders as an equal JSON value."""

    limit = 1024

    def __init__(self, build: Any) -> None:
        super().__init__()
        self.build = build

    def __missing__(self, key: Any) -> tuple[str, ...]:
        pieces: tuple[str, ...] = self.build(key)
        if len(self) >= self.limit:
            self.clear()
        self[key] = pieces
        return pieces


def _literal(text: str) -> str:
    """`text` as the literal part of a generated f-string."""
    return text.replace("\\", "\\\\").replace("'", "\\'").replace("{", "{{").replace("}", "}}")


class _NotShared(Exception):
    """The rows handed to a group renderer do not share their sensor, event and time."""


def _compile(shape: tuple[type[TraceRecord], ...]) -> Any:
    """`render(rows, h)` for rows of the record classes `shape`, in that order, that share their sensor, event and
    time (`h` is their shared text, see `_head`): the JSON lines of all of them as one string. The text is cut at
    its holes (each line's `h`, and each record class's `varying` fields and mappings, which are not hashable);
    a `_Templates` cache keyed by all the other values gives the pieces between the holes, so a group costs one
    lookup plus the encoding of its holes."""
    keyed: list[str] = []  # expressions (on the rows r0, r1, ...) of the key's values
    holes: list[str] = []  # expressions of the holes' values
    pieces: list[str] = []  # f-string source of each piece, on the key `k`
    text = ""
    for j, cls in enumerate(shape):
        pieces.append(text + _literal('{"step":' + encode_basestring(cls.step) + ',"time":"'))
        holes.append("h")
        text = ""
        for index, f in enumerate(dataclasses.fields(cls), 1):
            if f.name in ("sensor", "event", "at"):  # in `h`
                continue
            annotation = str(f.type)
            text += _literal("," + encode_basestring(f.name) + ":")
            if f.name in cls.varying or annotation.startswith("Mapping"):
                pieces.append(text)
                holes.append(_value(f.name, annotation, f"r{j}[{index}]"))
                text = ""
            else:
                text += "{" + _value(f.name, annotation, f"k[{len(keyed)}]") + "}"
                keyed.append(f"r{j}[{index}]")
        text += _literal("}") + "\\n"
    pieces.append(text)
    namespace: dict[str, Any] = {"_s": encode_basestring, "_e": _ENCODED, "_dumps": _dumps, "_map": _str_map,
                                 "_int": _int, "_float": _float, "_bad": _bad, "_NotShared": _NotShared}
    build = ", ".join(f"f'''{piece}'''" for piece in pieces)
    exec(f"def build(k):\n    return ({build},)\n", namespace)
    namespace["_tpl"] = _Templates(namespace.pop("build"))
    names = [f"r{j}" for j in range(len(shape))]
    shared = " and ".join(f"{r}[1] is r0[1] and {r}[2] is r0[2] and {r}[3] is r0[3]" for r in names[1:])
    line = "".join(f"{{p[{n}]}}{{{hole}}}" for n, hole in enumerate(holes)) + f"{{p[{len(holes)}]}}"
    source = (f"def render(rows, h):\n    {', '.join(names)}, = rows\n"
              + (f"    if not ({shared}):\n        raise _NotShared\n" if shared else "")
              + f"    p = _tpl[({', '.join(keyed)},)]\n    return f'''{line}'''\n")
    exec(source, namespace)  # the same technique dataclasses use to build __init__
    render = namespace["render"]
    render.source = source
    return render


class _Renderers(dict[tuple[type, ...], Any]):
    """Group renderers by shape (the record classes of the rows, in order). Bounded: past `limit` shapes, or
    for long groups, rows are rendered one by one instead."""

    limit = 256
    longest = 24

    def __missing__(self, shape: tuple[type[TraceRecord], ...]) -> Any:
        if not all(isinstance(cls, type) and issubclass(cls, TraceRecord) for cls in shape):
            raise TypeError(f"not trace record classes: {shape!r}")
        if len(shape) > self.longest or (len(shape) > 1 and len(self) >= self.limit):
            raise _NotShared
        render = self[shape] = _compile(shape)
        return render


_RENDERERS = _Renderers()


_second: list[Any] = [-1, ""]  # cache: the last whole second formatted (records come in time order)


def format_time(at: float) -> str:
    """RFC 3339 UTC with milliseconds."""
    return _format_milli(int(at * 1000))


def _format_milli(milli: int) -> str:
    whole = milli // 1000
    if whole != _second[0]:
        _second[0], _second[1] = whole, datetime.fromtimestamp(whole, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{_second[1]}.{milli % 1000:03d}Z"


@dataclasses.dataclass(kw_only=True, slots=True)
class Received(TraceRecord):
    """A message arrived. `position` is `<subject> seq <n>` (JetStream) or `<topic>[<partition>]@<offset>`
    (Kafka); `attributes` the CloudEvent attributes; `error` set when the message is not a CloudEvent."""

    step: ClassVar[str] = "received"
    varying: ClassVar[frozenset[str]] = frozenset({"position", "delivery", "attributes", "data_bytes", "error"})
    bus: str
    position: str
    delivery: int | None = None
    attributes: Mapping[str, str] = dataclasses.field(default_factory=dict)
    data_bytes: int = 0
    error: str | None = None


@dataclasses.dataclass(kw_only=True, slots=True)
class Unmatched(TraceRecord):
    """No dependency listens to the event's (source, subject): `sensorium test` only (the engine's consumer
    is only handed events some dependency listens to)."""

    step: ClassVar[str] = "unmatched"
    source: str
    subject: str
    listening: tuple[str, ...]  # "<eventSourceName>.<eventName>" of the sensor's dependencies


@dataclasses.dataclass(kw_only=True, slots=True)
class DependencyMatched(TraceRecord):
    """A dependency whose eventSourceName/eventName matched, with its filter decision. `passed` and `error`
    can both be set: Argo lets some filter errors pass (semantics reference section 2.2)."""

    step: ClassVar[str] = "dependency"
    dependency: str
    passed: bool
    error: str | None
    reason: str


@dataclasses.dataclass(kw_only=True, slots=True)
class Transformed(TraceRecord):
    """A dependency's transform (jq or script) before its filters: the new data (size and start) or, when it
    failed, the error (the event is then dropped for this dependency)."""

    step: ClassVar[str] = "transform"
    varying: ClassVar[frozenset[str]] = frozenset({"passed", "data_bytes", "data_preview", "reason", "error"})
    dependency: str
    kind: str
    passed: bool
    data_bytes: int
    data_preview: str
    reason: str
    error: str | None = None


@dataclasses.dataclass(kw_only=True, slots=True)
class FilterChecked(TraceRecord):
    """One filter check: `target` looked at (a path or a context attribute), the value `seen` there (None when
    missing), the values `wanted`, the decision and why. A whole-kind decision has an empty target."""

    step: ClassVar[str] = "filter"
    varying: ClassVar[frozenset[str]] = frozenset({"seen", "reason", "error"})
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


@dataclasses.dataclass(kw_only=True, slots=True)
class ConditionChecked(TraceRecord):
    """A trigger's expression after `dependency` passed: the dependencies now held and whether it holds."""

    step: ClassVar[str] = "condition"
    trigger: str
    expression: str
    dependency: str
    held: tuple[str, ...]
    satisfied: bool
    immediate: bool


@dataclasses.dataclass(kw_only=True, slots=True)
class FiringStarted(TraceRecord):
    step: ClassVar[str] = "firing"
    varying: ClassVar[frozenset[str]] = frozenset({"firing", "events"})
    firing: str
    trigger: str
    kind: str
    events: Mapping[str, str]  # dependency -> event id


@dataclasses.dataclass(kw_only=True, slots=True)
class ParamResolved(TraceRecord):
    """One trigger parameter: `where` it is declared (parameters, http.parameters, payload, dynamicHeaders),
    its source (`dependency` and `source`: dataKey, contextKey, jsonPath, jmesPath, value or event), the
    `path` read, the resolved `value` (None: skipped) and `dest`."""

    step: ClassVar[str] = "param"
    varying: ClassVar[frozenset[str]] = frozenset({"firing", "value"})
    firing: str
    trigger: str
    where: str
    dependency: str
    source: str
    path: str
    value: str | None
    dest: str


@dataclasses.dataclass(kw_only=True, slots=True)
class RequestBuilt(TraceRecord):
    """The HTTP request of a firing; secret header values are "***"; `body_preview` is the start of the body."""

    step: ClassVar[str] = "request"
    varying: ClassVar[frozenset[str]] = frozenset({"firing", "headers", "body_bytes", "body_preview"})
    firing: str
    trigger: str
    method: str
    url: str
    headers: Mapping[str, str]
    body_bytes: int
    body_preview: str


@dataclasses.dataclass(kw_only=True, slots=True)
class ResponseReceived(TraceRecord):
    """One attempt: the status (None when no response arrived, `error` says why), the latency, and the status
    policy's `verdict` on it (success, retryable or terminal) with its `reason`."""

    step: ClassVar[str] = "response"
    varying: ClassVar[frozenset[str]] = frozenset({"firing", "latency_ms"})
    firing: str
    trigger: str
    attempt: int
    status: int | None
    latency_ms: float
    verdict: str
    reason: str
    error: str | None = None
    rate_limited_ms: float = 0.0


@dataclasses.dataclass(kw_only=True, slots=True)
class RetryScheduled(TraceRecord):
    step: ClassVar[str] = "retry"
    varying: ClassVar[frozenset[str]] = frozenset({"firing", "delay_s"})
    firing: str
    trigger: str
    attempt: int  # the attempt that will run next
    delay_s: float


@dataclasses.dataclass(kw_only=True, slots=True)
class FiringDone(TraceRecord):
    step: ClassVar[str] = "outcome"
    varying: ClassVar[frozenset[str]] = frozenset({"firing"})
    firing: str
    trigger: str
    success: bool
    attempts: int
    error: str | None = None
    note: str = ""


@dataclasses.dataclass(kw_only=True, slots=True)
class Acknowledged(TraceRecord):
    """How the delivery was settled (`ack` or `nak`) and why."""

    step: ClassVar[str] = "ack"
    varying: ClassVar[frozenset[str]] = frozenset({"position"})
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

"""`sensorium test CASES.yaml`: test cases for one Sensor, with expectations that can fail a CI job.

A cases file (README, "Dry runs: `sensorium test`") names a Sensor and lists cases; each case feeds its events,
in order, to a fresh dry run of the sensor (`engine.dryrun`: the engine's own sensor stage and request building,
nothing sent) and checks what happened against `expect`:

    sensor: sensor.yaml                 # relative to this file (or --sensor-file on the command line)
    cases:
      - name: paid order ships
        events:
          - cloudevent: events/1-order.json          # a CloudEvent file (every event of a JSON Lines file),
          - cloudevent: {source: bank, subject: payment-received, type: webhook, data: {body: {status: settled}}}
          - webhook: {source: shop, event: order, body: {orderId: A-1}}  # a raw webhook request
        expect:
          fires: [ship]                # exactly these firings, in any order (a trigger twice: list it twice)
          not_fires: [refund]
          requests: [{trigger: ship, method: POST, body: {order: A-1}}]  # subset match, n-th of that trigger
          rejected_by: [{event: 2, dependency: payment, kind: data, target: body.status}]

Loading problems are ConfigErrors with FILE:LINE (exit 2); a failed expectation is a `Failure` (exit 1).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import msgspec

from sensorium.engine.config import ConfigErrors, Origin, parse_documents
from sensorium.engine.core import yamlread
from sensorium.engine.core.cloudevent import CloudEvent, DecodeError, from_mapping
from sensorium.engine.core.errors import ConfigError
from sensorium.engine.documents import Sensor
from sensorium.engine.dryrun import (
    DryRun,
    LoadedEvent,
    load_events,
    load_sensor,
)
from sensorium.sources.spec import WebhookContext
from sensorium.sources.webhook import BodyError, Endpoint, event_from_request

FILTER_KINDS = ("exprs", "data", "context", "time", "script", "transform")
TOP_KEYS = ("sensor", "sensor_name", "secrets_dir", "cases")
CASE_KEYS = ("name", "events", "expect")
EXPECT_KEYS = ("fires", "not_fires", "requests", "rejected_by")
REQUEST_KEYS = ("trigger", "method", "url", "headers", "body", "error")
REJECT_KEYS = ("event", "dependency", "kind", "target")
WEBHOOK_KEYS = ("source", "event", "method", "headers", "body", "query", "metadata", "id", "time")


# ---- the model --------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class RequestExpect:
    """The request of the `nth` (0-based) firing of `trigger`: each given field must match (a subset)."""

    trigger: str
    nth: int
    fields: Mapping[str, Any]
    line: int


@dataclass(frozen=True)
class RejectExpect:
    """Event `event` (1-based) matched `dependency`, which did not pass, and a `kind` check (at `target`) failed."""

    event: int
    dependency: str
    kind: str
    target: str | None
    line: int


@dataclass(frozen=True)
class Expect:
    fires: tuple[str, ...] | None = None
    not_fires: tuple[str, ...] = ()
    requests: tuple[RequestExpect, ...] = ()
    rejected_by: tuple[RejectExpect, ...] = ()


@dataclass(frozen=True)
class Case:
    name: str
    line: int
    events: tuple[LoadedEvent, ...]
    expect: Expect


@dataclass(frozen=True)
class CaseFile:
    file: str
    sensor: Sensor
    sensor_file: str
    secrets_dir: Path | None
    cases: tuple[Case, ...]


@dataclass(frozen=True)
class Failure:
    """One failed expectation: a one-line summary and the lines of its diff (expected vs actual)."""

    summary: str
    diff: tuple[str, ...] = ()


@dataclass
class CaseResult:
    case: Case
    run: DryRun
    failures: list[Failure] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        return not self.failures


@dataclass
class SuiteResult:
    cases_file: CaseFile
    results: list[CaseResult]

    @property
    def failed(self) -> int:
        return sum(1 for r in self.results if not r.passed)


# ---- loading ----------------------------------------------------------------------------------------------------

def is_cases_file(path: str) -> bool:
    """Whether `path` reads as a cases file (one YAML mapping with `cases` and no `kind`), not a Sensor file.
    A file that cannot be read or parsed raises its ConfigError (FILE:LINE)."""
    docs = parse_documents(yamlread.read_file(path, path), path)
    return len(docs) == 1 and isinstance(docs[0][0], dict) and "cases" in docs[0][0] and "kind" not in docs[0][0]


class _Reader:
    """Reads one cases document, collecting every problem with its line."""

    def __init__(self, origin: Origin) -> None:
        self.origin = origin
        self.errors: list[ConfigError] = []

    def line(self, loc: Sequence[str | int]) -> int:
        return self.origin.locate(loc)[0]

    def error(self, loc: Sequence[str | int], message: str) -> None:
        line, path = self.origin.locate(loc)
        self.errors.append(ConfigError(message, self.origin.file, line, path))

    def mapping(self, value: Any, loc: Sequence[str | int], keys: Sequence[str]) -> dict[str, Any] | None:
        if not isinstance(value, dict):
            self.error(loc, f"must be a mapping, not {yamlread.kind_of(value)}")
            return None
        for key in value:
            if key not in keys:
                self.error([*loc, key], f"unknown field (want one of: {', '.join(keys)})")
        return value

    def string(self, value: Any, loc: Sequence[str | int]) -> str | None:
        if not isinstance(value, str) or not value:
            self.error(loc, f"must be a non-empty string, not {yamlread.kind_of(value)}")
            return None
        return value

    def strings(self, value: Any, loc: Sequence[str | int], allowed: Sequence[str], what: str) -> tuple[str, ...]:
        if not isinstance(value, list):
            self.error(loc, f"must be a list of {what} names, not {yamlread.kind_of(value)}")
            return ()
        out = []
        for i, item in enumerate(value):
            name = self.string(item, [*loc, i])
            if name is not None and name not in allowed:
                self.error([*loc, i], f"no {what} named {name!r} in the sensor (it has: {', '.join(allowed)})")
            elif name is not None:
                out.append(name)
        return tuple(out)


def load_cases(path: str, sensor_file: str | None = None, sensor_name: str | None = None,
               secrets_dir: Path | None = None) -> CaseFile:
    """The cases file at `path` with its Sensor and events loaded; every problem at once as ConfigErrors.
    `sensor_file`, `sensor_name` and `secrets_dir` (command-line options) override the file's own."""
    docs = parse_documents(yamlread.read_file(path, path), path)
    if len(docs) != 1:
        raise ConfigError(f"a cases file holds one YAML document, not {len(docs)}", path, 1)
    data, origin = docs[0]
    reader = _Reader(origin)
    top = reader.mapping(data, [], TOP_KEYS)
    if top is None:
        raise _errors(reader)
    base = Path(path).parent
    if sensor_file is None:
        if "sensor" not in top:
            reader.error([], "no sensor: add `sensor: FILE` (relative to this file) or give --sensor-file")
            raise _errors(reader)
        named = reader.string(top["sensor"], ["sensor"])
        if named is None:
            raise _errors(reader)
        sensor_file = str(base / named)
    if sensor_name is None and "sensor_name" in top:
        sensor_name = reader.string(top["sensor_name"], ["sensor_name"])
    if secrets_dir is None and "secrets_dir" in top:
        named_dir = reader.string(top["secrets_dir"], ["secrets_dir"])
        secrets_dir = base / named_dir if named_dir is not None else None
    sensor = load_sensor(sensor_file, sensor_name)
    raw_cases = top.get("cases")
    if not isinstance(raw_cases, list) or not raw_cases:
        reader.error(["cases"], "must be a non-empty list of cases")
        raise _errors(reader)
    cases = []
    names: set[str] = set()
    for i, raw in enumerate(raw_cases):
        case = _case(reader, sensor, base, raw, ["cases", i])
        if case is not None:
            if case.name in names:
                reader.error(["cases", i, "name"], f"a second case named {case.name!r}")
            names.add(case.name)
            cases.append(case)
    if reader.errors:
        raise _errors(reader)
    return CaseFile(path, sensor, sensor_file, secrets_dir, tuple(cases))


def _errors(reader: _Reader) -> ConfigError:
    return ConfigErrors(reader.errors) if len(reader.errors) != 1 else reader.errors[0]


def _case(reader: _Reader, sensor: Sensor, base: Path, raw: Any, loc: list[str | int]) -> Case | None:
    case = reader.mapping(raw, loc, CASE_KEYS)
    if case is None:
        return None
    name = reader.string(case.get("name"), [*loc, "name"])
    events: list[LoadedEvent] = []
    raw_events = case.get("events")
    if not isinstance(raw_events, list) or not raw_events:
        reader.error([*loc, "events"], "must be a non-empty list of events (cloudevent: or webhook:)")
    else:
        for n, item in enumerate(raw_events):
            events.extend(_events(reader, base, item, [*loc, "events", n], len(events) + 1))
    expect = _expect(reader, sensor, case.get("expect"), [*loc, "expect"], len(events))
    if name is None or expect is None:
        return None
    return Case(name, reader.line(loc), tuple(events), expect)


def _events(reader: _Reader, base: Path, raw: Any, loc: list[str | int], number: int) -> list[LoadedEvent]:
    """The events of one `events` item: a CloudEvent file (all its events), an inline CloudEvent or a webhook
    request. `number` is the case's count of events so far plus one (default ids are `event-<number>`)."""
    item = reader.mapping(raw, loc, ("cloudevent", "webhook"))
    if item is None:
        return []
    if len(item) != 1:
        reader.error(loc, "want exactly one of cloudevent: or webhook:")
        return []
    line = reader.line(loc)
    if "webhook" in item:
        event = _webhook(reader, item["webhook"], [*loc, "webhook"], number)
        return [] if event is None else [LoadedEvent(reader.origin.file, line, event)]
    value = item["cloudevent"]
    if isinstance(value, str):
        try:
            return load_events([str(base / value)])
        except ConfigError as exc:
            reader.errors.extend(getattr(exc, "errors", [exc]))
            return []
    if not isinstance(value, dict):
        reader.error([*loc, "cloudevent"], f"must be a file name or a CloudEvent mapping, not "
                                           f"{yamlread.kind_of(value)}")
        return []
    try:
        event = from_mapping({"specversion": "1.0", "id": f"event-{number}", **value})
    except DecodeError as exc:
        reader.error([*loc, "cloudevent"], f"not a CloudEvent: {exc}")
        return []
    return [LoadedEvent(reader.origin.file, line, event)]


def _headers(reader: _Reader, raw: Any, loc: list[str | int]) -> list[tuple[str, str]]:
    if raw is None:
        return []
    if not isinstance(raw, dict):
        reader.error(loc, f"must be a mapping of header names to values, not {yamlread.kind_of(raw)}")
        return []
    out = []
    for name, value in raw.items():
        values = value if isinstance(value, list) else [value]
        for v in values:
            if isinstance(v, bool) or not isinstance(v, str | int | float):
                reader.error([*loc, name], f"a header value must be text, not {yamlread.kind_of(v)}")
            else:
                out.append((name, str(v)))
    return out


def _webhook(reader: _Reader, raw: Any, loc: list[str | int], number: int) -> CloudEvent | None:
    """The CloudEvent the webhook source publishes for this request (sources.webhook.event_from_request, so the
    data is byte for byte what `sensorium run` would put on the bus), with a stable id (`event-<number>`)."""
    spec = reader.mapping(raw, loc, WEBHOOK_KEYS)
    if spec is None:
        return None
    source = reader.string(spec.get("source"), [*loc, "source"])
    name = reader.string(spec.get("event"), [*loc, "event"])
    method = spec.get("method", "POST")
    if not isinstance(method, str) or not method.isalpha():
        reader.error([*loc, "method"], "must be an HTTP method such as POST or GET")
        method = "POST"
    headers = _headers(reader, spec.get("headers"), [*loc, "headers"])
    body = spec.get("body")
    if body is None:
        raw_body = b""
    elif isinstance(body, str):
        raw_body = body.encode()  # sent as written (form data, text, or JSON text)
    else:
        raw_body = json.dumps(body, ensure_ascii=False).encode()
        if not any(k.lower() == "content-type" for k, _ in headers):
            headers.append(("Content-Type", "application/json"))
    query = spec.get("query", "")
    if isinstance(query, dict):
        query = urlencode(query, doseq=True)
    elif not isinstance(query, str):
        reader.error([*loc, "query"], "must be a query string or a mapping")
        query = ""
    metadata = spec.get("metadata")
    if metadata is not None and (not isinstance(metadata, dict)
                                 or not all(isinstance(v, str) for v in metadata.values())):
        reader.error([*loc, "metadata"], "must be a mapping of names to text (the EventSource's metadata)")
        metadata = None
    if source is None or name is None:
        return None
    context = WebhookContext.model_validate({"endpoint": "/", "port": 1, "metadata": metadata})
    try:
        event = event_from_request(Endpoint(source, name, context), method.upper(), headers, raw_body, query)
    except BodyError as exc:
        reader.error([*loc, "body"], str(exc))
        return None
    event_id = str(spec.get("id", f"event-{number}"))
    return msgspec.structs.replace(event, id=event_id, time=str(spec.get("time", event.time)))


def _expect(reader: _Reader, sensor: Sensor, raw: Any, loc: list[str | int], events: int) -> Expect | None:
    spec = reader.mapping(raw, loc, EXPECT_KEYS)
    if spec is None:
        return None
    if not spec:
        reader.error(loc, f"no expectation: give at least one of {', '.join(EXPECT_KEYS)}")
        return None
    triggers = [t.template.name for t in sensor.spec.triggers]
    dependencies = [d.name for d in sensor.spec.dependencies]
    fires = reader.strings(spec["fires"], [*loc, "fires"], triggers, "trigger") if "fires" in spec else None
    not_fires = reader.strings(spec.get("not_fires", []), [*loc, "not_fires"], triggers, "trigger")
    requests: list[RequestExpect] = []
    counts: dict[str, int] = {}
    for i, item in enumerate(_list(reader, spec.get("requests", []), [*loc, "requests"])):
        req = reader.mapping(item, [*loc, "requests", i], REQUEST_KEYS)
        if req is None:
            continue
        trigger = reader.string(req.get("trigger"), [*loc, "requests", i, "trigger"])
        if trigger is not None and trigger not in triggers:
            reader.error([*loc, "requests", i, "trigger"], f"no trigger named {trigger!r} in the sensor (it has: "
                                                           f"{', '.join(triggers)})")
        elif trigger is not None:
            for key in ("method", "url", "error"):
                if key in req:
                    reader.string(req[key], [*loc, "requests", i, key])
            if "headers" in req and not isinstance(req["headers"], dict):
                reader.error([*loc, "requests", i, "headers"], "must be a mapping of header names to values")
            fields = {k: v for k, v in req.items() if k != "trigger"}
            requests.append(RequestExpect(trigger, counts.get(trigger, 0), fields,
                                          reader.line([*loc, "requests", i])))
            counts[trigger] = counts.get(trigger, 0) + 1
    rejected: list[RejectExpect] = []
    for i, item in enumerate(_list(reader, spec.get("rejected_by", []), [*loc, "rejected_by"])):
        where: list[str | int] = [*loc, "rejected_by", i]
        rej = reader.mapping(item, where, REJECT_KEYS)
        if rej is None:
            continue
        number = rej.get("event")
        if isinstance(number, bool) or not isinstance(number, int) or not 1 <= number <= max(events, 1):
            reader.error([*where, "event"], f"must be the number of one of this case's {events} event(s), "
                                            f"counting from 1")
            continue
        dependency = reader.string(rej.get("dependency"), [*where, "dependency"])
        if dependency is not None and dependency not in dependencies:
            reader.error([*where, "dependency"], f"no dependency named {dependency!r} in the sensor (it has: "
                                                 f"{', '.join(dependencies)})")
            continue
        kind = reader.string(rej.get("kind"), [*where, "kind"])
        if kind is not None and kind not in FILTER_KINDS:
            reader.error([*where, "kind"], f"unknown filter kind {kind!r} (want one of: {', '.join(FILTER_KINDS)})")
            continue
        target = reader.string(rej["target"], [*where, "target"]) if "target" in rej else None
        if dependency is not None and kind is not None:
            rejected.append(RejectExpect(number, dependency, kind, target, reader.line(where)))
    return Expect(fires, not_fires, tuple(requests), tuple(rejected))


def _list(reader: _Reader, value: Any, loc: list[str | int]) -> list[Any]:
    if not isinstance(value, list):
        reader.error(loc, f"must be a list, not {yamlread.kind_of(value)}")
        return []
    return value

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

import dataclasses
import difflib
import json
import re
import time
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from sensorium.engine.config import ConfigErrors, Origin, parse_documents
from sensorium.engine.core import yamlread
from sensorium.engine.core.cloudevent import CloudEvent, DecodeError, from_mapping
from sensorium.engine.core.errors import ConfigError
from sensorium.engine.core.secrets import Secrets
from sensorium.engine.documents import Sensor
from sensorium.engine.dryrun import (
    DryRun,
    FiringResult,
    LoadedEvent,
    dry_run,
    load_events,
    load_sensor,
    render_text,
    request_json,
    to_json,
)
from sensorium.engine.trace.records import FilterChecked
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
    return dataclasses.replace(event, id=event_id, time=str(spec.get("time", event.time)))


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


# ---- checking ---------------------------------------------------------------------------------------------------

def _pretty(value: Any) -> list[str]:
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=False).splitlines()


def unified(expected: Any, actual: Any) -> tuple[str, ...]:
    """A unified diff of the two values as pretty JSON (`-` expected, `+` actual)."""
    lines = difflib.unified_diff(_pretty(expected), _pretty(actual), "expected", "actual", lineterm="", n=2)
    return tuple(lines)


def _same(expected: Any, actual: Any) -> bool:
    """Equality where true is not 1 (YAML and JSON both tell them apart)."""
    if isinstance(expected, bool) or isinstance(actual, bool):
        return type(expected) is type(actual) and expected == actual
    if isinstance(expected, list) and isinstance(actual, list):
        return len(expected) == len(actual) and all(_same(e, a) for e, a in zip(expected, actual, strict=True))
    if isinstance(expected, dict) and isinstance(actual, dict):
        return expected.keys() == actual.keys() and all(_same(v, actual[k]) for k, v in expected.items())
    return bool(expected == actual)


def subset_differences(expected: Any, actual: Any, path: str) -> list[str]:
    """Where `actual` does not contain `expected`: mappings are matched as subsets (extra keys in `actual` are
    fine), lists and scalars must be equal. One line per difference, `path: expected X, got Y`."""
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return [f"{path}: expected a mapping, got {_show(actual)}"]
        out = []
        for key, value in expected.items():
            sub = f"{path}.{key}" if path else str(key)
            if key not in actual:
                out.append(f"{sub}: missing (expected {_show(value)})")
            else:
                out.extend(subset_differences(value, actual[key], sub))
        return out
    return [] if _same(expected, actual) else [f"{path}: expected {_show(expected)}, got {_show(actual)}"]


def _show(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 200 else text[:200] + "…"


def project(expected: Any, actual: Any) -> Any:
    """`actual` cut down to the keys `expected` names (recursively), so a diff shows only what was asked."""
    if isinstance(expected, dict) and isinstance(actual, dict):
        return {k: project(v, actual[k]) for k, v in expected.items() if k in actual}
    return actual


def _actual_request(firing: FiringResult, run: DryRun) -> dict[str, Any]:
    request = request_json(firing.request) or {}
    return {**request, "error": run.mask(firing.error)}


def _check_request(expect: RequestExpect, firings: list[FiringResult], run: DryRun, index: int) -> Failure | None:
    label = f"requests[{index}] (line {expect.line}): {expect.trigger} firing #{expect.nth + 1}"
    if expect.nth >= len(firings):
        return Failure(f"{label}: {expect.trigger} fired {len(firings)} time(s)")
    firing = firings[expect.nth]
    actual = _actual_request(firing, run)
    wanted = dict(expect.fields)
    problems: list[str] = []
    if firing.request is None and "error" not in wanted:
        problems.append(f"request: not built: {actual['error']}")
    if "error" in wanted:
        if actual["error"] is None or str(wanted["error"]) not in actual["error"]:
            problems.append(f"error: expected text containing {_show(wanted['error'])}, got {_show(actual['error'])}")
    if "method" in wanted and firing.request is not None and str(wanted["method"]).upper() != actual["method"]:
        problems.append(f"method: expected {_show(wanted['method'])}, got {_show(actual['method'])}")
        wanted["method"] = str(wanted["method"]).upper()
    if "url" in wanted and firing.request is not None and wanted["url"] != actual["url"]:
        problems.append(f"url: expected {_show(wanted['url'])}, got {_show(actual['url'])}")
    if "headers" in wanted and firing.request is not None:
        by_name = {k.lower(): (k, v) for k, v in actual["headers"].items()}
        shown: dict[str, Any] = {}
        for name, value in dict(wanted["headers"]).items():
            found = by_name.get(str(name).lower())
            if found is None:
                problems.append(f"headers.{name}: missing (expected {_show(value)})")
            else:
                shown[name] = found[1]
                if str(value) != found[1]:
                    problems.append(f"headers.{name}: expected {_show(value)}, got {_show(found[1])}")
        actual["headers"] = shown
    if "body" in wanted and firing.request is not None:
        problems.extend(subset_differences(wanted["body"], actual["body"], "body"))
    if not problems:
        return None
    if firing.request is None:
        actual = {"error": actual["error"]}
    else:
        actual = {k: project(wanted[k], actual[k]) if k != "headers" else actual[k] for k in wanted if k in actual}
    return Failure(f"{label}: " + "; ".join(problems), unified(wanted, actual))


def _target_names(target: str) -> set[str]:
    """What a `rejected_by` target may be written as: the check's whole target (`path 'body.status'`), the
    expression inside the quotes (`body.status`), or a context attribute without `context.` (`type`)."""
    names = {target}
    inner = re.fullmatch(r"\w+ '(.*)'", target, re.DOTALL)
    if inner:
        names.add(inner.group(1))
    if target.startswith("context."):
        names.add(target.removeprefix("context."))
    return names


def _describe_check(check: FilterChecked) -> str:
    seen = "nothing (missing)" if check.seen is None else _show(check.seen)
    verdict = "pass" if check.passed else "FAIL"
    target = f" {check.target}" if check.target else ""
    return f"{check.kind}{target}: saw {seen} -> {verdict}: {check.error or check.reason}"


def _check_rejected(expect: RejectExpect, run: DryRun) -> Failure | None:
    label = (f"rejected_by (line {expect.line}): event {expect.event}, dependency {expect.dependency}, "
             f"{expect.kind}{' ' + expect.target if expect.target else ''}")
    if expect.event > len(run.results):
        return Failure(f"{label}: the case has {len(run.results)} event(s)")
    result = run.results[expect.event - 1]
    verdicts = [d for d in result.dependencies if d.name == expect.dependency]
    if not verdicts:
        matched = ", ".join(d.name for d in result.dependencies) or "no dependency"
        return Failure(f"{label}: the event did not match this dependency (source {result.event.source!r}, "
                       f"subject {result.event.subject!r}; it matched {matched})")
    verdict = verdicts[0]
    checks = [c for c in run.checks[expect.event - 1] if c.dependency == expect.dependency]
    lines = tuple(run.mask(_describe_check(c)) or "" for c in checks)
    if verdict.passed:
        return Failure(f"{label}: the dependency passed its filters ({verdict.filters.reason})", lines)
    if expect.kind == "transform":
        if verdict.transform is not None and verdict.transform.event is None:
            return None
        return Failure(f"{label}: the transform did not drop the event", lines)
    for check in checks:
        if not check.passed and check.kind == expect.kind and (
                expect.target is None or expect.target in _target_names(check.target)):
            return None
    return Failure(f"{label}: no such check failed; the checks were:", lines)


def check_case(case: Case, run: DryRun) -> list[Failure]:
    """Every expectation of `case` against its dry run; an empty list when all hold."""
    failures: list[Failure] = []
    fired = [f.trigger for f in run.firings]
    expect = case.expect
    if expect.fires is not None and sorted(expect.fires) != sorted(fired):
        failures.append(Failure(f"fires: expected [{', '.join(sorted(expect.fires))}], fired "
                                f"[{', '.join(sorted(fired))}]",
                                unified(sorted(expect.fires), sorted(fired))))
    for name in expect.not_fires:
        causes = [f for f in run.firings if f.trigger == name]
        if causes:
            events = "; ".join(", ".join(f"{d}={e}" for d, e in f.events.items()) for f in causes)
            failures.append(Failure(f"not_fires: {name} fired {len(causes)} time(s) (with {events})"))
    by_trigger: dict[str, list[FiringResult]] = {}
    for firing in run.firings:
        by_trigger.setdefault(firing.trigger, []).append(firing)
    for i, req in enumerate(expect.requests):
        failure = _check_request(req, by_trigger.get(req.trigger, []), run, i)
        if failure is not None:
            failures.append(failure)
    for rej in expect.rejected_by:
        failure = _check_rejected(rej, run)
        if failure is not None:
            failures.append(failure)
    return failures


def run_cases(cases_file: CaseFile, secrets: Secrets | None = None) -> SuiteResult:
    """Every case, each on a fresh sensor state, in file order."""
    secrets = secrets if secrets is not None else Secrets(cases_file.secrets_dir)
    results = []
    for case in cases_file.cases:
        start = time.perf_counter()
        run = dry_run(cases_file.sensor, case.events, secrets)
        failures = check_case(case, run)
        results.append(CaseResult(case, run, failures, time.perf_counter() - start))
    return SuiteResult(cases_file, results)


# ---- output -----------------------------------------------------------------------------------------------------

def failure_text(failure: Failure, indent: str = "") -> str:
    return "\n".join([indent + failure.summary, *(indent + "  " + line for line in failure.diff)])


def render_suite_text(suite: SuiteResult, *, color: bool = False) -> str:
    """PASS/FAIL per case; under a failed case its diffs and its trace; a summary line."""
    green, red, reset = ("\033[32m", "\033[31m", "\033[0m") if color else ("", "", "")
    cf = suite.cases_file
    out = [f"{cf.file}: sensor {cf.sensor.metadata.name} ({cf.sensor_file})"]
    for result in suite.results:
        if result.passed:
            out.append(f"{green}PASS{reset}  {result.case.name}")
            continue
        out.append(f"{red}FAIL{reset}  {result.case.name}  ({cf.file}:{result.case.line})")
        out.extend(failure_text(f, "      ") for f in result.failures)
        out.append("      trace:")
        trace = render_text(result.run).rstrip("\n").splitlines()
        out.extend("        " + line if line else "" for line in trace)
    passed = len(suite.results) - suite.failed
    out.append(f"{len(suite.results)} case(s): {passed} passed, {suite.failed} failed")
    return "\n".join(out) + "\n"


def suite_json(suite: SuiteResult) -> dict[str, Any]:
    cf = suite.cases_file
    return {"file": cf.file, "sensor": cf.sensor.metadata.name, "passed": suite.failed == 0,
            "cases": [{"name": r.case.name, "line": r.case.line, "passed": r.passed,
                       "failures": [{"summary": f.summary, "diff": list(f.diff)} for f in r.failures],
                       "result": to_json(r.run)}
                      for r in suite.results]}


_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _xml_text(text: str) -> str:
    """`text` with the characters XML 1.0 cannot hold (control characters, lone surrogates) as `\\uXXXX`."""
    return _NOT_XML.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def junit_xml(suites: Sequence[SuiteResult]) -> bytes:
    """A JUnit XML report: one <testsuite> per cases file, one <testcase> per case, a <failure> per failed case
    whose message is the first failed expectation and whose text is every diff."""
    root = ET.Element("testsuites", name="sensorium test",
                      tests=str(sum(len(s.results) for s in suites)), failures=str(sum(s.failed for s in suites)),
                      errors="0", time=f"{sum(r.seconds for s in suites for r in s.results):.3f}")
    for suite in suites:
        cf = suite.cases_file
        element = ET.SubElement(root, "testsuite", name=_xml_text(cf.file), tests=str(len(suite.results)),
                                failures=str(suite.failed), errors="0", skipped="0",
                                time=f"{sum(r.seconds for r in suite.results):.3f}")
        for result in suite.results:
            case = ET.SubElement(element, "testcase", name=_xml_text(result.case.name),
                                 classname=_xml_text(f"{cf.file}:{cf.sensor.metadata.name}"),
                                 file=_xml_text(cf.file), line=str(result.case.line),
                                 time=f"{result.seconds:.3f}")
            if result.failures:
                failure = ET.SubElement(case, "failure", type="ExpectationFailed",
                                        message=_xml_text(result.failures[0].summary))
                failure.text = _xml_text("\n\n".join(failure_text(f) for f in result.failures) + "\n")
    ET.indent(root)
    text: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return text + b"\n"

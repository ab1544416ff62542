"""`sensorium test`: one Sensor against CloudEvent files, through the engine's own sensor stage and the HTTP
trigger's pure request building. Sends nothing, needs no bus; a missing secret becomes the firing's error.

Loading problems raise ConfigError(s) with FILE:LINE (exit 2); whatever the sensor decides is a result.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sensorium.engine import formats
from sensorium.engine.assemble import check_document
from sensorium.engine.config import ConfigErrors, Origin, load_document, load_documents
from sensorium.engine.core.cloudevent import CloudEvent, DecodeError, from_mapping
from sensorium.engine.core.errors import ConfigError, TriggerError
from sensorium.engine.core.preview import preview as data_preview
from sensorium.engine.core.secrets import Secrets
from sensorium.engine.documents import Sensor
from sensorium.engine.registry import REGISTRY, Registry, TriggerKind
from sensorium.engine.trace.fmt import HumanFormat
from sensorium.engine.trace.records import FilterChecked, FiringDone, Received, TraceRecord, Unmatched
from sensorium.engine.trace.steps import firing_started, param_records, request_record, stage_records
from sensorium.sensors.stage import Firing, SensorStage, StageResult
from sensorium.triggers.httprequest import REDACTED, HttpRequest, safe_url
from sensorium.triggers.params import ResolvedParam
from sensorium.triggers.spec import Trigger

DRY_BUS = ""  # no bus: the position is FILE:LINE
MASK_MIN_CHARS = 4


@dataclass(frozen=True)
class LoadedEvent:
    file: str
    line: int
    event: CloudEvent


@dataclass(frozen=True)
class FiringResult:
    firing: str
    trigger: str
    events: dict[str, str]
    request: HttpRequest | None
    error: str | None
    failed: bool  # an HTTP trigger whose request could not be built (not: a trigger that sends no request)


@dataclass
class DryRun:
    sensor: str
    results: list[StageResult] = field(default_factory=list)
    firings: list[FiringResult] = field(default_factory=list)
    records: list[TraceRecord] = field(default_factory=list)
    checks: list[tuple[FilterChecked, ...]] = field(default_factory=list)  # per result: its filter records
    secret_values: set[str] = field(default_factory=set)  # every secret a request read: masked in the output

    def mask(self, text: str | None) -> str | None:
        """`text` with every secret value this run read replaced by "***" (event data may carry one). Values
        shorter than MASK_MIN_CHARS are left alone in free text (a one-letter user name would blank out every
        occurrence of that letter); secret headers are "***" whatever their length."""
        if text is None or not self.secret_values:
            return text
        for secret in sorted(self.secret_values, key=len, reverse=True):
            text = text.replace(secret, REDACTED)
        return text


# ---- loading ------------------------------------------------------------------------------------------------

def load_sensor(path: str, name: str | None = None) -> Sensor:
    """The one Sensor in `path` (or the one named `name`); other kinds are ignored. Raises ConfigError(s)."""
    file = Path(path)
    if file.is_dir():
        raise ConfigError("is a directory: give the YAML file that holds the Sensor", path, 0)
    if not file.exists():
        raise ConfigError("no such file", path, 0)
    errors: list[ConfigError] = []
    sensors: list[tuple[Sensor, Origin]] = []
    for data, origin in load_documents(file):
        if formats.claiming(data) is not None:  # another system's format: the Sensors it translates into
            errors.extend(_translated_sensors(data, origin, sensors))
            continue
        if isinstance(data, dict) and data.get("kind") != "Sensor":
            continue  # other kinds are ignored; a document that is not a mapping is an error
        doc, problems = load_document(data, origin, [check_document])
        errors.extend(problems)
        if isinstance(doc, Sensor):
            sensors.append((doc, origin))
    if errors:
        raise ConfigErrors(errors)
    if name is not None:
        sensors = [(s, o) for s, o in sensors if s.metadata.name == name]
        if not sensors:
            raise ConfigError(f"no Sensor named '{name}' in this file", path, 0)
    if not sensors:
        raise ConfigError("no Sensor document in this file", path, 0)
    if len(sensors) > 1:
        names = ", ".join(s.metadata.name for s, _ in sensors)
        raise ConfigError(f"{len(sensors)} Sensor documents ({names}): choose one with --sensor NAME",
                          path, sensors[1][1].line)
    return sensors[0][0]


def _translated_sensors(data: Any, origin: Origin, sensors: list[tuple[Sensor, Origin]]) -> list[ConfigError]:
    """Append the Sensors a foreign format's document (engine.formats) translates into; returns its problems.
    Formats that resolve references across files (`finish`) are not read here: give `sensorium test` the Argo
    documents `sensorium convert` prints."""
    fmt = formats.claiming(data)
    if fmt is None or fmt.finish is not None:
        return [ConfigError(f"{fmt.name if fmt else 'this'} documents refer to other files: test the output of "
                            "`sensorium convert` instead", origin.file, origin.line)]
    try:
        translated = fmt.translate(data, origin, {})
    except ConfigErrors as exc:
        return list(exc.errors)
    except ConfigError as exc:
        return [exc]
    sensors.extend((doc, at) for doc, at in translated if isinstance(doc, Sensor))
    return []


def _first_line(text: str) -> int:
    stripped = text.lstrip()
    return text[: len(text) - len(stripped)].count("\n") + 1


def _loads(text: str) -> Any:
    """json.loads, with JSON nested deeper than the C scanner's recursion allows as a ValueError."""
    try:
        return json.loads(text)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None


def _objects(name: str, text: str) -> tuple[list[tuple[int, Any]], list[ConfigError]]:
    """(line, parsed JSON) per event: the whole file as one JSON value, else JSON Lines."""
    if not text.strip():
        return [], [ConfigError("no events in this file (want one CloudEvent JSON object, or JSON Lines)", name,
                                1)]
    try:
        return [(_first_line(text), _loads(text))], []
    except ValueError as whole:
        lines = [(n, line) for n, line in enumerate(text.splitlines(), 1) if line.strip()]
        try:
            _loads(lines[0][1])
        except ValueError:  # not JSON Lines either: report where the single JSON value breaks
            line = getattr(whole, "lineno", 1)
            return [], [ConfigError(f"not JSON: {getattr(whole, 'msg', whole)}", name, line)]
    out: list[tuple[int, Any]] = []
    errors: list[ConfigError] = []
    for number, line in lines:
        try:
            out.append((number, _loads(line)))
        except ValueError as exc:
            errors.append(ConfigError(f"not JSON: {getattr(exc, 'msg', exc)}", name, number))
    return out, errors


def load_events(files: Sequence[str]) -> list[LoadedEvent]:
    """Every event of every file, in order; all problems at once as ConfigErrors."""
    events: list[LoadedEvent] = []
    errors: list[ConfigError] = []
    for name in files:
        try:
            text = Path(name).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            errors.append(ConfigError(f"cannot read event file: {reason}", name, 0))
            continue
        objects, problems = _objects(name, text)
        errors.extend(problems)
        for line, obj in objects:
            try:
                events.append(LoadedEvent(name, line, from_mapping(obj)))
            except DecodeError as exc:
                errors.append(ConfigError(f"not a CloudEvent: {exc}", name, line))
            except RecursionError:  # re-encoding data nested almost as deep as the scanner allows
                errors.append(ConfigError("not a CloudEvent: data nested too deeply", name, line))
    if errors:
        raise ConfigErrors(errors)
    return events


# ---- running ------------------------------------------------------------------------------------------------

def _request(kind: TriggerKind, events: dict[str, CloudEvent], trigger: Trigger, secrets: Secrets,
             used: list[ResolvedParam]) -> tuple[HttpRequest | None, str | None]:
    if kind.request is None:
        return None, f"{kind.name} trigger: it sends no HTTP request"
    try:
        return kind.request(trigger, events, secrets, used), None
    except TriggerError as exc:
        return None, str(exc)


def dry_run(sensor: Sensor, events: Sequence[LoadedEvent], secrets: Secrets | None = None,
            registry: Registry = REGISTRY) -> DryRun:
    """Every event through the sensor stage, in order; each firing's request built by its registered kind."""
    secrets = secrets if secrets is not None else Secrets()
    name = sensor.metadata.name
    stage = SensorStage(sensor)
    triggers = {t.template.name: t for t in sensor.spec.triggers}
    listening = tuple(dict.fromkeys(f"{d.event_source_name}.{d.event_name}" for d in sensor.spec.dependencies))
    run = DryRun(name)
    for loaded in events:
        event = loaded.event
        run.records.append(Received(sensor=name, event=event.id, bus=DRY_BUS, position=f"{loaded.file}:{loaded.line}",
                                    attributes={k: str(v) for k, v in event.context().items()},
                                    data_bytes=len(event.data) if event.data is not None else 0,
                                    content_type=event.datacontenttype, data_preview=data_preview(event.data)))
        result = stage.process(event, datetime.now(UTC))
        run.results.append(result)
        if not result.dependencies:
            run.records.append(Unmatched(sensor=name, event=event.id, source=event.source, subject=event.subject,
                                         listening=listening))
        decided = list(stage_records(name, result))
        run.records.extend(decided)
        run.checks.append(tuple(r for r in decided if isinstance(r, FilterChecked)))
        for firing in result.firings:
            trigger = triggers[firing.trigger]
            run.firings.append(_fire(run, registry.trigger(trigger), trigger, firing, event.id, secrets))
    return run


def _fire(run: DryRun, kind: TriggerKind, trigger: Trigger, firing: Firing, event_id: str,
          secrets: Secrets) -> FiringResult:
    firing_id = f"dry-{len(run.firings) + 1}"
    events = dict(firing.events)
    run.records.append(firing_started(run.sensor, event_id, firing_id, trigger.name, trigger.kind() or "", events))
    observed: list[ResolvedParam] = []
    request, error = _request(kind, events, trigger, secrets, observed)
    run.records.extend(param_records(run.sensor, event_id, firing_id, trigger, observed))
    if request is not None:
        run.secret_values.update(v for v in request.secret_values if len(v) >= MASK_MIN_CHARS)
        run.records.append(request_record(run.sensor, event_id, firing_id, trigger.name, request.summary()))
    failed = error is not None and kind.request is not None
    run.records.append(FiringDone(sensor=run.sensor, event=event_id, firing=firing_id, trigger=trigger.name,
                                  success=not failed, attempts=0, error=error if failed else None,
                                  note="dry run: nothing sent" if not error or failed else f"dry run: {error}"))
    return FiringResult(firing_id, trigger.name, {dep: e.id for dep, e in events.items()}, request, error,
                        failed)


# ---- output -------------------------------------------------------------------------------------------------

def _body(body: bytes) -> Any:
    if not body:
        return None
    text = body.decode("utf-8", "replace")
    try:
        return json.loads(text)
    except ValueError:
        return text


def request_json(request: HttpRequest | None) -> dict[str, Any] | None:
    """The request as `--output json` shows it: secret headers and URL passwords as "***", a JSON body parsed."""
    if request is None:
        return None
    return {"method": request.method, "url": safe_url(request.url),
            "headers": dict(request.redacted_headers()), "body": _body(request.body)}


def _filters_json(run: DryRun, checks: Sequence[FilterChecked], dependency: str) -> list[dict[str, Any]]:
    """Every check of one dependency's filters as its trace record says it: values cut to VALUE_CHARS (by the
    trace's `cap`), secrets the run read masked."""
    return [{"kind": c.kind, "target": c.target, "seen": run.mask(c.seen), "wanted": list(c.wanted),
             "comparator": c.comparator, "type": c.type, "passed": c.passed, "reason": run.mask(c.reason),
             "error": run.mask(c.error)}
            for c in checks if c.dependency == dependency]


def to_json(run: DryRun) -> dict[str, Any]:
    """The `sensorium test --output json` contract (issue 4), keys in contract order; each dependency also
    carries `filters`, one entry per check (kind, target, seen, wanted, comparator, type, passed, reason, error;
    a whole-kind decision has an empty target)."""
    return {
        "sensor": run.sensor,
        "events": [{"id": r.event.id,
                    "dependencies": [{"name": d.name, "passed": d.passed, "error": run.mask(d.error),
                                      "filters": _filters_json(run, checks, d.name)}
                                     for d in r.dependencies]}
                   for r, checks in zip(run.results, run.checks, strict=True)],
        "firings": [{"trigger": f.trigger, "events": f.events, "request": request_json(f.request),
                     "error": run.mask(f.error)}
                    for f in run.firings],
    }


def render_json(run: DryRun) -> str:
    return json.dumps(to_json(run), indent=2, ensure_ascii=False) + "\n"


def render_text(run: DryRun, *, color: bool = False) -> str:
    """The human trace of the run and a summary line; secret values the run read show as "***"."""
    text = HumanFormat(color=color, times=False).lines(r.to_json() for r in run.records)
    fired = ", ".join(f.trigger for f in run.firings) or "nothing"
    failed = sum(1 for f in run.firings if f.failed)
    tail = f"; {failed} could not build a request" if failed else ""
    return run.mask(text + f"\nsensor {run.sensor}: {len(run.results)} event(s), {len(run.firings)} firing(s): "
                    f"{fired}{tail}\n") or ""

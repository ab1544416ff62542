"""Trigger parameters: Argo's `ResolveParamValue`, `ApplyParams` and `ConstructPayload`
(pkg/sensors/triggers/params.go).

Pure functions of (spec, events); no I/O. Byte-level output equals Argo's for compact input. Differences: a
payload parameter whose dependency is absent and has no `value` is skipped (Argo crashes, reference section 8);
templates that do not parse or use constructs outside engine.goport.template's subset are rejected at load;
`jsonPath`/`jmesPath` sources are a Sensorium extension used exactly like `dataKey`.
"""

from __future__ import annotations

import base64
import functools
import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import msgspec
from pydantic import BaseModel

from sensorium.engine.core.cloudevent import CloudEvent
from sensorium.engine.core.errors import ConfigError, TriggerError
from sensorium.engine.core.paths import PathExpr
from sensorium.engine.goport.gjson import PathResult, gjson_get, parse_json
from sensorium.engine.goport.goyaml import yaml_to_json
from sensorium.engine.goport.jsonenc import is_valid_json, marshal, marshal_string
from sensorium.engine.goport.re2 import compile_re2
from sensorium.engine.goport.sjson import ObjectPlan, SjsonError, set_raw, set_string
from sensorium.engine.goport.template import ArgoTemplate, TemplateError
from sensorium.triggers.spec import TriggerParameter, TriggerParameterSource

STRING = "String"
JSON_TYPE = "JSON"
MEDIA_JSON = "application/json"
MEDIA_YAML = "application/yaml"


class ParamError(TriggerError):
    """A parameter could not be resolved or applied; deterministic for the same events, so never retryable."""

    def __init__(self, message: str) -> None:
        super().__init__(message, retryable=False)


class Resolved(msgspec.Struct, frozen=True, gc=False):
    """A resolved parameter: `value` None means "no value" (dependency absent, no default): the parameter is
    skipped. `kind` is the gjson type name: String, Number, True, False, Null or JSON."""

    value: str | None
    kind: str = STRING


ResolvedParam = tuple[TriggerParameter, Resolved]
"""A parameter and the value the firing used: what `FiringOutcome.params` lists, for the trace."""


# ---- construction-time checks ----------------------------------------------------------------------------

def check_supported(params: Iterable[TriggerParameter] | None, where: str = "parameters") -> None:
    """Reject bad jsonPath/jmesPath selectors, as ConfigError. (Templates are checked by the spec model at load,
    triggers.spec.check_template; one rewritten by parameters at run time fails per firing, as in Argo.)"""
    for i, param in enumerate(params or ()):
        try:
            _data_selector(param.src)
        except ValueError as exc:
            raise ConfigError(str(exc), field=f"{where}[{i}].src") from None


# ---- event JSON (Argo's v1alpha1.Event / EventContext marshalled by encoding/json) -------------------------

def _go_time(text: str) -> str:
    if not text:
        return "null"
    try:
        parsed = datetime.fromisoformat(text.replace("z", "Z").replace("t", "T"))
    except ValueError:
        return "null"
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return '"' + parsed.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") + '"'


def context_json(event: CloudEvent) -> str:
    """`json.Marshal(event.Context)`: id, source, specversion, type, datacontenttype, subject, time (RFC3339
    UTC     seconds, null when unset). Extensions are not part of Argo's event context; Sensorium adds them as
    `extensions` (an object, after `time`) when the event has any, so `contextKey: extensions.<name>` reads one as
    a context filter's `extensions` does (events of Argo's own sources have none)."""
    fields = (("id", event.id), ("source", event.source), ("specversion", event.specversion),
              ("type", event.type), ("datacontenttype", event.datacontenttype), ("subject", event.subject))
    body = ",".join(f'"{k}":{marshal_string(v)}' for k, v in fields)
    extensions = ""
    if event.extensions:
        extensions = ',"extensions":{' + ",".join(f"{marshal_string(k)}:{marshal_string(v)}"
                                                  for k, v in event.extensions.items()) + "}"
    return "{" + body + ',"time":' + _go_time(event.time) + extensions + "}"


def event_json(event: CloudEvent) -> str:
    """`json.Marshal(event)`: {"context":{...},"data":"<base64 of the data bytes>"} (null when absent)."""
    data = "null" if event.data is None else '"' + base64.b64encode(event.data).decode() + '"'
    return '{"context":' + context_json(event) + ',"data":' + data + "}"


@functools.lru_cache(maxsize=256)
def _render_data(data: bytes | None, content_type: str) -> bytes | str:
    """Argo `renderEventDataAsJSON`: the data as JSON text, or ValueError with Argo's message. JSON data is
    returned as the event's own bytes, so that paths read the parse its filters already made (`parse_json`
    caches per data object); a parse that fails (Go accepts deeper nesting and longer numbers) is checked again
    with Go's rules."""
    raw = b"" if data is None else data
    if content_type == MEDIA_JSON:
        try:
            parse_json(raw)
            return raw
        except ValueError:
            pass
        text = raw.decode("utf-8", "replace")
        if is_valid_json(text):
            return text
        raise ValueError("event data is not valid JSON")
    if content_type == MEDIA_YAML:
        try:
            return yaml_to_json(raw.decode("utf-8", "replace"))
        except ValueError as exc:
            raise ValueError(f"failed converting yaml event data to JSON: {exc}") from None
    raise ValueError(f"unsupported event content type: {content_type}")


# ---- ResolveParamValue ----------------------------------------------------------------------------------

def _data_selector(src: TriggerParameterSource) -> PathExpr | None:
    if src.data_key:
        return _compile("path", src.data_key)
    if src.json_path:
        return _compile("jsonPath", src.json_path)
    if src.jmes_path:
        return _compile("jmesPath", src.jmes_path)
    return None


@functools.lru_cache(maxsize=1024)
def _compile(syntax: str, expression: str) -> PathExpr:
    if syntax == "path":
        return PathExpr.compile(path=expression)
    if syntax == "jsonPath":
        return PathExpr.compile(json_path=expression)
    return PathExpr.compile(jmes_path=expression)


def _describe(src: TriggerParameterSource) -> str:
    if src.data_key:
        return f"dataKey '{src.data_key}'"
    return f"jsonPath '{src.json_path}'" if src.json_path else f"jmesPath '{src.jmes_path}'"


def _result(found: PathResult) -> Resolved | None:
    """Argo `getValueByKey`: objects/arrays as raw JSON (type JSON), null as `null`, else gjson String()."""
    if not found.exists:
        return None
    if found.kind in (JSON_TYPE, "Null"):
        return Resolved(found.raw, found.kind)
    return Resolved(found.string(), found.kind)


def _unresolved(src: TriggerParameterSource, reason: str) -> ParamError:
    return ParamError(f"unable to resolve '{src.dependency_name}' parameter value. err: {reason}")


def resolve_param_value(src: TriggerParameterSource, events: Mapping[str, CloudEvent]) -> Resolved:
    """Argo `ResolveParamValue`; raises ParamError (`unable to resolve '<dep>' parameter value. err: ...`)."""
    event = events.get(src.dependency_name)
    if event is None:
        # absent dependency (other branch of ||): the default, else "no value" - not an error
        return Resolved(src.value, STRING)
    try:
        selector = _data_selector(src)
    except ValueError as exc:  # only reachable when parameters rewrote a path at run time
        raise _unresolved(src, str(exc)) from None
    uses_data = selector is not None or bool(src.data_template)
    if not src.context_key and not src.context_template and not uses_data:
        return Resolved(src.value if src.value is not None else event_json(event), STRING)
    if uses_data:  # data wins over context when both are given
        try:
            payload = _render_data(event.data, event.datacontenttype)
        except ValueError as exc:
            if src.value is not None:
                return Resolved(src.value, STRING)
            raise _unresolved(src, str(exc)) from None
    elif not src.context_template and src.context_key in _PLAIN_CONTEXT:
        # the same string gjson would read from context_json(event), without building and parsing that JSON
        return Resolved(getattr(event, src.context_key), STRING)
    else:
        payload = context_json(event)
    template_error = ""
    text = src.data_template or src.context_template  # dataTemplate wins over contextTemplate
    if text:  # tried first; on failure Argo falls back to the key, then to `value`
        try:
            doc = payload if isinstance(payload, str) else payload.decode("utf-8", "replace")
            return Resolved(_template(text).execute(json.loads(doc)), STRING)
        except (TemplateError, ValueError) as exc:
            template_error = str(exc)
    found: PathResult | None = None
    if selector is not None:
        found = selector.get(payload)
    elif src.context_key:
        found = gjson_get(payload, src.context_key)
    resolved = _result(found) if found is not None else None
    if resolved is not None:
        return resolved
    if src.value is not None:
        return Resolved(src.value, STRING)
    if template_error:
        raise _unresolved(src, template_error)
    what = _describe(src) if selector is not None else f"contextKey '{src.context_key}'"  # (only for errors)
    error = getattr(found, "error", None)
    detail = f": {error}" if error else ""
    raise _unresolved(src, f"{what} does not exist in the event payload{detail}")


_PLAIN_CONTEXT = frozenset({"id", "source", "specversion", "type", "datacontenttype", "subject"})


@functools.lru_cache(maxsize=256)
def _template(text: str) -> ArgoTemplate:
    """Compiled once per template text; raises TemplateError for constructs outside the supported subset."""
    return ArgoTemplate(text, regex=compile_re2)


# ---- ApplyParams / ConstructPayload -------------------------------------------------------------------

def _set(doc: str, param: TriggerParameter, value: str, kind: str) -> str:
    try:
        if kind != STRING and param.src.use_raw_data:
            return set_raw(doc, param.dest, value)
        return set_string(doc, param.dest, value)
    except SjsonError as exc:
        raise ParamError(str(exc)) from None


def apply_params(doc: bytes | str, params: Sequence[TriggerParameter] | None,
                 events: Mapping[str, CloudEvent], used: list[ResolvedParam] | None = None) -> bytes:
    """Argo `ApplyParams`: set each resolved parameter into the JSON document (skipping "no value"). Each
    parameter resolved is appended to `used` with its value (also when a later one fails)."""
    text = doc.decode("utf-8", "replace") if isinstance(doc, bytes) else doc
    for index, param in enumerate(params or ()):
        resolved = _resolve_named(param, events, "parameters", index)
        if used is not None:
            used.append((param, resolved))
        if resolved.value is None:
            continue
        value, kind = resolved.value, resolved.kind
        if param.operation in ("append", "prepend"):
            current = gjson_get(text, param.dest)
            if current.exists:
                kind = STRING
                value = current.string() + value if param.operation == "append" else value + current.string()
        elif param.operation not in ("", "overwrite"):
            raise ParamError(f"unsupported trigger parameter operation: {param.operation}")
        text = _set(text, param, value, kind)
    return text.encode()


def _resolve_named(param: TriggerParameter, events: Mapping[str, CloudEvent], section: str, index: int) -> Resolved:
    """resolve_param_value, with the failing parameter named in the error (`payload[1] (dest 'who'): ...`; the
    name is formatted only then, not per firing)."""
    try:
        return resolve_param_value(param.src, events)
    except ParamError as exc:
        raise ParamError(f"{section}[{index}] (dest '{param.dest}'): {exc}") from None


def construct_payload(events: Mapping[str, CloudEvent], params: Sequence[TriggerParameter] | None,
                      used: list[ResolvedParam] | None = None) -> bytes:
    """Argo `ConstructPayload`: the HTTP body from `payload` parameters; an empty `dest` makes the value the
    whole body (later parameters ignored); nothing set gives an empty body. Each parameter resolved is appended
    to `used` with its value."""
    text = ""
    for index, param in enumerate(params or ()):
        resolved = _resolve_named(param, events, "payload", index)
        if used is not None:
            used.append((param, resolved))
        if param.dest == "":
            if resolved.value is not None:
                return resolved.value.encode()
            continue
        if resolved.value is None:
            continue  # Sensorium: skipped (Argo dereferences a nil pointer here)
        text = _set(text, param, resolved.value, resolved.kind)
    return text.encode()


class PayloadPlan:
    """`construct_payload` for one trigger's `payload` parameters, decided once when the trigger is built: when
    every `dest` is a plain key path that no other one repeats or contains (engine.goport.sjson.ObjectPlan), the
    body is rendered in one pass from the resolved values instead of edited parameter by parameter; otherwise
    each firing runs `construct_payload`. Same bytes, same errors, same `used` either way."""

    def __init__(self, params: Sequence[TriggerParameter] | None) -> None:
        self.params = tuple(params or ())
        dests = [p.dest for p in self.params]
        plan = ObjectPlan.compile(dests) if all(dests) else None
        if plan is not None and any(p.operation not in ("", "overwrite") for p in self.params):
            plan = None  # (construct_payload ignores operations; keep one code path for anything unusual)
        self._plan = plan

    @property
    def compiled(self) -> bool:
        """Whether firings render the body in one pass."""
        return self._plan is not None

    def build(self, events: Mapping[str, CloudEvent], used: list[ResolvedParam] | None = None) -> bytes:
        plan = self._plan
        if plan is None:
            return construct_payload(events, self.params, used)
        values: list[tuple[int, str, bool]] = []
        for index, param in enumerate(self.params):
            try:  # (_resolve_named, without a call of its own per parameter)
                resolved = resolve_param_value(param.src, events)
            except ParamError as exc:
                raise ParamError(f"payload[{index}] (dest '{param.dest}'): {exc}") from None
            if used is not None:
                used.append((param, resolved))
            if resolved.value is not None:
                values.append((index, resolved.value, resolved.kind == STRING or not param.src.use_raw_data))
        return plan.render(values).encode()


def spec_json(model: BaseModel) -> str:
    """Compact JSON of a spec object with Argo's field names, as written (the document `parameters` edit)."""
    return marshal_ordered(model.model_dump(mode="json", by_alias=True, exclude_unset=True))


def marshal_ordered(value: Any) -> str:
    """Compact Go-style JSON keeping key order (struct fields are marshalled in declaration order)."""
    return marshal(value, sort_keys=False)

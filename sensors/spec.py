"""Sensor document models: Argo Events `Sensor` as pydantic models (YAML boundary only; no behaviour here).

Load-time checks follow Argo's controller validation (pkg/reconciler/sensor/validate.go) plus Sensorium's:
regexes, paths and `conditions` are compiled, number/bool filter values parsed, and parameters checked to name a
dependency, at load, so mistakes are reported with file and line (the culprit's own line: engine.core.specbase).
"""

from __future__ import annotations

import re
import zoneinfo
from datetime import datetime
from typing import Any, Literal

from pydantic import ConfigDict, Field, field_validator, model_validator

from sensorium.engine.core.paths import PathExpr
from sensorium.engine.core.specbase import ArgoModel, Loc, positive_duration, raise_located
from sensorium.engine.goport.gjson import go_parse_bool, go_parse_float
from sensorium.engine.goport.re2 import compile_re2
from sensorium.sensors.conditions import compile_condition
from sensorium.triggers.spec import CloudEventDelivery, Trigger, TriggerParameter

LogicalOperator = Literal["and", "or", ""]
Comparator = Literal[">=", ">", "=", "!=", "<", "<=", ""]
_CLOCK = re.compile(r"(\d{1,2}):(\d{2}):(\d{2})(\.\d+)?")


def _path_expr(path: str | None, json_path: str | None, jmes_path: str | None) -> PathExpr:
    """Exactly one non-empty selector, compiled; an empty string counts as not given (Argo: "must be set")."""
    return PathExpr.compile(path=path or None, json_path=json_path or None, jmes_path=jmes_path or None)


class ContextFilter(ArgoModel):
    type: str = Field(default="", description="Exact CloudEvent `type` required (when non-empty).")
    subject: str = Field(default="", description="Exact CloudEvent `subject` (the event name) required.")
    source: str = Field(default="", description="Exact CloudEvent `source` (the event source name) required.")
    datacontenttype: str = Field(default="", description="Exact CloudEvent `datacontenttype` required.")
    id: str = Field(default="", description="Accepted for Argo compatibility; ignored (as in Argo).")
    specversion: str = Field(default="", description="Accepted for Argo compatibility; ignored (as in Argo).")
    time: str | datetime | None = Field(default=None, description="Accepted for Argo compatibility; ignored.")
    extensions: dict[str, str] = Field(
        default_factory=dict,
        description="Sensorium extension: CloudEvent extension attributes that must equal these values.")

    @model_validator(mode="after")
    def _something_enforced(self) -> ContextFilter:
        if not (self.type or self.subject or self.source or self.datacontenttype or self.extensions):
            raise ValueError("no fields specified in ctx filter (aka all events will be discarded): "
                             "set type, subject, source, datacontenttype or extensions")
        return self


class DataFilter(ArgoModel):
    path: str | None = Field(default=None, description="gjson path into the event data.")
    json_path: str | None = Field(
        default=None, description="Sensorium extension: JSONPath into the event data, instead of `path`.")
    jmes_path: str | None = Field(
        default=None, description="Sensorium extension: JMESPath into the event data, instead of `path`.")
    type: Literal["string", "number", "bool"] = Field(
        description="How to compare: string (values are RE2 regexes, unanchored), number or bool.")
    value: list[str] = Field(description="Accepted values (ORed); non-empty, no empty strings.")
    comparator: Comparator = Field(
        default="",
        description='">=", ">", "=", "!=", "<" or "<=" ("" means "="); strings honour only "=" and "!=".')
    template: str = Field(
        default="", description="Go template applied to the value before comparing (parsed at load).")

    @field_validator("value", mode="before")
    @classmethod
    def _strings_only(cls, value: Any) -> Any:
        if isinstance(value, list):
            for item in value:
                if not isinstance(item, str):
                    raise ValueError(f"value entries must be strings, got {item!r}: quote them in YAML")
        return value

    @model_validator(mode="after")
    def _check(self) -> DataFilter:
        self.expr()
        if not self.value:
            raise ValueError("one of data filters is not valid (type, path and value must be not empty)")
        if any(v == "" for v in self.value):
            raise ValueError("one of data filters is not valid (value must be not empty)")
        if self.type == "string":
            for pattern in self.value:
                try:
                    compile_re2(pattern)
                except ValueError as exc:
                    raise ValueError(f"value {pattern!r} is not a valid regular expression: {exc}") from None
        raise_located(self._typed_values())
        return self

    def _typed_values(self) -> list[tuple[Loc, str]]:
        """Number values must parse as Go float64s and bool values as Go bools: Argo parses them per event and
        fails every event with the same error, so Sensorium refuses them at load (same parsers as the filter)."""
        problems: list[tuple[Loc, str]] = []
        for i, value in enumerate(self.value):
            error = go_parse_float(value)[1] if self.type == "number" else None
            if error is not None:
                problems.append((("value", i), f"value {value!r} is not a number (type is number): {error}"))
            elif self.type == "bool" and go_parse_bool(value) is None:
                problems.append((("value", i), f"value {value!r} is not a bool: want true or false "
                                               "(Go also reads 1, t, T, TRUE, True, 0, f, F, FALSE, False)"))
        return problems

    def expr(self) -> PathExpr:
        return _path_expr(self.path, self.json_path, self.jmes_path)


class PayloadField(ArgoModel):
    name: str = Field(description="Variable name the value is bound to in the expression.")
    path: str | None = Field(default=None, description="gjson path into the event data.")
    json_path: str | None = Field(default=None, description="Sensorium extension: JSONPath, not `path`.")
    jmes_path: str | None = Field(default=None, description="Sensorium extension: JMESPath, not `path`.")

    @model_validator(mode="after")
    def _check(self) -> PayloadField:
        if not self.name:
            raise ValueError("one of expr filters is not valid (path and name in a field must be not empty)")
        self.expr()
        return self

    def expr(self) -> PathExpr:
        return _path_expr(self.path, self.json_path, self.jmes_path)


class ExprFilter(ArgoModel):
    expr: str = Field(description="govaluate expression over the fields (compiled at load).")
    fields: list[PayloadField] = Field(description="Values bound to variables; at least one.")

    @model_validator(mode="after")
    def _check(self) -> ExprFilter:
        if not self.expr or not self.fields:
            raise ValueError("one of expr filters is not valid (expr and fields must be not empty)")
        return self


def _clock(value: str) -> float:
    m = _CLOCK.fullmatch(value)
    if m is None or int(m.group(1)) > 23 or int(m.group(2)) > 59 or int(m.group(3)) > 59:
        raise ValueError(f'parsing time "{value}" as "15:04:05": not an hh:mm:ss time of day')
    return int(m.group(1)) * 3600 + int(m.group(2)) * 60 + int(m.group(3)) + float(m.group(4) or 0)


class TimeFilter(ArgoModel):
    start: str = Field(description="Window start, hh:mm:ss (inclusive), on the event's date.")
    stop: str = Field(description="Window end, hh:mm:ss (exclusive); before start: crosses midnight.")
    timezone: str = Field(default="", description="IANA time zone of start/stop; default UTC.")

    @field_validator("start", "stop")
    @classmethod
    def _time_of_day(cls, value: str) -> str:
        _clock(value)
        return value

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        if value:
            try:
                zoneinfo.ZoneInfo(value)
            except (zoneinfo.ZoneInfoNotFoundError, ValueError):
                raise ValueError(f"invalid timezone '{value}'") from None
        return value

    @model_validator(mode="after")
    def _check(self) -> TimeFilter:
        if _clock(self.start) == _clock(self.stop):
            raise_located([(("stop",), f"invalid event time filter: stop '{self.stop}' is equal to start "
                                       f"'{self.start}'")])
        return self


class EventDependencyFilter(ArgoModel):
    time: TimeFilter | None = Field(default=None, description="Event time window (hh:mm:ss bounds, IANA zone).")
    context: ContextFilter | None = Field(default=None, description="Exact matches on CloudEvent attributes.")
    data: list[DataFilter] | None = Field(default=None, description="Filters on the event data.")
    exprs: list[ExprFilter] | None = Field(default=None, description="govaluate filters.")
    data_logical_operator: LogicalOperator = Field(
        default="", description='How `data` entries combine: "and" (default) or "or".')
    expr_logical_operator: LogicalOperator = Field(
        default="", description='How `exprs` entries combine: "and" (default) or "or".')
    script: str = Field(default="", description="Lua filter returning a boolean (compiled at load).")


class EventDependencyTransformer(ArgoModel):
    jq: str = Field(default="", description="jq program rewriting the event data.")
    script: str = Field(default="", description="Lua script rewriting the event data.")

    @model_validator(mode="after")
    def _one_kind(self) -> EventDependencyTransformer:
        if self.jq and self.script:  # Argo runs jq and silently ignores the script
            raise_located([(("script",), "a transform has exactly one kind, got jq and script")])
        return self


class EventDependency(ArgoModel):
    name: str = Field(description="Dependency name, unique in the sensor; used by conditions and parameters.")
    event_source_name: str = Field(description="Matched against the CloudEvent `source`.")
    event_name: str = Field(description="Matched against the CloudEvent `subject`.")
    filters_logical_operator: LogicalOperator = Field(
        default="", description='How filter kinds combine: "and" (default) or "or".')
    filters: EventDependencyFilter | None = Field(
        default=None, description="Filters; none means every event passes.")
    transform: EventDependencyTransformer | None = Field(
        default=None, description="Rewrites the event before filtering: jq or script, not both.")

    @model_validator(mode="after")
    def _required(self) -> EventDependency:
        for label, value in (("a name", self.name), ("the EventSourceName", self.event_source_name),
                             ("the EventName", self.event_name)):
            if not value:
                raise ValueError(f"event dependency must define {label}")
        return self


class SensorConsumer(ArgoModel):
    """Sensorium: a durable bus consumer of this sensor's own (HNS-style and Weik.io subscriptions ask for one)."""

    name: str = Field(min_length=1, max_length=200,
                      description="Durable consumer (JetStream) or consumer group (Kafka) name; stable across "
                                  "restarts, so the sensor resumes where it stopped.")
    max_in_flight: int | None = Field(default=None, ge=1, le=100_000,
                                      description="Firings of this sensor in flight at once (default: the engine's).")
    ack_wait: str | None = Field(default=None, description="Go duration the bus waits for an acknowledgement "
                                                            "before redelivering (default 30s).")
    dead_letter: bool = Field(default=False, description="Store a message whose firing failed after its last retry "
                              "on the bus's dead-letter subject/topic `sensorium-dlq` (reason `undeliverable`) "
                              "instead of only logging it (HNS-style subscriptions set it).")

    @field_validator("ack_wait")
    @classmethod
    def _ack_wait(cls, value: str | None) -> str | None:
        return positive_duration(value, "ackWait") if value is not None else None


class SensorSpec(ArgoModel):
    dependencies: list[EventDependency] = Field(description="Events the sensor waits for; at least one.")
    triggers: list[Trigger] = Field(description="What runs when conditions are met; at least one.")
    event_bus_name: str = Field(default="default", description="Name of the EventBus document to use.")
    error_on_failed_round: bool = Field(default=False, description="Accepted for Argo compatibility; unused.")
    replicas: int | None = Field(default=None, description="Kubernetes only; ignored.")
    revision_history_limit: int | None = Field(default=None, description="Kubernetes only; ignored.")
    template: dict[str, Any] | None = Field(default=None, description="Kubernetes pod template; ignored.")
    logging_fields: dict[str, str] | None = Field(default=None, description="Kubernetes only; ignored.")
    subscription: dict[str, Any] | None = Field(
        default=None, description="Legacy (Argo Events <= 1.0) subscription settings; accepted and ignored.")
    consumer: SensorConsumer | None = Field(
        default=None, description="Sensorium: give this sensor a named durable consumer of its own.")

    @model_validator(mode="after")
    def _check(self) -> SensorSpec:
        if not self.dependencies:
            raise ValueError("no event dependencies found")
        if not self.triggers:
            raise ValueError("no triggers found")
        raise_located(spec_problems([d.name for d in self.dependencies], list(enumerate(self.triggers))))
        return self


def spec_problems(names: list[str], triggers: list[tuple[int, Trigger]]) -> list[tuple[Loc, str]]:
    """The sensor-wide checks (Argo's validate.go plus Sensorium's), each at its culprit (`loc` below `spec`):
    unique names, `conditions` that compile over the dependency `names`,
    parameters naming a dependency. `triggers` are (index in spec.triggers, trigger): engine.partial runs this on
    the valid triggers of a sensor whose other parts are invalid."""
    problems: list[tuple[Loc, str]] = []
    for i, name in enumerate(names):
        if name in names[:i]:
            problems.append((("dependencies", i, "name"), f"dependency names must be unique: {name}"))
    seen: set[str] = set()
    for t, trigger in triggers:
        name = trigger.template.name
        if name in seen:
            problems.append((("triggers", t, "template", "name"), f"trigger names must be unique: {name}"))
        seen.add(name)
        try:
            compile_condition(trigger.template.conditions, names)
        except ValueError as exc:
            problems.append((("triggers", t, "template", "conditions"), f"trigger '{name}': {exc}"))
        problems.extend(_unknown_dependencies([(t, trigger)], set(names)))
    return problems


def _unknown_dependencies(triggers: list[tuple[int, Trigger]], names: set[str]) -> list[tuple[Loc, str]]:
    """Every parameter (trigger, http payload/parameters/dynamicHeaders, dlqTrigger's) whose
    `src.dependencyName` names no dependency: Argo would silently use its default value on every firing."""
    problems: list[tuple[Loc, str]] = []

    def check(params: list[TriggerParameter] | None, loc: Loc) -> None:
        for i, param in enumerate(params or ()):
            if param.src.dependency_name not in names:
                problems.append(((*loc, i, "src", "dependencyName"),
                                 f"unknown dependency '{param.src.dependency_name}' "
                                 f"(the sensor's dependencies: {', '.join(sorted(names))})"))

    def walk(trigger: Trigger, loc: Loc) -> None:
        check(trigger.parameters, (*loc, "parameters"))
        http = trigger.template.http
        if http is not None:
            for key, params in (("parameters", http.parameters), ("payload", http.payload),
                                ("dynamicHeaders", http.dynamic_headers)):
                check(params, (*loc, "template", "http", key))
            problems.extend(_cloud_event_dependency(http.cloud_event, trigger.template.conditions, names,
                                                    (*loc, "template", "http")))
        if trigger.dlq_trigger is not None:
            walk(trigger.dlq_trigger, (*loc, "dlqTrigger"))

    for t, trigger in triggers:
        walk(trigger, ("triggers", t))
    return problems


def _cloud_event_dependency(option: CloudEventDelivery | None, conditions: str | None, names: set[str],
                            loc: Loc) -> list[tuple[Loc, str]]:
    """An http trigger's `cloudEvent` must name which dependency's event it sends when a firing can hold several
    events (more than one dependency, and conditions with `&&`, the default); with `||` only, a firing holds
    the one event that fired."""
    if option is None:
        return []
    if option.dependency_name is None:
        try:
            several = len(names) > 1 and compile_condition(conditions, sorted(names)).has_and()
        except ValueError:
            return []  # reported by the conditions check
        if several:
            return [((*loc, "cloudEvent"), "cloudEvent.dependencyName is required: a firing of this trigger holds "
                                           f"several dependencies' events ({', '.join(sorted(names))})")]
        return []
    if option.dependency_name not in names:
        return [((*loc, "cloudEvent", "dependencyName"), f"unknown dependency '{option.dependency_name}' "
                                                         f"(the sensor's dependencies: {', '.join(sorted(names))})")]
    return []


class ObjectMeta(ArgoModel):
    model_config = ConfigDict(extra="allow")

    name: str = Field(description="Sensor name (names the condition-state store and Kafka topics).")
    namespace: str = Field(default="", description="Namespace; part of default bus names.")
    labels: dict[str, str] = Field(default_factory=dict, description="Labels; informational.")
    annotations: dict[str, str] = Field(default_factory=dict, description="Annotations; informational.")

    @field_validator("name")
    @classmethod
    def _named(cls, value: str) -> str:
        if not value:
            raise ValueError("metadata.name must not be empty")
        return value


class Sensor(ArgoModel):
    api_version: Literal["argoproj.io/v1alpha1"] = Field(description="Always argoproj.io/v1alpha1.")
    kind: Literal["Sensor"] = Field(description="Always Sensor.")
    metadata: ObjectMeta = Field(description="Name and labels.")
    spec: SensorSpec = Field(description="Dependencies and triggers.")
    status: dict[str, Any] | None = Field(default=None, description="Kubernetes status; ignored.")

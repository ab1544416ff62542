"""Trigger spec models: Argo Events `triggers[]` as pydantic models (YAML boundary only; no behaviour here).

Load-time checks (Argo's controller validation, `V`) run unless the model is validated with context
`{"runtime": True}`, which is how a template re-parsed after parameters were applied is read (Argo does not
re-validate there either).
"""

from __future__ import annotations

import re
from collections.abc import Collection
from typing import Any, Literal

from pydantic import Field, StrictInt, StrictStr, ValidationInfo, field_validator, model_validator

from sensorium.engine.core.errors import ConfigError
from sensorium.engine.core.specbase import (
    ArgoModel,
    BasicAuth,
    KafkaSASL,
    KeySelector,
    Loc,
    NATSAuth,
    TLSConfig,
    argo_name,
    check_brokers,
    check_header_name,
    check_header_value,
    check_topic,
    check_url,
    raise_located,
)
from sensorium.engine.goport.re2 import compile_re2
from sensorium.engine.goport.template import ArgoTemplate, TemplateError
from sensorium.triggers.retry import Backoff, parse_duration_field

HTTP_METHODS = ("GET", "DELETE", "PATCH", "POST", "PUT")
OPERATIONS = ("", "overwrite", "append", "prepend")
# Argo's resolution order when several kinds are set (pkg/sensors/trigger.go): (python field, YAML key)
KIND_ORDER: tuple[tuple[str, str], ...] = (
    ("k8s", "k8s"), ("argo_workflow", "argoWorkflow"), ("http", "http"), ("aws_lambda", "awsLambda"),
    ("azure_event_hubs", "azureEventHubs"), ("azure_service_bus", "azureServiceBus"), ("kafka", "kafka"),
    ("pulsar", "pulsar"), ("nats", "nats"), ("slack", "slack"), ("open_whisk", "openWhisk"),
    ("custom", "custom"), ("log", "log"), ("email", "email"),
)
_RANGE = re.compile(r"^([0-9]{3})-([0-9]{3})$")


def _runtime(info: ValidationInfo) -> bool:
    return isinstance(info.context, dict) and bool(info.context.get("runtime"))


def check_template(text: str) -> None:
    """A `dataTemplate`/`contextTemplate` must parse as a Go template inside engine.goport.template's subset (ValueError
    otherwise). Argo parses it per event and falls back to the key or value on every event; a template that can
    never parse is a mistake, so Sensorium refuses it at load, as it does a data filter's `template`."""
    try:
        template = ArgoTemplate(text, regex=compile_re2)
    except TemplateError as exc:  # valid Go outside the subset
        raise ValueError(str(exc)) from None
    if template.parse_error is not None:
        raise ValueError(f"template does not parse: {template.parse_error}")


class TriggerParameterSource(ArgoModel):
    dependency_name: str = Field(description="Dependency whose event supplies the value (required).")
    context_key: str | None = Field(default=None, description="gjson path into the event context JSON.")
    context_template: str | None = Field(
        default=None, description="Go template over the event context (parsed at load).")
    data_key: str | None = Field(
        default=None, description="gjson path into the event data (application/json or application/yaml).")
    data_template: str | None = Field(
        default=None, description="Go template over the event data (parsed at load).")
    json_path: str | None = Field(
        default=None, description="Sensorium extension: JSONPath into the event data, used like dataKey.")
    jmes_path: str | None = Field(
        default=None, description="Sensorium extension: JMESPath into the event data, used like dataKey.")
    value: str | None = Field(
        default=None, description="Literal value: the result when no key is given, else the fallback.")
    use_raw_data: bool = Field(
        default=False, description="Insert numbers, booleans, null, objects and arrays as JSON, not strings.")

    @field_validator("dependency_name")
    @classmethod
    def _named(cls, value: str, info: ValidationInfo) -> str:
        if not value and not _runtime(info):
            raise ValueError("parameter dependency name can't be empty")
        return value

    @field_validator("data_template", "context_template")
    @classmethod
    def _parses(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value and not _runtime(info):
            check_template(value)
        return value

    @model_validator(mode="after")
    def _one_data_selector(self) -> TriggerParameterSource:
        named = [n for n, v in (("dataKey", self.data_key), ("jsonPath", self.json_path),
                                ("jmesPath", self.jmes_path)) if v]
        if len(named) > 1:
            raise ValueError(f"only one of dataKey, jsonPath and jmesPath may be set, got {', '.join(named)}")
        return self


class TriggerParameter(ArgoModel):
    src: TriggerParameterSource = Field(description="Where the value comes from.")
    dest: str = Field(
        default="", description="sjson path the value is written to; in http.payload an empty dest means "
                                "the value is the entire body.")
    operation: str = Field(
        default="", description='How to combine with an existing value: ""/overwrite, append or prepend.')

    @field_validator("operation")
    @classmethod
    def _known_operation(cls, value: str, info: ValidationInfo) -> str:
        if value not in OPERATIONS and not _runtime(info):
            raise ValueError(f"unsupported trigger parameter operation: {value}")
        return value


def _require_dest(params: list[TriggerParameter] | None, info: ValidationInfo, what: str) -> None:
    if params and not _runtime(info):
        for i, param in enumerate(params):
            if not param.dest:
                raise ValueError(f"{what}[{i}]: parameter destination can't be empty")


class ValueFromSource(ArgoModel):
    secret_key_ref: KeySelector | None = Field(default=None, description="Secret holding the value.")
    config_map_key_ref: KeySelector | None = Field(default=None, description="ConfigMap holding the value.")

    @model_validator(mode="after")
    def _exactly_one(self) -> ValueFromSource:
        if (self.secret_key_ref is None) == (self.config_map_key_ref is None):
            raise ValueError("exactly one of secretKeyRef and configMapKeyRef must be set")
        return self


class SecureHeader(ArgoModel):
    name: str = Field(description="Header name, sent verbatim (an RFC 7230 token).")
    value_from: ValueFromSource = Field(description="Secret or ConfigMap reference holding the header value.")

    @field_validator("name")
    @classmethod
    def _token(cls, value: str, info: ValidationInfo) -> str:
        if not _runtime(info):
            check_header_name(value)
        return value


class CloudEventDelivery(ArgoModel):
    """Sensorium extension: send the event itself as a CloudEvent (triggers.cloudevent_body). `cloudEvent: binary`
    is short for `cloudEvent: {mode: binary}`."""

    mode: Literal["binary", "structured"] = Field(
        description="binary: attributes and extensions as ce-* headers, the data as the body with its content "
                    "type; structured: the whole event as application/cloudevents+json.")
    dependency_name: str | None = Field(
        default=None, description="Dependency whose event is sent; required when a firing can hold several "
                                  "events (several dependencies and conditions with &&, the default).")


def _mode_shorthand(schema: dict[str, Any]) -> None:
    """The JSON schema of `cloudEvent` also accepts the shorthand `binary` / `structured`."""
    schema["anyOf"] = [{"type": "string", "enum": ["binary", "structured"]}, *schema.get("anyOf", [])]


class HTTPTrigger(ArgoModel):
    url: str = Field(description="Request URL (required): http:// or https://, with a host.")
    method: str = Field(default="POST", description="GET, DELETE, PATCH, POST or PUT; default POST.")
    payload: list[TriggerParameter] | None = Field(
        default=None, description="Parameters that build the request body (ConstructPayload).")
    parameters: list[TriggerParameter] | None = Field(
        default=None, description="Parameters applied to the JSON of this http object before each request.")
    timeout: int = Field(default=60, description="Seconds allowed per attempt; 0 means 60; not negative.")
    headers: dict[str, str] | None = Field(
        default=None, description="Static headers, names sent verbatim (RFC 7230 tokens; no CR, LF or NUL in values).")
    dynamic_headers: list[TriggerParameter] | None = Field(
        default=None, description="Headers whose value is resolved from an event; dest is the header name.")
    secure_headers: list[SecureHeader] | None = Field(
        default=None, description="Headers whose value comes from a secret; never shown in traces or logs.")
    basic_auth: BasicAuth | None = Field(default=None, description="Basic auth credentials from secrets.")
    tls: TLSConfig | None = Field(default=None, description="TLS client settings (key `tls`, as in Argo).")
    host: str | None = Field(default=None, description="Overrides the Host header (no CR, LF or NUL).")
    cloud_event: CloudEventDelivery | None = Field(
        default=None, description="Sensorium extension: deliver the event as a CloudEvent, `binary` or "
                                  "`structured` (or {mode, dependencyName}); the body is then the event, so "
                                  "`payload` must not be set.", json_schema_extra=_mode_shorthand)

    @field_validator("cloud_event", mode="before")
    @classmethod
    def _cloud_event_mode(cls, value: Any) -> Any:
        return {"mode": value} if isinstance(value, str) else value

    @field_validator("method")
    @classmethod
    def _known_method(cls, value: str, info: ValidationInfo) -> str:
        if value and value not in HTTP_METHODS and not _runtime(info):
            raise ValueError("only GET, DELETE, PATCH, POST and PUT methods are supported")
        return value

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str, info: ValidationInfo) -> str:
        if not _runtime(info):  # parameters may rewrite it per firing; Argo does not re-validate either
            check_url(value, ("http", "https"))
        return value

    @field_validator("host")
    @classmethod
    def _host_header(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None and not _runtime(info):
            check_header_value(value)
        return value

    @field_validator("timeout")
    @classmethod
    def _not_negative(cls, value: int, info: ValidationInfo) -> int:
        if value < 0 and not _runtime(info):
            raise ValueError(f"timeout must not be negative, got {value} (0 means the default, 60 s)")
        return value

    @field_validator("headers")
    @classmethod
    def _headers(cls, value: dict[str, str] | None, info: ValidationInfo) -> dict[str, str] | None:
        if value and not _runtime(info):
            problems: list[tuple[Loc, str]] = []
            for name, text in value.items():
                for check, arg in ((check_header_name, name), (check_header_value, text)):
                    try:
                        check(arg)
                    except ValueError as exc:
                        problems.append(((name,), str(exc)))
            raise_located(problems)
        return value

    @model_validator(mode="after")
    def _dests(self, info: ValidationInfo) -> HTTPTrigger:
        _require_dest(self.parameters, info, "parameters")
        _require_dest(self.dynamic_headers, info, "dynamicHeaders")
        if not _runtime(info):
            problems: list[tuple[Loc, str]] = []
            if self.cloud_event is not None and self.payload is not None:
                problems.append((("payload",), "payload and cloudEvent exclude each other: with cloudEvent the "
                                               "body is the event's data (binary) or the event (structured)"))
            for i, param in enumerate(self.dynamic_headers or ()):
                try:
                    check_header_name(param.dest)
                except ValueError as exc:
                    problems.append((("dynamicHeaders", i, "dest"), str(exc)))
            raise_located(problems)
        return self


def check_publish_subject(subject: str) -> str:
    """A NATS subject a message can be published to: dot-separated tokens, none empty, no whitespace, no
    wildcard token (`*`, `>`); raises ValueError."""
    if not subject:
        raise ValueError("nats subject can't be empty")
    for token in subject.split("."):
        if not token:
            raise ValueError(f"subject {subject!r} has an empty token (two dots, or a dot at an end)")
        if any(c.isspace() or c == "\0" for c in token):
            raise ValueError(f"subject {subject!r} contains whitespace")
        if token in ("*", ">"):
            raise ValueError(f"subject {subject!r} has a wildcard token {token!r}: a message is published to "
                             "one subject")
    return subject


class NATSTrigger(ArgoModel):
    url: str = Field(description="NATS server URL (required): nats://, tls:// or HOST:PORT; several separated by "
                                 "commas.")
    subject: str = Field(description="Subject the message is published to (required; no wildcards).")
    payload: list[TriggerParameter] | None = Field(
        default=None, description="Parameters that build the message (ConstructPayload; required, as in Argo).")
    parameters: list[TriggerParameter] | None = Field(
        default=None, description="Parameters applied to the JSON of this nats object before each message "
                                  "(Sensorium honours a changed subject).")
    tls: TLSConfig | None = Field(default=None, description="TLS client settings.")
    auth: NATSAuth | None = Field(default=None, description="Credentials: basic, token, nkey or credential.")

    @field_validator("url")
    @classmethod
    def _nats_url(cls, value: str, info: ValidationInfo) -> str:
        if not _runtime(info):
            if not value:
                raise ValueError("nats server url can't be empty")
            for one in (part.strip() for part in value.split(",")):  # no scheme: nats:// (as nats.go reads it)
                check_url(one if "://" in one else f"nats://{one}", ("nats", "tls"))
        return value

    @field_validator("subject")
    @classmethod
    def _subject(cls, value: str, info: ValidationInfo) -> str:
        if not value and not _runtime(info):
            raise ValueError("nats subject can't be empty")
        return value

    @model_validator(mode="after")
    def _payload(self, info: ValidationInfo) -> NATSTrigger:
        if not _runtime(info):
            problems: list[tuple[Loc, str]] = []
            if self.payload is None:
                problems.append((("payload",), "payload can't be nil"))
            if not any(p.dest == "subject" for p in self.parameters or ()):  # else each firing checks the result
                try:
                    check_publish_subject(self.subject)
                except ValueError as exc:
                    problems.append((("subject",), str(exc)))
            raise_located(problems)
            _require_dest(self.payload, info, "payload")
            _require_dest(self.parameters, info, "parameters")
        return self


class KafkaTrigger(ArgoModel):
    url: str = Field(description="Brokers (required): host:port, several separated by commas.")
    topic: str = Field(description="Topic the record is produced to (required).")
    payload: list[TriggerParameter] | None = Field(
        default=None, description="Parameters that build the record's value (ConstructPayload; required, as in Argo).")
    parameters: list[TriggerParameter] | None = Field(
        default=None, description="Parameters applied to the JSON of this kafka object before each record.")
    partitioning_key: str | None = Field(
        default=None, description="The record's key (sarama's hash partitioner picks the partition, as in Argo).")
    required_acks: int = Field(
        default=0, description="1: the leader acknowledges; -1 (and 0, unset): every in-sync replica, as in Argo.")
    compress: bool = Field(default=False, description="Snappy compression.")
    flush_frequency: int = Field(
        default=0, ge=0, description="Accepted for Argo's files; Argo's producer reads it as nanoseconds, and a "
                                     "record never waits for a batch here.")
    headers: dict[str, str] | None = Field(default=None, description="Record headers.")
    secure_headers: list[SecureHeader] | None = Field(
        default=None, description="Record headers whose value comes from a secret; never shown in traces or logs.")
    tls: TLSConfig | None = Field(default=None, description="TLS client settings (verified, unlike Argo's).")
    sasl: KafkaSASL | None = Field(default=None, description="SASL authentication.")
    version: str | None = Field(default=None, description="Kafka protocol version hint (sarama); not used.")
    partition: int | None = Field(default=None, description="Deprecated in Argo and not used: the key decides.")
    schema_registry: dict[str, Any] | None = Field(
        default=None, description="Avro through a schema registry (not supported).")

    @field_validator("url")
    @classmethod
    def _brokers(cls, value: str, info: ValidationInfo) -> str:
        return value if _runtime(info) else check_brokers(value, "broker url must not be empty")

    @field_validator("topic")
    @classmethod
    def _topic(cls, value: str, info: ValidationInfo) -> str:
        if not _runtime(info):
            if not value:
                raise ValueError("topic must not be empty")
            check_topic(value)
        return value

    @field_validator("required_acks")
    @classmethod
    def _acks(cls, value: int, info: ValidationInfo) -> int:
        if value not in (-1, 0, 1) and not _runtime(info):
            raise ValueError(f"requiredAcks must be -1, 0 or 1, got {value}")
        return value

    @model_validator(mode="after")
    def _payload(self, info: ValidationInfo) -> KafkaTrigger:
        if not _runtime(info):
            problems: list[tuple[Loc, str]] = []
            if self.payload is None:
                problems.append((("payload",), "payload must not be empty"))
            if self.schema_registry is not None:
                problems.append((("schemaRegistry",), "schemaRegistry (Avro) is not supported: the record's value "
                                                      "is the payload's JSON"))
            raise_located(problems)
            _require_dest(self.payload, info, "payload")
            _require_dest(self.parameters, info, "parameters")
        return self


class LogTrigger(ArgoModel):
    interval_seconds: int = Field(
        default=0, ge=0, description="Log at most once per this many seconds (honoured by Sensorium).")


class ConditionsResetByTime(ArgoModel):
    cron: str = Field(description="5-field cron expression (no descriptors).")
    timezone: str | None = Field(default=None, description="IANA time zone for the cron schedule.")


class ConditionsResetCriteria(ArgoModel):
    by_time: ConditionsResetByTime = Field(description="Reset partially met conditions on a schedule.")


class TriggerTemplate(ArgoModel):
    name: str = Field(description="Trigger name, unique within the sensor (required).")
    conditions: str | None = Field(
        default=None, description="Dependency expression with &&, || and parentheses; default: AND of all.")
    conditions_reset: list[ConditionsResetCriteria] | None = Field(
        default=None, description="Schedules that clear partially satisfied conditions.")
    http: HTTPTrigger | None = Field(default=None, description="HTTP request trigger.")
    log: LogTrigger | None = Field(default=None, description="Log the events.")
    k8s: dict[str, Any] | None = Field(default=None, description="Kubernetes trigger (not supported).")
    argo_workflow: dict[str, Any] | None = Field(default=None, description="Argo Workflow (not supported).")
    aws_lambda: dict[str, Any] | None = Field(default=None, description="AWS Lambda trigger (not supported).")
    custom: dict[str, Any] | None = Field(default=None, description="Custom gRPC trigger (not supported).")
    kafka: KafkaTrigger | None = Field(default=None, description="Produce a record to a Kafka topic.")
    nats: NATSTrigger | None = Field(default=None, description="Publish a message to a NATS subject.")
    slack: dict[str, Any] | None = Field(default=None, description="Slack trigger (not supported).")
    open_whisk: dict[str, Any] | None = Field(default=None, description="OpenWhisk trigger (not supported).")
    azure_event_hubs: dict[str, Any] | None = Field(
        default=None, description="Azure Event Hubs trigger (not supported).")
    azure_service_bus: dict[str, Any] | None = Field(
        default=None, description="Azure Service Bus trigger (not supported).")
    pulsar: dict[str, Any] | None = Field(default=None, description="Pulsar trigger (not supported).")
    email: dict[str, Any] | None = Field(default=None, description="Email trigger (not supported).")
    at_least_once: bool | None = Field(
        default=None, description="Misplaced copy of the trigger's atLeastOnce (Argo's own example puts it here); "
                                  "Argo ignores it here, and so does Sensorium. Accepted and ignored.")

    @field_validator("name")
    @classmethod
    def _named(cls, value: str, info: ValidationInfo) -> str:
        if not value and not _runtime(info):
            raise ValueError("trigger must define a name")
        return value

    @model_validator(mode="after")
    def _one_kind(self, info: ValidationInfo) -> TriggerTemplate:
        """Argo runs the first kind set (in KIND_ORDER) and silently ignores the others: two kinds in one template
        are a mistake, reported at the second one."""
        kinds = [key for attr, key in KIND_ORDER if getattr(self, attr) is not None]
        if len(kinds) > 1 and not _runtime(info):
            raise_located(((key,), f"a trigger template has exactly one trigger type, got {' and '.join(kinds)}")
                          for key in kinds[1:])
        return self

    def kind(self) -> str | None:
        """YAML key of the trigger kind Argo would run (first set in Argo's order), None if none is set."""
        return next((key for attr, key in KIND_ORDER if getattr(self, attr) is not None), None)


class StatusPolicySpec(ArgoModel):
    allow: list[StrictInt | StrictStr] = Field(
        description='Statuses that count as success: codes, or ranges like "200-299" (Sensorium extension).')
    retry: list[StrictInt | StrictStr] | None = Field(
        default=None, description='Sensorium extension: statuses that are not allowed and retried (codes or ranges) '
        'besides 408, 429 and 5xx; any other status that is not allowed fails the firing at once.')

    @field_validator("allow", "retry")
    @classmethod
    def _codes_or_ranges(cls, value: list[int | str] | None) -> list[int | str] | None:
        for entry in value or ():
            if isinstance(entry, int):
                if not 100 <= entry <= 999:
                    raise ValueError(f"status {entry} is not an HTTP status code")
                continue
            m = _RANGE.match(entry)
            if m is None or int(m.group(1)) > int(m.group(2)):
                raise ValueError(f'status entry "{entry}" must be a code or a range like "200-299"')
        return value


class TriggerPolicy(ArgoModel):
    status: StatusPolicySpec | None = Field(default=None, description="HTTP status policy.")
    k8s: Any = Field(default=None, description="Kubernetes resource policy (accepted, unused).")


class RetryStrategy(ArgoModel):
    """Argo's `retryStrategy` (k8s wait.Backoff); negative values are refused at load."""

    steps: int | None = Field(default=None, description="Total attempts; 0 or omitted means 5.")
    duration: StrictStr | StrictInt | None = Field(
        default=None, description="First sleep: Go duration string, or bare integer NANOSECONDS; default 1s.")
    factor: float | None = Field(default=None, strict=True, description="Sleep multiplier; default 1.0.")
    jitter: float | None = Field(
        default=None, strict=True, description="Each sleep is in [d, d*(1+jitter)); default 1.")

    @field_validator("duration")
    @classmethod
    def _go_duration(cls, value: str | int | None) -> str | int | None:
        if value is not None and parse_duration_field(value) < 0:
            raise ValueError(f"duration must not be negative, got {value!r}")
        return value

    @field_validator("steps", "factor", "jitter")
    @classmethod
    def _not_negative(cls, value: float | None, info: ValidationInfo) -> float | None:
        if value is not None and value < 0:
            raise ValueError(f"{argo_name(info.field_name or '')} must not be negative, got {value}")
        return value

    def to_backoff(self) -> Backoff:
        return Backoff.from_fields(self.steps, self.duration, self.factor, self.jitter)


class RateLimit(ArgoModel):
    unit: str = Field(default="Second", description="Second, Minute or Hour (empty means Second).")
    requests_per_unit: int = Field(gt=0, description="Attempts allowed per unit, evenly spaced.")

    @field_validator("unit")
    @classmethod
    def _known_unit(cls, value: str) -> str:
        # Argo runs any other unit as Second: a typo such as "Minutes" would allow 60 times the intended rate
        if value not in ("", "Second", "Minute", "Hour"):
            raise ValueError(f"unknown rate limit unit '{value}' (want Second, Minute or Hour)")
        return value


class Trigger(ArgoModel):
    template: TriggerTemplate = Field(description="What to run.")
    parameters: list[TriggerParameter] | None = Field(
        default=None, description="Parameters applied to the JSON of `template` before each firing.")
    policy: TriggerPolicy | None = Field(default=None, description="Which outcomes count as success.")
    retry_strategy: RetryStrategy | None = Field(
        default=None, description="Backoff between attempts; without it a firing makes one attempt.")
    rate_limit: RateLimit | None = Field(default=None, description="Per-trigger leaky-bucket rate limit.")
    at_least_once: bool = Field(
        default=False, description="Accepted for Argo compatibility; Sensorium is always at-least-once.")
    dlq_trigger: Trigger | None = Field(
        default=None, description="Trigger fired with the same events when this one finally fails.")

    @model_validator(mode="after")
    def _dests(self, info: ValidationInfo) -> Trigger:
        _require_dest(self.parameters, info, "parameters")
        return self

    @property
    def name(self) -> str:
        return self.template.name

    def kind(self) -> str | None:
        """YAML key of the trigger kind, resolved in Argo's order; None when no kind is set."""
        return self.template.kind()

    def backoff(self) -> Backoff:
        return self.retry_strategy.to_backoff() if self.retry_strategy is not None else Backoff(steps=1)

    def require_supported(self, supported: Collection[str]) -> str:
        """The kind, or ConfigError naming this trigger when no kind is set or it is not in `supported`."""
        kind = self.kind()
        if kind is None:
            raise ConfigError(f"invalid trigger {self.name}, could not find an implementation",
                              field=f"trigger {self.name}")
        if kind not in supported:
            raise ConfigError(f"trigger type {kind} is not supported (trigger '{self.name}')",
                              field=f"trigger {self.name}")
        if self.dlq_trigger is not None:
            self.dlq_trigger.require_supported(supported)
        return kind


Trigger.model_rebuild()

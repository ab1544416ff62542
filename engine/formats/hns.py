"""HNS-style NATS-to-webhook subscriptions (`config.d/*.yml`, seed-systems.md section 2) as Argo documents.

A file with a top-level `subscriptions:` list (and no `kind`/`apiVersion`) is claimed. Each subscription becomes

- an EventSource named after the subscription with one `natsStream` entry of the same name (sources.natsstream):
  the subscription's `subject` on the external stream, read through a durable consumer named `consumer`;
- a Sensor of that name whose own durable consumer on the Sensorium bus (`spec.consumer`) is also named `consumer`,
  with `maxInFlight: max_concurrency` and `ackWait: ack_wait`, and one HTTP trigger `webhook` POSTing the
  envelope `{"subject", "data", "timestamp", "message_id"}` (in that order; `data` the original payload) with
  `webhook.headers` and `webhook.timeout`, retried on `backoff`, `2*backoff`, `4*backoff`, ... for `retries`
  retries after the first attempt (`retryStrategy: {steps: retries + 1, duration: backoff, factor: 2, jitter: 0}`)
  on any status but 2xx and on network errors (`policy.status: {allow: ["200-299"], retry: ["100-599"]}`).

An optional top-level `nats: {url, stream}` says where the external stream is (default: the engine's bus, and the
one stream whose subjects capture the subscription's subject). Every problem is reported in the file's own field
names (`subscriptions[2].webhook.timeout`), at its line.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from sensorium.engine.core.errors import ConfigError
from sensorium.engine.core.specbase import check_url, positive_duration
from sensorium.engine.documents import EventSource, Sensor
from sensorium.engine.goport.duration import parse_duration
from sensorium.engine.located import ConfigErrors, Origin, validate_model
from sensorium.sources.natsstream import check_name, check_subject

__all__ = ["HnsFile", "claims", "translate"]

Translated = list[tuple[Any, Origin]]
"""What `translate` returns (engine.formats.Translated; not imported from there: that package imports this one)."""
DEPENDENCY = "message"
TRIGGER = "webhook"
_HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class HnsWebhook(_Model):
    url: str = Field(description="http:// or https:// URL the envelope is POSTed to.")
    headers: dict[str, str] = Field(default_factory=dict, description="Headers sent with every request.")
    timeout: str = Field(default="30s", description="Go duration one request may take.")

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        check_url(v, ("http", "https"))
        return v

    @field_validator("timeout")
    @classmethod
    def _timeout(cls, v: str) -> str:
        return positive_duration(v, "timeout")

    @field_validator("headers")
    @classmethod
    def _headers(cls, v: dict[str, str]) -> dict[str, str]:
        for name, value in v.items():
            if not _HEADER_NAME.fullmatch(name):
                raise ValueError(f"header name {name[:40]!r} is not a valid HTTP header name")
            if any(c in value for c in "\r\n\0"):
                raise ValueError(f"header {name}: value contains a line break or NUL")
        return v


class HnsSubscription(_Model):
    name: str = Field(description="Subscription name (names the Sensor and the EventSource).")
    subject: str = Field(description="NATS subject; wildcards `*` and `>`.")
    consumer: str = Field(description="Durable consumer name.")
    webhook: HnsWebhook
    retries: int = Field(default=3, ge=0, le=30, description="Retries after the first attempt.")
    backoff: str = Field(default="2s", description="First retry delay; doubled for each further retry.")
    max_concurrency: int = Field(default=10, ge=1, le=100_000, description="Deliveries in flight at once.")
    ack_wait: str = Field(default="120s", description="JetStream ack wait of the subscription's consumer.")

    @field_validator("name", "consumer")
    @classmethod
    def _names(cls, v: str, info: ValidationInfo) -> str:
        return check_name(v, str(info.field_name))

    @field_validator("subject")
    @classmethod
    def _subject(cls, v: str) -> str:
        return check_subject(v)

    @field_validator("backoff", "ack_wait")
    @classmethod
    def _durations(cls, v: str, info: ValidationInfo) -> str:
        return positive_duration(v, str(info.field_name))


class HnsNats(_Model):
    url: str | None = Field(default=None, description="nats:// URL of the server holding the stream.")
    stream: str | None = Field(default=None, description="Name of the stream the subscriptions read.")

    @field_validator("url")
    @classmethod
    def _url(cls, v: str | None) -> str | None:
        if v is not None:
            check_url(v, ("nats", "tls"))
        return v

    @field_validator("stream")
    @classmethod
    def _stream(cls, v: str | None) -> str | None:
        return check_name(v, "stream") if v is not None else None


class HnsFile(_Model):
    subscriptions: list[HnsSubscription] = Field(max_length=10_000)
    nats: HnsNats | None = None


def claims(data: Mapping[str, Any]) -> bool:
    """A document with a top-level `subscriptions:` and none of Argo's or Kubernetes' top-level keys."""
    return "subscriptions" in data and "kind" not in data and "apiVersion" not in data


def _item_origin(origin: Origin, index: int) -> Origin:
    """The origin of `subscriptions[index]` (its line), for problems found in the translated documents."""
    node: yaml.Node = origin.node
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode) and key.value == "subscriptions" and isinstance(
                    value, yaml.SequenceNode) and index < len(value.value):
                return Origin(origin.file, value.value[index])
    return origin


def _seen(state: dict[str, Any], what: str, value: str, origin: Origin, loc: list[str | int]) -> ConfigError | None:
    """A ConfigError when another subscription (of any file of this load) already has this `what`."""
    seen: dict[str, str] = state.setdefault(what, {})
    line, path = origin.locate(loc)
    if value in seen:
        return ConfigError(f"{what} {value!r} is already used by the subscription at {seen[value]}", origin.file,
                           line, path)
    seen[value] = f"{origin.file}:{line}"
    return None


def translate(data: Mapping[str, Any], origin: Origin, state: dict[str, Any]) -> Translated:
    """An HNS `config.d` file's subscriptions as (EventSource, Sensor) pairs (module docstring)."""
    parsed: HnsFile = validate_model(HnsFile, data, origin)
    problems = [problem for index, sub in enumerate(parsed.subscriptions)
                for what, value in (("name", sub.name), ("consumer", sub.consumer))
                if (problem := _seen(state, what, value, origin, ["subscriptions", index, what])) is not None]
    if problems:
        raise ConfigErrors(problems)
    out: Translated = []
    for index, sub in enumerate(parsed.subscriptions):
        at = _item_origin(origin, index)
        out.append((EventSource.model_validate(_event_source(sub, parsed.nats)), at))
        out.append((Sensor.model_validate(_sensor(sub)), at))
    return out


def _event_source(sub: HnsSubscription, nats: HnsNats | None) -> dict[str, Any]:
    entry: dict[str, Any] = {"subject": sub.subject, "consumer": sub.consumer}
    if nats is not None and nats.url is not None:
        entry["url"] = nats.url
    if nats is not None and nats.stream is not None:
        entry["stream"] = nats.stream
    return {"apiVersion": "argoproj.io/v1alpha1", "kind": "EventSource", "metadata": {"name": sub.name},
            "spec": {"natsStream": {sub.name: entry}}}


def _param(dest: str, **src: Any) -> dict[str, Any]:
    return {"src": {"dependencyName": DEPENDENCY, **src}, "dest": dest}


def _sensor(sub: HnsSubscription) -> dict[str, Any]:
    http: dict[str, Any] = {
        "url": sub.webhook.url, "method": "POST",
        "headers": {"Content-Type": "application/json", **sub.webhook.headers},
        "timeout": max(1, math.ceil(parse_duration(sub.webhook.timeout) / 1e9)),
        "payload": [
            _param("subject", contextKey="extensions.natssubject"),
            _param("data", dataKey="@this", useRawData=True),
            _param("timestamp", contextKey="time"),
            _param("message_id", contextKey="extensions.natsmsgid"),
        ],
    }
    return {
        "apiVersion": "argoproj.io/v1alpha1", "kind": "Sensor", "metadata": {"name": sub.name},
        "spec": {
            "consumer": {"name": sub.consumer, "maxInFlight": sub.max_concurrency, "ackWait": sub.ack_wait,
                         "deadLetter": True},
            "dependencies": [{"name": DEPENDENCY, "eventSourceName": sub.name, "eventName": sub.name}],
            "triggers": [{
                "template": {"name": TRIGGER, "http": http},
                "retryStrategy": {"steps": sub.retries + 1, "duration": sub.backoff, "factor": 2.0, "jitter": 0.0},
                "policy": {"status": {"allow": ["200-299"], "retry": ["100-599"]}},
            }],
        },
    }

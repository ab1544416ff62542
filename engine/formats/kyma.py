"""Kyma `Subscription` documents (`eventing.kyma-project.io/v1alpha1` and `v1alpha2`, the NATS backend's rules),
translated at load into one Argo Sensor each (composition root: engine.formats).

A Subscription becomes a Sensor of the same name with:

- its own durable consumer, `spec.consumer: {name: kyma-<name>, maxInFlight: <maxInFlightMessages, default 10>}`,
  so a slow sink holds up only its own subscription;
- one dependency per event type, on `eventSourceName: kyma, eventName: publisher` (the publishing endpoint), with an
  exact context filter on `type` (several: `||`). The publisher keeps the producer's `source` in the extension
  `originsource` (it routes every event as `kyma`/`publisher`): v1alpha2 `typeMatching: standard` matches the
  type in Kyma's full form, or as written with `originsource` equal to `spec.source` (what a workload publishes);
  `exact` matches the type as written, and `originsource` when `spec.source` is set;
- one http trigger `sink` POSTing the event to `spec.sink` as a binary-mode CloudEvent (`cloudEvent: binary`:
  every attribute and extension as `ce-*` headers, the data as the body; v1alpha1 `protocolsettings.contentMode:
  STRUCTURED` sends `application/cloudevents+json`), 2xx being success, any other status retried as
  engine.formats.delivery says (8 attempts, 1 s doubling: about 2 minutes), then dead-lettered on sensorium-dlq.

v1alpha2 `typeMatching: standard` (the default) applies Kyma's event-type rules (engine.core.kymatypes: the
`sap.kyma.custom` prefix, the source as application name, segments beyond two joined, non-alphanumerics removed,
the version kept); `exact` uses the types as written. Problems are reported in Kyma's field names at their line:
a non-`exact` filter, a v1alpha1 `eventSource.value` other than "" (the NATS backend filters on the type only), a
type the rules cannot clean, a sink that is not an http(s) URL, a `maxInFlightMessages` that is not a positive
integer.

When no EventSource named `kyma` is loaded, `finish` adds one: a `cloudevents` entry `publisher` on port
$KYMA_PUBLISHER_PORT (default 8080, the port Kyma's Event Publisher Proxy listens on), endpoint `/publish`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from sensorium.engine.core.errors import ConfigError
from sensorium.engine.core.kymatypes import KymaTypeError, standard_type
from sensorium.engine.core.origin import ORIGIN_SOURCE
from sensorium.engine.core.specbase import Loc, check_url, raise_located
from sensorium.engine.documents import EventSource, Sensor
from sensorium.engine.formats.delivery import RETRY, TRANSLATED_FROM, cloudevent_trigger, consumer, retry_strategy
from sensorium.engine.formats.shared import LOADED_SOURCES, Translated
from sensorium.engine.located import Origin, validate_model

GROUP = "eventing.kyma-project.io"
V1ALPHA1, V1ALPHA2 = f"{GROUP}/v1alpha1", f"{GROUP}/v1alpha2"
SOURCE, EVENT = "kyma", "publisher"  # the convention: Kyma events enter through EventSource kyma, entry publisher
PORT_VARIABLE, DEFAULT_PORT, ENDPOINT = "KYMA_PUBLISHER_PORT", "8080", "/publish"
DEFAULT_MAX_IN_FLIGHT = 10
MAX_IN_FLIGHT = 100_000
TRIGGER = "sink"


def claims(data: Mapping[str, Any]) -> bool:
    """A `Subscription` of any `eventing.kyma-project.io/` version (an unknown version is then an error)."""
    api = data.get("apiVersion")
    return data.get("kind") == "Subscription" and isinstance(api, str) and api.startswith(GROUP + "/")


class _Kyma(BaseModel):
    """Kyma's own field names, unknown fields refused."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Metadata(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)
    name: str = Field(min_length=1, max_length=253, description="Subscription name; names the Sensor.")
    namespace: str | None = Field(default=None, description="Accepted; not part of the Sensor's name.")


def _sink(value: str) -> str:
    check_url(value, ("http", "https"))
    return value


class FilterValue(_Kyma):
    """One side of a v1alpha1 filter: `{property, type: exact, value}`."""

    property: str = Field(description="`source` (eventSource) or `type` (eventType).")
    type: str = Field(default="exact", description="Only `exact` (Kyma's NATS backend).")
    value: str = Field(description="The value to match.")
    name: str | None = Field(default=None, description="Accepted and ignored.")

    @field_validator("type")
    @classmethod
    def _exact(cls, value: str) -> str:
        if value != "exact":
            raise ValueError(f"filter type {value!r} is not supported: Kyma's NATS backend matches only `exact`")
        return value


class Filter(_Kyma):
    event_source: FilterValue = Field(alias="eventSource", description="Must be {property: source, value: ''}.")
    event_type: FilterValue = Field(alias="eventType", description="{property: type, type: exact, value: TYPE}.")

    @model_validator(mode="after")
    def _properties(self) -> Filter:
        problems: list[tuple[Loc, str]] = []
        if self.event_source.property != "source":
            problems.append((("eventSource", "property"), "must be `source`"))
        if self.event_source.value != "":
            problems.append((("eventSource", "value"), "must be \"\" on the NATS backend (it filters on the event "
                                                       "type only; the application is part of the type)"))
        if self.event_type.property != "type":
            problems.append((("eventType", "property"), "must be `type`"))
        if not self.event_type.value:
            problems.append((("eventType", "value"), "the event type must not be empty"))
        raise_located(problems)
        return self


class Filters(_Kyma):
    dialect: str | None = Field(default=None, description="Accepted and ignored.")
    filters: list[Filter] = Field(min_length=1, max_length=1000, description="Exact event-type filters (ORed).")


class ConfigV1(_Kyma):
    max_in_flight_messages: int = Field(default=DEFAULT_MAX_IN_FLIGHT, ge=1, le=MAX_IN_FLIGHT,
                                        alias="maxInFlightMessages", description="Deliveries in flight at once.")


class ProtocolSettings(_Kyma):
    content_mode: Literal["BINARY", "STRUCTURED"] | None = Field(
        default=None, alias="contentMode", description="How the sink receives events; default BINARY.")
    exempt_handshake: bool | None = Field(default=None, alias="exemptHandshake", description="Ignored (NATS).")
    qos: str | None = Field(default=None, description="Ignored (NATS).")
    webhook_auth: dict[str, Any] | None = Field(default=None, alias="webhookAuth",
                                                description="Ignored (EventMesh only).")


class SpecV1(_Kyma):
    id: str | None = Field(default=None, description="Accepted and ignored.")
    protocol: str | None = Field(default=None, description="Accepted and ignored (NATS).")
    protocolsettings: ProtocolSettings | None = Field(default=None, description="`contentMode` is honoured.")
    sink: str = Field(description="http(s) URL the events are delivered to.")
    filter: Filters = Field(description="`filters`: the event types delivered.")
    config: ConfigV1 | None = Field(default=None, description="`maxInFlightMessages`.")

    @field_validator("sink")
    @classmethod
    def _url(cls, value: str) -> str:
        return _sink(value)


class SpecV2(_Kyma):
    id: str | None = Field(default=None, description="Accepted and ignored.")
    sink: str = Field(description="http(s) URL the events are delivered to.")
    source: str = Field(default="", description="Origin of the events (the application name under `standard`).")
    types: list[str] = Field(min_length=1, max_length=1000, description="Event types delivered (ORed).")
    type_matching: Literal["standard", "exact"] = Field(default="standard", alias="typeMatching",
                                                         description="standard: Kyma's rules; exact: as written.")
    config: dict[str, str] | None = Field(default=None, description='`maxInFlightMessages: "10"` (a string).')

    @field_validator("sink")
    @classmethod
    def _url(cls, value: str) -> str:
        return _sink(value)

    @model_validator(mode="after")
    def _check(self) -> SpecV2:
        problems: list[tuple[Loc, str]] = []
        for index, type_ in enumerate(self.types):
            if not type_:
                problems.append((("types", index), "an event type must not be empty"))
            elif self.type_matching == "standard" and self.source:
                try:
                    standard_type(self.source, type_)
                except KymaTypeError as exc:
                    problems.append((("types", index), f"{exc} (typeMatching: standard)"))
        if self.type_matching == "standard" and not self.source:
            problems.append((("source",), "required with typeMatching: standard (the application name Kyma "
                                          "puts into the event type)"))
        for key, value in (self.config or {}).items():
            if key != "maxInFlightMessages":
                problems.append((("config", key), "unknown config key (known: maxInFlightMessages)"))
            elif not value.isdigit() or not 1 <= int(value) <= MAX_IN_FLIGHT:
                problems.append((("config", key), f"must be a positive integer up to {MAX_IN_FLIGHT}, as a "
                                                  f"string, got {value!r}"))
        raise_located(problems)
        return self

    def max_in_flight(self) -> int:
        return int((self.config or {}).get("maxInFlightMessages", DEFAULT_MAX_IN_FLIGHT))

    def contexts(self) -> list[dict[str, Any]]:
        """The context filters an event may pass (any one): `exact`, each type as written (and the producer's
        source, when given); `standard`, each type in Kyma's full form, or as written by the producer `source`
        (what a workload publishes as a CloudEvent: `source: commerce`, `type: order.created.v1`)."""
        by_source = {"extensions": {ORIGIN_SOURCE: self.source}} if self.source else {}
        contexts: list[dict[str, Any]] = []
        for type_ in self.types:
            if self.type_matching == "exact":
                contexts.append({"type": type_, **by_source})
                continue
            full = standard_type(self.source, type_)
            contexts.append({"type": full})
            if full != type_:
                contexts.append({"type": type_, **by_source})
        return contexts


class SubscriptionV1(_Kyma):
    api_version: Literal["eventing.kyma-project.io/v1alpha1"] = Field(alias="apiVersion")
    kind: Literal["Subscription"]
    metadata: Metadata
    spec: SpecV1
    status: dict[str, Any] | None = None


class SubscriptionV2(_Kyma):
    api_version: Literal["eventing.kyma-project.io/v1alpha2"] = Field(alias="apiVersion")
    kind: Literal["Subscription"]
    metadata: Metadata
    spec: SpecV2
    status: dict[str, Any] | None = None


def translate(data: Mapping[str, Any], origin: Origin, state: dict[str, Any]) -> Translated:
    """One Subscription into its Sensor (module docstring); raises ConfigErrors in Kyma's field names."""
    api = data.get("apiVersion")
    if api not in (V1ALPHA1, V1ALPHA2):
        line, path = origin.locate(["apiVersion"])
        raise ConfigError(f"unknown Kyma Subscription version {api!r} (want {V1ALPHA1} or {V1ALPHA2})",
                          origin.file, line, path)
    if api == V1ALPHA1:
        v1: SubscriptionV1 = validate_model(SubscriptionV1, data, origin)
        contexts = [{"type": f.event_type.value} for f in v1.spec.filter.filters]
        in_flight = v1.spec.config.max_in_flight_messages if v1.spec.config else DEFAULT_MAX_IN_FLIGHT
        settings = v1.spec.protocolsettings
        mode = "structured" if settings is not None and settings.content_mode == "STRUCTURED" else "binary"
        sensor = sensor_document(v1.metadata.name, v1.spec.sink, contexts, in_flight, api, mode,
                                 retry_strategy(origin))
    else:
        v2: SubscriptionV2 = validate_model(SubscriptionV2, data, origin)
        sensor = sensor_document(v2.metadata.name, v2.spec.sink, v2.spec.contexts(), v2.spec.max_in_flight(), api,
                                 retry=retry_strategy(origin))
    state.setdefault("origins", []).append(origin)  # a valid Subscription: the publisher is needed
    return [(validate_model(Sensor, sensor, origin), origin)]


def sensor_document(name: str, sink: str, contexts: Sequence[dict[str, Any]], max_in_flight: int,
                    api: str, mode: str = "binary", retry: dict[str, Any] | None = None) -> dict[str, Any]:
    """The Argo Sensor (as YAML data) a Subscription means: one dependency per distinct context filter."""
    unique = list({repr(sorted(c.items())): c for c in contexts}.values())
    deps = ["type"] if len(unique) == 1 else [f"type{i}" for i in range(len(unique))]
    dependencies = [{"name": dep, "eventSourceName": SOURCE, "eventName": EVENT, "filters": {"context": context}}
                    for dep, context in zip(deps, unique, strict=True)]
    return {
        "apiVersion": "argoproj.io/v1alpha1", "kind": "Sensor",
        "metadata": {"name": name, "annotations": {TRANSLATED_FROM: f"{api} Subscription"}},
        "spec": {
            "consumer": consumer(f"kyma-{name}", max_in_flight),
            "dependencies": dependencies,
            "triggers": [cloudevent_trigger(TRIGGER, sink, "POST", mode, RETRY if retry is None else retry,
                                            " || ".join(deps) if len(deps) > 1 else None)],
        },
    }


def publisher_document(port: str) -> dict[str, Any]:
    """The EventSource `kyma` with the `cloudevents` entry `publisher` that Subscriptions depend on."""
    return {"apiVersion": "argoproj.io/v1alpha1", "kind": "EventSource",
            "metadata": {"name": SOURCE, "annotations": {TRANSLATED_FROM: "Kyma Subscriptions"}},
            "spec": {"cloudevents": {EVENT: {"port": port, "endpoint": ENDPOINT}}}}


def finish(state: dict[str, Any]) -> tuple[Translated, Sequence[ConfigError]]:
    """The `kyma` publisher EventSource, unless one is loaded."""
    origins: list[Origin] = state.get("origins", [])
    loaded = state.get(LOADED_SOURCES, ())
    if not origins or any(doc.metadata.name == SOURCE for doc, _ in loaded):
        return [], []
    port = os.environ.get(PORT_VARIABLE, DEFAULT_PORT)
    return [(validate_model(EventSource, publisher_document(port), origins[0]), origins[0])], []

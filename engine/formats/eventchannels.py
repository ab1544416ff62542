"""Weik.io `EventChannel` and `EventSubscription` documents (`weik.io/v1alpha1`), translated at load into one Argo
Sensor per subscription (composition root: engine.formats).

An EventChannel delivers CloudEvents to a target; Sensorium implements the channel type `http` (parameters `url`,
`method` (default POST), and Sensorium's `cloudEventMode`: `structured` (default, the event as
`application/cloudevents+json`) or `binary` (`ce-*` headers, the data as the body)). Any other type is a load
error naming it. An EventSubscription routes one source to one channel: it becomes a Sensor of the subscription's
name with its own durable consumer (`spec.consumer.name: weikio-<name>`, so a slow target does not hold up the
other subscriptions), one dependency on the source's event and one http trigger `channel` (engine.formats.delivery:
2xx success, anything else retried, 8 attempts from 1 s doubling, then dead-lettered on sensorium-dlq).

The source is a Weik.io EventSource X, which Sensorium loads as the Argo EventSource X with one event X, or any
Argo EventSource with exactly one event. Channels and sources may be in other files: the references are resolved
in `finish`, after every file was read; an unknown name is an error at the subscription's line, with "did you
mean".
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from sensorium.engine.core.errors import ConfigError
from sensorium.engine.core.specbase import check_url
from sensorium.engine.crosscheck import event_names
from sensorium.engine.documents import Sensor
from sensorium.engine.formats.delivery import RETRY, TRANSLATED_FROM, cloudevent_trigger, consumer, retry_strategy
from sensorium.engine.formats.shared import LOADED_SOURCES, Translated
from sensorium.engine.located import ConfigErrors, Origin, validate_model, validation_problems
from sensorium.engine.suggest import closest

GROUP = "weik.io/"
IMPLEMENTED = ("http",)
TRIGGER = "channel"


def claims(data: Mapping[str, Any]) -> bool:
    """An `EventChannel` or `EventSubscription` of any `weik.io/` version (the EventSource is another format's)."""
    api = data.get("apiVersion")
    return data.get("kind") in ("EventChannel", "EventSubscription") and isinstance(api, str) \
        and api.startswith(GROUP)


class _Weik(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Metadata(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)
    name: str = Field(min_length=1, max_length=253, description="The channel's or subscription's name.")


class HttpChannel(_Weik):
    """The parameters of an `http` channel."""

    url: str = Field(description="Target URL (http or https).")
    method: Literal["POST", "PUT", "PATCH"] = Field(default="POST", description="HTTP method; default POST.")
    cloud_event_mode: Literal["structured", "binary"] = Field(
        default="structured", alias="cloudEventMode",
        description="Sensorium: structured (application/cloudevents+json, default) or binary (ce-* headers).")

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        check_url(value, ("http", "https"))
        return value

    @field_validator("method", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value


class ChannelSpec(_Weik):
    type: str = Field(description="Channel type; Sensorium implements `http`.")
    parameters: dict[str, str] = Field(default_factory=dict, description="Per type; `http`: url, method.")

    @field_validator("type")
    @classmethod
    def _implemented(cls, value: str) -> str:
        if value not in IMPLEMENTED:
            raise ValueError(f"channel type {value!r} is not implemented by Sensorium (implemented: "
                             f"{', '.join(IMPLEMENTED)})")
        return value


class EventChannel(_Weik):
    api_version: str = Field(alias="apiVersion")
    kind: Literal["EventChannel"]
    metadata: Metadata
    spec: ChannelSpec


class SubscriptionSpec(_Weik):
    source: str = Field(min_length=1, description="The EventSource whose events are delivered.")
    channel: str = Field(min_length=1, description="The EventChannel that delivers them.")


class EventSubscription(_Weik):
    api_version: str = Field(alias="apiVersion")
    kind: Literal["EventSubscription"]
    metadata: Metadata
    spec: SubscriptionSpec


def translate(data: Mapping[str, Any], origin: Origin, state: dict[str, Any]) -> Translated:
    """Validate and keep the document; subscriptions become Sensors in `finish`, once every channel is known."""
    if data.get("kind") == "EventChannel":
        channels: dict[str, tuple[HttpChannel | None, Origin]] = state.setdefault("channels", {})
        name = data.get("metadata", {}).get("name") if isinstance(data.get("metadata"), Mapping) else None
        try:
            channel: EventChannel = validate_model(EventChannel, data, origin)
        except ConfigError:
            if isinstance(name, str) and name not in channels:
                channels[name] = (None, origin)  # known, but invalid: its subscriptions say nothing more
            raise
        if channel.metadata.name in channels:
            first = channels[channel.metadata.name][1]
            line, path = origin.locate(["metadata", "name"])
            raise ConfigError(f"duplicate EventChannel name '{channel.metadata.name}' (first at "
                              f"{first.file}:{first.line})", origin.file, line, path)
        try:
            http = HttpChannel.model_validate(channel.spec.parameters)
        except ValidationError as exc:
            channels[channel.metadata.name] = (None, origin)
            raise ConfigErrors(validation_problems(HttpChannel, exc, origin, ["spec", "parameters"])) from None
        channels[channel.metadata.name] = (http, origin)
        return []
    subscription: EventSubscription = validate_model(EventSubscription, data, origin)
    state.setdefault("subscriptions", []).append((subscription, origin))
    return []


def finish(state: dict[str, Any]) -> tuple[Translated, Sequence[ConfigError]]:
    """One Sensor per subscription whose channel and source are known; an error for each that is not."""
    channels: dict[str, tuple[HttpChannel | None, Origin]] = state.get("channels", {})
    sources = {doc.metadata.name: doc for doc, _ in state.get(LOADED_SOURCES, ())}
    out: Translated = []
    errors: list[ConfigError] = []
    for subscription, origin in state.get("subscriptions", []):
        spec = subscription.spec
        problems: list[ConfigError] = []
        channel = channels.get(spec.channel)
        if channel is None:
            problems.append(_unknown(origin, "channel", spec.channel, "EventChannel", list(channels)))
        source = sources.get(spec.source)
        event = None
        if source is None:
            problems.append(_unknown(origin, "source", spec.source, "EventSource", list(sources)))
        else:
            events = event_names(source)
            if len(events) != 1:
                line, path = origin.locate(["spec", "source"])
                problems.append(ConfigError(f"EventSource '{spec.source}' has {len(events)} events "
                                            f"({', '.join(events[:20]) or 'none'}); a subscription needs a source "
                                            "with exactly one", origin.file, line, path))
            else:
                event = events[0]
        errors.extend(problems)
        if problems or channel is None or channel[0] is None or event is None:
            continue
        try:
            retry = retry_strategy(origin)
        except ConfigError as exc:
            errors.append(exc)
            continue
        document = sensor_document(subscription.metadata.name, spec.source, event, spec.channel, channel[0], retry)
        out.append((validate_model(Sensor, document, origin), origin))
    return out, errors


def _unknown(origin: Origin, field: str, name: str, kind: str, known: list[str]) -> ConfigError:
    line, path = origin.locate(["spec", field])
    guess = closest(name, known)
    listed = ", ".join(sorted(known)[:20]) or "none"
    hint = f"; did you mean {guess}?" if guess else ""
    return ConfigError(f"no {kind} named '{name}' is loaded (loaded: {listed}){hint}", origin.file, line, path)


def sensor_document(name: str, source: str, event: str, channel_name: str, channel: HttpChannel,
                    retry: dict[str, Any] | None = None) -> dict[str, Any]:
    """The Argo Sensor (as YAML data) an EventSubscription of `source`'s `event` to an http channel means."""
    return {
        "apiVersion": "argoproj.io/v1alpha1", "kind": "Sensor",
        "metadata": {"name": name, "annotations": {
            TRANSLATED_FROM: f"weik.io EventSubscription (channel {channel_name})"}},
        "spec": {
            "consumer": consumer(f"weikio-{name}"),
            "dependencies": [{"name": "event", "eventSourceName": source, "eventName": event}],
            "triggers": [cloudevent_trigger(TRIGGER, channel.url, channel.method, channel.cloud_event_mode,
                                            RETRY if retry is None else retry)],
        },
    }


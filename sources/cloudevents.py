"""The `cloudevents` event source: a CloudEvents publishing endpoint (Kyma's Event Publisher Proxy, issue 16 item 3).

One `spec.cloudevents.<eventName>` entry serves, on its `port` (shared with nothing else):

- `POST <endpoint>` (default `/publish`) in the three content modes of the CloudEvents HTTP binding: structured
  (`Content-Type: application/cloudevents+json`, one event), batch (`application/cloudevents-batch+json`, a JSON
  array of structured events) and binary (attributes in `ce-*` headers, percent-decoded; the body is the data and
  `Content-Type` its `datacontenttype`). Answered 204 once the bus stored every event.
- `POST /<application>/v1/events` (unless `legacy: false`): Kyma's legacy events, `{"event-type",
  "event-type-version", "event-time", "data"}` (and optional `event-id`), published as type
  `sap.kyma.custom.<application>.<event-type>.<event-type-version>` (engine.core.kymatypes). Answered 200
  `{"event-id": ..., "status": 200}` as Kyma does.

Validation (400 with the attribute named, nothing published): `id`, `source`, `specversion` (1.0) and `type` are
required non-empty strings, `time` when present is RFC 3339, extension names are lowercase letters and digits
(the CloudEvents rule); a legacy event's `event-type`, `event-type-version` and `event-time` (RFC 3339) are
required. A batch with one invalid event publishes none of them.

Every attribute and extension is kept, except that the event is routed as every Sensorium (and Argo) source routes
its events: its `source` and `subject` become the entry's EventSource name and event name (a sensor's dependency
matches on them), and the caller's `source` and `subject` are kept as the extension attributes `originsource` and
`originsubject` (README, "A CloudEvents publishing endpoint").
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import unquote

import msgspec
from aiohttp import web
from pydantic import Field, field_validator

from sensorium.engine.core.cloudevent import CloudEvent, DecodeError, decode_binary, decode_structured, new_id
from sensorium.engine.core.kymatypes import KymaTypeError, legacy_type
from sensorium.engine.core.origin import route
from sensorium.engine.core.specbase import ArgoModel, check_port
from sensorium.sources.signature import Check
from sensorium.sources.spec import DEFAULT_MAX_PAYLOAD, WebhookContext
from sensorium.sources.webhook import MAX_JSON_DEPTH, Endpoint, WebhookServer, json_depth_exceeds, observed

__all__ = ["BATCH", "MAX_BATCH", "STRUCTURED", "CloudEventsContext", "CloudEventsServer", "PublishError",
           "binary_event", "cloudevents_endpoints", "legacy_event", "routed", "structured_events"]

log = logging.getLogger("sensorium.cloudevents")

STRUCTURED = "application/cloudevents+json"
BATCH = "application/cloudevents-batch+json"
MAX_BATCH = 1000
"""Most events in one batch request (each is validated before any is published)."""

_EXTENSION_NAME = re.compile(r"[a-z0-9]+")
# RFC 3339 date-time: date, `T` (or `t`/space is not allowed by CloudEvents' JSON format), time, fraction, offset
_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})")
_BATCH = msgspec.json.Decoder(list[msgspec.Raw])
_LEGACY = msgspec.json.Decoder(dict[str, msgspec.Raw])
_TEXT = msgspec.json.Decoder(str)


class CloudEventsContext(ArgoModel):
    """One `spec.cloudevents.<eventName>` entry: a CloudEvents publishing endpoint (Sensorium extension)."""

    port: int = Field(description="TCP port to listen on, 1-65535 (a string works too).")
    endpoint: str = Field(default="/publish", description="Path of the structured, binary and batch modes.")
    legacy: bool = Field(default=True,
                         description="Also serve Kyma's legacy events on `POST /<application>/v1/events`.")
    max_payload_size: int = Field(default=DEFAULT_MAX_PAYLOAD, ge=1,
                                  description="Largest accepted request body in bytes; larger gets 413.")

    @field_validator("port")
    @classmethod
    def _port(cls, v: int) -> int:
        return check_port(v)

    @field_validator("endpoint")
    @classmethod
    def _slash(cls, v: str) -> str:
        if not v.startswith("/") or "{" in v:
            raise ValueError("endpoint must start with '/' and hold no '{'")
        return v


class PublishError(ValueError):
    """A request that carries no valid event (answered 400 with this message)."""


def rfc3339(value: str) -> bool:
    """Whether `value` is an RFC 3339 date-time with a valid calendar date and time of day."""
    if not _RFC3339.fullmatch(value):
        return False
    try:
        datetime.fromisoformat(value.replace("z", "Z").replace("t", "T"))
    except ValueError:
        return False
    return True


def _checked(event: CloudEvent) -> CloudEvent:
    """`event` when its attributes hold what the CloudEvents spec requires beyond presence (decode checks that)."""
    if event.time and not rfc3339(event.time):
        raise PublishError(f"attribute 'time' is not an RFC 3339 timestamp: {event.time[:40]!r}")
    for name in event.extensions:
        if not _EXTENSION_NAME.fullmatch(name):
            raise PublishError(f"extension attribute name {name[:40]!r} must be lowercase letters and digits")
    return event


def structured_events(raw: bytes, batch: bool) -> list[CloudEvent]:
    """The events of a structured (one) or batch (a JSON array) body; PublishError naming what is wrong."""
    if not batch:
        try:
            return [_checked(decode_structured(raw))]
        except DecodeError as exc:
            raise PublishError(str(exc)) from None
    try:
        members = _BATCH.decode(raw)
    except (msgspec.DecodeError, RecursionError):
        raise PublishError("a batch must be a JSON array of structured CloudEvents") from None
    if len(members) > MAX_BATCH:
        raise PublishError(f"a batch holds at most {MAX_BATCH} events, got {len(members)}")
    events = []
    for index, member in enumerate(members):
        try:
            events.append(_checked(decode_structured(bytes(member))))
        except (DecodeError, PublishError) as exc:
            raise PublishError(f"event [{index}]: {exc}") from None
    return events


_REQUIRED = ("id", "source", "specversion", "type")


def binary_event(headers: Mapping[str, str], body: bytes) -> CloudEvent:
    """The event of a binary-mode request: `ce-*` headers (percent-decoded, as the HTTP binding says) and the body
    as its data, `Content-Type` as its `datacontenttype`."""
    attrs = {k.lower(): unquote(v) for k, v in headers.items() if k.lower().startswith("ce-")}
    for name in _REQUIRED:
        if not attrs.get("ce-" + name):
            raise PublishError(f"missing required attribute '{name}' (header ce-{name})")
    content_type = next((v for k, v in headers.items() if k.lower() == "content-type"), "")
    if json_depth_exceeds(body, MAX_JSON_DEPTH):
        raise PublishError(f"JSON body nested deeper than {MAX_JSON_DEPTH} levels")
    try:
        event = decode_binary({**attrs, **({"content-type": content_type} if content_type else {})}, body)
    except DecodeError as exc:
        raise PublishError(str(exc)) from None
    return _checked(event)


def _member(members: Mapping[str, msgspec.Raw], name: str) -> str:
    value = members.get(name)
    if value is None:
        raise PublishError(f"missing required field '{name}'")
    try:
        text = _TEXT.decode(value)
    except msgspec.DecodeError:
        raise PublishError(f"field '{name}' must be a string") from None
    if not text:
        raise PublishError(f"field '{name}' must not be empty")
    return text


def legacy_event(application: str, raw: bytes) -> CloudEvent:
    """The CloudEvent of a Kyma legacy event POSTed to `/<application>/v1/events`."""
    if json_depth_exceeds(raw, MAX_JSON_DEPTH):
        raise PublishError(f"JSON body nested deeper than {MAX_JSON_DEPTH} levels")
    try:
        members = _LEGACY.decode(raw)
    except (msgspec.DecodeError, RecursionError):
        raise PublishError("a legacy event must be a JSON object") from None
    event_type, version = _member(members, "event-type"), _member(members, "event-type-version")
    time = _member(members, "event-time")
    if not rfc3339(time):
        raise PublishError(f"field 'event-time' is not an RFC 3339 timestamp: {time[:40]!r}")
    try:
        type_ = legacy_type(application, event_type, version)
    except KymaTypeError as exc:
        raise PublishError(str(exc)) from None
    event_id = _member(members, "event-id") if "event-id" in members else new_id()
    data = members.get("data")
    return CloudEvent(id=event_id, source=application, type=type_, datacontenttype="application/json", time=time,
                      data=bytes(data) if data is not None else None)


def routed(event: CloudEvent, source: str, name: str) -> CloudEvent:
    """`event` under the entry's (EventSource, event name), the caller's `source` and `subject` kept as the
    extensions `originsource` and `originsubject` (engine.core.origin's rule)."""
    return route(event, source, name)


@dataclass(frozen=True)
class CloudEventsEndpoint(Endpoint):
    """A served path of a `cloudevents` entry: the CloudEvents modes, or (`legacy`) Kyma's legacy events."""

    legacy: bool = False


def cloudevents_endpoints(source: str, event: str, spec: CloudEventsContext) -> list[Endpoint]:
    """The paths one entry serves (the webhook server's limits apply to each)."""
    def context(path: str) -> WebhookContext:
        return WebhookContext(endpoint=path, port=spec.port, method="POST", max_payload_size=spec.max_payload_size)

    endpoints: list[Endpoint] = [CloudEventsEndpoint(source, event, context(spec.endpoint))]
    if spec.legacy:
        endpoints.append(CloudEventsEndpoint(source, event, context("/{application}/v1/events"), legacy=True))
    return endpoints


class CloudEventsServer(WebhookServer):
    """The webhook server (ports, limits, connection guard, bus confirmation) with the CloudEvents handlers: its
    `_handler` hook is replaced, its body reading and storing (`_read_body`, `_store`) are reused."""

    def _handler(self, endpoint: Endpoint, token: str | None,
                 check: Check | None) -> Callable[[web.Request], Awaitable[web.Response]]:
        legacy = isinstance(endpoint, CloudEventsEndpoint) and endpoint.legacy
        limit = endpoint.context.max_payload_size

        def events_of(request: web.Request, raw: bytes) -> list[CloudEvent]:
            if legacy:
                return [legacy_event(request.match_info["application"], raw)]
            content_type = request.headers.get("Content-Type", "").split(";", 1)[0].strip().lower()
            if content_type in (STRUCTURED, BATCH):
                return structured_events(raw, content_type == BATCH)
            if any(k.lower() == "ce-specversion" for k in request.headers):
                return [binary_event(request.headers, raw)]
            raise PublishError(f"not a CloudEvent: want Content-Type {STRUCTURED} or {BATCH}, or binary mode "
                               "(ce-specversion, ce-id, ce-source and ce-type headers)")

        async def handle(request: web.Request) -> web.Response:
            if request.method != "POST":
                return web.Response(status=405, text=f"method {request.method} not allowed\n")
            raw = await self._read_body(request, limit)
            if isinstance(raw, web.Response):
                return raw
            try:
                events = [routed(e, endpoint.source, endpoint.event) for e in events_of(request, raw)]
            except PublishError as exc:
                log.debug("cloudevents %s/%s: request from %s refused: %s", endpoint.source, endpoint.event,
                          request.remote, exc)
                if legacy:
                    return web.json_response({"status": 400, "type": "validation_violation", "message": str(exc)},
                                             status=400)
                return web.Response(status=400, text=f"{exc}\n")
            for event in events:  # in order; a retried batch is not stored twice (JetStream dedup on the ids)
                refused = await self._store(endpoint, event)
                if refused is not None:
                    return refused
            if legacy:
                return web.json_response({"event-id": events[0].id, "status": 200})
            return web.Response(status=204)

        return observed(handle, self.observe, endpoint)

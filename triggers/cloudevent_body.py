"""An HTTP trigger's request as a CloudEvent (the http trigger's Sensorium option `cloudEvent`).

The CloudEvents HTTP protocol binding 1.0, either content mode:

- `binary`: every attribute as a `ce-<name>` header (`ce-specversion`, `ce-id`, `ce-source`, `ce-type`, then
  `ce-subject`, `ce-time`, `ce-dataschema` when set, then every extension in the event's order), the data as the
  body, its `datacontenttype` as `Content-Type` (none when the event has none). Header values are percent-encoded
  as the binding says (space, `"`, `%` and everything outside printable ASCII, as UTF-8 bytes).
- `structured`: the event as `application/cloudevents+json` (engine.core.cloudevent's codec, the form the bus
  holds: JSON data embedded, other data as `data_base64`).

The event is the firing's event of `dependencyName` (or its only event), as its producer declared it: sources
that route an event under their (eventSourceName, eventName) keep the producer's `source` and `subject` in the
extension attributes `originsource` and `originsubject` (the CloudEvents publishing endpoint, Weik.io sources);
those become `source` and `subject` again and are not sent as extensions (engine.core.origin, the one rule).
The trigger's own headers stay; a header of the trigger with the same name as one set here (case-insensitively)
is replaced, so the event's attributes win.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from sensorium.engine.core.cloudevent import CloudEvent, encode_structured
from sensorium.engine.core.errors import TriggerError
from sensorium.engine.core.origin import published

STRUCTURED_TYPE = "application/cloudevents+json; charset=UTF-8"
MAX_HEADER_BYTES = 64 * 1024
"""Most bytes of `ce-*` headers one binary-mode request carries (servers refuse far less: 8-16 KiB is common); an
event whose attributes need more fails its firing without retries (structured mode has no such limit)."""
# CloudEvents attribute names are lowercase letters and digits; Sensorium's codec also keeps `_`-names (Argo's)
_HEADER_NAME = re.compile(r"[A-Za-z0-9_.-]{1,200}")
_KEEP = frozenset(range(0x21, 0x7F)) - {0x22, 0x25}


class CloudEventBodyError(TriggerError):
    """The firing's event cannot be sent as a CloudEvent (terminal: a retry would not change it)."""


def percent_encode(value: str) -> str:
    """A header value as the CloudEvents HTTP binding writes it (section 3.1.3.2)."""
    if all(ord(c) in _KEEP for c in value):
        return value
    return "".join(chr(b) if b in _KEEP else f"%{b:02X}" for b in value.encode("utf-8", "surrogatepass"))


def choose(events: Mapping[str, CloudEvent], dependency: str | None) -> CloudEvent:
    """The event to send: `dependency`'s, or the firing's first (a sensor with one dependency has one)."""
    if dependency is None:
        for first in events.values():
            return first
        raise CloudEventBodyError("cloudEvent: the firing has no event")
    event = events.get(dependency)
    if event is None:
        raise CloudEventBodyError(f"cloudEvent: dependency {dependency!r} has no event in this firing "
                                  f"(it has: {', '.join(events) or 'none'})")
    return event


def binary_headers(event: CloudEvent) -> list[tuple[str, str]]:
    """The `ce-*` headers and Content-Type of `event` in binary mode. Raises CloudEventBodyError for an
    extension whose name cannot be a header name."""
    attrs = [("specversion", event.specversion), ("id", event.id), ("source", event.source), ("type", event.type)]
    attrs += [(name, value) for name, value in (("subject", event.subject), ("time", event.time),
                                                 ("dataschema", event.dataschema)) if value]
    for name, value in event.extensions.items():
        if not _HEADER_NAME.fullmatch(name):
            shown = name[:40].encode("unicode_escape", "backslashreplace").decode("ascii")
            raise CloudEventBodyError(f"cloudEvent binary: extension attribute {shown!r} cannot be sent as a "
                                      "ce- header (want letters, digits, '_', '.', '-')")
        attrs.append((name, value))
    headers = [("ce-" + name, percent_encode(value)) for name, value in attrs]
    size = sum(len(k) + len(v) + 4 for k, v in headers)
    if size > MAX_HEADER_BYTES:
        raise CloudEventBodyError(f"cloudEvent binary: the event's {len(headers)} attributes need {size} bytes of "
                                  f"ce- headers, over {MAX_HEADER_BYTES}; use structured mode")
    if event.datacontenttype:
        headers.append(("Content-Type", percent_encode(event.datacontenttype)))
    return headers


def encode(mode: str, event: CloudEvent) -> tuple[list[tuple[str, str]], bytes]:
    """(headers, body) of `event` in `mode` (`binary` or `structured`)."""
    if mode == "structured":
        return [("Content-Type", STRUCTURED_TYPE)], encode_structured(event)
    return binary_headers(event), event.data if event.data is not None else b""


def apply(mode: str, event: CloudEvent, headers: Sequence[tuple[str, str]]) -> tuple[list[tuple[str, str]], bytes]:
    """The trigger's `headers` with `event`'s CloudEvent headers added (same names replaced), and the body."""
    own, body = encode(mode, published(event))
    names = {name.lower() for name, _ in own}
    return [(k, v) for k, v in headers if k.lower() not in names] + own, body

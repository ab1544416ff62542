"""The producer's `source` and `subject` of an event that Sensorium routes under its own names (kernel).

Sensors select events by the CloudEvent `source` (eventSourceName) and `subject` (eventName), Argo's rule. A
source whose events carry a producer's own `source`/`subject` (the CloudEvents publishing endpoint: the caller's;
a Weik.io EventSource or a `cloudEvent:` declaration: the declared ones) routes each event under its EventSource
and event name and keeps the producer's in two extension attributes. The one rule, used by every such source and
by the http trigger's `cloudEvent` option:

- a routed event carries `originsource` (always) and `originsubject` (only when the producer had a subject);
- delivering it as the producer published it (`published`) puts them back as `source` and `subject` (no subject
  when `originsubject` is absent) and sends neither extension; an event without `originsource` is not routed
  and goes out as the bus holds it.

An extension of either name that a caller set itself is overwritten when the event is routed.
"""

from __future__ import annotations

from msgspec.structs import replace

from sensorium.engine.core.cloudevent import CloudEvent

__all__ = ["ORIGIN_SOURCE", "ORIGIN_SUBJECT", "declare", "published", "route"]

ORIGIN_SOURCE = "originsource"
"""Extension attribute holding the producer's `source`."""
ORIGIN_SUBJECT = "originsubject"
"""Extension attribute holding the producer's `subject` (absent when it had none)."""


def declare(event: CloudEvent, source: str, subject: str | None) -> CloudEvent:
    """`event` (routing unchanged) marked as produced by `source` with `subject` (None or "": no subject)."""
    extensions = {**event.extensions, ORIGIN_SOURCE: source}
    if subject:
        extensions[ORIGIN_SUBJECT] = subject
    else:
        extensions.pop(ORIGIN_SUBJECT, None)
    return replace(event, extensions=extensions)


def route(event: CloudEvent, source: str, subject: str) -> CloudEvent:
    """`event` under (`source`, `subject`), its own `source` and `subject` kept as the producer's."""
    return replace(declare(event, event.source, event.subject), source=source, subject=subject)


def published(event: CloudEvent) -> CloudEvent:
    """`event` as its producer published it (the inverse of `route`/`declare`); unchanged when not routed."""
    if ORIGIN_SOURCE not in event.extensions:
        return event
    extensions = {k: v for k, v in event.extensions.items() if k not in (ORIGIN_SOURCE, ORIGIN_SUBJECT)}
    return replace(event, source=event.extensions[ORIGIN_SOURCE],
                   subject=event.extensions.get(ORIGIN_SUBJECT, ""), extensions=extensions)

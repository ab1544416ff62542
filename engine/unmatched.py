"""Events no sensor listens to, seen where they enter: the publish path of the engine's webhooks.

A sensor's consumer is handed only the events its dependencies listen to (JetStream filter subjects, Kafka keys
skipped before the stage), so an event whose `<eventSourceName>.<eventName>` no loaded sensor listens to never
reaches a runner: without this it would leave no trace at all (issue 14's `eventName: Example` against a source
that emits `example`). The engine knows every sensor's dependency keys when it assembles them, so the webhook's
publish path checks each stored event against them: when none matches, every sensor gets an `unmatched` trace
record (so `sensorium trace --sensor NAME` shows it, with what that sensor listens to) and the first such event
of each key is logged at WARNING, with a likely intended key when one is close.

Not seen here: events put on the bus by another process (`sensorium publish`, another engine's webhooks, Argo's
own EventSources); the engine never receives them.
"""

from __future__ import annotations

import difflib
import logging
from collections.abc import Sequence

from sensorium.buses.base import EventKey
from sensorium.engine.core.cloudevent import CloudEvent
from sensorium.engine.trace.records import Tracer, now
from sensorium.engine.trace.steps import unmatched_rows

__all__ = ["MAX_LOGGED_KEYS", "UnmatchedWatch"]

log = logging.getLogger("sensorium.engine.unmatched")

MAX_LOGGED_KEYS = 1000
"""Keys remembered as logged once: beyond this, unmatched events are no longer logged (still traced)."""


class UnmatchedWatch:
    """Every loaded sensor's dependency keys; `published(event)` records the event as unmatched when no sensor
    listens to it. Cheap on the publish path: one set lookup per event."""

    def __init__(self, sensors: Sequence[tuple[str, Sequence[EventKey]]], tracer: Tracer) -> None:
        self.tracer = tracer
        self.unmatched = 0  # events no sensor listens to, since start
        self._logged: set[tuple[str, str]] = set()
        self.update(sensors)

    def update(self, sensors: Sequence[tuple[str, Sequence[EventKey]]]) -> None:
        """The sensors now running (at start, and after a reload changed them)."""
        self.sensors = [(name, tuple(sorted(k.dotted() for k in keys))) for name, keys in sensors]
        self.keys = frozenset((k.source, k.name) for _, keys in sensors for k in keys)

    def listens(self, event: CloudEvent) -> bool:
        """Whether some loaded sensor has a dependency on the event's (source, subject)."""
        return (event.source, event.subject) in self.keys

    def published(self, event: CloudEvent) -> None:
        """`event` was stored on the bus: trace and log it when no sensor listens to it. Never raises."""
        if not self.sensors or (event.source, event.subject) in self.keys:
            return  # no sensors here (webhooks only, sensors in another process): nothing to say
        self.unmatched += 1
        try:
            self._record(event)
        except Exception as exc:  # tracing and logging never fail a publish
            log.debug("unmatched event %s not recorded: %r", event.id, exc)

    def _record(self, event: CloudEvent) -> None:
        tracer = self.tracer
        if tracer.enabled:
            t = now()
            for name, listening in self.sensors:
                tracer.defer(unmatched_rows, name, t, event, listening)
        key = (event.source, event.subject)
        if key in self._logged or len(self._logged) >= MAX_LOGGED_KEYS:
            return
        self._logged.add(key)
        dotted = f"{event.source}.{event.subject}"
        every = sorted({k for _, listening in self.sensors for k in listening})
        close = difflib.get_close_matches(dotted, every, n=1, cutoff=0.8) or [
            k for k in every if k.lower() == dotted.lower()][:1]
        hint = f"; did you mean {close[0]}?" if close else ""
        log.warning("no sensor listens to eventSourceName %r eventName %r (event %s; logged once per name)%s",
                    event.source, event.subject, event.id, hint,
                    extra={"event_id": event.id, "event_source": event.source, "event_name": event.subject,
                           "listening": every[:50]})

"""Checks across documents: what no single document shows.

- A dependency names an EventSource that is loaded but emits no such event name: a warning, with "did you mean"
  (`eventName: Example` against a webhook `example` never matches; Argo would wait forever). A warning, not an
  error: the engine still runs, and the events that reach no sensor show as `unmatched` in the trace and
  metrics. A dependency naming an EventSource that is not among the loaded files is a warning too (it may run
  elsewhere and publish to the same bus), with a suggestion when a loaded one has a close name. With no
  EventSource loaded at all, dependencies are not compared (a sensor checked on its own).
- Two webhook entries on one port and endpoint: an error (only one of them could receive the requests).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from sensorium.engine.core.errors import ConfigError, ConfigWarning
from sensorium.engine.documents import EventSource, Sensor
from sensorium.engine.suggest import closest


class Origin(Protocol):
    """Where a document came from (engine.config.Origin)."""

    @property
    def file(self) -> str: ...

    def locate(self, loc: Sequence[str | int]) -> tuple[int, str]: ...


Sources = Sequence[tuple[EventSource, Origin]]
Sensors = Sequence[tuple[Sensor, Origin]]


def event_names(doc: EventSource) -> list[str]:
    """The event names an EventSource emits: the entry names under every source kind of its spec."""
    names = list(doc.spec.webhook or {})
    for entries in (doc.spec.model_extra or {}).values():
        if isinstance(entries, dict):
            names.extend(str(name) for name in entries)
    return names


def _hint(guess: str | None) -> str:
    return f"; did you mean {guess}?" if guess else ""


def _listed(names: list[str]) -> str:
    return ", ".join(names[:20]) + (", ..." if len(names) > 20 else "") if names else "none"


def dependency_problems(loaded: Sources, sensors: Sensors) -> list[ConfigError]:
    """Every dependency whose (eventSourceName, eventName) no loaded EventSource emits."""
    if not loaded:
        return []
    sources = {doc.metadata.name: event_names(doc) for doc, _ in loaded}
    problems: list[ConfigError] = []
    for sensor, origin in sensors:
        for index, dep in enumerate(sensor.spec.dependencies):
            where: list[str | int] = ["spec", "dependencies", index]
            events = sources.get(dep.event_source_name)
            if events is None:
                line, path = origin.locate([*where, "eventSourceName"])
                guess = closest(dep.event_source_name, sources)
                problems.append(ConfigWarning(
                    f"no loaded EventSource is named '{dep.event_source_name}' (loaded: {_listed(list(sources))})"
                    f"{_hint(guess)}", origin.file, line, path))
            elif dep.event_name not in events:
                line, path = origin.locate([*where, "eventName"])
                problems.append(ConfigWarning(
                    f"EventSource '{dep.event_source_name}' emits no event '{dep.event_name}' (its events: "
                    f"{_listed(events)}){_hint(closest(dep.event_name, events))}", origin.file, line, path))
    return problems


def endpoint_problems(loaded: Sources) -> list[ConfigError]:
    """Every webhook entry on the port and endpoint of an earlier one."""
    seen: dict[tuple[int, str], tuple[str, str, Origin]] = {}
    problems: list[ConfigError] = []
    for doc, origin in loaded:
        for name, ctx in (doc.spec.webhook or {}).items():
            key = (ctx.port, ctx.endpoint)
            first = seen.setdefault(key, (doc.metadata.name, name, origin))
            if first[2] is origin and first[:2] == (doc.metadata.name, name):
                continue
            other_line, _ = first[2].locate(["spec", "webhook", first[1], "endpoint"])
            line, path = origin.locate(["spec", "webhook", name, "endpoint"])
            problems.append(ConfigError(
                f"port {ctx.port} endpoint {ctx.endpoint} is already served by EventSource '{first[0]}' event "
                f"'{first[1]}' ({first[2].file}:{other_line})", origin.file, line, path))
    return problems


def cross_document_problems(sources: Sources, sensors: Sensors) -> list[ConfigError]:
    """Errors and warnings (`ConfigWarning`) across the loaded documents."""
    return [*dependency_problems(sources, sensors), *endpoint_problems(sources)]

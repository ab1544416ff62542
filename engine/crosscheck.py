"""Checks across documents: what no single document shows.

- A dependency names an EventSource that is loaded but emits no such event name: a warning, with "did you mean"
  (`eventName: Example` against a webhook `example` never matches; Argo would wait forever). A warning, not an
  error: the engine still runs, and the events that reach no sensor show as `unmatched` in the trace and
  metrics. A dependency naming an EventSource that is not among the loaded files is a warning too (it may run
  elsewhere and publish to the same bus), with a suggestion when a loaded one has a close name. With no
  EventSource loaded at all, dependencies are not compared (a sensor checked on its own).
- Two webhook entries on one port and endpoint: an error (only one of them could receive the requests).
- One port written under two source kinds (a `webhook` and a `cloudevents` entry, say), or two `cloudevents`
  entries serving the same path on one port: an error (each kind runs its own server on its ports).
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


def _port(entry: object) -> int | None:
    """The port an entry (as written) listens on: its `port`, or its `webhook.port` (the git providers' kinds)."""
    if not isinstance(entry, dict):
        return None
    written = entry.get("port", (entry.get("webhook") or {}).get("port") if isinstance(entry.get("webhook"), dict)
                        else None)
    try:
        return int(written) if isinstance(written, (int, str)) and not isinstance(written, bool) else None
    except ValueError:
        return None


def _cloudevents_paths(entry: dict[str, object]) -> set[str]:
    paths = {str(entry.get("endpoint", "/publish"))}
    if entry.get("legacy", True) is not False:
        paths.add("/{application}/v1/events")
    return paths


def port_problems(loaded: Sources) -> list[ConfigError]:
    """Every entry on a port another kind's entry listens on, and every `cloudevents` entry serving a path an
    earlier one serves on the same port."""
    kinds: dict[int, tuple[str, str, str, Origin]] = {}  # port -> (kind, source, name, origin) of its first entry
    paths: dict[tuple[int, str], str] = {}  # (port, path) -> "source/name" of the cloudevents entry serving it
    problems: list[ConfigError] = []
    for doc, origin in loaded:
        written = {"webhook": {n: {"port": c.port} for n, c in (doc.spec.webhook or {}).items()},
                   **(doc.spec.model_extra or {})}
        for kind, entries in written.items():
            for name, entry in (entries.items() if isinstance(entries, dict) else ()):
                port = _port(entry)
                if port is None:
                    continue
                first = kinds.setdefault(port, (kind, doc.metadata.name, str(name), origin))
                line, path = origin.locate(["spec", kind, name])
                if first[0] != kind:
                    other, _ = first[3].locate(["spec", first[0], first[2]])
                    problems.append(ConfigError(
                        f"port {port} is already served by the {first[0]} entry '{first[1]}/{first[2]}' "
                        f"({first[3].file}:{other}); each source kind needs ports of its own", origin.file, line,
                        path))
                    continue
                if kind == "cloudevents" and isinstance(entry, dict):
                    for served in sorted(_cloudevents_paths(entry)):
                        owner = paths.setdefault((port, served), f"{doc.metadata.name}/{name}")
                        if owner != f"{doc.metadata.name}/{name}":
                            problems.append(ConfigError(f"port {port} path {served} is already served by the "
                                                        f"cloudevents entry '{owner}'", origin.file, line, path))
    return problems


def cross_document_problems(sources: Sources, sensors: Sensors) -> list[ConfigError]:
    """Errors and warnings (`ConfigWarning`) across the loaded documents."""
    return [*dependency_problems(sources, sensors), *endpoint_problems(sources), *port_problems(sources)]

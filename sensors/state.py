"""Condition state (sensor stage): per trigger, the latest passing event of each dependency (no I/O).

Held only for expressions with `&&` (Argo's JetStream KV `<trigger>/<dep>` keys, Kafka's trigger-topic
lists). `snapshot()`/`restore()` give plain JSON-able dicts so the engine can persist the state on the bus.
"""

from __future__ import annotations

import base64
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sensorium.engine.core.cloudevent import CloudEvent, from_mapping

SNAPSHOT_VERSION = 1


@dataclass(frozen=True)
class Held:
    event: CloudEvent
    stored_at: datetime


def event_to_json(event: CloudEvent) -> dict[str, Any]:
    """Structured-mode CloudEvent dict with data always as `data_base64` (lossless)."""
    obj: dict[str, Any] = {"specversion": event.specversion, "id": event.id, "source": event.source,
                           "type": event.type}
    for name in ("subject", "datacontenttype", "dataschema", "time"):
        if getattr(event, name):
            obj[name] = getattr(event, name)
    obj.update(event.extensions)
    if event.data is not None:
        obj["data_base64"] = base64.b64encode(event.data).decode()
    return obj


class ConditionState:
    """Mutable per-trigger store; the stage is its only writer."""

    def __init__(self) -> None:
        self._held: dict[str, dict[str, Held]] = {}
        self.changes = 0  # bumped by every mutation: the engine persists the state when it moved

    def held(self, trigger: str) -> dict[str, CloudEvent]:
        return {dep: h.event for dep, h in self._held.get(trigger, {}).items()}

    def held_since(self, trigger: str) -> dict[str, datetime]:
        return {dep: h.stored_at for dep, h in self._held.get(trigger, {}).items()}

    def store(self, trigger: str, dependency: str, event: CloudEvent, now: datetime) -> None:
        """Keep `event` as the latest for `dependency`, replacing an older one."""
        self._held.setdefault(trigger, {})[dependency] = Held(event, now)
        self.changes += 1

    def clear(self, trigger: str) -> None:
        if self._held.pop(trigger, None):
            self.changes += 1

    def clear_before(self, trigger: str, cutoff: datetime) -> None:
        """Drop events stored before `cutoff` (conditionsReset catching up on a missed tick)."""
        before = self._held.get(trigger, {})
        kept = {d: h for d, h in before.items() if h.stored_at >= cutoff}
        if len(kept) != len(before):
            self.changes += 1
        if kept:
            self._held[trigger] = kept
        else:
            self._held.pop(trigger, None)

    def prune(self, valid: Mapping[str, Collection[str]]) -> None:
        """Forget triggers and dependencies that are not in `valid` (trigger -> dependency names)."""
        for trigger in list(self._held):
            deps = valid.get(trigger)
            kept = {d: h for d, h in self._held[trigger].items() if deps is not None and d in deps}
            if kept:
                self._held[trigger] = kept
            else:
                del self._held[trigger]

    def snapshot(self) -> dict[str, Any]:
        return {"version": SNAPSHOT_VERSION, "triggers": {
            trigger: {dep: {"storedAt": h.stored_at.isoformat(), "event": event_to_json(h.event)}
                      for dep, h in held.items()}
            for trigger, held in self._held.items() if held}}

    def restore(self, snapshot: Mapping[str, Any]) -> None:
        """Replace the contents with a `snapshot()`; raises ValueError when it is malformed."""
        if snapshot.get("version") != SNAPSHOT_VERSION:
            raise ValueError(f"condition state snapshot version {snapshot.get('version')!r} is not supported")
        held: dict[str, dict[str, Held]] = {}
        try:
            for trigger, deps in snapshot["triggers"].items():
                held[trigger] = {
                    dep: Held(from_mapping(entry["event"]), datetime.fromisoformat(entry["storedAt"]))
                    for dep, entry in deps.items()}
        except (KeyError, TypeError, AttributeError, ValueError) as exc:
            raise ValueError(f"malformed condition state snapshot: {exc}") from None
        self._held = held
        self.changes += 1

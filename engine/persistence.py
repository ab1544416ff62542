"""Durable condition state: a sensor's partial matches (`A && B` waiting for B) survive a restart.

The snapshot is stored through the bus (`Bus.state_store`: a JetStream KV bucket, a compacted Kafka topic) and a
delivery that changed the state is acknowledged only after a snapshot containing that change was stored. A
snapshot is the live state *plus the events of firings still running*: the stage clears a trigger's events when it
fires, but until the firing finished a crash must find them again, so the redelivered event completes the condition
and fires again (at-least-once) instead of being lost. Any later snapshot is therefore also a valid one for an
earlier change, which lets concurrent saves coalesce into one write.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from sensorium.buses.base import StateStore
from sensorium.engine.core.cloudevent import CloudEvent
from sensorium.sensors.stage import SensorStage
from sensorium.sensors.state import event_to_json

log = logging.getLogger("sensorium.engine")


class ConditionPersistence:
    def __init__(self, sensor: str, store: StateStore, stage: SensorStage) -> None:
        self.sensor, self.store, self.stage = sensor, store, stage
        self._running: dict[int, tuple[str, Mapping[str, CloudEvent], datetime]] = {}
        self._tokens = itertools.count(1)
        self._firing_changes = 0
        self._saved = 0
        self._lock = asyncio.Lock()

    @property
    def version(self) -> int:
        """Grows with every change that a stored snapshot must reflect."""
        return self.stage.state.changes + self._firing_changes

    def holds(self, trigger: str) -> bool:
        condition = self.stage.conditions.get(trigger)
        return condition is not None and condition.has_and()

    async def restore(self) -> None:
        raw = await self.store.load()
        if not raw:
            return
        try:
            self.stage.state.restore(json.loads(raw))
        except ValueError as exc:  # never block a sensor on a bad snapshot; say so loudly
            log.error("sensor %s: stored condition state ignored: %s", self.sensor, exc)
            return
        self._saved = self.version
        held = {t: sorted(self.stage.state.held(t)) for t in self.stage.conditions}
        log.info("sensor %s: restored condition state %s", self.sensor, {t: d for t, d in held.items() if d})

    def firing_started(self, trigger: str, events: Mapping[str, CloudEvent]) -> int:
        token = next(self._tokens)
        self._running[token] = (trigger, events, datetime.now(UTC))
        self._firing_changes += 1
        return token

    def firing_finished(self, token: int) -> None:
        if self._running.pop(token, None) is not None:
            self._firing_changes += 1

    def snapshot(self) -> bytes:
        snap: dict[str, Any] = self.stage.state.snapshot()
        triggers: dict[str, dict[str, Any]] = snap.setdefault("triggers", {})
        for trigger, events, started in self._running.values():
            held = triggers.setdefault(trigger, {})
            for dep, event in events.items():
                held.setdefault(dep, {"storedAt": started.isoformat(), "event": event_to_json(event)})
        return json.dumps(snap, separators=(",", ":")).encode()

    async def ensure(self, version: int) -> None:
        """Return once a snapshot at `version` or later is stored; raises BusError when it could not be."""
        async with self._lock:
            if self._saved >= version:
                return
            current = self.version
            await self.store.save(self.snapshot())
            self._saved = max(self._saved, current)

"""Turning loaded documents into running parts: a sensor stage and one executor per trigger.

Also the load-time checks that need those parts (unsupported features, trigger kinds, event source types), so
that `sensorium run` refuses at start-up, with file and line, anything it could not run.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

from sensorium.buses.base import EventKey
from sensorium.engine.config import Origin, dotted_path
from sensorium.engine.core.errors import ConfigError
from sensorium.engine.core.secrets import Secrets
from sensorium.engine.documents import EventSource, Sensor
from sensorium.engine.registry import REGISTRY, Registry, TriggerDeps
from sensorium.engine.trace.records import NULL_TRACER, Tracer
from sensorium.sensors.stage import SensorStage, stage_problems
from sensorium.triggers.http import HttpClient
from sensorium.triggers.outcome import Fireable
from sensorium.triggers.spec import Trigger


@dataclass(frozen=True)
class AssembledSensor:
    name: str
    keys: tuple[EventKey, ...]
    stage: SensorStage
    executors: Mapping[str, Fireable]


@contextlib.asynccontextmanager
async def shared_http_client() -> AsyncIterator[HttpClient]:
    """The engine's one HTTP connection pool, shared by every trigger."""
    async with HttpClient() as client:
        yield client


def build_executor(trigger: Trigger, secrets: Secrets, client: HttpClient, registry: Registry = REGISTRY) -> Fireable:
    """The running trigger, built by its registered kind."""
    return registry.build_trigger(trigger, TriggerDeps(client, secrets))


def assemble_sensor(sensor: Sensor, secrets: Secrets, client: HttpClient, tracer: Tracer = NULL_TRACER,
                    registry: Registry = REGISTRY) -> AssembledSensor:
    keys = tuple(dict.fromkeys(EventKey(d.event_source_name, d.event_name) for d in sensor.spec.dependencies))
    executors = {t.template.name: build_executor(t, secrets, client, registry) for t in sensor.spec.triggers}
    return AssembledSensor(sensor.metadata.name, keys, SensorStage(sensor), executors)


def _loc(dotted: str) -> list[str | int]:
    return [int(p) if p.isdigit() else p for p in dotted.split(".") if p]


def _error(origin: Origin, loc: list[str | int], message: str) -> ConfigError:
    line, path = origin.locate(loc)
    return ConfigError(message, origin.file, line, path)


def check_document(doc: Any, origin: Origin, registry: Registry = REGISTRY) -> list[ConfigError]:
    """Problems `sensorium run` would hit when building the parts for `doc` (all of them, not the first). Each
    trigger is checked by its registered kind (`Registry.check_trigger`), which builds nothing."""
    errors: list[ConfigError] = []
    if isinstance(doc, Sensor):
        for problem in stage_problems(doc):
            errors.append(_error(origin, _loc(problem.field), str(problem).split(": ", 1)[-1]))
        for index, trigger in enumerate(doc.spec.triggers):
            try:
                registry.check_trigger(trigger)
            except ConfigError as exc:
                loc: list[str | int] = ["spec", "triggers", index, "template"]
                errors.append(_error(origin, [*loc, trigger.kind() or ""], exc.message).with_field(dotted_path(loc)))
            except ValueError as exc:
                errors.append(_error(origin, ["spec", "triggers", index, "template"], str(exc)))
    elif isinstance(doc, EventSource):
        extra = doc.spec.model_extra or {}
        supported = ", ".join(registry.sources)
        for kind in extra:
            if kind not in registry.sources:
                errors.append(_error(origin, ["spec", kind],
                                     f"event source type {kind} is not supported (supported: {supported})"))
                continue
            for name, entry in (extra[kind] or {}).items():
                try:
                    registry.sources[kind].spec.model_validate(entry)
                except ValueError as exc:
                    errors.append(_error(origin, ["spec", kind, name], str(exc)))
        if not doc.spec.webhook and not extra:
            errors.append(_error(origin, ["spec"], "no event sources defined"))
    return errors

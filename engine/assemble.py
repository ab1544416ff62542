"""Turning loaded documents into running parts: a sensor stage and one executor per trigger.

Also the load-time checks that need those parts (unsupported features, trigger kinds, event source types), so
that `sensorium run` refuses at start-up, with file and line, anything it could not run.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

from buses.base import EventKey
from engine.config import Origin, dotted_path
from engine.core.errors import ConfigError
from engine.core.secrets import Secrets
from engine.documents import EventSource, Sensor
from engine.runner import Executor
from engine.trace.records import NULL_TRACER, Tracer
from sensors.stage import SensorStage, StageConfigError
from triggers.deadletter import DeadLettering, Fireable
from triggers.http import HttpClient, HttpTrigger
from triggers.log import LogTrigger
from triggers.spec import Trigger

SUPPORTED_TRIGGERS = ("http", "log")
SUPPORTED_SOURCES = ("webhook",)


@dataclass(frozen=True)
class AssembledSensor:
    name: str
    keys: tuple[EventKey, ...]
    stage: SensorStage
    executors: Mapping[str, Executor]


@contextlib.asynccontextmanager
async def shared_http_client() -> AsyncIterator[HttpClient]:
    """The engine's one HTTP connection pool, shared by every trigger."""
    async with HttpClient() as client:
        yield client


def build_executor(trigger: Trigger, secrets: Secrets, client: HttpClient) -> Fireable:
    kind = trigger.require_supported(SUPPORTED_TRIGGERS)
    executor: Fireable = HttpTrigger(trigger, client, secrets) if kind == "http" else LogTrigger(trigger)
    if trigger.dlq_trigger is not None:
        return DeadLettering(executor, build_executor(trigger.dlq_trigger, secrets, client), trigger.name)
    return executor


def assemble_sensor(sensor: Sensor, secrets: Secrets, client: HttpClient,
                    tracer: Tracer = NULL_TRACER) -> AssembledSensor:
    keys = tuple(dict.fromkeys(EventKey(d.event_source_name, d.event_name) for d in sensor.spec.dependencies))
    executors = {t.template.name: build_executor(t, secrets, client) for t in sensor.spec.triggers}
    return AssembledSensor(sensor.metadata.name, keys, SensorStage(sensor), executors)


def _loc(dotted: str) -> list[str | int]:
    return [int(p) if p.isdigit() else p for p in dotted.split(".") if p]


def _error(origin: Origin, loc: list[str | int], message: str) -> ConfigError:
    line, path = origin.locate(loc)
    return ConfigError(message, origin.file, line, path)


def check_document(doc: Any, origin: Origin) -> list[ConfigError]:
    """Problems `sensorium run` would hit when building the parts for `doc` (all of them, not the first)."""
    errors: list[ConfigError] = []
    if isinstance(doc, Sensor):
        try:
            SensorStage(doc)
        except StageConfigError as exc:
            errors.append(_error(origin, _loc(exc.field), str(exc).split(": ", 1)[-1]))
        except ValueError as exc:
            errors.append(_error(origin, ["spec"], str(exc)))
        for index, trigger in enumerate(doc.spec.triggers):
            try:
                build_executor(trigger, Secrets(), HttpClient())
            except ConfigError as exc:
                loc: list[str | int] = ["spec", "triggers", index, "template"]
                errors.append(_error(origin, [*loc, trigger.kind() or ""], exc.message).with_field(dotted_path(loc)))
            except ValueError as exc:
                errors.append(_error(origin, ["spec", "triggers", index, "template"], str(exc)))
    elif isinstance(doc, EventSource):
        extra = doc.spec.model_extra or {}
        for kind in extra:
            errors.append(_error(origin, ["spec", kind],
                                 f"event source type {kind} is not supported (supported: webhook)"))
        if not doc.spec.webhook and not extra:
            errors.append(_error(origin, ["spec"], "no event sources defined"))
    return errors

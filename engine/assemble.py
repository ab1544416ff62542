"""Checking loaded documents once and turning what the check compiled into running parts.

`Checker` is the load-time check of `sensorium run`, `validate` and `test`: it refuses, with file and line,
anything the engine could not run, and keeps what it compiled to decide that (each Sensor's stage, the checked
trigger specs, each EventSource entry parsed by its source kind). `load_checked` returns those with the Config
(`Checked`), and `run_engine` assembles from them, so each sensor is compiled exactly once per run.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from sensorium.buses.base import EventKey
from sensorium.engine.config import Config, ConfigErrors, Origin, dotted_path, load, validation_problems
from sensorium.engine.core.errors import ConfigError
from sensorium.engine.core.secrets import Secrets
from sensorium.engine.documents import EventSource, Sensor
from sensorium.engine.partial import is_salvaged
from sensorium.engine.registry import REGISTRY, Registry, SourceEntry, TriggerDeps
from sensorium.engine.trace.records import NULL_TRACER, Tracer
from sensorium.sensors.stage import SensorStage, stage_problems
from sensorium.triggers.http import HttpClient
from sensorium.triggers.outcome import Fireable
from sensorium.triggers.pools import Pools
from sensorium.triggers.spec import Trigger


@dataclass(frozen=True)
class CompiledSensor:
    """What checking a Sensor compiled: its stage (conditions, transforms, filters and templates checked and
    compiled), the event keys it listens to, and its triggers, each checked by its registered kind."""

    sensor: Sensor
    keys: tuple[EventKey, ...]
    stage: SensorStage
    triggers: tuple[Trigger, ...]

    @property
    def name(self) -> str:
        return self.sensor.metadata.name


@dataclass
class Checked(Config):
    """A Config every document of which passed `Checker`, with what the check compiled: `compiled` holds one
    CompiledSensor per Sensor (in `sensors` order), `entries` every EventSource entry parsed by its source kind,
    `registry` the kinds it was checked with (running uses the same)."""

    compiled: list[CompiledSensor] = field(default_factory=list)
    entries: list[SourceEntry] = field(default_factory=list)
    registry: Registry = REGISTRY


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


def build_executor(trigger: Trigger, secrets: Secrets, client: HttpClient, registry: Registry = REGISTRY,
                   details: bool = True, pools: Pools | None = None) -> Fireable:
    """The running trigger, built by its registered kind (`details`, `pools`: see `TriggerDeps`)."""
    return registry.build_trigger(trigger, TriggerDeps(client, secrets, details, pools))


def assemble(compiled: CompiledSensor, secrets: Secrets, client: HttpClient, registry: Registry = REGISTRY,
             details: bool = True, pools: Pools | None = None) -> AssembledSensor:
    """The running parts of a checked sensor: its compiled stage, and each trigger built by its kind
    (`details` False: outcomes without what only traces read, `TriggerDeps.details`; `pools`: the message-queue
    triggers' connections, `TriggerDeps.pools`)."""
    executors = {t.template.name: build_executor(t, secrets, client, registry, details, pools)
                 for t in compiled.triggers}
    return AssembledSensor(compiled.name, compiled.keys, compiled.stage, executors)


def assemble_sensor(sensor: Sensor, secrets: Secrets, client: HttpClient, tracer: Tracer = NULL_TRACER,
                    registry: Registry = REGISTRY) -> AssembledSensor:
    """A Sensor that was not checked (tests, tools): its stage compiled here, then assembled."""
    compiled = CompiledSensor(sensor, _keys(sensor), SensorStage(sensor), tuple(sensor.spec.triggers))
    return assemble(compiled, secrets, client, registry)


def _keys(sensor: Sensor) -> tuple[EventKey, ...]:
    return tuple(dict.fromkeys(EventKey(d.event_source_name, d.event_name) for d in sensor.spec.dependencies))


def _loc(dotted: str) -> list[str | int]:
    return [int(p) if p.isdigit() else p for p in dotted.split(".") if p]


def _error(origin: Origin, loc: list[str | int], message: str) -> ConfigError:
    line, path = origin.locate(loc)
    return ConfigError(message, origin.file, line, path)


class Checker:
    """The load check (`config.Check`) that keeps what it compiled. Call it on each loaded document: it returns
    the problems `sensorium run` would hit building that document's parts (all of them, not the first), and
    keeps each valid Sensor's `CompiledSensor` (in `compiled`) and each valid EventSource's entries (in
    `entries`). Triggers are checked by their registered kinds (`Registry.check_trigger`), which build nothing."""

    def __init__(self, registry: Registry = REGISTRY) -> None:
        self.registry = registry
        self.compiled: list[CompiledSensor] = []
        self.entries: list[SourceEntry] = []

    def __call__(self, doc: Any, origin: Origin) -> list[ConfigError]:
        if isinstance(doc, Sensor):
            return self._sensor(doc, origin)
        if isinstance(doc, EventSource):
            return self._source(doc, origin)
        return []

    def _sensor(self, doc: Sensor, origin: Origin) -> list[ConfigError]:
        errors = [_error(origin, _loc(problem.field), str(problem).split(": ", 1)[-1])
                  for problem in stage_problems(doc)]  # every problem, building nothing
        stage = None
        if not errors and not is_salvaged(doc):  # a salvaged document's problems are reported already
            try:
                stage = SensorStage(doc)  # compiled once: `run` assembles from `compiled`
            except ValueError as exc:
                errors.append(_error(origin, ["spec"], str(exc)))
        for index, trigger in enumerate(doc.spec.triggers):
            try:
                self.registry.check_trigger(trigger)
            except ConfigError as exc:
                loc: list[str | int] = ["spec", "triggers", index, "template"]
                errors.append(_error(origin, [*loc, trigger.kind() or ""], exc.message).with_field(dotted_path(loc)))
            except ValueError as exc:
                errors.append(_error(origin, ["spec", "triggers", index, "template"], str(exc)))
        if stage is not None and not errors:
            self.compiled.append(CompiledSensor(doc, _keys(doc), stage, tuple(doc.spec.triggers)))
        return errors

    def _source(self, doc: EventSource, origin: Origin) -> list[ConfigError]:
        errors: list[ConfigError] = []
        entries: list[SourceEntry] = []
        supported = ", ".join(self.registry.sources)
        for kind, written in _written_kinds(doc, self.registry):
            if kind not in self.registry.sources:
                errors.append(_error(origin, ["spec", kind],
                                     f"event source type {kind} is not supported (supported: {supported})"))
                continue
            model = self.registry.sources[kind].spec
            if written is None:
                continue
            if not isinstance(written, Mapping):
                errors.append(_error(origin, ["spec", kind], "must be a mapping of event names to entries"))
                continue
            for name, entry in written.items():
                try:
                    parsed = entry if isinstance(entry, model) else model.model_validate(entry)
                except ValidationError as exc:  # each problem at its own line, as for documents
                    errors.extend(validation_problems(model, exc, origin, ["spec", kind, name]))
                    continue
                except ValueError as exc:
                    errors.append(_error(origin, ["spec", kind, name], " ".join(str(exc).split())))
                    continue
                entries.append(SourceEntry(kind, doc.metadata.name, str(name), parsed))
        if not entries and not errors:
            errors.append(_error(origin, ["spec"], "no event sources defined"))
        if not errors:
            self.entries.extend(entries)
        return errors


def _written_kinds(doc: EventSource, registry: Registry) -> Iterable[tuple[str, Any]]:
    """(kind, what is written under it) for every source kind written in `doc`: the registered kinds the
    EventSource model has a field for (`webhook`), then every kind the model does not know (its extra fields)."""
    typed = type(doc.spec).model_fields
    for kind in registry.sources:
        if kind in typed and getattr(doc.spec, kind) is not None:
            yield kind, getattr(doc.spec, kind)
    yield from (doc.spec.model_extra or {}).items()


def check_document(doc: Any, origin: Origin, registry: Registry = REGISTRY) -> list[ConfigError]:
    """Problems `sensorium run` would hit when building the parts for `doc`; what it compiled is dropped
    (`load_checked` keeps it)."""
    return Checker(registry)(doc, origin)


def load_checked(paths: Iterable[str | Path], environ: Mapping[str, str] | None = None,
                 registry: Registry = REGISTRY) -> Checked:
    """`config.load` with `Checker`: every document validated and checked (ConfigErrors listing every problem),
    and what the check compiled, for `run_engine` to assemble from."""
    checker = Checker(registry)
    config = load(paths, environ, checks=[checker])
    return _checked(config, checker)


def check_config(config: Config, registry: Registry = REGISTRY) -> Checked:
    """A Config loaded without `Checker`, checked now (ConfigErrors listing every problem); a Checked as is."""
    if isinstance(config, Checked):
        return config
    checker = Checker(registry)
    errors = [e for docs in (config.sources, config.sensors) for doc, origin in docs for e in checker(doc, origin)]
    if errors:
        raise ConfigErrors(errors)
    return _checked(config, checker)


def _checked(config: Config, checker: Checker) -> Checked:
    return Checked(config.buses, config.sources, config.sensors, warnings=config.warnings,
                   compiled=checker.compiled, entries=checker.entries, registry=checker.registry)

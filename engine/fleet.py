"""The sensors and event sources a running engine holds, and how a reloaded configuration replaces them.

A reload (`Fleet.apply`) touches only what changed: a Sensor whose document differs (or that is gone) is stopped
gracefully (its runner drains: in-flight firings finish, unfinished ones are nak'ed and redelivered by the bus),
then its new version takes the same inbox of the shared intake (engine.intake; or, with `spec.consumer`, the same
durable consumer) and runs; the intake then follows the new set of sensors (`Intake.sync`); unchanged sensors keep
running untouched. Sources are held per unit `(kind, port)` (webhooks on one port share a server): a unit whose
entries changed is stopped and its new version started; the others keep serving. Everything new is built before
anything is stopped, so a configuration that cannot be assembled changes nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from sensorium.buses.base import EventKey
from sensorium.engine.assemble import Checked, CompiledSensor
from sensorium.engine.core.errors import ConfigError
from sensorium.engine.intake import Intake
from sensorium.engine.registry import SourceEntry
from sensorium.engine.runner import SensorRunner
from sensorium.sources.base import RunningSource

log = logging.getLogger("sensorium.engine")

Unit = tuple[str, str]
"""(source kind, port): the entries one running source serves."""

RunnerFor = Callable[[CompiledSensor], Awaitable[SensorRunner]]
SourcesFor = Callable[[Checked, list[SourceEntry]], RunningSource]
Supervise = Callable[[SensorRunner, asyncio.Event], Coroutine[object, object, None]]


def sensor_fingerprint(compiled: CompiledSensor) -> str:
    """What decides whether a Sensor changed: its whole document as parsed (environment substituted)."""
    return compiled.sensor.model_dump_json()


def source_units(entries: Sequence[SourceEntry]) -> dict[Unit, list[SourceEntry]]:
    """Entries by (kind, port); kinds without a port form one unit."""
    units: dict[Unit, list[SourceEntry]] = {}
    for entry in entries:
        units.setdefault((entry.kind, str(getattr(entry.spec, "port", ""))), []).append(entry)
    return units


def unit_fingerprint(entries: Sequence[SourceEntry]) -> str:
    return json.dumps(sorted((e.event_source, e.event_name, e.spec.model_dump_json()) for e in entries))


@dataclass
class _Sensor:
    compiled: CompiledSensor
    runner: SensorRunner
    stop: asyncio.Event
    task: asyncio.Task[None] | None = None

    @functools.cached_property
    def fingerprint(self) -> str:
        """Computed at the first reload that asks (documents are frozen models): start-up does not pay for it."""
        return sensor_fingerprint(self.compiled)


@dataclass
class _Source:
    fingerprint: str
    source: RunningSource


@dataclass
class Fleet:
    """The running sensors (one supervised task each, with its own stop event) and sources (one per unit).

    `runners` and `listened` are live views, updated in place on every change, for the health endpoint and the
    metrics (`watch_loops`, unmatched events)."""

    runner_for: RunnerFor
    source_for: SourcesFor
    supervise: Supervise
    sensors: dict[str, _Sensor] = field(default_factory=dict)
    sources: dict[Unit, _Source] = field(default_factory=dict)
    runners: list[SensorRunner] = field(default_factory=list)
    listened: set[EventKey] = field(default_factory=set)
    on_change: Callable[[Sequence[SensorRunner]], None] | None = None  # told the running sensors after each change
    intake: Intake | None = None  # the shared intake feeding the sensors without a consumer of their own

    async def start(self, config: Checked) -> None:
        """Consumers first (an event a webhook accepts must already have a consumer waiting), then sources."""
        fresh = {c.name: (c, await self.runner_for(c)) for c in config.compiled}
        await asyncio.gather(*(runner.prepare() for _, runner in fresh.values()))
        for name, (compiled, runner) in fresh.items():
            self.sensors[name] = _Sensor(compiled, runner, asyncio.Event())
        self._refresh()
        if self.intake is not None:
            await self.intake.sync(self.runners)
        units = source_units(config.entries)
        built = {unit: _Source(unit_fingerprint(entries), self.source_for(config, entries))
                 for unit, entries in units.items()}
        started: list[_Source] = []
        try:
            for unit, source in built.items():
                await source.source.start()
                started.append(source)
                self.sources[unit] = source
        except BaseException:
            await source.source.stop()
            for done in reversed(started):
                await done.source.stop()
            self.sources.clear()
            raise

    def launch(self) -> None:
        """Start the supervised loop of every sensor that has none (and the intake's fetch loop)."""
        if self.intake is not None:
            self.intake.launch()
        for name, sensor in self.sensors.items():
            if sensor.task is None:
                sensor.task = asyncio.create_task(self.supervise(sensor.runner, sensor.stop), name=f"sensor-{name}")

    async def apply(self, config: Checked) -> str:
        """Replace what changed by `config` (see the module); returns a one-line summary. Raises ConfigError (and
        changes nothing) when a changed sensor cannot be assembled or a changed source cannot be built."""
        wanted = {c.name: c for c in config.compiled}
        changed = [n for n, c in wanted.items()
                   if n not in self.sensors or self.sensors[n].fingerprint != sensor_fingerprint(c)]
        removed = [n for n in self.sensors if n not in wanted]
        fresh = {n: (wanted[n], await self.runner_for(wanted[n])) for n in changed}
        units = source_units(config.entries)
        new_units = [u for u, entries in units.items()
                     if u not in self.sources or self.sources[u].fingerprint != unit_fingerprint(entries)]
        gone_units = [u for u in self.sources if u not in units]
        built = {u: _Source(unit_fingerprint(units[u]), self.source_for(config, units[u])) for u in new_units}

        await asyncio.gather(*(self._stop_sensor(n) for n in changed + removed if n in self.sensors))
        prepared = await asyncio.gather(*(runner.prepare() for _, runner in fresh.values()), return_exceptions=True)
        for name, outcome in zip(fresh, prepared, strict=True):
            if isinstance(outcome, BaseException):  # its supervised loop retries (see app.supervise)
                log.error("reload: sensor %s cannot create its consumer yet: %s", name, outcome)
        for name, (compiled, runner) in fresh.items():
            self.sensors[name] = _Sensor(compiled, runner, asyncio.Event())
        self._refresh()
        if self.intake is not None:
            try:
                await self.intake.sync(self.runners)
            except Exception as exc:  # the intake keeps its previous keys; the next reload tries again
                log.error("reload: the intake cannot follow the new sensors yet: %s", exc)
        self.launch()
        for unit in [*gone_units, *new_units]:
            old = self.sources.pop(unit, None)
            if old is not None:
                await old.source.stop()
        for unit, source in built.items():
            try:
                await source.source.start()
            except Exception as exc:
                log.error("reload: %s source on port %s cannot start: %s", unit[0], unit[1] or "-", exc)
                continue
            self.sources[unit] = source
        kept = len(wanted) - len(changed)
        return (f"{len(changed)} sensor(s) started or replaced, {len(removed)} removed, {kept} unchanged; "
                f"{len(new_units)} source unit(s) (re)started, {len(gone_units)} stopped, "
                f"{len(units) - len(new_units)} unchanged")

    async def stop(self) -> None:
        """Sources first (no new events), the intake's fetching, then every sensor's loop, which drains; what the
        intake still holds is nak'ed."""
        for source in reversed(list(self.sources.values())):
            await source.source.stop()
        self.sources.clear()
        if self.intake is not None:
            await self.intake.halt()
        await asyncio.gather(*(self._stop_sensor(name) for name in list(self.sensors)))
        if self.intake is not None:
            await self.intake.close()

    async def _stop_sensor(self, name: str) -> None:
        sensor = self.sensors.pop(name)
        sensor.stop.set()
        if sensor.task is None:
            return
        try:
            await sensor.task
        except asyncio.CancelledError:
            pass
        except Exception as exc:
            log.error("sensor %s stopped with an error: %s", name, exc)

    def _refresh(self) -> None:
        self.runners[:] = [s.runner for s in self.sensors.values()]
        self.listened.clear()
        self.listened.update(key for s in self.sensors.values() for key in s.runner.keys)
        if self.on_change is not None:
            self.on_change(self.runners)


Load = Callable[[], Checked]


async def reload_once(fleet: Fleet, current: Checked, load: Load) -> Checked:
    """Load and check the configuration again; if it is invalid, log every problem (FILE:LINE: ...) and keep
    `current`; else apply it. Returns the configuration now running."""
    try:
        config = load()
    except ConfigError as exc:
        problems = getattr(exc, "errors", None) or [exc]
        for problem in problems:
            log.error("reload refused, the running configuration is kept: %s", problem.render())
        return current
    for warning in config.warnings:
        log.warning("reload: %s", warning.render())
    if _bus_dump(config) != _bus_dump(current):
        log.warning("reload: the EventBus changed; restart the engine to switch buses (the running bus is kept)")
    try:
        summary = await fleet.apply(config)
    except ConfigError as exc:  # raised while building, before anything was stopped
        log.error("reload refused, the running configuration is kept: %s", exc.render())
        return current
    except Exception as exc:
        log.exception("reload failed, the running configuration is kept: %s", exc)
        return current
    log.info("reloaded: %s", summary)
    return config


def _bus_dump(config: Checked) -> str | None:
    return config.bus.model_dump_json() if config.bus is not None else None


async def watch_files(paths: Sequence[str | Path], request: asyncio.Event, stop: asyncio.Event) -> None:
    """Set `request` whenever a file under `paths` changes (watchfiles: batched, debounced), until `stop`."""
    from watchfiles import awatch

    with contextlib.suppress(asyncio.CancelledError):
        async for changes in awatch(*paths, stop_event=stop, debounce=300, recursive=True):
            log.info("configuration files changed (%s); reloading", ", ".join(sorted({c[1] for c in changes}))[:500])
            request.set()

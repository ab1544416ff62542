"""The running engine: open the bus, place every sensor's consumer, then open the webhooks, run until stopped."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from sensorium.buses.base import Bus, EventKey, Health
from sensorium.engine import collector
from sensorium.engine.assemble import (
    AssembledSensor,
    Checked,
    CompiledSensor,
    assemble,
    check_config,
    shared_http_client,
)
from sensorium.engine.busconfig import open_bus
from sensorium.engine.config import Config
from sensorium.engine.core.cloudevent import CloudEvent, encode_structured
from sensorium.engine.core.secrets import Secrets
from sensorium.engine.fleet import Fleet, reload_once, watch_files
from sensorium.engine.goport.duration import parse_duration
from sensorium.engine.health import HealthServer
from sensorium.engine.intake import DEFAULT_GROUP, Intake, IntakeSettings
from sensorium.engine.metrics import NULL_SENSOR_METRICS, EngineMetrics, SensorMetricsLike
from sensorium.engine.otel import Otel
from sensorium.engine.persistence import ConditionPersistence
from sensorium.engine.registry import SourceDeps, SourceEntry
from sensorium.engine.runner import RunnerSettings, SensorRunner
from sensorium.engine.sink import PrintingSink
from sensorium.engine.sourceproblems import SourceProblems
from sensorium.engine.trace.records import NULL_TRACER, Tracer
from sensorium.engine.unmatched import UnmatchedWatch
from sensorium.sensors.inline import InlineGate
from sensorium.sensors.spec import SensorConsumer
from sensorium.sensors.transform import close_worker as close_jq_worker
from sensorium.sources.base import Reporting, RunningSource
from sensorium.triggers.http import HttpClient
from sensorium.triggers.pools import Pools

log = logging.getLogger("sensorium.engine")

PROCESS_IN_FLIGHT = 4096
"""Firings in flight across every sensor of a process when `--max-in-flight` is not given: with the shared intake's
window (engine.intake) it bounds what a process holds however many sensors one event reaches."""


@dataclass
class EngineOptions:
    bus_url: str | None = None
    secrets_dir: Path | None = None
    data_dir: Path = Path(".sensorium")
    webhook_host: str = "0.0.0.0"
    sink_port: int | None = None
    health_port: int | None = None  # the operations port's older name: used when ops_port is None
    ops_port: int | None = None  # /livez, /readyz (/healthz), /metrics; metrics are counted only with a port
    ops_host: str = "127.0.0.1"
    bus_port: int | None = None  # the embedded nats-server's port (only when no --bus and no EventBus)
    runner: RunnerSettings = field(default_factory=RunnerSettings)
    tracer: Tracer = NULL_TRACER
    handle_signals: bool = True
    otlp_traces_url: str | None = None  # OpenTelemetry spans go here over OTLP/HTTP (engine.otel); None: off
    reload: Callable[[], Checked] | None = None  # loads and checks the configuration again: SIGHUP reloads
    watch: Sequence[Path] = ()  # with `reload`: also reload when a file under these paths changes
    max_in_flight: int | None = None  # firings in flight across every sensor of the process; None: PROCESS_IN_FLIGHT
    reuse_port: bool = False  # webhooks bind with SO_REUSEPORT, so several worker processes share each port
    intake_group: str = DEFAULT_GROUP  # the shared intake's durable consumer / consumer group (--group)


async def publish_event(bus: Bus, event: CloudEvent) -> None:
    await bus.publish(EventKey(event.source, event.subject), event.id, encode_structured(event))


async def publish_watched(bus: Bus, event: CloudEvent, watch: UnmatchedWatch) -> None:
    """A webhook's publish: the event, then `unmatched` if no loaded sensor listens to it (engine.unmatched)."""
    await publish_event(bus, event)
    watch.published(event)


async def _persistence(sensor: AssembledSensor, bus: Bus) -> ConditionPersistence | None:
    """Sensors with an `&&` condition keep their partial matches on the bus; the others hold no state."""
    if not any(c.has_and() for c in sensor.stage.conditions.values()):
        return None
    return ConditionPersistence(sensor.name, await bus.state_store(sensor.name), sensor.stage)


async def supervise(runner: SensorRunner, stop: asyncio.Event) -> None:
    """Keep one sensor's loop alive: an unexpected error is logged and the loop restarts (its unsettled
    deliveries are redelivered by the bus); other sensors are never affected. Until the loop fetches again,
    `runner.failure` says why (GET /healthz reports it). The delay doubles up to 30 s while failures follow each
    other within a minute."""
    delay = 0.5
    while not stop.is_set():
        started = time.monotonic()
        try:
            await runner.run(stop)
            return
        except Exception as exc:
            if time.monotonic() - started > 60.0:
                delay = 0.5
            cause = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            runner.failure = f"loop failed: {cause[:300]}; restarting in {delay:.1f}s"
            log.exception("sensor %s: loop failed; restarting in %.1fs", runner.sensor, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 30.0)
            try:
                await runner.prepare()
            except Exception as again:
                runner.failure = f"cannot resume its consumer: {again}"
                log.error("sensor %s: cannot resume its consumer: %s", runner.sensor, again)


def build_source(config: Checked, entries: list[SourceEntry], deps: SourceDeps) -> RunningSource:
    """The running source serving `entries` (all of one kind), built by its registered kind."""
    return config.registry.sources[entries[0].kind].build(entries, deps)


def _sensor_metrics(metrics: EngineMetrics | None, sensor: AssembledSensor) -> SensorMetricsLike:
    if metrics is None:
        return NULL_SENSOR_METRICS
    spec = sensor.stage.sensor
    return metrics.sensor(sensor.name, [d.name for d in spec.spec.dependencies], sensor.executors,
                          spec.metadata.namespace or "")


@dataclass(frozen=True)
class _EngineGauges:
    """What /metrics reads at scrape time (engine.metrics.Gauges)."""

    runners: list[SensorRunner]
    bus: Bus
    tracer: Tracer

    def unsettled(self) -> dict[str, int]:
        return {r.sensor: r.unsettled for r in self.runners}

    def bus_connected(self) -> bool | None:
        return self.bus.health is Health.CONNECTED

    def trace_dropped(self) -> int | None:
        dropped = getattr(self.tracer, "dropped", None)
        return dropped if isinstance(dropped, int) else None



async def run_engine(config: Config, options: EngineOptions, stop: asyncio.Event | None = None,
                     ready: asyncio.Event | None = None) -> None:
    """Run until `stop` is set (or SIGINT/SIGTERM). `ready` is set once consumers and webhooks are in place.
    `config` is best a `Checked` (`assemble.load_checked`): the engine then runs what its check compiled; a
    plain Config is checked (and compiled) here, once."""
    config = check_config(config)
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM) if options.handle_signals else ():
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, stop.set)
    secrets = Secrets(options.secrets_dir)
    sink = PrintingSink(options.sink_port) if options.sink_port else None
    if sink is not None:
        await sink.start()
    try:
        await _run(config, options, secrets, stop, ready)
    finally:
        if sink is not None:
            await sink.stop()


async def _run(config: Checked, options: EngineOptions, secrets: Secrets, stop: asyncio.Event,
               ready: asyncio.Event | None) -> None:
    options.data_dir.mkdir(parents=True, exist_ok=True)
    if options.bus_port is not None and (options.bus_url or config.bus):
        log.warning("--bus-port %d is ignored: it pins the embedded bus, and the bus is configured (%s)",
                    options.bus_port, "--bus" if options.bus_url else "EventBus document")
    port = options.ops_port if options.ops_port is not None else options.health_port
    health = HealthServer(port, options.ops_host, EngineMetrics()) if port is not None else None
    if health is not None:
        await health.start()
    otel = Otel(options.otlp_traces_url) if options.otlp_traces_url else None
    try:
        async with shared_http_client() as client, Pools() as pools, \
                open_bus(config.bus.spec if config.bus else None, options.bus_url, secrets, options.data_dir,
                         on_bus=health.watch if health else None, stop=stop, registry=config.registry,
                         embedded_port=options.bus_port) as bus:
            if otel is not None:
                client.attempt_spans = otel.attempts
            await _serve(config, options, secrets, stop, ready, bus, client, health, otel, pools)
    finally:
        if health is not None:
            await health.stop()
        if otel is not None:  # flushes the spans still queued (bounded by the exporter's timeout)
            await asyncio.get_running_loop().run_in_executor(None, otel.shutdown)


def _tune_gc() -> tuple[int, int, int]:
    """Fewer, cheaper garbage collections while events flow; returns the thresholds to restore.

    What start-up built (modules, models, sensors, connections) lives as long as the engine: frozen, it is out of
    the collector's generations, so a full collection walks only what events allocate. Events allocate many
    short-lived containers (parsed data, stage results) that reference counting frees; collecting the young
    generation every 20,000 allocations instead of 700 finds the same cycles with far fewer passes. Measured
    with bench/engine.py (CPU spent in collections, from gc callbacks): freezing took full collections from
    ~0.48 s to ~0.12 s per 11,000 events; the threshold then took all collections from ~0.23 s to ~0.10 s per
    5,300 events."""
    thresholds = gc.get_threshold()
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, thresholds[1], thresholds[2])
    return thresholds


def runner_settings(settings: RunnerSettings, own: SensorConsumer | None) -> RunnerSettings:
    """The engine's runner settings, with what a sensor's own consumer (`spec.consumer`) sets instead."""
    if own is None:
        return settings
    if own.max_in_flight is not None:
        settings = replace(settings, max_in_flight=own.max_in_flight)
    if own.ack_wait is not None:
        settings = replace(settings, ack_wait=parse_duration(own.ack_wait) / 1e9)
    return settings


def intake_settings(options: EngineOptions) -> IntakeSettings:
    """The shared intake's settings: its name, and the runner settings' batch, timeouts and window."""
    runner = options.runner
    return IntakeSettings(group=options.intake_group, batch=runner.batch, fetch_timeout=runner.fetch_timeout,
                          ack_wait=runner.ack_wait, window=max(runner.max_in_flight * 4, 1024))


async def _serve(config: Checked, options: EngineOptions, secrets: Secrets, stop: asyncio.Event,
                 ready: asyncio.Event | None, bus: Bus, client: HttpClient, health: HealthServer | None,
                 otel: Otel | None = None, pools: Pools | None = None) -> None:
    metrics = health.metrics if health is not None else None
    shared = asyncio.Semaphore(options.max_in_flight or PROCESS_IN_FLIGHT)

    intake = Intake(bus, intake_settings(options), metrics.intake_counts() if metrics is not None else None)

    async def runner_for(compiled: CompiledSensor) -> SensorRunner:
        a = assemble(compiled, secrets, client, config.registry, details=options.tracer.enabled, pools=pools)
        own = compiled.sensor.spec.consumer
        return SensorRunner(a.name, a.keys, a.stage, a.executors, bus, runner_settings(options.runner, own),
                            options.tracer, persistence=await _persistence(a, bus),
                            metrics=_sensor_metrics(metrics, a),
                            spans=otel.sensor(a.name) if otel is not None else None, shared_slots=shared,
                            consumer=own.name if own is not None else None,
                            dead_letter_failures=own is not None and own.dead_letter,
                            inbox=intake.inbox(a.name) if own is None else None,
                            dependencies=compiled.sensor.spec.dependencies,
                            inline=InlineGate(compiled.sensor).inline)

    watch = UnmatchedWatch([], options.tracer)
    fleet = Fleet(runner_for, lambda checked, entries: build_source(checked, entries, deps), supervise,
                  on_change=lambda runners: watch.update([(r.sensor, r.keys) for r in runners]), intake=intake)
    observe = (metrics.webhooks(lambda s, e: (s, e) in watch.keys).observe if metrics is not None
               else None)
    deps = SourceDeps(lambda e: publish_watched(bus, e, watch), secrets, options.webhook_host, observe,
                      reuse_port=options.reuse_port, state=bus.state_store, bus_url=bus.url,
                      report=SourceProblems(watch, options.tracer, metrics).report)
    with collector.paused():  # what start-up builds is collected and frozen once, by _tune_gc (engine.collector)
        await fleet.start(config)
        log.info("engine running: %d sensor(s), %d event source entr%s on %s", len(fleet.runners),
                 len(config.entries), "y" if len(config.entries) == 1 else "ies", bus.url)
        if ready is not None:
            ready.set()
        if health is not None:
            health.watch_loops(fleet.runners)
            health.watch_sources(lambda: [problem for unit in fleet.sources.values() if isinstance(
                unit.source, Reporting) for problem in unit.source.problems()])
            if metrics is not None:
                metrics.watch(_EngineGauges(fleet.runners, bus, options.tracer))
        fleet.launch()
        thresholds = _tune_gc()
    collector.release()  # the pause `sensorium run` began before loading (collector.hold) ends here
    try:
        await _until_stopped(fleet, config, options, stop, health)
    finally:
        gc.unfreeze()  # an engine run inside a longer-lived process (tests) leaves nothing uncollectable
        gc.set_threshold(*thresholds)
        stop.set()
        await fleet.stop()
        close_jq_worker()


async def _until_stopped(fleet: Fleet, config: Checked, options: EngineOptions, stop: asyncio.Event,
                         health: HealthServer | None) -> None:
    """Wait for `stop`; meanwhile reload on SIGHUP or a file change (`--watch`) when `options.reload` is set."""
    if options.reload is None:
        await stop.wait()
        return
    request = asyncio.Event()
    loop = asyncio.get_running_loop()
    hup = options.handle_signals and hasattr(signal, "SIGHUP")
    if hup:
        loop.add_signal_handler(signal.SIGHUP, request.set)
    watcher = (asyncio.create_task(watch_files(options.watch, request, stop), name="watch")
               if options.watch else None)
    stopping = asyncio.create_task(stop.wait())
    try:
        while not stop.is_set():
            asked = asyncio.create_task(request.wait())
            await asyncio.wait({stopping, asked}, return_when=asyncio.FIRST_COMPLETED)
            asked.cancel()
            if stop.is_set():
                break
            request.clear()
            config = await reload_once(fleet, config, options.reload)
            if health is not None:
                health.watch_loops(fleet.runners)
    finally:
        stopping.cancel()
        if hup:
            loop.remove_signal_handler(signal.SIGHUP)
        if watcher is not None:
            watcher.cancel()
            await asyncio.gather(watcher, return_exceptions=True)

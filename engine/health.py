"""The operations port (`--ops-port`, alias `--health-port`): health probes and metrics on one HTTP server.

- `GET /livez`: 200 `{"status": "ok"}` whenever the engine's event loop answers (it serves this endpoint).
- `GET /readyz` (and `GET /healthz`, its older name): is the engine started, connected to its bus, and is every
  sensor's loop consuming? 200 when all three, 503 when not, with every cause named in `causes`.
- `GET /metrics`: Prometheus text format (engine.metrics), when the engine counts metrics.

Readiness body: `{"status": "ok"|"unavailable", "causes": [text], "bus": {"url", "health", "cause"?},
"sensors": [names], "failing": [{"sensor", "error"}]}`; `failing` lists the sensors whose loop failed (a fetch
error, or an error that restarted the loop) and has not fetched again since, with the last error.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Protocol

from aiohttp import web

from sensorium.buses.base import Bus, Health
from sensorium.engine.metrics import CONTENT_TYPE, EngineMetrics


class Loop(Protocol):
    """A sensor's loop as health sees it (engine.runner.SensorRunner)."""

    @property
    def sensor(self) -> str: ...
    @property
    def failure(self) -> str | None: ...


class HealthServer:
    def __init__(self, port: int, host: str = "127.0.0.1", metrics: EngineMetrics | None = None) -> None:
        self.port, self.host, self.metrics = port, host, metrics
        self.started = False  # consumers placed and webhooks open (watch_loops)
        self.bus: Bus | None = None
        self.sensors: list[str] = []
        self.loops: Sequence[Loop] = ()
        self.source_problems: Callable[[], list[str]] = list
        self._runner: web.AppRunner | None = None

    def watch(self, bus: Bus) -> None:
        self.bus = bus

    def watch_sources(self, problems: Callable[[], list[str]]) -> None:
        """`problems()` names the event sources not serving (sources.base.Reporting); each is a readiness cause."""
        self.source_problems = problems

    def watch_loops(self, loops: Sequence[Loop]) -> None:
        self.loops = loops
        self.sensors = [loop.sensor for loop in loops]
        self.started = True

    def report(self) -> tuple[int, dict[str, object]]:
        health = self.bus.health if self.bus is not None else Health.CONNECTING
        bus: dict[str, object] = {"url": self.bus.url if self.bus else None, "health": health.value}
        cause = getattr(self.bus, "cause", "")
        if cause and health is not Health.CONNECTED:
            bus["cause"] = cause
        failing = [{"sensor": loop.sensor, "error": loop.failure} for loop in self.loops if loop.failure]
        causes: list[str] = []
        if health is not Health.CONNECTED:
            causes.append(f"bus {bus['url'] or '(not opened yet)'} is {health.value}" + (f": {cause}" if cause else ""))
        if not self.started:
            causes.append("starting: sensors' consumers and webhooks are not in place yet")
        causes += [f"sensor {f['sensor']}: {f['error']}" for f in failing]
        causes += self.source_problems()
        ok = not causes
        body: dict[str, object] = {"status": "ok" if ok else "unavailable", "causes": causes, "bus": bus,
                                   "sensors": self.sensors}
        if failing:
            body["failing"] = failing
        return (200 if ok else 503), body

    async def _handle(self, _: web.Request) -> web.Response:
        status, body = self.report()
        return web.Response(status=status, text=json.dumps(body) + "\n", content_type="application/json")

    async def _live(self, _: web.Request) -> web.Response:
        return web.Response(text='{"status": "ok"}\n', content_type="application/json")

    async def _metrics(self, _: web.Request) -> web.Response:
        if self.metrics is None:
            return web.Response(status=404, text="metrics are not collected\n")
        return web.Response(body=self.metrics.exposition(), headers={"Content-Type": CONTENT_TYPE})

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/healthz", self._handle)
        app.router.add_get("/readyz", self._handle)
        app.router.add_get("/livez", self._live)
        app.router.add_get("/metrics", self._metrics)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.host, self.port).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

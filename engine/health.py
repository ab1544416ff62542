"""`GET /healthz`: is the engine connected to its bus, and is every sensor's loop working? 200 when both,
503 (with the causes) when not.

Body: `{"status": "ok"|"unavailable", "bus": {"url", "health", "cause"?}, "sensors": [names],
"failing": [{"sensor", "error"}]}`; `failing` lists the sensors whose loop failed (a fetch error, or an error
that restarted the loop) and has not fetched again since, with the last error.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Protocol

from aiohttp import web

from sensorium.buses.base import Bus, Health


class Loop(Protocol):
    """A sensor's loop as health sees it (engine.runner.SensorRunner)."""

    @property
    def sensor(self) -> str: ...
    @property
    def failure(self) -> str | None: ...


class HealthServer:
    def __init__(self, port: int, host: str = "127.0.0.1") -> None:
        self.port, self.host = port, host
        self.bus: Bus | None = None
        self.sensors: list[str] = []
        self.loops: Sequence[Loop] = ()
        self._runner: web.AppRunner | None = None

    def watch(self, bus: Bus) -> None:
        self.bus = bus

    def watch_loops(self, loops: Sequence[Loop]) -> None:
        self.loops = loops
        self.sensors = [loop.sensor for loop in loops]

    def report(self) -> tuple[int, dict[str, object]]:
        health = self.bus.health if self.bus is not None else Health.CONNECTING
        bus: dict[str, object] = {"url": self.bus.url if self.bus else None, "health": health.value}
        cause = getattr(self.bus, "cause", "")
        if cause and health is not Health.CONNECTED:
            bus["cause"] = cause
        failing = [{"sensor": loop.sensor, "error": loop.failure} for loop in self.loops if loop.failure]
        ok = health is Health.CONNECTED and not failing
        body: dict[str, object] = {"status": "ok" if ok else "unavailable", "bus": bus, "sensors": self.sensors}
        if failing:
            body["failing"] = failing
        return (200 if ok else 503), body

    async def _handle(self, _: web.Request) -> web.Response:
        status, body = self.report()
        return web.Response(status=status, text=json.dumps(body) + "\n", content_type="application/json")

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/healthz", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.host, self.port).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

"""`GET /healthz`: is the engine connected to its bus? 200 when it is, 503 (with the cause) when not."""

from __future__ import annotations

import json

from aiohttp import web

from buses.base import Bus, Health


class HealthServer:
    def __init__(self, port: int, host: str = "127.0.0.1") -> None:
        self.port, self.host = port, host
        self.bus: Bus | None = None
        self.sensors: list[str] = []
        self._runner: web.AppRunner | None = None

    def watch(self, bus: Bus) -> None:
        self.bus = bus

    def report(self) -> tuple[int, dict[str, object]]:
        health = self.bus.health if self.bus is not None else Health.CONNECTING
        bus: dict[str, object] = {"url": self.bus.url if self.bus else None, "health": health.value}
        cause = getattr(self.bus, "cause", "")
        if cause and health is not Health.CONNECTED:
            bus["cause"] = cause
        ok = health is Health.CONNECTED
        return (200 if ok else 503), {"status": "ok" if ok else "unavailable", "bus": bus, "sensors": self.sensors}

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

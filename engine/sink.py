"""A tiny HTTP receiver that prints every request it gets: where the quickstart's trigger lands.

What it received goes to stdout (it is the sink's output, for the user to read or pipe); that it listens is a log
line (stderr, like every log line)."""

from __future__ import annotations

import logging
import sys
from typing import TextIO

from aiohttp import web

log = logging.getLogger("sensorium.sink")


class PrintingSink:
    def __init__(self, port: int, host: str = "127.0.0.1", out: TextIO = sys.stdout) -> None:
        self.port, self.host, self.out = port, host, out
        self._runner: web.AppRunner | None = None

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        text = body.decode("utf-8", "replace")
        print(f"sink received: {request.method} {request.path_qs} {text}", file=self.out, flush=True)
        return web.Response(text="ok\n")

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.host, self.port).start()
        log.info("request sink listening on http://%s:%d/", self.host, self.port)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

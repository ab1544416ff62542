"""A real local JSON endpoint for the httpPoll tests: a changing `{"orders": [...]}` list with an ETag (or a
Last-Modified date), answering 304 to a matching conditional request, recording every request and status."""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web


class Feed:
    """A JSON endpoint: `{"orders": [...]}` with a strong ETag, honouring If-None-Match (304)."""

    def __init__(self) -> None:
        self.items: list[dict[str, Any]] = []
        self.statuses: list[int] = []
        self.headers: list[dict[str, str]] = []
        self.raw: bytes | None = None  # served instead of the JSON when set
        self.status = 200
        self.last_modified: str | None = None  # when set: Last-Modified / If-Modified-Since instead of an ETag
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def handle(self, request: web.Request) -> web.Response:
        self.headers.append(dict(request.headers))
        body = self.raw if self.raw is not None else json.dumps({"orders": self.items}).encode()
        etag = '"' + hashlib.sha256(body).hexdigest()[:16] + '"'
        if self.status != 200:
            resp = web.Response(status=self.status, text="boom")
        elif self.last_modified is not None:
            if request.headers.get("If-Modified-Since") == self.last_modified:
                resp = web.Response(status=304)
            else:
                resp = web.Response(body=body, content_type="application/json",
                                    headers={"Last-Modified": self.last_modified})
        elif request.headers.get("If-None-Match") == etag:
            resp = web.Response(status=304, headers={"ETag": etag})
        else:
            resp = web.Response(body=body, content_type="application/json", headers={"ETag": etag})
        self.statuses.append(resp.status)
        return resp

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/orders", self.handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}/orders"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


@contextlib.asynccontextmanager
async def serving() -> AsyncIterator[Feed]:
    """A started feed, stopped on exit (each test module's `feed` fixture)."""
    f = Feed()
    await f.start()
    try:
        yield f
    finally:
        await f.stop()


def etag_of(items: list[dict[str, Any]]) -> str:
    """The ETag the feed serves for `items`."""
    return '"' + hashlib.sha256(json.dumps({"orders": items}).encode()).hexdigest()[:16] + '"'

"""Fixtures: a real local HTTP sink (aiohttp server on a free 127.0.0.1 port) that records every request.

    async def test_x(http_sink: HttpSink) -> None:
        http_sink.program(503, Reply(status=200, delay=0.05))   # replies in order, then `default`
        ... send requests to http_sink.url + "/path" ...
        got = await http_sink.wait_for(2)                        # RecordedRequest values, arrival order
        assert got[0].method == "POST" and got[0].header("x-token") == "t"

A request is recorded when it arrives (before any programmed delay), so a client that times out is still seen.
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest_asyncio
from aiohttp import web


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    query: str
    headers: tuple[tuple[str, str], ...]
    body: bytes
    peer: str = ""  # client "host:port": equal across requests when a pooled connection was reused

    def header(self, name: str) -> str | None:
        """First value of a header, name compared case-insensitively; None when absent."""
        low = name.lower()
        return next((v for k, v in self.headers if k.lower() == low), None)

    def header_names(self) -> list[str]:
        """Header names as sent on the wire (original case), in order."""
        return [k for k, _ in self.headers]

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass(frozen=True)
class Reply:
    status: int = 200
    delay: float = 0.0
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = field(default_factory=tuple)


class HttpSink:
    """Records requests and answers with a programmable sequence of replies (then `default`)."""

    def __init__(self) -> None:
        self.requests: list[RecordedRequest] = []
        self.default = Reply()
        self._script: deque[Reply] = deque()
        self._changed = asyncio.Condition()
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def program(self, *replies: Reply | int) -> None:
        """Queue replies (an int is a status); each request consumes one, then `default` answers."""
        self._script.extend(Reply(status=r) if isinstance(r, int) else r for r in replies)

    def reset(self) -> None:
        self.requests.clear()
        self._script.clear()
        self.default = Reply()

    async def wait_for(self, count: int, timeout: float = 5.0) -> list[RecordedRequest]:
        """Wait until at least `count` requests were recorded; returns all recorded so far."""
        async with self._changed:
            await asyncio.wait_for(self._changed.wait_for(lambda: len(self.requests) >= count), timeout)
        return list(self.requests)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        recorded = RecordedRequest(
            method=request.method,
            path=request.path,
            query=request.query_string,
            headers=tuple((k.decode("latin-1"), v.decode("latin-1")) for k, v in request.raw_headers),
            body=body,
            peer="{}:{}".format(*(request.transport.get_extra_info("peername") or ("", 0))[:2])
            if request.transport is not None else "",
        )
        reply = self._script.popleft() if self._script else self.default
        async with self._changed:
            self.requests.append(recorded)
            self._changed.notify_all()
        if reply.delay > 0:
            await asyncio.sleep(reply.delay)
        return web.Response(status=reply.status, body=reply.body, headers=dict(reply.headers))

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, handler_cancellation=True, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = _bound_port(site)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


def _bound_port(site: web.TCPSite) -> int:
    server: Any = site._server
    port: int = server.sockets[0].getsockname()[1]
    return port


@pytest_asyncio.fixture
async def http_sink() -> AsyncIterator[HttpSink]:
    sink = HttpSink()
    await sink.start()
    try:
        yield sink
    finally:
        await sink.stop()

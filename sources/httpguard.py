"""Connection limits for the webhook's HTTP server that aiohttp's server does not offer: a deadline for each
request head (slowloris) and a cap on open connections.

Written here because aiohttp (3.9-3.14) has no request-head timeout: its `keepalive_timeout` closes idle
connections only between requests (3.14 also arms it when a connection opens, an undocumented detail), and a
client that keeps sending one header byte at a time is never timed out. The guard wraps the protocol objects of
aiohttp's public low-level `web.Server` (a protocol factory) and arms one timer per connection: when the
connection opens, and again when a request's handler finished. The application's middleware disarms it as soon as
aiohttp has parsed a request's head. A connection whose timer fires is closed; nothing else of aiohttp's protocol
is touched.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from aiohttp import ClientPayloadError, web
from aiohttp.http_exceptions import HttpProcessingError

log = logging.getLogger("sensorium.webhook")

_BUSY = (b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\nRetry-After: 1\r\n"
         b"Connection: close\r\nContent-Length: 29\r\n\r\ntoo many connections, retry\r\n")


class _Guarded(asyncio.Protocol):
    """One connection: aiohttp's protocol object, plus the head deadline."""

    def __init__(self, guard: ConnectionGuard, inner: asyncio.Protocol) -> None:
        self.guard, self.inner = guard, inner
        self.transport: asyncio.Transport | None = None
        self._timer: asyncio.TimerHandle | None = None

    def arm(self) -> None:
        self.disarm()
        if self.transport is not None:
            self._timer = asyncio.get_running_loop().call_later(self.guard.head_timeout, self._expired)

    def disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _expired(self) -> None:
        self._timer = None
        if self.transport is not None:
            peer = self.transport.get_extra_info("peername")
            log.debug("webhook port %d: closing connection from %s: no complete request head within %gs",
                      self.guard.port, peer, self.guard.head_timeout)
            self.transport.close()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        if len(self.guard.open) >= self.guard.max_connections:
            self.guard.refused()
            transport.write(_BUSY)
            transport.close()
            return
        self.transport = transport
        self.guard.open[transport] = self
        self.arm()
        self.inner.connection_made(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self.disarm()
        if self.transport is None:
            return  # refused: aiohttp never saw it
        self.guard.open.pop(self.transport, None)
        self.transport = None
        self.inner.connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self.transport is not None:
            self.inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self.inner.eof_received() if self.transport is not None else None

    def pause_writing(self) -> None:
        self.inner.pause_writing()

    def resume_writing(self) -> None:
        self.inner.resume_writing()


class ConnectionGuard:
    """Protocol factory for `loop.create_server` around aiohttp's `web.Server`, plus the `middleware` that tells it
    when a request's head has arrived. `head_timeout`: seconds from a connection's opening, or from the end of its
    previous request's handler, until the next request's line and headers are complete. `max_connections`: more
    open connections than this are answered 503 and closed at once."""

    def __init__(self, factory: Callable[[], asyncio.Protocol], port: int, head_timeout: float,
                 max_connections: int) -> None:
        self.factory, self.port = factory, port
        self.head_timeout, self.max_connections = head_timeout, max_connections
        self.open: dict[asyncio.BaseTransport, _Guarded] = {}
        self._refused = 0

    def __call__(self) -> asyncio.Protocol:
        return _Guarded(self, self.factory())

    def refused(self) -> None:
        """One warning per 100 refusals, so a flood does not flood the log too."""
        if self._refused % 100 == 0:
            log.warning("webhook port %d: %d connections open, the limit: refusing new ones (503) until some close",
                        self.port, self.max_connections)
        self._refused += 1

    @web.middleware
    async def middleware(self, request: web.Request,
                         handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
        guarded = self.open.get(request.transport) if request.transport is not None else None
        if guarded is not None:
            guarded.disarm()
        try:
            return await handler(request)
        finally:
            if guarded is not None:
                guarded.arm()


class _ClientFaults(logging.Filter):
    """aiohttp logs a request it cannot parse (bad request line or header, a line over 8190 bytes, broken chunked
    encoding) or a client gone mid-request at ERROR with a traceback ("Error handling request"; some at DEBUG,
    still with the traceback). Those are the client's faults: this filter turns them into one DEBUG line (dropped
    unless DEBUG is on) and leaves real errors alone."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if not isinstance(exc, CLIENT_FAULTS):
            return True
        detail = " ".join(str(exc).split())  # aiohttp's parser messages span lines
        record.msg, record.args = f"{record.getMessage()}: {type(exc).__name__}: {detail}", ()
        record.levelno, record.levelname, record.exc_info, record.exc_text = logging.DEBUG, "DEBUG", None, None
        return server_log.isEnabledFor(logging.DEBUG)


CLIENT_FAULTS = (HttpProcessingError, ClientPayloadError, ConnectionError)
"""What a client's request or its going away raises while the server reads it."""

server_log = logging.getLogger("sensorium.webhook.http")
"""The logger given to aiohttp's server for the webhook ports (its own `aiohttp.server` is left alone)."""
server_log.addFilter(_ClientFaults())

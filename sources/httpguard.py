"""The webhook's HTTP serving where aiohttp's server falls short for hostile clients: a deadline for each
request head (slowloris), a cap on open connections, one-line answers to unparsable requests, and client faults
logged as one DEBUG line instead of an ERROR traceback.

Written here because aiohttp (3.9-3.14) has no request-head timeout: its `keepalive_timeout` closes idle
connections only between requests (3.14 also arms it when a connection opens, an undocumented detail), and a
client that keeps sending one header byte at a time is never timed out. `ConnectionGuard` is the protocol factory
given to `loop.create_server`: it makes aiohttp's public `web.RequestHandler` (one subclass method: the error
answer) for the runner's `web.Server` and wraps it to arm one timer per connection, when the connection opens and
again when a request's handler finished. The application's middleware disarms it as soon as aiohttp has parsed a
request's head. A connection whose timer fires is closed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from typing import Any, cast

from aiohttp import ClientPayloadError, web
from aiohttp.http_exceptions import HttpProcessingError

log = logging.getLogger("sensorium.webhook")


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


CLIENT_FAULTS = (HttpProcessingError, ClientPayloadError, web.RequestPayloadError, ConnectionError)
"""What a client's request (bad framing or content encoding) or its going away raises while the server reads it."""

server_log = logging.getLogger("sensorium.webhook.http")
"""The logger given to aiohttp's server for the webhook ports (its own `aiohttp.server` is left alone)."""
server_log.addFilter(_ClientFaults())

_BUSY = (b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\nRetry-After: 1\r\n"
         b"Connection: close\r\nContent-Length: 28\r\n\r\ntoo many connections, retry\n")


class _Guarded(asyncio.Protocol):
    """One connection: aiohttp's protocol object, plus the head deadline."""

    def __init__(self, guard: ConnectionGuard, inner: asyncio.Protocol) -> None:
        self.guard, self.inner = guard, inner
        self.transport: asyncio.Transport | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._idle = False  # between requests of a kept-alive connection, before the next request's first byte

    def arm(self, idle: bool = False) -> None:
        """Start the head deadline, or (`idle`) the keep-alive idle deadline that becomes the head deadline at the
        next request's first byte (as Go's IdleTimeout and ReadHeaderTimeout): a client pool that keeps a
        connection for a while is not cut mid-reuse, a slow head sender is."""
        self.disarm()
        self._idle = idle
        if self.transport is not None:
            delay = self.guard.idle_timeout if idle else self.guard.head_timeout
            self._timer = asyncio.get_running_loop().call_later(delay, self._expired)

    def disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _expired(self) -> None:
        self._timer = None
        if self.transport is not None:
            peer = self.transport.get_extra_info("peername")
            what = "idle for" if self._idle else "no complete request head within"
            log.debug("webhook port %d: closing connection from %s: %s %gs", self.guard.port, peer, what,
                      self.guard.idle_timeout if self._idle else self.guard.head_timeout)
            self.transport.close()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A stream transport, but not always an asyncio.Transport instance: uvloop's TCPTransport implements the
        # interface without subclassing it.
        stream = cast(asyncio.Transport, transport)
        if len(self.guard.open) >= self.guard.max_connections:
            self.guard.refused()
            stream.write(_BUSY)
            stream.close()
            return
        self.transport = stream
        self.guard.open[stream] = self
        self.arm()
        self.inner.connection_made(stream)

    def connection_lost(self, exc: Exception | None) -> None:
        self.disarm()
        if self.transport is None:
            return  # refused: aiohttp never saw it
        self.guard.open.pop(self.transport, None)
        self.transport = None
        self.inner.connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self.transport is not None:
            if self._idle:
                self.arm()
            self.inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self.inner.eof_received() if self.transport is not None else None

    def pause_writing(self) -> None:
        self.inner.pause_writing()

    def resume_writing(self) -> None:
        self.inner.resume_writing()


_HANDLER_ARGS: dict[str, Any] = {"access_log": None, "logger": server_log}  # no access log; typeshed wants a Logger


class _OneLineErrors(web.RequestHandler):
    """aiohttp's protocol object, answering a request it cannot parse with one line (aiohttp writes the parser's
    message over several lines, with a caret under the offending byte)."""

    def handle_error(self, request: web.BaseRequest, status: int = 500, exc: BaseException | None = None,
                     message: str | None = None) -> web.StreamResponse:
        answer = super().handle_error(request, status, exc, message)
        detail = " ".join((message or "").split())[:200]
        try:
            phrase = HTTPStatus(status).phrase
        except ValueError:
            phrase = "Error"
        one_line = web.Response(status=answer.status, text=f"{phrase}: {detail}\n" if detail else f"{phrase}\n")
        one_line.force_close()
        return one_line


class ConnectionGuard:
    """Protocol factory for `loop.create_server` around aiohttp's `web.Server`, plus the `middleware` that tells it
    when a request's head has arrived. `head_timeout`: seconds from a connection's opening, or from the end of its
    previous request's handler, until the next request's line and headers are complete. `max_connections`: more
    open connections than this are answered 503 and closed at once. `idle_timeout`: seconds a kept-alive
    connection may wait for its next request's first byte; the head deadline starts at that byte."""

    def __init__(self, runner: web.BaseRunner, port: int, head_timeout: float, max_connections: int,
                 idle_timeout: float = 60.0) -> None:
        self.runner, self.port = runner, port
        self.head_timeout, self.max_connections = head_timeout, max_connections
        self.idle_timeout = idle_timeout
        self.open: dict[asyncio.BaseTransport, _Guarded] = {}
        self._refused = 0

    def __call__(self) -> asyncio.Protocol:
        if self.runner.server is None:
            raise RuntimeError("webhook server not set up")
        inner = _OneLineErrors(self.runner.server, loop=asyncio.get_running_loop(), **_HANDLER_ARGS)
        return _Guarded(self, inner)

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
                guarded.arm(idle=True)

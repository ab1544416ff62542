"""The NATS connection under a JetStream bus: connect with bounded retries, then reconnect forever with capped
backoff; `health` follows the connection and each state change is logged once, naming the URL and the cause."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import ssl
import time
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from nats.aio.client import Client as NATS
from nats.aio.client import Server
from nats.errors import Error as NatsError
from nats.errors import StaleConnectionError, UnexpectedEOF
from nats.js import JetStreamContext, api
from nats.js.errors import NotFoundError

from sensorium.buses.base import (
    Health,
)
from sensorium.buses.jetstream.stream import STREAM, STREAM_SUBJECTS, StreamSettings
from sensorium.engine.core.errors import BusError

log = logging.getLogger("buses.jetstream.bus")

_CONNECTION_ERRORS = (OSError, TimeoutError, UnexpectedEOF, StaleConnectionError)


def printable_url(url: str) -> str:
    """The URL without user info, for logs and errors."""
    parts = urlsplit(url if "://" in url else f"nats://{url}")
    netloc = parts.hostname or ""
    if parts.port:
        netloc = f"{netloc}:{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def describe(exc: BaseException | None) -> str:
    if isinstance(exc, OSError) and exc.errno:
        return os.strerror(exc.errno).lower()
    if isinstance(exc, TimeoutError):
        return "timed out"
    return str(exc) or repr(exc)



class JetStreamConnection:
    """The NATS client and JetStream context of one bus at `url` (credentials: a token or `user:password`; tls: an
    SSLContext). Consumers and state stores use it; `JetStreamBus` adds the Bus operations."""

    def __init__(
        self,
        url: str,
        stream_config_yaml: str | None = None,
        credentials: str | None = None,
        tls: ssl.SSLContext | None = None,
        *,
        connect_attempts: int = 3,
        publish_timeout: float = 10.0,
        reconnect_wait: tuple[float, float] = (0.1, 2.0),
        client_name: str = "sensorium",
    ) -> None:
        self._raw_url = url if "://" in url else f"nats://{url}"
        self.url = printable_url(self._raw_url)
        self.settings = StreamSettings.from_yaml(stream_config_yaml)
        self._credentials, self._tls = credentials, tls
        self._connect_attempts = max(1, connect_attempts)
        self.publish_timeout = publish_timeout
        self._reconnect_wait = reconnect_wait
        self._client_name = client_name
        self._nc: NATS | None = None
        self._js: JetStreamContext | None = None
        self._connected = asyncio.Event()
        self._last_error: BaseException | None = None
        self._lost_at = 0.0
        self._async_ready = False
        self._init_lock = asyncio.Lock()
        self._dlq_ready = False
        self.health = Health.CONNECTING
        # the event stream keeps what was delivered (limits retention), as its info said when the bus started
        self.keeps_delivered = self.settings.retention == 0

    @property
    def js(self) -> JetStreamContext:
        if self._js is None:
            raise BusError(f"bus {self.url} is not started")
        return self._js

    @property
    def nc(self) -> NATS:
        """The core NATS connection (for `buses.jetstream.pull`)."""
        if self._nc is None:
            raise BusError(f"bus {self.url} is not started")
        return self._nc

    @property
    def closed(self) -> bool:
        return self.health is Health.CLOSED

    @property
    def max_payload(self) -> int:
        """The largest message the server accepts (its `max_payload`, 1 MiB by default)."""
        return self._nc.max_payload if self._nc is not None else 1024 * 1024

    def redact(self, text: str) -> str:
        for secret in filter(None, [self._credentials, *(self._credentials or "").split(":", 1),
                                    urlsplit(self._raw_url).password]):
            text = text.replace(secret, "***")
        return text

    def _auth(self) -> dict[str, Any]:
        if not self._credentials:
            return {}
        if ":" in self._credentials:
            user, password = self._credentials.split(":", 1)
            return {"user": user, "password": password}
        return {"token": self._credentials}

    def _backoff(self, servers: list[Server], _info: dict[str, Any]) -> tuple[Server | None, float]:
        low, high = self._reconnect_wait
        tries = servers[0].reconnects if servers else 0
        return (servers[0] if servers else None), min(high, low * 2 ** tries) * random.uniform(0.8, 1.2)

    async def _on_error(self, exc: Exception) -> None:
        self._last_error = exc
        quiet = self.health is not Health.CONNECTED or isinstance(exc, _CONNECTION_ERRORS)
        (log.debug if quiet else log.warning)("nats %s: %s", self.url, self.redact(repr(exc)))

    async def _on_disconnected(self) -> None:
        if self.health is Health.CONNECTED:
            self._connected.clear()
            self._lost_at = time.monotonic()
            self.health = Health.DISCONNECTED
            cause = self.redact(str(self._last_error or "connection closed"))
            log.warning("lost connection to NATS at %s: %s; reconnecting", self.url, cause)

    async def _on_reconnected(self) -> None:
        if self.health is not Health.CLOSED:
            self.health = Health.CONNECTED
            self._connected.set()
            log.warning("reconnected to NATS at %s after %.1fs", self.url, time.monotonic() - self._lost_at)

    async def _connect_once(self) -> NATS:
        nc = NATS()
        # Bounded here (two quick tries per call); switched to "reconnect forever" once connected.
        await nc.connect(
            self._raw_url, error_cb=self._on_error, disconnected_cb=self._on_disconnected,
            reconnected_cb=self._on_reconnected, name=self._client_name, allow_reconnect=False,
            max_reconnect_attempts=1, reconnect_time_wait=0, connect_timeout=2, ping_interval=10,
            max_outstanding_pings=3, tls=self._tls, reconnect_to_server_handler=self._backoff, **self._auth())
        nc.options["allow_reconnect"] = True
        nc.options["max_reconnect_attempts"] = -1
        return nc

    async def start(self) -> None:
        if self._nc is not None:
            return
        cause: BaseException | None = None
        for attempt in range(self._connect_attempts):
            self._last_error = None
            try:
                self._nc = await self._connect_once()
                break
            except (NatsError, OSError, TimeoutError) as exc:
                cause = self._last_error or exc
            if attempt + 1 < self._connect_attempts:
                await asyncio.sleep(0.2 * 2 ** attempt)
        if self._nc is None:
            raise BusError(f"cannot reach NATS at {self.url}: {self.redact(describe(cause))}")
        self._js = self._nc.jetstream(timeout=5.0, publish_async_max_pending=4000)
        try:
            await self.ensure_stream()
        except (NatsError, OSError, TimeoutError, BusError) as exc:
            await self.close()
            raise BusError(f"NATS at {self.url}: cannot set up stream {STREAM!r}: "
                           f"{self.redact(describe(exc))}") from exc
        self.health = Health.CONNECTED
        self._connected.set()
        log.info("connected to NATS at %s (stream %s)", self.url, STREAM)

    async def ensure_stream(self) -> None:
        try:
            info = await self.js.stream_info(STREAM)
        except NotFoundError:
            await self.js.add_stream(self.settings.stream_config())
            log.info("created stream %s on %s: %s", STREAM, self.url, self.settings)
            self.keeps_delivered = self.settings.retention == 0
            return
        self.keeps_delivered = info.config.retention in (None, api.RetentionPolicy.LIMITS)
        if STREAM_SUBJECTS not in (info.config.subjects or []):
            raise BusError(f"stream {STREAM!r} on {self.url} does not capture {STREAM_SUBJECTS!r} "
                           f"(subjects {info.config.subjects})")

    async def wait_connected(self, timeout: float) -> bool:
        if self._connected.is_set():
            return True
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._connected.wait(), timeout)
        return self._connected.is_set()

    async def close(self) -> None:
        nc, self._nc = self._nc, None
        if self.health is Health.CLOSED:
            return
        self.health = Health.CLOSED
        self._connected.set()  # wake waiters; fetch() sees `closed`
        if nc is None:
            return
        with contextlib.suppress(NatsError, OSError, TimeoutError):
            if nc.is_connected:
                await nc.flush(timeout=2)  # acks written so far reach the server
        with contextlib.suppress(NatsError, OSError, TimeoutError):
            await nc.close()
        log.info("closed connection to NATS at %s", self.url)

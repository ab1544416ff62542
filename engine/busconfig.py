"""Choosing and opening the bus: `--bus URL`, else the EventBus document, else an embedded nats-server."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from urllib.parse import urlsplit

from sensorium.buses.base import Bus
from sensorium.buses.spec import EventBusSpec
from sensorium.engine.core.errors import BusError, ConfigError
from sensorium.engine.core.secrets import Secrets
from sensorium.engine.registry import EMBEDDED_URL_FILE, REGISTRY, Registry

log = logging.getLogger("sensorium.bus")

URL_FILE = EMBEDDED_URL_FILE


def describe(url: str) -> str:
    """A URL without credentials, for logs."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}" if parts.scheme else url


def from_url(url: str, registry: Registry = REGISTRY) -> Bus:
    """The bus `--bus URL` names, by the URL scheme of a registered bus kind: nats:// or tls:// (JetStream,
    checked like an EventBus `url`), or kafka:// with a broker list. ConfigError (field `--bus`) otherwise."""
    kind = registry.bus_kind_for_url(url)
    if kind is None or kind.from_url is None:
        raise ConfigError(f"--bus: unsupported bus URL '{describe(url)}' (want {registry.url_forms()})")
    return kind.from_url(url)


@contextlib.asynccontextmanager
async def _given(bus: Bus) -> AsyncIterator[Bus]:
    yield bus


@contextlib.asynccontextmanager
async def open_bus(spec: EventBusSpec | None, override: str | None, secrets: Secrets, data_dir: Path,
                   on_bus: Callable[[Bus], None] | None = None,
                   stop: asyncio.Event | None = None, registry: Registry = REGISTRY,
                   embedded_port: int | None = None) -> AsyncIterator[Bus]:
    """Yield a started bus: the one `--bus URL` (`override`) names, else the one the EventBus `spec` configures,
    else the registry's default kind (an embedded nats-server, started and stopped here); each chosen by its
    registered bus kind (`Registry.open_bus`); `embedded_port` pins the port of a server the default kind starts."""
    opening = (_given(from_url(override, registry)) if override
               else registry.open_bus(spec, secrets, data_dir, embedded_port))
    async with opening as bus:
        if on_bus is not None:
            on_bus(bus)
        try:
            await start_with_retry(bus, stop)
            yield bus
        finally:
            await bus.close()


async def start_with_retry(bus: Bus, stop: asyncio.Event | None = None, first_delay: float = 0.5,
                           max_delay: float = 30.0) -> None:
    """Connect, retrying with capped exponential backoff: an unreachable bus is one log line per attempt, never a
    crash or a busy loop. `bus.health` stays DISCONNECTED meanwhile (visible on the health endpoint)."""
    from sensorium.buses.base import Health

    delay = first_delay
    while True:
        try:
            await bus.start()
            return
        except BusError as exc:
            bus.health = Health.DISCONNECTED
            log.error("%s; retrying in %.1fs", exc, delay)
            if stop is not None:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), delay)
                if stop.is_set():
                    raise BusError(f"stopped while waiting for the bus at {bus.url}") from None
            else:
                await asyncio.sleep(delay)
            delay = min(delay * 2, max_delay)


def default_bus_url(data_dir: Path) -> str | None:
    """The URL a running engine's embedded bus wrote, for `sensorium publish` without `--bus`."""
    try:
        return (data_dir / URL_FILE).read_text().strip() or None
    except OSError:
        return None

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
from sensorium.engine.registry import REGISTRY, Registry

log = logging.getLogger("sensorium.bus")

URL_FILE = "bus.url"


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
async def open_bus(spec: EventBusSpec | None, override: str | None, secrets: Secrets, data_dir: Path,
                   on_bus: Callable[[Bus], None] | None = None,
                   stop: asyncio.Event | None = None) -> AsyncIterator[Bus]:
    """Yield a started bus; an embedded nats-server is started (and stopped after) when none is configured."""
    embedded = None
    if override:
        bus = from_url(override)
    elif spec is not None and spec.kafka is not None:
        from sensorium.buses.kafka.bus import KafkaBus

        bus = KafkaBus.from_spec(spec.kafka, secrets)
    else:
        from sensorium.buses.jetstream.bus import JetStreamBus
        from sensorium.buses.spec import JetStreamBus as JetStreamSpec

        js = (spec.jetstream_exotic or spec.jetstream if spec is not None else None) or JetStreamSpec()
        url = js.url
        if url is None:
            from sensorium.buses.embedded import EmbeddedNats

            embedded = EmbeddedNats(data_dir=data_dir / "nats", die_with_parent=True)
            embedded.start_blocking()  # main thread: see EmbeddedNats.start_blocking
            url = embedded.url
            (data_dir / URL_FILE).write_text(url + "\n")
            log.info("embedded event bus at %s", url, extra={"bus": url})
        bus = JetStreamBus.from_spec(js, secrets, url)
    if on_bus is not None:
        on_bus(bus)
    try:
        await start_with_retry(bus, stop)
        yield bus
    finally:
        await bus.close()
        if embedded is not None:
            await embedded.stop()
            with contextlib.suppress(OSError):
                (data_dir / URL_FILE).unlink()


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

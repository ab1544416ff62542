"""Condition state on JetStream: the KV bucket `sensorium-state` (history 1, file storage, 1 replica, direct
gets), one key per sensor holding the latest snapshot. The bucket is created by the first store that finds it
missing (and again if a server comes back without its data). A snapshot may be as large as the server's
`max_payload` (1 MiB by default).
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from nats.errors import Error as NatsError
from nats.errors import NoRespondersError
from nats.js import api
from nats.js.errors import BadRequestError, BucketNotFoundError, KeyNotFoundError, NoStreamResponseError
from nats.js.kv import KeyValue

from sensorium.buses.jetstream.connection import JetStreamConnection
from sensorium.buses.state import STATE_NAME, SerialStateStore
from sensorium.engine.core.errors import BusError
from sensorium.engine.goport.fnv import fnv32a

log = logging.getLogger("buses.jetstream.bus")

STATE_BUCKET = STATE_NAME
_TOKEN = r"[-/_=A-Za-z0-9]+"
_KEY = re.compile(rf"{_TOKEN}(\.{_TOKEN})*")
_T = TypeVar("_T")


def state_key(sensor: str) -> str:
    """The KV key of a sensor: its name when the KV key rules accept it (letters, digits, `-_/=`, dots between
    non-empty tokens), else a sanitized form plus the fnv32a hash of the name: stable and distinct."""
    if len(sensor) <= 200 and _KEY.fullmatch(sensor):
        return sensor
    clean = re.sub(r"[^-/_=A-Za-z0-9]", "_", sensor)[:180]
    return f"{clean}-{fnv32a(sensor):08x}"


def bucket_config(bucket: str = STATE_BUCKET) -> api.KeyValueConfig:
    return api.KeyValueConfig(bucket=bucket, description="Sensorium condition state: one key per sensor",
                              history=1, storage=api.StorageType.FILE, replicas=1, direct=True)


async def open_bucket(bus: JetStreamConnection, bucket: str = STATE_BUCKET) -> KeyValue:
    """The bucket, created if missing (an existing bucket is used with its own settings)."""
    try:
        return await bus.js.key_value(bucket)
    except BucketNotFoundError:
        pass
    try:
        kv = await bus.js.create_key_value(bucket_config(bucket))
    except BadRequestError:  # created meanwhile by another client, perhaps with other settings
        return await bus.js.key_value(bucket)
    log.info("created KV bucket %s on %s (condition state)", bucket, bus.url)
    return kv


class JetStreamStateStore(SerialStateStore):
    """Key `state_key(sensor)` of the bucket. Calls wait for a lost connection and retry transient failures
    (JetStream not ready yet after a server restart, a bucket lost with the server's data) for up to the bus's
    `publish_timeout`, then raise BusError naming the server, bucket, key and cause."""

    def __init__(self, bus: JetStreamConnection, kv: KeyValue, sensor: str, bucket: str = STATE_BUCKET) -> None:
        self.key = state_key(sensor)
        super().__init__(sensor, bus.max_payload, f"{bus.url} bucket {bucket!r} key {self.key!r}")
        self._bus, self._kv, self._bucket = bus, kv, bucket

    async def _load(self) -> bytes | None:
        async def get() -> bytes | None:
            try:
                entry = await self._kv.get(self.key)
            except KeyNotFoundError:  # never saved, cleared (delete marker), or the bucket is empty
                return None
            return entry.value

        return await self._retrying("loading", get)

    async def _save(self, snapshot: bytes) -> None:
        async def put() -> None:
            if snapshot:
                await self._kv.put(self.key, snapshot)
            else:
                await self._kv.delete(self.key)

        await self._retrying("saving", put)

    async def _retrying(self, doing: str, step: Callable[[], Awaitable[_T]]) -> _T:
        deadline = time.monotonic() + self._bus.publish_timeout
        delay, cause = 0.05, ""
        while True:
            if self._bus.closed:
                raise BusError(f"{doing} condition state on {self.where}: the bus is closed")
            left = deadline - time.monotonic()
            if not await self._bus.wait_connected(max(0.0, left)):
                cause = cause or "not connected"
            else:
                try:
                    return await step()
                except (NoStreamResponseError, NoRespondersError):
                    cause = f"bucket {self._bucket!r} not available"
                    try:  # a server that came back without its data: make the bucket again
                        self._kv = await open_bucket(self._bus, self._bucket)
                    except (NatsError, OSError, TimeoutError) as exc:
                        cause = f"{cause}: {self._bus.redact(repr(exc))}"
                except (NatsError, OSError, TimeoutError) as exc:
                    cause = self._bus.redact(repr(exc))
            left = deadline - time.monotonic()
            if left <= 0:
                raise BusError(f"{doing} condition state on {self.where} failed: {cause}")
            await asyncio.sleep(min(delay, left))
            delay = min(1.0, delay * 2)


async def open_state_bucket(bus: JetStreamConnection, bucket: str = STATE_BUCKET) -> KeyValue:
    """`open_bucket`, its failure a BusError naming the server and the bucket."""
    try:
        return await open_bucket(bus, bucket)
    except (NatsError, OSError, TimeoutError) as exc:
        raise BusError(f"NATS at {bus.url}: cannot open KV bucket {bucket!r}: {bus.redact(repr(exc))}") from exc

"""What the state stores of every bus share (buses/base.py `StateStore`): names, the size limit, the order of
calls, and the error messages. Each bus supplies only `_load`/`_save`/`_close`.
"""

from __future__ import annotations

import abc
import asyncio

from sensorium.buses.base import StateStore
from sensorium.engine.core.errors import BusError

STATE_NAME = "sensorium-state"  # the JetStream KV bucket and the compacted Kafka topic
DEFAULT_MAX_SNAPSHOT = 1024 * 1024  # bytes; JetStream uses the server's max_payload instead (1 MiB by default)


def check_sensor(sensor: str) -> str:
    if not sensor or not sensor.strip():
        raise BusError("a state store needs a non-empty sensor name")
    return sensor


class SerialStateStore(StateStore):
    """A StateStore whose calls run one at a time, in call order (so the last `save` called is the last stored),
    with the size limit and the closed state checked before the bus is asked. `where` names the store for
    errors, e.g. `nats://host:4222 bucket 'sensorium-state' key 'my-sensor'`."""

    def __init__(self, sensor: str, max_size: int, where: str) -> None:
        self.sensor, self.max_size, self.where = check_sensor(sensor), max_size, where
        self._lock = asyncio.Lock()
        self._closed = False

    def _check_open(self) -> None:
        if self._closed:
            raise BusError(f"state store of sensor {self.sensor!r} ({self.where}) is closed")

    async def load(self) -> bytes | None:
        self._check_open()
        async with self._lock:
            self._check_open()
            data = await self._load()
        return data or None

    async def save(self, snapshot: bytes) -> None:
        self._check_open()
        if len(snapshot) > self.max_size:
            raise BusError(f"condition state of sensor {self.sensor!r} is {len(snapshot)} bytes, over the limit "
                           f"of {self.max_size} bytes for one snapshot on {self.where}")
        async with self._lock:
            self._check_open()
            await self._save(bytes(snapshot))

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        async with self._lock:  # a call in flight finishes first
            await self._close()

    @abc.abstractmethod
    async def _load(self) -> bytes | None:
        """The stored value (b"" or None when cleared or never saved)."""

    @abc.abstractmethod
    async def _save(self, snapshot: bytes) -> None:
        """Store `snapshot` (b"": clear) durably, or raise BusError."""

    async def _close(self) -> None:
        return None

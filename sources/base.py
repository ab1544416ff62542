"""What every event source kind shares (parts layer): the publish callback it is given and the running source it
returns. The registry of kinds (`engine.registry.SourceKind`) builds one running source per kind from every entry
of that kind in the loaded EventSources."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol

from sensorium.engine.core.cloudevent import CloudEvent

__all__ = ["Publish", "RunningSource"]

Publish = Callable[[CloudEvent], Awaitable[None]]
"""Store one event on the bus; returns once the bus confirmed it (raises BusError otherwise)."""


class RunningSource(Protocol):
    """A source kind's running part: `start()` begins serving (binding ports, starting timers) and raises
    SensoriumError when it cannot; `stop()` ends it and is safe to call after a failed or no start."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

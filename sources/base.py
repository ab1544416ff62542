"""What every event source kind shares (parts layer): the publish callback it is given and the running source it
returns. The registry of kinds (`engine.registry.SourceKind`) builds one running source per kind from every entry
of that kind in the loaded EventSources."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar, runtime_checkable

from sensorium.engine.core.cloudevent import CloudEvent
from sensorium.engine.core.errors import EventTooLarge, SensoriumError

__all__ = ["Entry", "EntryProblems", "EntryTasks", "Publish", "Report", "Reporting", "RunningSource", "SnapshotStore",
           "no_report", "publish_retrying"]

Publish = Callable[[CloudEvent], Awaitable[None]]
"""Store one event on the bus; returns once the bus confirmed it (raises BusError otherwise)."""

Report = Callable[[str, str, str, str, "int | None"], None]
"""Told of a source's problem: (kind, eventSource, eventName, what went wrong, HTTP status or None). The engine
records it as a trace record for the sensors listening to that entry. Must not raise; names no secret."""


def no_report(kind: str, source: str, event: str, problem: str, status: int | None) -> None:
    """The Report of a source run without an engine (tests): nothing."""


class RunningSource(Protocol):
    """A source kind's running part: `start()` begins serving (binding ports, starting timers) and raises
    SensoriumError when it cannot; `stop()` ends it and is safe to call after a failed or no start."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


@runtime_checkable
class Reporting(Protocol):
    """A running source that can say why it is not serving right now (the engine's readiness lists it): one
    sentence per entry that is not (e.g. `natsStream hns/mail: disconnected from nats://host:4222`)."""

    def problems(self) -> list[str]: ...


E = TypeVar("E")


@dataclass(frozen=True)
class Entry(Generic[E]):
    """One `spec.<kind>.<eventName>` entry of an EventSource, as a running source holds it (`spec`: the entry
    as its kind's model read it)."""

    kind: str
    source: str
    name: str
    spec: E

    @property
    def where(self) -> str:
        """How messages name the entry: `<kind> <eventSource>/<eventName>`."""
        return f"{self.kind} {self.source}/{self.name}"


class EntryProblems:
    """Why each entry of a running source is not serving, for its `problems()` (readiness lists them): a problem
    that is new or changed is logged once and reported (a `source` trace record); `waiting` marks an entry not
    serving yet without a word (a start)."""

    def __init__(self, logger: logging.Logger, report: Report) -> None:
        self._log, self._report = logger, report
        self._open: dict[str, tuple[str, bool]] = {}  # where -> (problem, reported)

    def lines(self) -> list[str]:
        return [f"{where}: {problem}" for where, (problem, _) in self._open.items()]

    def waiting(self, entry: Entry[Any], text: str) -> None:
        self._open[entry.where] = (text, False)

    def set(self, entry: Entry[Any], problem: str) -> None:
        previous = self._open.get(entry.where)
        self._open[entry.where] = (problem, True)
        if previous is None or previous[0] != problem:
            self._log.error("%s: %s", entry.where, problem)
            self._report(entry.kind, entry.source, entry.name, problem, None)

    def clear(self, entry: Entry[Any]) -> bool:
        """Forget the entry's problem; True when it was one that had been reported."""
        previous = self._open.pop(entry.where, None)
        return previous is not None and previous[1]


class _Closable(Protocol):
    async def close(self) -> None: ...


class SnapshotStore(Protocol):
    """Where a source entry keeps its position between runs (a bus state store: `buses.base.StateStore`)."""

    async def load(self) -> bytes | None: ...

    async def save(self, snapshot: bytes) -> None: ...

    async def close(self) -> None: ...


S = TypeVar("S", bound=_Closable)


class EntryTasks(Generic[S]):
    """The tasks of a source kind's entries, one each, with the state store each opened (a calendar's last tick,
    a poll's seen keys): `spawn` opens the entry's store (when the bus gives one) and starts its task; `stop`
    cancels every task and closes every store (a close that fails is ignored: the engine is stopping)."""

    def __init__(self) -> None:
        self._tasks: list[asyncio.Task[None]] = []
        self._stores: list[S] = []

    @property
    def tasks(self) -> tuple[asyncio.Task[None], ...]:
        """The entries' tasks, in start order (a finished one is an entry that stopped)."""
        return tuple(self._tasks)

    async def spawn(self, key: str, state: Callable[[str], Awaitable[S]] | None,
                    run: Callable[[S | None], Coroutine[Any, Any, None]]) -> None:
        store = await state(key) if state is not None else None
        if store is not None:
            self._stores.append(store)
        self._tasks.append(asyncio.create_task(run(store), name=key))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        for store in self._stores:
            with contextlib.suppress(SensoriumError):
                await store.close()
        self._stores = []


async def publish_retrying(publish: Publish, event: CloudEvent, what: str, logger: logging.Logger,
                           max_delay: float = 30.0) -> None:
    """Store `event`, retrying while the bus refuses it (a pause doubling from 0.1 s to `max_delay`, one ERROR line
    per failure naming `what`): a source's event is never dropped, and its position (a file change, a slot, the
    next item of a generator) moves on only once the bus stored it. The exception: an event larger than the bus
    can ever store (EventTooLarge) is logged as lost, naming `what`, and not retried, so that it cannot stall
    its entry."""
    delay = 0.1
    while True:
        try:
            await publish(event)
            return
        except EventTooLarge as exc:  # never storable: one clear line, and the source moves on (not stalled)
            logger.error("%s not stored, and never will be: %s", what, exc)
            return
        except SensoriumError as exc:
            logger.error("%s not stored, retrying in %gs: %s", what, delay, exc)
            await asyncio.sleep(delay)
            delay = min(max_delay, delay * 2)

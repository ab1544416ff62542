"""A bounded pool of client connections, for the message-queue triggers (NATS connections, Kafka producers): one
per key (where to and how: servers, TLS, credentials' references), opened by the first firing that needs it,
shared by every trigger with the same key, the least recently used closed beyond `limit`, all closed by
`close()` (the engine's end)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, Self, TypeVar

C = TypeVar("C")

LIMIT = 32
"""Connections a pool keeps at most: `parameters` that rewrite a trigger's URL could otherwise open one per value
an event brings. Beyond it the least recently used one is closed (a firing still using it fails, retryably)."""


class Pool(Generic[C]):
    """`get(key, open)`; `close_one(c)` closes a connection (bounded in time, never raising), `alive(c)` says
    whether a kept one may still be used."""

    def __init__(self, close_one: Callable[[C], Awaitable[None]], alive: Callable[[C], bool] = lambda c: True,
                 limit: int = LIMIT) -> None:
        self._close_one, self._alive, self._limit = close_one, alive, max(1, limit)
        self._open: dict[str, C] = {}  # in the order of their last use
        self._locks: dict[str, asyncio.Lock] = {}

    def __len__(self) -> int:
        return len(self._open)

    async def get(self, key: str, open_one: Callable[[], Awaitable[C]]) -> C:
        """The connection for `key`; `open_one()` makes it when there is none (what it raises is raised, and
        nothing is kept)."""
        kept = self._open.pop(key, None)
        if kept is not None and self._alive(kept):
            self._open[key] = kept  # the most recently used, last
            return kept
        lock = self._locks.setdefault(key, asyncio.Lock())
        try:
            async with lock:
                kept = self._open.get(key)
                if kept is not None and self._alive(kept):
                    return kept
                made = await open_one()
                self._open[key] = made
        finally:
            if not lock.locked() and key not in self._open:
                self._locks.pop(key, None)  # a key that failed leaves nothing behind
        while len(self._open) > self._limit:
            oldest = next(iter(self._open))
            self._locks.pop(oldest, None)
            await self._close_one(self._open.pop(oldest))
        return made

    async def close(self) -> None:
        kept, self._open = list(self._open.values()), {}
        for connection in kept:
            await self._close_one(connection)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

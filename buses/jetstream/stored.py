"""Events stored on JetStream, looked up by a delivery's position (`<subject> seq <n>`): `Bus.stored_events`.

The stream that holds a subject is asked of the server once per subject (`find_stream_name_by_subject`: a
deployment's EventBus may name its own stream), then each message is one `get_msg` by its stream sequence,
up to `CONCURRENT` at a time on one connection.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

import nats
from nats.aio.client import Client
from nats.errors import Error as NatsError
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from sensorium.buses.base import StoredEvents
from sensorium.engine.core.errors import BusError

log = logging.getLogger("sensorium.trace")

CONCURRENT = 256  # get_msg requests in flight at a time
_SEQ = " seq "


def parse_position(position: str) -> tuple[str, int] | None:
    """(subject, stream sequence) of a JetStream position; None for anything else."""
    subject, sep, seq = position.rpartition(_SEQ)
    if not sep or not subject or not seq.isdigit() or len(seq) > 20:
        return None
    return subject, int(seq)


class JetStreamStoredEvents(StoredEvents):
    """`StoredEvents` on the NATS server at `url` (`printable`: the same without credentials)."""

    def __init__(self, url: str, printable: str) -> None:
        self.url, self.printable = url, printable
        self._nc: Client | None = None
        self._js: JetStreamContext | None = None
        self._streams: dict[str, str | None] = {}  # subject -> the stream holding it (None: none does)

    async def _context(self) -> JetStreamContext:
        if self._js is None:
            async def quiet(exc: Exception) -> None:  # nats-py logs a traceback per failed attempt otherwise
                log.debug("nats %s: %r", self.printable, exc)

            try:
                self._nc = await nats.connect(self.url, connect_timeout=3, max_reconnect_attempts=2,
                                              error_cb=quiet)
            except (NatsError, OSError, TimeoutError) as exc:
                raise BusError(f"cannot reach NATS at {self.printable}: {exc or type(exc).__name__}") from None
            self._js = self._nc.jetstream()
        return self._js

    async def get(self, positions: Sequence[str]) -> dict[str, tuple[bytes, dict[str, str]]]:
        wanted = [(position, parsed) for position in dict.fromkeys(positions)
                  if (parsed := parse_position(position)) is not None]
        out: dict[str, tuple[bytes, dict[str, str]]] = {}
        if not wanted:
            return out
        js = await self._context()
        try:
            for subject in {subject for _, (subject, _) in wanted} - self._streams.keys():
                try:
                    self._streams[subject] = await js.find_stream_name_by_subject(subject)
                except NotFoundError:
                    self._streams[subject] = None

            async def one(position: str, subject: str, seq: int) -> None:
                stream = self._streams.get(subject)
                if stream is None:
                    return
                try:
                    msg = await js.get_msg(stream, seq)
                except NotFoundError:  # gone: past the stream's limits, or deleted
                    return
                if msg.subject == subject:  # (a position names its subject: anything else is not that event)
                    out[position] = (msg.data or b"", dict(msg.headers or {}))

            for start in range(0, len(wanted), CONCURRENT):
                await asyncio.gather(*(one(position, subject, seq)
                                       for position, (subject, seq) in wanted[start:start + CONCURRENT]))
        except (NatsError, OSError, TimeoutError) as exc:
            raise BusError(f"nats {self.printable}: stored events could not be read: "
                           f"{exc or type(exc).__name__}") from None
        return out

    async def close(self) -> None:
        nc, self._nc, self._js = self._nc, None, None
        if nc is not None:
            try:
                await nc.close()
            except Exception as exc:  # closing a connection that already failed
                log.debug("nats %s: close: %r", self.printable, exc)

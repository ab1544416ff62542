"""Trace records on the bus: the engine side. Records become bodies of JSON Lines (one sensor each, at most
MAX_BODY bytes), compressed as one Zstandard frame each, that the bus's `TraceChannel` stores
(`Bus.trace_channel`), and bodies read back from the bus (`Bus.read_trace`) become records again for `sensorium
trace` (a body that is not a Zstandard frame is read as plain JSON Lines, as engines before 2026-12-06 wrote them). The
wire (subjects, topics, retention) belongs to each bus: buses/jetstream/trace.py and buses/kafka/trace.py.

Why compressed: a trace's lines repeat themselves (field names, sensor, trigger, URL, most attributes), so level 1
shrinks them 20-40 times (bench.engine's events: 1,684 to 51 bytes per event) for about 1 us of CPU per event.
The bus then stores 20-40 times more history in its limits (the JetStream trace stream keeps 256 MiB: 38 seconds
at 4,000 events/s uncompressed, about 22 minutes compressed), and the engine and the bus server copy, send and
write that much less.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Sequence
from typing import Any

import msgspec
import zstandard

from sensorium.buses.base import Bus, StoredEvents, TraceChannel
from sensorium.engine.busconfig import from_url
from sensorium.engine.core.cloudevent import DecodeError, decode_delivery
from sensorium.engine.core.errors import BusError
from sensorium.engine.core.preview import preview
from sensorium.engine.trace.records import Routine, TraceRecord, encode_chunks

log = logging.getLogger("sensorium.trace")

MAX_BODY = 512 * 1024  # bytes of JSON Lines per body: half of NATS' default max payload (1 MiB)
LEVEL = 1  # Zstandard's fastest level but the negative ones: 2.1 us per event of 3.5 KB, 38 times smaller
_FRAME = b"\x28\xb5\x2f\xfd"  # how a Zstandard frame starts (JSON Lines start with "{")


def _bodies(batch: Sequence[TraceRecord]) -> list[tuple[str, bytes]]:
    """(sensor, JSON Lines body) pairs; a body holds at most MAX_BODY bytes (cut between records)."""
    chunks, sensors, _ = encode_chunks(batch)
    return _line_bodies(chunks, sensors)


def _line_bodies(chunks: Sequence[bytes], sensors: Sequence[str]) -> list[tuple[str, bytes]]:
    """`_bodies` of records the hub encoded already: chunks of their JSON Lines and, at the same index, the
    sensor of each chunk. A body is cut between lines (a single longer line goes alone)."""
    by_sensor: dict[str, list[bytes]] = defaultdict(list)
    for sensor, chunk in zip(sensors, chunks, strict=True):
        by_sensor[sensor].append(chunk)
    out: list[tuple[str, bytes]] = []
    for sensor, parts in by_sensor.items():
        data = b"".join(parts)
        start = 0
        while len(data) - start > MAX_BODY:
            cut = data.rfind(b"\n", start, start + MAX_BODY) + 1
            if cut <= start:  # one line longer than a body
                cut = data.find(b"\n", start + MAX_BODY) + 1 or len(data)
            out.append((sensor, data[start:cut]))
            start = cut
        if start < len(data):
            out.append((sensor, data[start:]))
    return out


class BusTraceSink:
    """A trace sink (engine.trace.hub) publishing on a bus's trace channel, each body compressed: on the loop,
    yielding between bodies (a body of 512 KiB takes about a millisecond), or with `in_thread` in a worker
    thread (the hub sets it from its `encode_in_thread`; it writes one batch at a time, so the compressor is never
    used by two threads at once)."""

    accepts_lines = True
    accepts_routine = True  # its readers (`read_traces`) get a Routine's steps back
    in_thread = False

    def __init__(self, channel: TraceChannel) -> None:
        self.channel = channel
        self._compressor = zstandard.ZstdCompressor(level=LEVEL)

    def _compressed(self, bodies: list[tuple[str, bytes]]) -> list[tuple[str, bytes]]:
        compress = self._compressor.compress
        return [(sensor, compress(body)) for sensor, body in bodies]

    async def write(self, batch: Sequence[TraceRecord]) -> None:
        await self._publish(_bodies(batch))

    async def write_lines(self, chunks: Sequence[bytes], sensors: Sequence[str]) -> None:
        await self._publish(_line_bodies(chunks, sensors))

    async def _publish(self, bodies: list[tuple[str, bytes]]) -> None:
        if self.in_thread:
            await self.channel.publish(await asyncio.to_thread(self._compressed, bodies))
            return
        compress = self._compressor.compress
        out: list[tuple[str, bytes]] = []
        for sensor, body in bodies:
            if out:
                await asyncio.sleep(0)
            out.append((sensor, compress(body)))
        await self.channel.publish(out)

    async def close(self) -> None:
        await self.channel.close()


def bus_trace_sink(bus: Bus) -> BusTraceSink | None:
    """The sink that publishes records on `bus`; None for buses without a trace channel (memory)."""
    channel = bus.trace_channel()
    return None if channel is None else BusTraceSink(channel)


# ---- reading ------------------------------------------------------------------------------------------------

def _lines(body: bytes) -> bytes:
    """The JSON Lines of a body read back: decompressed when it is a Zstandard frame (at most 2 x MAX_BODY
    bytes: a frame claiming more, or none, is not one the engine wrote and is skipped with a warning)."""
    if not body.startswith(_FRAME):
        return body
    try:
        size = zstandard.frame_content_size(body)  # (decompress() trusts a size the frame states)
        if not 0 <= size <= 2 * MAX_BODY:
            raise zstandard.ZstdError(f"it would decompress to {'an unknown' if size < 0 else size} bytes")
        return zstandard.ZstdDecompressor().decompress(body)
    except zstandard.ZstdError as exc:
        log.warning("a trace message that is not an engine's was skipped: %s", exc)
        return b""


Unread = list[tuple[dict[str, Any], str]]
"""`received` records whose data preview is still to be made, each with the position of its event on the bus."""


def _parse(body: bytes, unread: Unread | None = None) -> list[dict[str, Any]]:
    """The records of a body, a `Routine` as the records it stands for (one that does not have a Routine's
    fields, or whose times are no times, is kept as it is: something wrote it that is not an engine, and a reader
    should see it). The `received` record of a Routine that did not copy its event's data (all but engines
    before 2026-12-07) is added to `unread` with the event's position: its `data_preview` is made from the event
    stored there (`_read_previews`)."""
    out = []
    for line in _lines(body).splitlines():
        try:
            value = json.loads(line)
        except ValueError:
            continue
        if not isinstance(value, dict):
            continue
        if value.get("step") == "routine":
            try:
                routine = msgspec.convert(value, Routine)
                steps = [record.to_json() for record in routine.steps()]
            except (msgspec.ValidationError, ValueError, OverflowError, OSError):  # (a time out of range, NaN)
                pass
            else:
                if routine.data_preview is None and routine.data_bytes and unread is not None:
                    unread.append((steps[0], routine.position))
                out += steps
                continue
        out.append(value)
    return out


NOT_STORED = "(not shown: the event is no longer stored on the bus)"
UNREADABLE = "(not shown: the event's data could not be read from the bus: {})"


async def _read_previews(stored: StoredEvents | None, unread: Unread) -> None:
    """Make the data previews of `unread` from the events stored on the bus, as the engine would have made them
    (`engine.core.preview`: bounded, credentials masked); say why where it cannot."""
    if stored is None:
        found: dict[str, tuple[bytes, dict[str, str]]] = {}
        why = NOT_STORED
    else:
        try:
            found, why = await stored.get([position for _, position in unread]), NOT_STORED
        except BusError as exc:
            found, why = {}, UNREADABLE.format(exc)
    for record, position in unread:
        message = found.get(position)
        if message is None:
            record["data_preview"] = why
            continue
        try:
            event = decode_delivery(*message)
        except DecodeError as exc:  # (the engine decoded it: the position now holds something else)
            record["data_preview"] = UNREADABLE.format(exc)
            continue
        if event.id != record["event"]:
            record["data_preview"] = NOT_STORED
        else:
            record["data_preview"] = preview(event.data)


async def read_traces(url: str, *, sensor: str | None = None, since: float | None = None,
                      follow: bool = False, idle: float = 2.0,
                      event: str | None = None) -> AsyncIterator[dict[str, Any]]:
    """Records on the bus at `url` (oldest first; no scheme means nats://), from `since` seconds ago (None: all
    retained). Without `follow` it stops once it has caught up; with it, it waits for new records until
    cancelled. With `event` (`sensorium trace --event`), only that event's data preview is looked up on the bus
    when a routine record left it there (`_parse`); the other events' are left empty."""
    bus = from_url(url if "://" in url else f"nats://{url}")
    start = None if since is None else time.time() - since
    stored = bus.stored_events()
    try:
        async for body in bus.read_trace(sensor, start, follow, idle):
            unread: Unread = []
            records = _parse(body, unread)
            if unread:  # (their previews are "" until made: `Routine.steps`)
                await _read_previews(stored, [(r, p) for r, p in unread if (sensor is None or r["sensor"] == sensor)
                                              and (event is None or r["event"] == event)])
            for record in records:
                if sensor is None or record.get("sensor") == sensor:
                    yield record
    finally:
        if stored is not None:
            await stored.close()

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

from sensorium.buses.base import Bus, TraceChannel
from sensorium.engine.busconfig import from_url
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


def _parse(body: bytes) -> list[dict[str, Any]]:
    """The records of a body, a `Routine` as the records it stands for (one that does not have a Routine's
    fields, or whose times are no times, is kept as it is: something wrote it that is not an engine, and a reader
    should see it)."""
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
                out += [record.to_json() for record in msgspec.convert(value, Routine).steps()]
                continue
            except (msgspec.ValidationError, ValueError, OverflowError, OSError):  # (a time out of range, NaN)
                pass
        out.append(value)
    return out


async def read_traces(url: str, *, sensor: str | None = None, since: float | None = None,
                      follow: bool = False, idle: float = 2.0) -> AsyncIterator[dict[str, Any]]:
    """Records on the bus at `url` (oldest first; no scheme means nats://), from `since` seconds ago (None: all
    retained). Without `follow` it stops once it has caught up; with it, it waits for new records until
    cancelled."""
    bus = from_url(url if "://" in url else f"nats://{url}")
    start = None if since is None else time.time() - since
    async for body in bus.read_trace(sensor, start, follow, idle):
        for record in _parse(body):
            if sensor is None or record.get("sensor") == sensor:
                yield record

"""What the bus trace stores: bodies of JSON Lines, one Zstandard frame each, and what reading them back does with a
body that is plain (an older engine's), compressed, or not an engine's at all."""

from __future__ import annotations

import logging

import pytest
import zstandard

from sensorium.engine.trace.bus import MAX_BODY, BusTraceSink, _parse
from sensorium.engine.trace.records import Acknowledged

RECORD = Acknowledged(time="2026-12-06T10:00:00.000Z", sensor="s", event="e-1", position="p seq 1", action="ack",
                      reason="1 firing(s) finished")


class Channel:
    def __init__(self) -> None:
        self.bodies: list[tuple[str, bytes]] = []

    async def publish(self, bodies: list[tuple[str, bytes]]) -> None:
        self.bodies += bodies

    async def close(self) -> None:
        return None


async def test_the_sink_publishes_compressed_bodies_that_read_back_as_the_records() -> None:
    channel = Channel()
    sink = BusTraceSink(channel)  # type: ignore[arg-type]
    await sink.write([RECORD] * 500)
    assert len(channel.bodies) == 1
    sensor, body = channel.bodies[0]
    assert sensor == "s" and body.startswith(b"\x28\xb5\x2f\xfd")
    assert _parse(body) == [RECORD.to_json()] * 500
    assert len(body) * 20 < len(RECORD.json_line()) * 500


def test_a_plain_body_reads_as_it_is() -> None:
    assert _parse(RECORD.json_line().encode() * 2) == [RECORD.to_json()] * 2


@pytest.mark.parametrize("body", [
    zstandard.ZstdCompressor().compress(b"{}\n" * (MAX_BODY + 1)),  # more than an engine writes: a bomb
    zstandard.ZstdCompressor(write_content_size=False).compress(b"{}\n"),  # no size stated
    b"\x28\xb5\x2f\xfd" + b"\x00" * 20,  # not a frame at all
])
def test_a_frame_the_engine_did_not_write_is_skipped_with_a_warning(body: bytes,
                                                                    caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, "sensorium.trace"):
        assert _parse(body) == []
    assert "a trace message that is not an engine's was skipped" in caplog.text

"""Routine records: `engine.trace.holding.Holding` gives held records back or tells them once held too long, and a
hub takes routine records only where its sinks expand them."""

from __future__ import annotations

import asyncio
import io

from sensorium.engine.trace.holding import Holding


async def test_records_taken_in_time_are_never_told() -> None:
    told: list[str] = []
    holding = Holding(told.append, limit=0.05)
    first, second = holding.hold("a"), holding.hold("b")
    assert first and second and first != second and len(holding) == 2
    assert holding.take(second) == "b" and holding.take(first) == "a"
    assert holding.take(first) is None  # (once)
    await asyncio.sleep(0.1)
    assert told == [] and len(holding) == 0


async def test_records_held_too_long_are_told_oldest_first_and_cannot_be_taken() -> None:
    told: list[str] = []
    holding = Holding(told.append, limit=0.05)
    old = holding.hold("old")
    await asyncio.sleep(0.03)
    young = holding.hold("young")
    await asyncio.sleep(0.04)  # the old one is past the limit, the young one not yet
    assert told == ["old"] and holding.take(old) is None
    await asyncio.sleep(0.05)
    assert told == ["old", "young"] and holding.take(young) is None
    holding.hold("again")  # the timer is armed again
    await asyncio.sleep(0.08)
    assert told == ["old", "young", "again"]


async def test_tell_and_close_tell_what_is_held() -> None:
    told: list[str] = []
    holding = Holding(told.append, limit=10.0)
    one = holding.hold("one")
    holding.hold("two")
    holding.tell(one)
    holding.tell(one)  # (told once)
    holding.close()
    assert told == ["one", "two"] and len(holding) == 0


def test_a_hub_takes_routine_records_only_at_decisions_and_when_every_sink_expands_them() -> None:
    from sensorium.engine.trace.fmt import StreamSink
    from sensorium.engine.trace.hub import TraceHub
    from tests.trace_log import TraceLog

    assert TraceHub(bus_trace=True, detail="decisions").compact  # (the bus sink, attached later, expands them)
    assert TraceHub([TraceLog()], detail="decisions").compact
    assert not TraceHub([TraceLog()], detail="all").compact
    assert not TraceHub([TraceLog(), StreamSink(io.StringIO(), "json")], detail="decisions").compact
    steps = TraceHub(bus_trace=True, detail="decisions")
    steps.routine_records = False  # (bench.engine's engine-trace-bus-steps)
    assert not steps.compact

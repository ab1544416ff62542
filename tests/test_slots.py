"""The process-wide bound on firings in flight (`run --max-in-flight`): `runner.Slots` shared by sensors."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import pytest

from sensorium.engine.runner import Slots
from sensorium.engine.workers import worker_command

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


async def test_sensors_sharing_a_bound_never_hold_more_than_it_together() -> None:
    shared = asyncio.Semaphore(3)
    sensors = [Slots(10, shared), Slots(10, shared)]
    holding, most = 0, 0
    release = asyncio.Event()

    async def firing(slots: Slots) -> None:
        nonlocal holding, most
        await slots.acquire()
        holding += 1
        most = max(most, holding)
        await release.wait()
        holding -= 1
        slots.release()

    tasks = [asyncio.create_task(firing(sensors[i % 2])) for i in range(8)]
    await asyncio.sleep(0.05)
    assert holding == 3  # the other five wait, whichever sensor they belong to
    release.set()
    await asyncio.gather(*tasks)
    assert most == 3 and holding == 0
    assert shared._value == 3 and all(s.own._value == 10 for s in sensors)


async def test_a_firing_cancelled_while_waiting_for_the_shared_bound_gives_its_sensor_slot_back() -> None:
    shared = asyncio.Semaphore(1)
    busy, waiting = Slots(5, shared), Slots(1, shared)
    await busy.acquire()
    blocked = asyncio.create_task(waiting.acquire())
    await asyncio.sleep(0.01)
    blocked.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await blocked
    assert waiting.own._value == 1  # the sensor can still fire once the shared slot frees
    busy.release()
    await asyncio.wait_for(waiting.acquire(), 1)


async def test_without_a_shared_bound_only_the_sensors_own_counts() -> None:
    slots = Slots(2)
    await slots.acquire()
    await slots.acquire()
    assert slots.own.locked()
    slots.release()
    assert not slots.own.locked()


def test_a_worker_runs_the_parents_arguments_with_its_own_overriding_them() -> None:
    command = worker_command(["run", "sensors/", "--workers", "4", "--bus", "nats://a:1"], 2, "nats://b:2")
    assert command[1:] == ["-m", "sensorium", "run", "sensors/", "--workers", "4", "--bus", "nats://a:1",
                           "--workers", "1", "--worker-id", "2", "--bus", "nats://b:2"]
    from sensorium.engine.cli import build_parser

    parsed = build_parser().parse_args(command[3:])
    assert (parsed.workers, parsed.worker_id, parsed.bus) == (1, 2, "nats://b:2")  # the last value wins


def test_zero_workers_or_in_flight_is_refused_before_anything_starts(capsys: pytest.CaptureFixture[str]) -> None:
    from sensorium.engine.cli import main

    for flag in ("--workers", "--max-in-flight"):
        assert main(["run", str(EXAMPLES / "quickstart"), flag, "0"]) == 2
        assert "must be at least 1" in capsys.readouterr().err

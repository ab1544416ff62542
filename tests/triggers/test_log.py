from __future__ import annotations

from sensorium.triggers.log import LogLine, LogTrigger, data_string
from sensorium.triggers.spec import Trigger

from .helpers import event


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make(interval: int | None = None) -> Trigger:
    log = {} if interval is None else {"intervalSeconds": interval}
    return Trigger.model_validate({"template": {"name": "logger", "log": log}})


async def test_logs_every_event_with_dependency_and_context() -> None:
    lines: list[LogLine] = []
    outcome = await LogTrigger(make(), sink=lines.append).fire(
        {"a": event(b'{"x":1}'), "b": event(b"\x00\x01", "application/octet-stream", id="e2")})
    assert outcome.success and not outcome.skipped and outcome.kind == "log"
    assert [(line.dependency_name, line.data) for line in lines] == [("a", '{"x":1}'), ("b", "AAE=")]
    assert lines[1].event_context["id"] == "e2" and lines[0].event_context["time"] == "2026-01-02T03:04:05Z"
    assert lines[0].trigger == "logger"


async def test_interval_is_honoured() -> None:
    lines: list[LogLine] = []
    clock = Clock()
    trigger = LogTrigger(make(20), sink=lines.append, clock=clock)
    events = {"a": event()}
    assert not (await trigger.fire(events)).skipped
    clock.now += 5
    skipped = await trigger.fire(events)
    assert skipped.success and skipped.skipped and "intervalSeconds is 20" in skipped.note
    clock.now += 15.5
    assert not (await trigger.fire(events)).skipped
    assert len(lines) == 2


async def test_zero_interval_logs_every_firing() -> None:
    lines: list[LogLine] = []
    clock = Clock()
    trigger = LogTrigger(make(0), sink=lines.append, clock=clock)
    for _ in range(3):
        await trigger.fire({"a": event()})
    assert len(lines) == 3


async def test_broken_sink_does_not_fail() -> None:
    def broken(_: LogLine) -> None:
        raise RuntimeError("disk full")

    outcome = await LogTrigger(make(), sink=broken).fire({"a": event()})
    assert outcome.success and "RuntimeError" in outcome.note


def test_data_string() -> None:
    assert data_string(event(b"plain", "text/plain")) == "plain"
    assert data_string(event(b"hi", "application/json; charset=utf-8")) == "aGk="
    assert data_string(event(None)) == ""

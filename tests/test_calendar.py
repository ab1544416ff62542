"""The calendar source's tick arithmetic and restart rules, with a fake clock and an in-memory tick store (no bus,
no timers): next ticks of cron schedules in a time zone and of intervals, exclusion dates, Argo's event data, and
what a start does with the saved last tick (catch-up within maxDuration, or skip and log)."""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from sensorium.engine.core.cloudevent import CloudEvent
from sensorium.engine.core.errors import BusError
from sensorium.sources.calendar import (
    CalendarContext,
    CalendarSource,
    Tick,
    TickStore,
    catchup_start,
    event_time,
    missed_ticks,
)


def at(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def tick(**spec: Any) -> Tick:
    return Tick.of(CalendarContext.model_validate(spec))


# ---- next tick ---------------------------------------------------------------------------------------------------

def test_a_cron_schedule_is_read_in_its_time_zone() -> None:
    t = tick(schedule="0 9 * * *", timezone="Europe/Berlin")
    nxt = t.next(at(2026, 12, 6, 7, 59))  # 08:59 in Berlin
    assert nxt.astimezone(UTC) == at(2026, 12, 6, 8, 0)
    assert event_time(nxt) == "2026-12-06 09:00:00 +0100 CET"
    assert t.next(at(2026, 12, 6, 8, 0)).astimezone(UTC) == at(2026, 12, 7, 8, 0)  # strictly after


def test_a_cron_schedule_follows_daylight_saving_time() -> None:
    t = tick(schedule="0 9 * * *", timezone="Europe/Berlin")
    summer = t.next(at(2026, 7, 1, 0, 0))
    assert summer.astimezone(UTC) == at(2026, 7, 1, 7, 0)
    assert event_time(summer) == "2026-07-01 09:00:00 +0200 CEST"


def test_without_a_time_zone_the_schedule_is_utc() -> None:
    nxt = tick(schedule="*/15 * * * *").next(at(2026, 12, 6, 13, 14, 39))
    assert event_time(nxt) == "2026-12-06 13:15:00 +0000 UTC"


def test_excluded_dates_have_no_ticks() -> None:
    t = tick(schedule="0 9 * * *", timezone="Europe/Berlin",
             exclusionDates=["EXDATE:20261207T000000Z,20261208T000000Z", "EXDATE:20261210T000000Z"])
    ticks = [t.next(at(2026, 12, 6, 12, 0))]
    for _ in range(2):
        ticks.append(t.next(ticks[-1]))
    assert [x.day for x in ticks] == [9, 11, 12]


def test_an_interval_ticks_on_whole_seconds_after_the_last_tick() -> None:
    t = tick(interval="1m30s")
    assert t.next(at(2026, 12, 6, 13, 0, 0)) == at(2026, 12, 6, 13, 1, 30)
    # robfig/cron's ConstantDelaySchedule drops the sub-second part of the time it starts from
    assert t.next(at(2026, 12, 6, 13, 0, 0) + timedelta(microseconds=700_000)) == at(2026, 12, 6, 13, 1, 30)
    assert tick(schedule="* * * * *", interval="1s").next(at(2026, 1, 1, 0, 0, 1)) == at(2026, 1, 1, 0, 1)


def test_event_time_is_go_time_string() -> None:
    assert event_time(at(2026, 12, 6, 13, 0, 0) + timedelta(microseconds=250_000)) == \
        "2026-12-06 13:00:00.25 +0000 UTC"


@pytest.mark.parametrize(("spec", "message"), [
    ({}, "needs a schedule or an interval"),
    ({"schedule": "61 * * * *"}, "not a five-field cron expression"),
    ({"schedule": "* * * * * *"}, "not a five-field cron expression"),
    ({"interval": "500ms"}, "at least 1s"),
    ({"interval": "soon"}, "invalid duration"),
    ({"interval": "1s", "timezone": "Mars/Olympus"}, "unknown IANA time zone"),
    ({"interval": "1s", "exclusionDates": ["20261225T000000Z"]}, "must start with 'EXDATE:'"),
    ({"interval": "1s", "exclusionDates": ["EXDATE:2026-12-25"]}, "is not YYYYMMDDTHHMMSSZ"),
    ({"interval": "1s", "persistence": {"catchup": {"enabled": True, "maxDuration": "-1m"}}}, "must be positive"),
])
def test_invalid_entries_are_refused_with_the_reason(spec: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        CalendarContext.model_validate(spec)


# ---- catch-up rules ----------------------------------------------------------------------------------------------

def test_catchup_starts_at_the_last_tick_no_further_back_than_max_duration() -> None:
    spec = CalendarContext.model_validate({"interval": "1s", "persistence": {"catchup": {"enabled": True,
                                                                                           "maxDuration": "5m"}}})
    now = at(2026, 12, 6, 13, 0)
    assert catchup_start(now - timedelta(minutes=2), now, spec.catchup()) == now - timedelta(minutes=2)
    assert catchup_start(now - timedelta(hours=2), now, spec.catchup()) == now - timedelta(minutes=5)
    assert catchup_start(None, now, spec.catchup()) == now
    assert catchup_start(now - timedelta(hours=2), now, None) == now


def test_missed_ticks_are_the_ticks_after_start_up_to_now_newest_kept() -> None:
    t = tick(interval="1s")
    ticks, cut = missed_ticks(t, at(2026, 1, 1, 0, 0, 0), at(2026, 1, 1, 0, 0, 3))
    assert (ticks, cut) == ([at(2026, 1, 1, 0, 0, s) for s in (1, 2, 3)], False)
    ticks, cut = missed_ticks(t, at(2026, 1, 1, 0, 0, 0), at(2026, 1, 1, 0, 0, 10), limit=4)
    assert (ticks, cut) == ([at(2026, 1, 1, 0, 0, s) for s in (7, 8, 9, 10)], True)


# ---- the running source, on a fake clock -------------------------------------------------------------------------

class FakeClock:
    """`sleep` moves the time forward (and yields), so a source runs as fast as the test reads it."""

    def __init__(self, now: datetime) -> None:
        self.time = now

    def now(self) -> datetime:
        return self.time

    async def sleep(self, seconds: float) -> None:
        self.time += timedelta(seconds=seconds)
        await asyncio.sleep(0)


class MemoryStore:
    def __init__(self, saved: datetime | None = None) -> None:
        self.value = json.dumps({"tick": saved.isoformat()}).encode() if saved is not None else None
        self.closed = False

    async def load(self) -> bytes | None:
        return self.value

    async def save(self, snapshot: bytes) -> None:
        self.value = snapshot

    async def close(self) -> None:
        self.closed = True

    def last(self) -> datetime:
        assert self.value is not None
        return datetime.fromisoformat(json.loads(self.value)["tick"])


async def run_source(spec: dict[str, Any], store: MemoryStore, now: datetime, count: int,
                     failures: int = 0) -> list[CloudEvent]:
    published: list[CloudEvent] = []
    done = asyncio.Event()
    left = [failures]

    async def publish(event: CloudEvent) -> None:
        if left[0]:
            left[0] -= 1
            raise BusError("bus down")
        if len(published) >= count:
            await asyncio.Event().wait()  # hold the source here until stopped
        published.append(event)
        if len(published) >= count:
            done.set()

    async def opener(name: str) -> TickStore:
        assert name == "calendar.clock.tick"
        return store

    source = CalendarSource([("clock", "tick", CalendarContext.model_validate(spec))], publish, opener,
                            FakeClock(now))
    await source.start()
    await asyncio.wait_for(done.wait(), 5)
    await source.stop()
    assert store.closed
    return published


def times(events: list[CloudEvent]) -> list[str]:
    return [json.loads(e.data or b"")["eventTime"] for e in events]


CATCHUP = {"interval": "10s", "metadata": {"k": "v"}, "persistence": {"catchup": {"enabled": True}}}


async def test_a_start_with_catchup_fires_each_missed_tick_once_then_keeps_time() -> None:
    store = MemoryStore(saved=at(2026, 12, 6, 13, 0, 0))
    events = await run_source(CATCHUP, store, now=at(2026, 12, 6, 13, 0, 35), count=5)
    assert times(events) == [f"2026-12-06 13:00:{s:02d} +0000 UTC" for s in (10, 20, 30, 40, 50)]
    assert json.loads(events[0].data or b"") == {"eventTime": "2026-12-06 13:00:10 +0000 UTC", "metadata": {"k": "v"}}
    assert (events[0].source, events[0].subject, events[0].type) == ("clock", "tick", "calendar")
    assert store.last() == at(2026, 12, 6, 13, 0, 50)


async def test_catchup_goes_back_no_further_than_max_duration() -> None:
    spec = {**CATCHUP, "persistence": {"catchup": {"enabled": True, "maxDuration": "25s"}}}
    events = await run_source(spec, MemoryStore(saved=at(2026, 12, 6, 12, 0, 0)), now=at(2026, 12, 6, 13, 0, 35),
                              count=3)
    assert times(events) == [f"2026-12-06 13:00:{s:02d} +0000 UTC" for s in (20, 30, 40)]


async def test_without_catchup_missed_ticks_are_skipped_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    spec = {"interval": "10s"}
    with caplog.at_level(logging.WARNING, "sensorium.sources.calendar"):
        events = await run_source(spec, MemoryStore(saved=at(2026, 12, 6, 13, 0, 0)),
                                  now=at(2026, 12, 6, 13, 0, 35), count=2)
    assert times(events) == ["2026-12-06 13:00:45 +0000 UTC", "2026-12-06 13:00:55 +0000 UTC"]
    assert "calendar.clock.tick: 3 tick(s) missed while stopped were skipped" in caplog.text


async def test_a_tick_the_bus_refuses_is_retried_not_dropped(caplog: pytest.LogCaptureFixture) -> None:
    events = await run_source({"interval": "10s"}, MemoryStore(), now=at(2026, 12, 6, 13, 0, 0), count=2,
                              failures=3)
    assert times(events) == ["2026-12-06 13:00:10 +0000 UTC", "2026-12-06 13:00:20 +0000 UTC"]
    assert caplog.text.count("tick 2026-12-06T13:00:10+00:00 not stored, retrying") == 3


async def test_a_tick_has_the_same_event_id_each_time_it_is_published() -> None:
    first = await run_source(CATCHUP, MemoryStore(saved=at(2026, 12, 6, 13, 0, 0)), now=at(2026, 12, 6, 13, 0, 5),
                             count=1)
    again = await run_source(CATCHUP, MemoryStore(saved=at(2026, 12, 6, 13, 0, 0)), now=at(2026, 12, 6, 13, 0, 5),
                             count=1)
    assert first[0].id == again[0].id


def test_a_schedule_that_never_fires_is_refused() -> None:
    with pytest.raises(ValidationError, match="never fires"):
        CalendarContext.model_validate({"schedule": "0 0 30 2 *"})


async def test_a_store_that_cannot_be_read_is_retried(caplog: pytest.LogCaptureFixture) -> None:
    store = MemoryStore(saved=at(2026, 12, 6, 13, 0, 0))
    failing = [2]
    real_load = store.load

    async def load() -> bytes | None:
        if failing[0]:
            failing[0] -= 1
            raise BusError("KV unavailable")
        return await real_load()

    store.load = load  # type: ignore[method-assign]
    events = await run_source(CATCHUP, store, now=at(2026, 12, 6, 13, 0, 15), count=2)
    assert times(events)[0] == "2026-12-06 13:00:10 +0000 UTC"
    assert caplog.text.count("KV unavailable; starting again") == 2

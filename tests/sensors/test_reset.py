"""conditionsReset.byTime schedules: 5-field cron, IANA zone, the previous tick at or before now."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from sensorium.sensors.reset import ResetSchedule, cutoff


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def test_previous_tick_in_time_zone() -> None:
    schedule = ResetSchedule.compile("59 23 * * *", "America/Los_Angeles")
    assert schedule.previous_tick(utc(2026, 11, 22, 12, 0)) == utc(2026, 11, 22, 7, 59)  # 23:59 PST on the 21st
    assert schedule.previous_tick(utc(2026, 11, 23, 7, 59)) == utc(2026, 11, 23, 7, 59)  # a tick at now counts
    assert schedule.previous_tick(utc(2026, 11, 23, 7, 58, 59)) == utc(2026, 11, 22, 7, 59)


def test_cutoff_is_latest_of_several_schedules() -> None:
    hourly = ResetSchedule.compile("0 * * * *", "UTC")
    daily = ResetSchedule.compile("30 6 * * *", "UTC")
    assert cutoff((hourly, daily), utc(2026, 1, 1, 6, 45)) == utc(2026, 1, 1, 6, 30)
    assert cutoff((), utc(2026, 1, 1)) is None


@pytest.mark.parametrize("cron", ["@daily", "0 0 * * * *", "* * *", "61 * * * *", "x * * * *"])
def test_invalid_cron_is_rejected(cron: str) -> None:
    with pytest.raises(ValueError, match="invalid cron expression"):
        ResetSchedule.compile(cron, None)


def test_invalid_timezone_is_rejected() -> None:
    with pytest.raises(ValueError, match="invalid timezone 'Mars/Olympus'"):
        ResetSchedule.compile("0 0 * * *", "Mars/Olympus")

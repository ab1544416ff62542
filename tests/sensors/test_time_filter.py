"""Time filters (semantics reference section 2.5).

The tables are upstream's filter_time_test.go (TestFilterTime, TestFilterTimeWithTimezone) written as data.
"""

from __future__ import annotations

import pytest

from sensorium.sensors.filters import time_filter
from sensorium.sensors.spec import TimeFilter
from sensorium.sensors.timefilter import (
    TimeFilterError,
    check_time,
    format_instant,
    parse_clock,
    parse_event_time,
    validate_time_filter,
)
from tests.sensors.builders import event

DAY = "2024-07-15"
EVENT_TIMES = ["00:00:00", "04:05:06", "08:09:10", "12:13:14", "16:17:18", "20:21:22"]


def at(clock: str, day: str = DAY) -> str:
    return f"{day}T{clock}Z"


def spec(start: str, stop: str, timezone: str = "") -> TimeFilter:
    return TimeFilter(start=start, stop=stop, timezone=timezone)


@pytest.mark.parametrize(("start", "stop", "expected"), [
    ("08:09:10", "16:17:18", [False, False, True, True, False, False]),  # [time1, time2)
    ("16:17:18", "08:09:10", [True, True, False, False, True, True]),  # [, time1) and [time2, )
])
def test_upstream_filter_time(start: str, stop: str, expected: list[bool]) -> None:
    got = [time_filter(spec(start, stop), event({}, time=at(t))).passed for t in EVENT_TIMES]
    assert got == expected
    assert all(time_filter(spec(start, stop), event({}, time=at(t))).error is None for t in EVENT_TIMES)


def test_no_time_filter_passes() -> None:
    assert all(time_filter(None, event({}, time=at(t))).passed for t in EVENT_TIMES)


@pytest.mark.parametrize(("event_time", "start", "stop", "timezone", "expected"), [
    ("2024-07-15T10:00:00Z", "09:00:00", "17:00:00", "", True),  # UTC default
    ("2024-07-15T14:00:00Z", "09:00:00", "17:00:00", "America/New_York", True),  # 10:00 EDT
    ("2024-07-15T12:00:00Z", "09:00:00", "17:00:00", "America/New_York", False),  # 08:00 EDT, too early
    ("2024-07-15T22:00:00Z", "09:00:00", "17:00:00", "America/New_York", False),  # 18:00 EDT, too late
    ("2024-07-15T10:00:00Z", "10:00:00", "18:00:00", "Europe/London", True),  # 11:00 BST
    ("2024-07-15T01:00:00Z", "09:00:00", "17:00:00", "Asia/Tokyo", True),  # 10:00 JST
    ("2024-07-15T02:00:00Z", "22:00:00", "06:00:00", "America/New_York", True),  # 22:00 EDT the day before
    ("2024-01-15T15:00:00Z", "09:00:00", "17:00:00", "America/New_York", True),  # 10:00 EST
])
def test_upstream_filter_time_with_timezone(event_time: str, start: str, stop: str, timezone: str,
                                            expected: bool) -> None:
    verdict = time_filter(spec(start, stop, timezone), event({}, time=event_time))
    assert (verdict.passed, verdict.error) == (expected, None)


def test_invalid_timezone_is_an_error() -> None:
    verdict = time_filter(TimeFilter.model_construct(start="09:00:00", stop="17:00:00", timezone="Invalid/Timezone"),
                          event({}, time="2024-07-15T10:00:00Z"))
    assert (verdict.passed, verdict.error) == (
        False, "time filter error (invalid timezone 'Invalid/Timezone': unknown time zone Invalid/Timezone)")


def test_start_inclusive_stop_exclusive_with_nanoseconds() -> None:
    window = spec("09:00:00", "17:00:00")
    assert time_filter(window, event({}, time="2024-07-15T09:00:00Z")).passed is True
    assert time_filter(window, event({}, time="2024-07-15T08:59:59.999999999Z")).passed is False
    assert time_filter(window, event({}, time="2024-07-15T16:59:59.999999999Z")).passed is True
    assert time_filter(window, event({}, time="2024-07-15T17:00:00Z")).passed is False


def test_fractional_bounds_and_offsets_in_the_event_time() -> None:
    assert time_filter(spec("09:00:00.5", "10:00:00"), event({}, time="2024-07-15T09:00:00.4Z")).passed is False
    comma = TimeFilter.model_construct(start="09:00:00,5", stop="10:00:00", timezone="")  # Go accepts ","
    assert time_filter(comma, event({}, time="2024-07-15T09:00:00.5Z")).passed is True
    # 11:30+02:00 is 09:30 UTC
    assert time_filter(spec("9:00:00", "10:00:00"), event({}, time="2024-07-15T11:30:00+02:00")).passed is True


def test_window_across_midnight_uses_the_event_date() -> None:
    window = spec("22:00:00", "02:00:00")
    assert [time_filter(window, event({}, time=at(t))).passed
            for t in ["21:59:59", "22:00:00", "23:59:59", "00:00:00", "01:59:59", "02:00:00"]] == [
        False, True, True, True, True, False]


def test_the_detail_names_the_instants_compared() -> None:
    verdict = time_filter(spec("09:00:00", "17:00:00", "America/New_York"), event({}, time="2024-07-15T14:00:00Z"))
    (d,) = verdict.details
    assert (d.seen, d.wanted, d.passed) == (
        "2024-07-15T10:00:00-04:00", ("2024-07-15T09:00:00-04:00", "2024-07-15T17:00:00-04:00"), True)
    assert d.reason == ("2024-07-15T10:00:00-04:00 is inside [2024-07-15T09:00:00-04:00, "
                        "2024-07-15T17:00:00-04:00)")


def test_event_without_time_is_go_zero_time() -> None:
    # Argo reads a missing time as 0001-01-01T00:00:00Z: midnight, so only windows containing 00:00 pass
    assert time_filter(spec("09:00:00", "17:00:00"), event({})).passed is False
    verdict = time_filter(spec("22:00:00", "06:00:00"), event({}))
    assert verdict.passed is True
    assert verdict.reason.endswith("(the event has no time attribute; Argo reads Go's zero time)")
    assert time_filter(spec("00:00:00", "01:00:00"), event({})).passed is True
    # in New York that instant is 0000-12-31 19:03:58 local mean time (-4:56:02)
    assert time_filter(spec("19:00:00", "20:00:00", "America/New_York"), event({})).passed is True


def test_unparsable_event_time_is_an_error() -> None:
    verdict = time_filter(spec("09:00:00", "17:00:00"), event({}, time="yesterday"))
    assert (verdict.passed, verdict.error) == (
        False, "time filter error (the event time 'yesterday' is not an RFC 3339 timestamp)")


@pytest.mark.parametrize(("clock", "message"), [
    ("09:09:0", 'parsing time "2024-07-15 09:09:0" as "2006-01-02 15:04:05": cannot parse "0" as "05"'),
    ("10:10", 'parsing time "2024-07-15 10:10" as "2006-01-02 15:04:05": cannot parse "" as ":"'),
    ("24:00:00", 'parsing time "2024-07-15 24:00:00": hour out of range'),
    ("10:60:00", 'parsing time "2024-07-15 10:60:00": minute out of range'),
    ("10:00:60", 'parsing time "2024-07-15 10:00:60": second out of range'),
    ("9:5:00", 'parsing time "2024-07-15 9:5:00" as "2006-01-02 15:04:05": cannot parse "5:00" as "04"'),
    ("x", 'parsing time "2024-07-15 x" as "2006-01-02 15:04:05": cannot parse "x" as "15"'),
    ("123:00:00", 'parsing time "2024-07-15 123:00:00" as "2006-01-02 15:04:05": cannot parse "3:00:00" as ":"'),
    ("10:00:00 pm", 'parsing time "2024-07-15 10:00:00 pm": extra text: " pm"'),
    ("10:00:00é", 'parsing time "2024-07-15 10:00:00\\xc3\\xa9": extra text: "\\xc3\\xa9"'),
])
def test_go_clock_parse_errors(clock: str, message: str) -> None:
    with pytest.raises(TimeFilterError) as info:
        parse_clock(clock, (2024, 7, 15))
    assert str(info.value) == message


@pytest.mark.parametrize("clock", ["9:00:00", "09:00:00", "  09:00:00", "23:59:59", "09:00:00.123456789123",
                                   "00:00:00,5"])
def test_go_clock_accepts(clock: str) -> None:
    parse_clock(clock, (2024, 7, 15))


def test_upstream_filter_test_error_case_at_runtime() -> None:
    # filter_test.go "test error": start "09:09:0" (the spec model refuses it at load; Argo fails per event)
    window = TimeFilter.model_construct(start="09:09:0", stop="19:19:19", timezone="")
    verdict = time_filter(window, event({"k": "v"}, time="2024-07-15T16:36:34Z"))
    assert verdict.passed is False
    assert verdict.error == ('time filter error (parsing time "2024-07-15 09:09:0" as "2006-01-02 15:04:05": '
                             'cannot parse "0" as "05")')


def test_dst_gap_is_read_like_go_time_date() -> None:
    # 02:30 does not exist on 2024-03-10 in New York; Go's time.Date gives 01:30 EST (06:30 UTC)
    check = check_time("02:30:00", "03:30:00", "America/New_York", "2024-03-10T06:45:00Z")
    assert (check.start, check.passed) == ("2024-03-10T01:30:00-05:00", True)


def test_controller_validation() -> None:
    validate_time_filter("09:00:00", "17:00:00", "Europe/Paris")
    with pytest.raises(TimeFilterError, match=r"^invalid event time filter: stop '9:00:00' is equal to start "
                                              r"'09:00:00'$"):
        validate_time_filter("09:00:00", "9:00:00", "")
    with pytest.raises(TimeFilterError, match="hour out of range"):
        validate_time_filter("24:00:00", "09:00:00", "")
    with pytest.raises(TimeFilterError, match=r"^invalid timezone 'Mars/Base': unknown time zone Mars/Base$"):
        validate_time_filter("08:00:00", "09:00:00", "Mars/Base")


def test_event_time_parsing() -> None:
    assert parse_event_time("1970-01-01T00:00:01.5Z") == 1_500_000_000
    assert parse_event_time("1970-01-01T01:00:00+01:00") == 0
    assert format_instant(parse_event_time("2024-07-15T10:00:00.25Z"), None) == "2024-07-15T10:00:00.25Z"

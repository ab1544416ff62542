"""Time filters (section 2.5 of the semantics reference): is the event's `time` inside [start, stop)?

Ports Argo's filterTime (filter.go) and ParseTime / ParseTimeInTimezone (pkg/shared/util/time.go):

* `start`/`stop` are parsed with Go's `time.Parse("2006-01-02 15:04:05", "<date> <value>")`, where `<date>` is
  the event's calendar date in UTC, or in `timezone` when set (the event time converted to that zone). So the
  hour has 1 or 2 digits, minutes and seconds exactly 2, a fraction after the seconds is accepted
  (`09:00:00.5` or `09:00:00,5`), leading spaces are skipped, and `09:09:0`, `10:10`, `24:00:00` are errors
  with Go's messages (`parsing time "2024-07-15 24:00:00": hour out of range`);
* wall times are turned into instants like Go's `time.Date` (a wall time skipped by a DST change is read with
  the offset that applied before the change, as Go does);
* `start < stop`: pass iff start <= t < stop; otherwise the window crosses midnight: pass iff t >= start or
  t < stop, both taken on the event's own date (so with equal bounds every event passes);
* instants are integers of nanoseconds, so RFC 3339 nano times compare exactly.

An event without a `time` attribute is evaluated as Go's zero time (0001-01-01T00:00:00Z), which is what Argo's
`event.Context.Time` holds then. A `time` that is not an RFC 3339 timestamp is an error: the CloudEvents SDK
Argo uses would not have decoded such an event at all, so it never passes.
"""

from __future__ import annotations

import re
import zoneinfo
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache

from sensorium.engine.goport.civil import days_from_civil
from sensorium.engine.goport.strconv import time_quote

_NS = 1_000_000_000
_DAY = 86_400
_LAYOUT = "2006-01-02 15:04:05"
ZERO_TIME_NS = (-719162 * _DAY) * _NS  # 0001-01-01T00:00:00Z
_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?([Zz]|[+-]\d{2}:\d{2})", re.ASCII)
_MIN_LOOKUP = -5364662400  # 1800-01-01: no zone has a transition before this
_MAX_LOOKUP = 253370764800  # 9999-01-01


class TimeFilterError(ValueError):
    """A time filter Argo cannot evaluate; the message is Argo's (without the "time filter error" wrapper)."""




def _civil_from_days(z: int) -> tuple[int, int, int]:
    z += 719468
    era = (z if z >= 0 else z - 146096) // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    y = yoe + era * 400
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    d = doy - (153 * mp + 2) // 5 + 1
    m = mp + (3 if mp < 10 else -9)
    return y + (m <= 2), m, d


@lru_cache(maxsize=64)
def load_location(name: str) -> zoneinfo.ZoneInfo | None:
    """Go's time.LoadLocation: None for UTC ("", "UTC", and "Local", which is UTC in a sensor container);
    TimeFilterError with Argo's message for an unknown zone."""
    if name in ("", "UTC", "Local"):
        return None
    if ".." in name or name.startswith(("/", "\\")):
        raise TimeFilterError(f"invalid timezone '{name}': time: invalid location name")
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        raise TimeFilterError(f"invalid timezone '{name}': unknown time zone {name}") from None


def _offset(zone: zoneinfo.ZoneInfo | None, unix: int) -> int:
    """UTC offset in seconds of `zone` at the instant `unix` (seconds)."""
    if zone is None:
        return 0
    clamped = min(max(unix, _MIN_LOOKUP), _MAX_LOOKUP)
    delta = datetime.fromtimestamp(clamped, tz=zone).utcoffset()
    return 0 if delta is None else int(delta.total_seconds())


def _wall_to_unix(zone: zoneinfo.ZoneInfo | None, wall: int) -> int:
    """Go's time.Date: a wall clock (seconds, as if UTC) in `zone` to Unix seconds."""
    offset = _offset(zone, wall)
    if offset != 0:
        offset = _offset(zone, wall - offset)
    return wall - offset


def _getnum(value: str, fixed: bool) -> tuple[int, str] | None:
    if not value[:1].isdigit() or not value[:1].isascii():
        return None
    if not value[1:2].isdigit() or not value[1:2].isascii():
        return None if fixed else (int(value[0]), value[1:])
    return int(value[:2]), value[2:]


def parse_clock(text: str, date: tuple[int, int, int]) -> int:
    """Go's time.Parse("2006-01-02 15:04:05", "<date> <text>") -> nanoseconds of wall clock since the Unix
    epoch of that date (not yet placed in a zone). TimeFilterError with Go's message."""
    y, m, d = date
    full = f"{y:04d}-{m:02d}-{d:02d} {text}"

    def cannot(rest: str, elem: str) -> TimeFilterError:
        return TimeFilterError(f"parsing time {time_quote(full)} as {time_quote(_LAYOUT)}: cannot parse "
                               f"{time_quote(rest)} as {time_quote(elem)}")

    def out_of_range(what: str) -> TimeFilterError:
        return TimeFilterError(f"parsing time {time_quote(full)}: {what} out of range")

    value = " " + text
    value = value.lstrip(" ")  # layout " " matches one or more spaces
    parts: list[int] = []
    for elem, fixed, limit, name in (("15", False, 24, "hour"), ("04", True, 60, "minute"),
                                     ("05", True, 60, "second")):
        if elem != "15":
            if not value.startswith(":"):
                raise cannot(value, ":")
            value = value[1:]
        got = _getnum(value, fixed)
        if got is None:
            raise cannot(value, elem)
        number, value = got
        if number >= limit:
            raise out_of_range(name)
        parts.append(number)
    nanos = 0
    if len(value) >= 2 and value[0] in ".," and value[1].isdigit() and value[1].isascii():
        n = 2
        while n < len(value) and value[n].isdigit() and value[n].isascii():
            n += 1
        digits = value[1:min(n, 10)]
        nanos = int(digits) * 10 ** (9 - len(digits))
        value = value[n:]
    if value:
        raise TimeFilterError(f"parsing time {time_quote(full)}: extra text: {time_quote(value)}")
    hour, minute, second = parts
    wall = days_from_civil(y, m, d) * _DAY + hour * 3600 + minute * 60 + second
    return wall * _NS + nanos


def parse_event_time(text: str) -> int:
    """The CloudEvent `time` (RFC 3339, nanosecond precision) as Unix nanoseconds; "" gives Go's zero time."""
    if text == "":
        return ZERO_TIME_NS
    m = _RFC3339.fullmatch(text)
    if m is None:
        raise TimeFilterError(f"the event time {text!r} is not an RFC 3339 timestamp")
    y, mo, d, h, mi, s = (int(m.group(i)) for i in range(1, 7))
    if not (1 <= mo <= 12 and 1 <= d <= 31 and h < 24 and mi < 60 and s < 60):
        raise TimeFilterError(f"the event time {text!r} is not an RFC 3339 timestamp")
    frac = (m.group(7) or "")[:9]
    nanos = int(frac) * 10 ** (9 - len(frac)) if frac else 0
    zone = m.group(8)
    offset = 0 if zone in ("Z", "z") else (int(zone[1:3]) * 3600 + int(zone[4:6]) * 60) * (-1 if zone[0] == "-" else 1)
    unix = days_from_civil(y, mo, d) * _DAY + h * 3600 + mi * 60 + s - offset
    return unix * _NS + nanos


def format_instant(ns: int, zone: zoneinfo.ZoneInfo | None) -> str:
    """RFC 3339 text of an instant in a zone (for traces): 2024-07-15T10:00:00-04:00, fractions when present."""
    unix, nanos = divmod(ns, _NS)
    offset = _offset(zone, unix)
    local = unix + offset
    days, secs = divmod(local, _DAY)
    y, m, d = _civil_from_days(days)
    text = f"{y:04d}-{m:02d}-{d:02d}T{secs // 3600:02d}:{secs % 3600 // 60:02d}:{secs % 60:02d}"
    if nanos:
        text += "." + f"{nanos:09d}".rstrip("0")
    if offset == 0 and zone is None:
        return text + "Z"
    sign = "-" if offset < 0 else "+"
    return text + f"{sign}{abs(offset) // 3600:02d}:{abs(offset) % 3600 // 60:02d}"


def _bound(text: str, event_ns: int, zone: zoneinfo.ZoneInfo | None) -> int:
    unix = event_ns // _NS
    local_days = (unix + _offset(zone, unix)) // _DAY
    wall_ns = parse_clock(text, _civil_from_days(local_days))
    wall, nanos = divmod(wall_ns, _NS)
    return _wall_to_unix(zone, wall) * _NS + nanos


@dataclass(frozen=True)
class TimeCheck:
    """One time-filter decision with the instants compared (RFC 3339 in the filter's zone)."""

    passed: bool
    event: str
    start: str
    stop: str
    crosses_midnight: bool
    reason: str


def check_time(start: str, stop: str, timezone: str, event_time: str) -> TimeCheck:
    """filterTime: raises TimeFilterError (Argo's message) when a bound or the timezone is invalid."""
    zone = load_location(timezone)
    event_ns = parse_event_time(event_time)
    start_ns = _bound(start, event_ns, zone)
    stop_ns = _bound(stop, event_ns, zone)
    shown = [format_instant(ns, zone) for ns in (event_ns, start_ns, stop_ns)]
    note = "" if event_time else " (the event has no time attribute; Argo reads Go's zero time)"
    if start_ns < stop_ns:
        passed = start_ns <= event_ns < stop_ns
        reason = (f"{shown[0]} is {'inside' if passed else 'outside'} [{shown[1]}, {shown[2]})") + note
        return TimeCheck(passed, shown[0], shown[1], shown[2], False, reason)
    passed = event_ns >= start_ns or event_ns < stop_ns
    reason = (f"{shown[0]} is {'inside' if passed else 'outside'} the window crossing midnight: at or after "
              f"{shown[1]} or before {shown[2]}") + note
    return TimeCheck(passed, shown[0], shown[1], shown[2], True, reason)


def validate_time_filter(start: str, stop: str, timezone: str, now: datetime | None = None) -> None:
    """Argo's controller validation (validateEventTimeFilter): valid zone, parsable bounds, start != stop.
    Raises TimeFilterError."""
    zone = load_location(timezone)
    moment = now or datetime.now(UTC)
    event_ns = int(moment.timestamp()) * _NS
    start_ns = _bound(start, event_ns, zone)
    stop_ns = _bound(stop, event_ns, zone)
    if start_ns == stop_ns:
        raise TimeFilterError(f"invalid event time filter: stop '{stop}' is equal to start '{start}'")

"""Go time formatting for engine.goport.template (kernel): `time.Time.Format` layouts and `time.Time.String`.

Layout elements follow Go's nextStdChunk: 2006 06 01 1 Jan January 02 2 _2 002 __2 Mon Monday 15 03 3 04 4 05 5
PM pm MST -0700 -07:00 -07 -070000 -07:00:00 Z0700 Z07:00 Z07 Z070000 Z07:00:00 and fractional seconds
.000/,000 (fixed) and .999/,999 (trailing zeros trimmed). Python keeps microseconds, so nanosecond digits past
the sixth are zeros.
"""

from __future__ import annotations

from datetime import datetime, timedelta

RFC3339_NANO = "2006-01-02T15:04:05.999999999Z07:00"
_STRING_LAYOUT = "2006-01-02 15:04:05.999999999 -0700 MST"
_MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
           "November", "December"]
_DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
_ZONES = ("Z070000", "Z07:00:00", "Z0700", "Z07:00", "Z07", "-070000", "-07:00:00", "-0700", "-07:00", "-07")


def _chunk(layout: str, i: int) -> tuple[str, int] | None:
    """The layout element starting at layout[i] and its length, or None for a literal character."""
    rest = layout[i:]
    c = rest[0]

    def lower_follows(k: int) -> bool:
        return len(rest) > k and "a" <= rest[k] <= "z"

    if c == "J" and rest.startswith("Jan"):
        if rest.startswith("January"):
            return "January", 7
        return ("Jan", 3) if not lower_follows(3) else None
    if c == "M":
        if rest.startswith("Mon"):
            if rest.startswith("Monday"):
                return "Monday", 6
            if not lower_follows(3):
                return "Mon", 3
        if rest.startswith("MST"):
            return "MST", 3
        return None
    if c == "0":
        if len(rest) >= 2 and "1" <= rest[1] <= "6":
            return rest[:2], 2
        if rest.startswith("002"):
            return "002", 3
        return None
    if c == "1":
        return ("15", 2) if rest.startswith("15") else ("1", 1)
    if c == "2":
        return ("2006", 4) if rest.startswith("2006") else ("2", 1)
    if c == "_":
        if rest.startswith("_2"):
            if rest.startswith("_2006"):
                return None  # a literal "_" followed by the year
            return "_2", 2
        if rest.startswith("__2"):
            return "__2", 3
        return None
    if c in "345":
        return c, 1
    if c == "P" and rest.startswith("PM"):
        return "PM", 2
    if c == "p" and rest.startswith("pm"):
        return "pm", 2
    if c in "-Z":
        for z in _ZONES:
            if z[0] == c and rest.startswith(z):
                return z, len(z)
        return None
    if c in ".," and len(rest) >= 2 and rest[1] in "09":
        j = 1
        while j < len(rest) and rest[j] == rest[1]:
            j += 1
        if not (j < len(rest) and rest[j].isdigit()):
            return rest[:j], j
    return None


def _zone(t: datetime, style: str) -> str:
    offset = t.utcoffset() or timedelta(0)
    secs = int(offset.total_seconds())
    if style[0] == "Z" and secs == 0:
        return "Z"
    sign = "-" if secs < 0 else "+"
    secs = abs(secs)
    hh, mm, ss = secs // 3600, secs // 60 % 60, secs % 60
    body = style[1:]
    if body == "07":
        return f"{sign}{hh:02d}"
    if body == "0700":
        return f"{sign}{hh:02d}{mm:02d}"
    if body == "07:00":
        return f"{sign}{hh:02d}:{mm:02d}"
    if body == "070000":
        return f"{sign}{hh:02d}{mm:02d}{ss:02d}"
    return f"{sign}{hh:02d}:{mm:02d}:{ss:02d}"


def _zone_name(t: datetime) -> str:
    """The zone abbreviation; an unnamed fixed offset prints as -0700 like Go."""
    name = t.tzname() or ""
    if name and not name.startswith(("UTC+", "UTC-")):
        return name
    offset = int((t.utcoffset() or timedelta(0)).total_seconds()) // 60
    sign = "-" if offset < 0 else "+"
    offset = abs(offset)
    return f"{sign}{offset // 60:02d}{offset % 60:02d}"


def format_time(t: datetime, layout: str) -> str:
    """Go's time.Time.Format(layout)."""
    out: list[str] = []
    i = 0
    while i < len(layout):
        found = _chunk(layout, i)
        if found is None:
            out.append(layout[i])
            i += 1
            continue
        std, size = found
        i += size
        hour12 = t.hour % 12 or 12
        match std:
            case "2006":
                out.append(f"{t.year:04d}")
            case "06":
                out.append(f"{t.year % 100:02d}")
            case "January":
                out.append(_MONTHS[t.month - 1])
            case "Jan":
                out.append(_MONTHS[t.month - 1][:3])
            case "1":
                out.append(str(t.month))
            case "01":
                out.append(f"{t.month:02d}")
            case "Monday":
                out.append(_DAYS[t.weekday()])
            case "Mon":
                out.append(_DAYS[t.weekday()][:3])
            case "2":
                out.append(str(t.day))
            case "_2":
                out.append(f"{t.day:2d}")
            case "02":
                out.append(f"{t.day:02d}")
            case "002":
                out.append(f"{t.timetuple().tm_yday:03d}")
            case "__2":
                out.append(f"{t.timetuple().tm_yday:3d}")
            case "15":
                out.append(f"{t.hour:02d}")
            case "3":
                out.append(str(hour12))
            case "03":
                out.append(f"{hour12:02d}")
            case "4":
                out.append(str(t.minute))
            case "04":
                out.append(f"{t.minute:02d}")
            case "5":
                out.append(str(t.second))
            case "05":
                out.append(f"{t.second:02d}")
            case "PM":
                out.append("PM" if t.hour >= 12 else "AM")
            case "pm":
                out.append("pm" if t.hour >= 12 else "am")
            case "MST":
                out.append(_zone_name(t))
            case _ if std[0] in "-Z":
                out.append(_zone(t, std))
            case _:  # fractional seconds
                digits = f"{t.microsecond:06d}000"[:len(std) - 1]
                if std[1] == "9":
                    digits = digits.rstrip("0")
                    out.append(std[0] + digits if digits else "")
                else:
                    out.append(std[0] + digits)
    return "".join(out)


def time_string(t: datetime) -> str:
    """Go's time.Time.String() (without the monotonic clock reading `m=+...` that time.Now() values carry)."""
    return format_time(t, _STRING_LAYOUT)

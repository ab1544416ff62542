"""Go durations, one parser: `time.ParseDuration` and spf13/cast's `ToDuration` (how viper reads a duration).

Outputs are pinned by tests/goport/test_strconv.py against a table printed by Go itself. Imports nothing from the
project but engine.goport.strconv (Go's time.quote for the error texts).
"""

from __future__ import annotations

import re

from sensorium.engine.goport.strconv import time_quote

_UNITS: dict[str, int] = {
    "ns": 1, "us": 1_000, "\u00b5s": 1_000, "\u03bcs": 1_000, "ms": 1_000_000,
    "s": 1_000_000_000, "m": 60_000_000_000, "h": 3_600_000_000_000,
}
_PART = re.compile(r"([0-9]*)(?:\.([0-9]*))?([^0-9.]*)")


def parse_duration(text: str) -> int:
    """Go `time.ParseDuration` ("1.5s", "300ms", "1h2m"): nanoseconds, or ValueError with Go's message."""
    orig, s, neg = text, text, False
    if s[:1] in ("-", "+"):
        neg, s = s[0] == "-", s[1:]
    if s == "0":
        return 0
    if s == "":
        raise ValueError("time: invalid duration " + time_quote(orig))
    total = 0
    while s:
        if not (s[0] == "." or (s[0].isascii() and s[0].isdigit())):
            raise ValueError("time: invalid duration " + time_quote(orig))
        m = _PART.match(s)
        assert m is not None
        whole, frac, unit = m.group(1), m.group(2), m.group(3)
        if whole == "" and not frac:
            raise ValueError("time: invalid duration " + time_quote(orig))
        if unit == "":
            raise ValueError("time: missing unit in duration " + time_quote(orig))
        if unit not in _UNITS:
            raise ValueError(f"time: unknown unit {time_quote(unit)} in duration {time_quote(orig)}")
        scale = _UNITS[unit]
        value = int(whole or "0") * scale
        if frac:
            # Go: uint64(float64(f) * (float64(unit) / scale)) - same float arithmetic for the same rounding
            value += int(float(int(frac)) * (float(scale) / float(10 ** len(frac))))
        total += value
        s = s[m.end():]
    if total > 2**63 - 1:
        raise ValueError("time: invalid duration " + time_quote(orig))
    return -total if neg else total


def cast_to_duration(value: object) -> int:
    """spf13/cast `ToDurationE` (viper): nanoseconds. Numbers are nanoseconds; a string with no unit letter is
    nanoseconds too (`"300"` is `300ns`); any other string is `time.ParseDuration`. ValueError otherwise."""
    if isinstance(value, bool):
        raise ValueError(f"unable to cast {value!r} to a duration")
    if isinstance(value, int | float):
        return int(value)
    text = str(value)
    if not any(ch in text for ch in "nsuµmh"):
        text += "ns"
    return parse_duration(text)

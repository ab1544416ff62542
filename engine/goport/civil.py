"""Go's time package's calendar arithmetic (pure): days since the Unix epoch for any proleptic Gregorian date.

Go's `time.Date` accepts every year (0 and negative ones too); Python's `datetime` stops at year 1..9999, so dates
that Go reads (govaluate's date literals, time filters on odd inputs) are converted here instead.
"""

from __future__ import annotations


def days_from_civil(y: int, m: int, d: int) -> int:
    """Days since 1970-01-01 in the proleptic Gregorian calendar (any year, including 0 and negative years);
    Howard Hinnant's `days_from_civil` algorithm, the one Go's `time.Date` is equivalent to."""
    y -= m <= 2
    era = (y if y >= 0 else y - 399) // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468

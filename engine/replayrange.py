"""`sensorium replay`'s range flags turned into a `buses.base.ReplayRange`: one start (`--since`, `--from-time`,
`--from-sequence`, `--from-offset`), an optional end (`--until`), and the plain sentence (ConfigError, exit 2) for
flags that conflict, do not parse, or make an empty range. Pure: the time is passed in."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from sensorium.buses.base import ALL_PARTITIONS, ReplayRange
from sensorium.engine.core.errors import ConfigError
from sensorium.engine.goport.duration import parse_duration

STARTS = ("--since", "--from-time", "--from-sequence", "--from-offset")
_OFFSETS = re.compile(r"\d+:\d+(,\d+:\d+)*")
MAX_FLAG_CHARS = 200


def _when(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_duration_ago(flag: str, text: str, now: float) -> float:
    """`now` minus a Go duration (`90s`, `10m`, `24h`, `1h30m`)."""
    try:
        seconds = parse_duration(text) / 1e9
    except ValueError:
        raise ConfigError(f"{flag} {text[:MAX_FLAG_CHARS]!r} is not a duration such as 90s, 10m, 24h or "
                          "1h30m") from None
    if seconds <= 0:
        raise ConfigError(f"{flag} must be a positive duration, not {text[:MAX_FLAG_CHARS]!r}")
    return now - seconds


def parse_time(flag: str, text: str) -> float:
    """An RFC 3339 / ISO 8601 time (`2026-12-06T10:00:00Z`, `2026-12-06T11:00:00+01:00`, `2026-12-06`); a time
    without a zone is UTC."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ConfigError(f"{flag} {text[:MAX_FLAG_CHARS]!r} is not a time such as 2026-12-06T10:00:00Z") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def parse_until(text: str, now: float) -> float:
    """`--until`: a time, or a duration meaning that long ago (`--since 24h --until 1h`: from a day ago to an hour
    ago)."""
    if re.fullmatch(r"[0-9.]+[a-zµ]+([0-9.]+[a-zµ]+)*", text.strip()):
        return parse_duration_ago("--until", text.strip(), now)
    return parse_time("--until", text)


def parse_offsets(text: str) -> dict[int, int]:
    """`--from-offset`: `N` (every partition from offset N) or `PARTITION:OFFSET[,PARTITION:OFFSET]` (only
    those partitions)."""
    text = text.strip()
    if text.isdigit():
        return {ALL_PARTITIONS: int(text)}
    if len(text) <= MAX_FLAG_CHARS and _OFFSETS.fullmatch(text):
        pairs = [part.split(":") for part in text.split(",")]
        return {int(p): int(o) for p, o in pairs}
    raise ConfigError(f"--from-offset {text[:MAX_FLAG_CHARS]!r} is not OFFSET or PARTITION:OFFSET[,PARTITION:OFFSET] "
                      "(e.g. 120 or 0:120,2:75)")


def replay_range(since: str | None, from_time: str | None, from_sequence: str | None, from_offset: str | None,
                 until: str | None, now: float) -> ReplayRange:
    """The range the flags ask for. ConfigError (one plain sentence) when no start or several are given, a value
    does not parse, or the range is empty (it starts in the future, or at or after its end)."""
    given = [flag for flag, value in zip(STARTS, (since, from_time, from_sequence, from_offset), strict=True)
             if value is not None]
    if not given:
        raise ConfigError("say where the replay starts: --since DURATION, --from-time TIME, --from-sequence N "
                          "(JetStream) or --from-offset P (Kafka)")
    if len(given) > 1:
        raise ConfigError(f"{' and '.join(given)} conflict: give one start")
    end = parse_until(until, now) if until is not None else None
    start: float | None = None
    span = ReplayRange(until=end)
    if since is not None:
        start = parse_duration_ago("--since", since, now)
        span = ReplayRange(since=start, until=end)
    elif from_time is not None:
        start = parse_time("--from-time", from_time)
        span = ReplayRange(since=start, until=end)
    elif from_sequence is not None:
        if not from_sequence.strip().isdigit() or int(from_sequence) < 1:
            raise ConfigError(f"--from-sequence {from_sequence[:MAX_FLAG_CHARS]!r} is not a stream sequence "
                              "(1 or more)")
        span = ReplayRange(sequence=int(from_sequence), until=end)
    elif from_offset is not None:
        span = ReplayRange(offsets=parse_offsets(from_offset), until=end)
    if start is not None and start > now:
        raise ConfigError(f"the range starts at {_when(start)}, in the future: nothing to replay")
    if end is not None and end > now:
        end = None  # up to now: events stored after the replay starts are never read anyway
        span = ReplayRange(span.since, span.sequence, span.offsets, None)
    if start is not None and end is not None and start >= end:
        raise ConfigError(f"the range is empty: it starts at {_when(start)} and ends at {_when(end)}")
    return span

"""Argo's `calendar` event source: events on a cron `schedule` or at an `interval`, with Argo's event data.

The tick arithmetic follows Argo's (pkg/eventsources/sources/calendar): a `schedule` is a five-field cron
expression read in `timezone` (IANA, default UTC); an `interval` is a Go duration whose next tick is the last one
plus the interval, on whole seconds; a tick whose calendar date (in the schedule's zone) is one of the
`exclusionDates` (RFC 5545 `EXDATE:YYYYMMDDTHHMMSSZ[,...]`, compared by their UTC date as Argo does) is skipped.

The event's data is Argo's `{"eventTime": "<Go time.String()>", "metadata": {...}}`. `eventTime` is the tick's
scheduled time (Argo writes the moment its timer fired, a few microseconds later), so a tick is named the same
way whether it fires on time or late, on a catch-up.

Restarts: after each event is stored on the bus, the tick's time is saved in the bus's state store under
`calendar.<eventSource>.<eventName>`. On start, with `persistence.catchup.enabled`, every tick after the saved one
(no further back than `catchup.maxDuration`, when given, and at most `MAX_CATCHUP` ticks) is fired at once, in
order; without catch-up, the missed ticks are skipped and one log line counts them. An event's id is derived from
the source, the event name and the tick, so a tick published again after a crash between the publish and the
save is dropped by the bus's duplicate detection (JetStream) rather than fired twice.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterBadDateError, croniter
from pydantic import Field, field_validator, model_validator

from sensorium.engine.core.cloudevent import CloudEvent
from sensorium.engine.core.errors import SensoriumError
from sensorium.engine.core.specbase import ArgoModel, positive_duration
from sensorium.engine.goport.duration import parse_duration
from sensorium.sources.base import EntryTasks

__all__ = ["MAX_CATCHUP", "CalendarContext", "CalendarSource", "Clock", "StateOpener", "Tick", "TickStore",
           "catchup_start", "event_time", "missed_ticks"]

log = logging.getLogger("sensorium.sources.calendar")

MAX_CATCHUP = 10_000
"""At most this many missed ticks are fired (or counted) on one start; older ones are skipped with a log line."""

RETRY_MAX = 5.0  # seconds: the longest wait between attempts to store a tick while the bus refuses it
_EXDATE = "EXDATE:"
_NAMESPACE = uuid.UUID("6f1d1a52-5b0e-4d8e-9d55-3c7a0c2f4b11")  # event ids: uuid5 of source/event/tick


class Catchup(ArgoModel):
    """`persistence.catchup`: fire the ticks missed while the engine was stopped."""

    enabled: bool = Field(default=False, description="Fire missed ticks on start (else they are skipped, logged).")
    max_duration: str | None = Field(default=None, description="Go duration: go back at most this far, e.g. 5m.")

    @field_validator("max_duration")
    @classmethod
    def _duration(cls, v: str | None) -> str | None:
        return positive_duration(v, "maxDuration") if v else None


class Persistence(ArgoModel):
    """`persistence`: the last fired tick is kept on the bus; Argo's `configMap` is accepted and not used."""

    catchup: Catchup | None = Field(default=None, description="Catch-up of missed ticks on start.")
    config_map: dict[str, object] | None = Field(
        default=None, description="Kubernetes only: the tick is stored on the event bus instead; ignored.")


class CalendarContext(ArgoModel):
    """One `spec.calendar.<eventName>` entry: events on a cron schedule or at an interval."""

    schedule: str | None = Field(default=None, description="Five-field cron expression, e.g. `*/5 * * * *`.")
    interval: str | None = Field(default=None, description="Go duration between ticks (at least 1s), e.g. `30s`; "
                                 "used when no schedule is given.")
    timezone: str | None = Field(default=None, description="IANA zone the schedule is read in (default UTC).")
    exclusion_dates: list[str] | None = Field(
        default=None, max_length=1000,
        description="Dates with no ticks, RFC 5545 `EXDATE:20261225T000000Z[,...]` (UTC date compared).")
    metadata: dict[str, str] | None = Field(default=None, description="Copied into the event data as `metadata`.")
    persistence: Persistence | None = Field(default=None, description="Catch-up of ticks missed while stopped.")
    filter: dict[str, object] | None = Field(default=None, description="Event source filter: not supported yet.")

    @field_validator("schedule")
    @classmethod
    def _cron(cls, v: str | None) -> str | None:
        if v:
            if len(v.split()) != 5 or not croniter.is_valid(v):
                raise ValueError(f"schedule {v[:100]!r} is not a five-field cron expression")
            try:
                croniter(v, datetime(2000, 1, 1, tzinfo=UTC)).get_next(datetime)
            except CroniterBadDateError:
                raise ValueError(f"schedule {v!r} never fires") from None
        return v or None

    @field_validator("interval")
    @classmethod
    def _interval(cls, v: str | None) -> str | None:
        if v and parse_duration(v) < 1_000_000_000:
            raise ValueError(f"interval must be at least 1s, got {v!r}")
        return v or None

    @field_validator("timezone")
    @classmethod
    def _zone(cls, v: str | None) -> str | None:
        if v:
            try:
                ZoneInfo(v)
            except (ZoneInfoNotFoundError, ValueError):
                raise ValueError(f"unknown IANA time zone {v[:100]!r}") from None
        return v or None

    @field_validator("exclusion_dates")
    @classmethod
    def _dates(cls, v: list[str] | None) -> list[str] | None:
        if v:
            exclusion_dates(v)
        return v

    @field_validator("filter")
    @classmethod
    def _filter(cls, v: dict[str, object] | None) -> dict[str, object] | None:
        if v is not None:
            raise ValueError("event source filters are not supported yet; filter in the sensor instead")
        return v

    @model_validator(mode="after")
    def _one(self) -> CalendarContext:
        if self.schedule is None and self.interval is None:
            raise ValueError("a calendar entry needs a schedule or an interval")
        return self

    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone or "UTC")

    def catchup(self) -> Catchup | None:
        """The catch-up settings when enabled, else None."""
        c = self.persistence.catchup if self.persistence is not None else None
        return c if c is not None and c.enabled else None


def exclusion_dates(values: Sequence[str]) -> frozenset[date]:
    """The UTC dates of RFC 5545 `EXDATE:YYYYMMDDTHHMMSSZ[,...]` values; ValueError naming a bad one."""
    out: set[date] = set()
    for value in values:
        if not value.startswith(_EXDATE):
            raise ValueError(f"exclusion date {value[:60]!r} must start with {_EXDATE!r}")
        for item in value.removeprefix(_EXDATE).split(","):
            try:
                out.add(datetime.strptime(item, "%Y%m%dT%H%M%SZ").date())
            except ValueError:
                raise ValueError(f"exclusion date {item[:60]!r} is not YYYYMMDDTHHMMSSZ") from None
    return frozenset(out)


@dataclass(frozen=True)
class Tick:
    """The next-tick computation of one entry (pure: no clock)."""

    schedule: str | None
    interval_ns: int
    zone: ZoneInfo
    excluded: frozenset[date]

    @classmethod
    def of(cls, spec: CalendarContext) -> Tick:
        interval = parse_duration(spec.interval) if spec.interval and not spec.schedule else 0
        return cls(spec.schedule, interval, spec.zone(), exclusion_dates(spec.exclusion_dates or ()))

    def _raw_next(self, after: datetime) -> datetime:
        local = after.astimezone(self.zone)
        if self.schedule is not None:
            nxt: datetime = croniter(self.schedule, local).get_next(datetime)
            return nxt.astimezone(self.zone)
        # robfig/cron ConstantDelaySchedule: t + delay, minus t's sub-second part
        return local + timedelta(microseconds=self.interval_ns // 1000 - local.microsecond)

    def next(self, after: datetime) -> datetime:
        """The first tick strictly after `after` (aware), in the schedule's zone, skipping excluded dates."""
        t = self._raw_next(after)
        for _ in range(100_000):  # a schedule whose every tick is excluded must not spin forever
            if t.date() not in self.excluded:
                return t
            t = self._raw_next(t)
        raise SensoriumError(f"no tick outside the exclusion dates after {after.isoformat()}")


def event_time(t: datetime) -> str:
    """Go's `time.Time.String()` of `t` without the monotonic part: `2026-12-06 13:20:00 +0000 UTC`."""
    frac = f".{t.microsecond:06d}".rstrip("0") if t.microsecond else ""
    return f"{t:%Y-%m-%d %H:%M:%S}{frac} {t:%z} {t.tzname()}"


def catchup_start(last: datetime | None, now: datetime, catchup: Catchup | None) -> datetime:
    """Where the ticks start on a start at `now`: after the saved `last` tick with catch-up (no further back than
    its maxDuration), else `now` (Argo's getExecutionTime)."""
    if catchup is None or last is None:
        return now
    if catchup.max_duration is not None:
        oldest = now - timedelta(microseconds=parse_duration(catchup.max_duration) // 1000)
        return max(last, oldest)
    return last


def missed_ticks(tick: Tick, start: datetime, now: datetime, limit: int = MAX_CATCHUP) -> tuple[list[datetime], bool]:
    """The ticks after `start` up to `now` (inclusive), at most `limit` of them (the newest); True when more were
    cut off."""
    out: list[datetime] = []
    cut = False
    t = tick.next(start)
    while t <= now:
        out.append(t)
        if len(out) > limit:
            out.pop(0)
            cut = True
        t = tick.next(t)
    return out, cut


class TickStore(Protocol):
    """Where the last fired tick is kept (a bus state store: `buses.base.StateStore`)."""

    async def load(self) -> bytes | None: ...

    async def save(self, snapshot: bytes) -> None: ...

    async def close(self) -> None: ...


StateOpener = Callable[[str], Awaitable[TickStore]]
"""Opens the state store of a name (`Bus.state_store`)."""


class Clock(Protocol):
    def now(self) -> datetime: ...

    async def sleep(self, seconds: float) -> None: ...


class _WallClock:
    def now(self) -> datetime:
        return datetime.now(UTC)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


@dataclass(frozen=True)
class _Entry:
    event_source: str
    event_name: str
    spec: CalendarContext

    @property
    def key(self) -> str:
        return f"calendar.{self.event_source}.{self.event_name}"


class CalendarSource:
    """Every calendar entry, one task each: catch up (or count the skipped ticks), then fire on time."""

    def __init__(self, entries: Sequence[tuple[str, str, CalendarContext]],
                 publish: Callable[[CloudEvent], Awaitable[None]], state: StateOpener | None,
                 clock: Clock | None = None) -> None:
        self.entries = [_Entry(*e) for e in entries]
        self.publish, self.state, self.clock = publish, state, clock or _WallClock()
        self._running: EntryTasks[TickStore] = EntryTasks()

    async def start(self) -> None:
        for entry in self.entries:
            await self._running.spawn(entry.key, self.state, functools.partial(self._supervised, entry))

    async def stop(self) -> None:
        await self._running.stop()

    async def _last(self, entry: _Entry, store: TickStore | None) -> datetime | None:
        if store is None:
            return None
        raw = await store.load()
        if not raw:
            return None
        try:
            return datetime.fromisoformat(json.loads(raw)["tick"])
        except (ValueError, KeyError, TypeError):
            log.warning("calendar %s: the saved last tick is unreadable; starting from now", entry.key)
            return None

    async def _supervised(self, entry: _Entry, store: TickStore | None) -> None:
        """`_run`, started again (after a pause doubling to RETRY_MAX) when the bus fails it: never a dead timer."""
        delay = 0.1
        while True:
            try:
                await self._run(entry, store)
            except SensoriumError as exc:
                log.error("calendar %s: %s; starting again in %gs", entry.key, exc, delay)
                await self.clock.sleep(delay)
                delay = min(RETRY_MAX, delay * 2)

    async def _run(self, entry: _Entry, store: TickStore | None) -> None:
        tick = Tick.of(entry.spec)
        now = self.clock.now()
        last = await self._last(entry, store)
        catchup = entry.spec.catchup()
        start = catchup_start(last, now, catchup)
        if last is not None:
            missed, cut = missed_ticks(tick, last if catchup is None else start, now)
            if catchup is None and missed:
                log.warning("calendar %s: %s%d tick(s) missed while stopped were skipped (from %s to %s); "
                            "persistence.catchup.enabled fires them", entry.key, "over " if cut else "",
                            len(missed), missed[0].isoformat(), missed[-1].isoformat())
            elif catchup is not None:
                if cut or start > last:
                    log.warning("calendar %s: ticks from %s to %s are older than the catch-up limit; skipped",
                                entry.key, last.isoformat(), (missed[0] if missed else start).isoformat())
                log.info("calendar %s: catching up %d missed tick(s)", entry.key, len(missed))
                for t in missed:
                    await self._fire(entry, store, t)
                start = missed[-1] if missed else start
        if catchup is None:
            start = now
        while True:
            t = tick.next(start)
            wait = (t - self.clock.now()).total_seconds()
            if wait > 0:
                await self.clock.sleep(wait)
            await self._fire(entry, store, t)
            start = t

    async def _fire(self, entry: _Entry, store: TickStore | None, t: datetime) -> None:
        """Publish the tick's event (retrying while the bus refuses it: a tick is not dropped), then save it."""
        data: dict[str, object] = {"eventTime": event_time(t)}
        if entry.spec.metadata:  # Go's `json:"metadata,omitempty"`
            data["metadata"] = entry.spec.metadata
        event = CloudEvent(id=str(uuid.uuid5(_NAMESPACE, f"{entry.key}@{t.isoformat()}")),
                           source=entry.event_source, type="calendar", subject=entry.event_name,
                           datacontenttype="application/json", time=_rfc3339(self.clock.now()),
                           data=json.dumps(data, separators=(",", ":")).encode())
        delay = 0.1
        while True:
            try:
                await self.publish(event)
                break
            except SensoriumError as exc:
                log.error("calendar %s: tick %s not stored, retrying in %gs: %s", entry.key, t.isoformat(),
                          delay, exc)
                await self.clock.sleep(delay)
                delay = min(RETRY_MAX, delay * 2)
        if store is not None:
            try:
                await store.save(json.dumps({"tick": t.astimezone(UTC).isoformat()}).encode())
            except SensoriumError as exc:
                log.error("calendar %s: tick %s fired but not saved (a restart may fire it again): %s",
                          entry.key, t.isoformat(), exc)


def _rfc3339(t: datetime) -> str:
    return t.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")

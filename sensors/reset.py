"""`conditionsReset.byTime`: when a trigger's stored partial matches expire (pure: time is passed in).

Argo clears a trigger's stored events at every tick of a 5-field cron (robfig/cron's standard parser: no
seconds, no `@daily` descriptors) in `timezone`, or the process's local zone when it is not set. Evaluated lazily
here: before a trigger's condition is evaluated at time `now`, events stored before the most recent tick at or
before `now` are dropped. That is the same decision as clearing at the tick, and it also covers Argo's start-up
rule (state stored before the previous tick is cleared) without a timer.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter


@dataclass(frozen=True)
class ResetSchedule:
    cron: str
    zone: tzinfo

    @classmethod
    def compile(cls, cron: str, timezone: str | None) -> ResetSchedule:
        """Raises ValueError with Argo-like messages for a bad cron or time zone."""
        fields = cron.split()
        if cron.strip().startswith("@") or len(fields) != 5:
            raise ValueError(f"invalid cron expression '{cron}': want 5 fields (minute hour day month weekday)")
        if not croniter.is_valid(cron):
            raise ValueError(f"invalid cron expression '{cron}'")
        if timezone:
            try:
                zone: tzinfo = ZoneInfo(timezone)
            except (ZoneInfoNotFoundError, ValueError):
                raise ValueError(f"invalid timezone '{timezone}'") from None
        else:
            local = datetime.now().astimezone().tzinfo
            assert local is not None
            zone = local
        return cls(cron, zone)

    def previous_tick(self, now: datetime) -> datetime:
        """The most recent tick at or before `now` (an aware datetime)."""
        # croniter's get_prev is strictly before its start: start just after `now` so a tick at `now` counts
        local = now.astimezone(self.zone) + timedelta(microseconds=1)
        tick: datetime = croniter(self.cron, local).get_prev(datetime)
        return tick


def cutoff(schedules: tuple[ResetSchedule, ...], now: datetime) -> datetime | None:
    """Events stored before this instant are expired; None when the trigger has no reset schedule."""
    if not schedules:
        return None
    return max(s.previous_tick(now) for s in schedules)

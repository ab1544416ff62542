"""Log trigger (Argo pkg/sensors/triggers/log): one log line per dependency event, `intervalSeconds` honoured.

Argo re-creates the trigger on every firing, so its interval never throttles anything; Sensorium keeps one
instance per trigger, so at most one firing per interval logs and the others are skipped (the outcome says
so). Each line carries the event data (raw text for application/json and text/plain, else base64), the
dependency name and the event context. Never fails.
"""

from __future__ import annotations

import base64
import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sensorium.engine.core.cloudevent import CloudEvent
from sensorium.triggers.outcome import FiringOutcome
from sensorium.triggers.params import context_json
from sensorium.triggers.ratelimit import RateLimiter
from sensorium.triggers.spec import Trigger

logger = logging.getLogger("sensorium.triggers.log")
_TEXT_TYPES = ("application/json", "text/plain")


@dataclass(frozen=True)
class LogLine:
    trigger: str
    dependency_name: str
    data: str
    event_context: Mapping[str, Any]


def data_string(event: CloudEvent) -> str:
    """Argo `Event.DataString()`."""
    data = event.data or b""
    if event.datacontenttype in _TEXT_TYPES:
        return data.decode("utf-8", "replace")
    return base64.b64encode(data).decode()


def _to_logger(line: LogLine) -> None:
    logger.info(line.data, extra={"trigger": line.trigger, "dependencyName": line.dependency_name,
                                  "eventContext": dict(line.event_context)})


class LogTrigger:
    kind = "log"

    def __init__(self, trigger: Trigger, *, sink: Callable[[LogLine], None] = _to_logger,
                 clock: Callable[[], float] = time.monotonic, limiter: RateLimiter | None = None) -> None:
        if trigger.template.log is None:
            raise ValueError(f"trigger {trigger.name} has no log trigger")
        self.name = trigger.name
        self.interval = float(trigger.template.log.interval_seconds)
        self._sink, self._clock = sink, clock
        if limiter is None and trigger.rate_limit is not None:
            limiter = RateLimiter(trigger.rate_limit.requests_per_unit, trigger.rate_limit.unit)
        self.limiter = limiter
        self._last: float | None = None

    async def fire(self, events: Mapping[str, CloudEvent]) -> FiringOutcome:
        if self.limiter is not None:
            await self.limiter.take()
        now = self._clock()
        if self.interval > 0 and self._last is not None and now - self._last <= self.interval:
            return FiringOutcome(
                self.name, self.kind, True, skipped=True,
                note=f"skipped: last logged {now - self._last:.3f}s ago, "
                     f"intervalSeconds is {self.interval:g}")
        try:
            for dependency, event in events.items():
                context = json.loads(context_json(event))
                self._sink(LogLine(self.name, dependency, data_string(event), context))
        except Exception as exc:  # a broken log sink must not fail the firing
            return FiringOutcome(self.name, self.kind, True, note=f"log sink failed: {type(exc).__name__}")
        self._last = now
        return FiringOutcome(self.name, self.kind, True, note=f"logged {len(events)} event(s)")

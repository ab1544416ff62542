"""What one firing of a trigger did: the value triggers return to the runner, the trace and `sensorium test`;
and `Fireable`, the one interface of a running trigger.

Never holds a secret: request headers are stored redacted (secure headers and basic auth shown as "***").
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Mapping
from typing import Protocol

import msgspec

from sensorium.engine.core.cloudevent import CloudEvent
from sensorium.triggers.params import ResolvedParam
from sensorium.triggers.policy import Verdict
from sensorium.triggers.retry import final_error

log = logging.getLogger("sensorium.triggers")


class RequestSummary(msgspec.Struct, frozen=True, gc=False):
    method: str
    url: str
    headers: tuple[tuple[str, str], ...]  # redacted
    body_bytes: int
    body_preview: str = ""  # the start of the body (event data, never a secret), for traces


class Attempt(msgspec.Struct, frozen=True, gc=False):
    """One attempt. `status` None when no response arrived; `delay_s` is the sleep before the next attempt
    (None for the last one); `waited_s` the time spent waiting for the rate limiter first; `at` when the attempt
    started (seconds since the epoch, after the rate limiter; 0.0: not known), so `at + latency_s` is when its
    response came; `response` the start of the body the target answered (`engine.core.preview`: bounded,
    credentials and the request's own secrets masked)."""

    number: int
    status: int | None
    latency_s: float
    error: str
    verdict: Verdict
    delay_s: float | None = None
    waited_s: float = 0.0
    at: float = 0.0
    response: str = ""


class FiringOutcome(msgspec.Struct, frozen=True):
    """`success` or a final `error` (Argo's `failed after retries: <last error>`); `skipped` firings did
    nothing on purpose (for example a log trigger inside its interval) and count as success, `note` says
    why."""

    trigger: str
    kind: str
    success: bool
    attempts: tuple[Attempt, ...] = ()
    error: str = ""
    request: RequestSummary | None = None
    skipped: bool = False
    note: str = ""
    dead_letter: FiringOutcome | None = None  # the dlqTrigger's firing, after this one finally failed
    params: tuple[ResolvedParam, ...] = ()  # every parameter resolved while building requests, with its value

    @property
    def last_status(self) -> int | None:
        return self.attempts[-1].status if self.attempts else None


def internal_error(trigger: str, kind: str, exc: Exception, params: tuple[ResolvedParam, ...] = ()) -> FiringOutcome:
    """The outcome of a firing a bug stopped: logged with where it happened (never the message, which may hold
    event data or a secret), failed as `internal error: <type>`, so the runner goes on."""
    where = "".join(traceback.format_tb(exc.__traceback__))
    log.error("trigger %s: internal error %s\n%s", trigger, type(exc).__name__, where)
    return FiringOutcome(trigger, kind, False, error=final_error(f"internal error: {type(exc).__name__}"),
                         params=params)


class Fireable(Protocol):
    """A running trigger, built once per trigger for the engine's lifetime: `fire` runs every attempt of one
    firing and returns what happened; it never raises but for cancellation (the runner dead-letters the event
    if it does)."""

    async def fire(self, events: Mapping[str, CloudEvent]) -> FiringOutcome: ...

"""What the message-queue triggers (nats, kafka) share: the message built from the `payload` parameters (the
kind's object re-read per firing when `parameters` edit it, as Argo's ApplyResourceParameters does), and the
attempts of one firing: rate limit, send, verdict, backoff, outcome. A kind says how to resolve its object, how
to send one message, and how the message looks in traces and dry runs (an `HttpRequest` with the kind's own
method: `PUB`, `PRODUCE`)."""

from __future__ import annotations

import abc
import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from typing import Generic, TypeVar

from pydantic import BaseModel

from sensorium.engine.core.cloudevent import CloudEvent
from sensorium.engine.core.errors import ConfigError, TriggerError
from sensorium.engine.core.secrets import Secrets
from sensorium.triggers.httprequest import HttpRequest, reparse
from sensorium.triggers.outcome import Attempt, FiringOutcome, RequestSummary, internal_error
from sensorium.triggers.params import (
    ParamError,
    PayloadPlan,
    ResolvedParam,
    apply_params,
    check_supported,
    marshal_ordered,
    spec_json,
)
from sensorium.triggers.policy import Verdict, VerdictKind
from sensorium.triggers.ratelimit import RateLimiter
from sensorium.triggers.retry import Backoff, RandomSource, final_error
from sensorium.triggers.spec import Trigger, TriggerParameter, TriggerTemplate

S = TypeVar("S", bound=BaseModel)

log = logging.getLogger("sensorium.triggers.message")


def check_spec(template: TriggerTemplate, trigger_params: Sequence[TriggerParameter] | None, kind: str) -> None:
    """Construction-time check of what a firing of the `kind` object evaluates; raises ConfigError."""
    check_supported(trigger_params, "parameters")
    spec = getattr(template, kind, None)
    if spec is None:
        raise ConfigError(f"trigger {template.name} has no {kind} trigger", field=f"trigger {template.name}")
    check_supported(spec.parameters, f"{kind}.parameters")
    check_supported(spec.payload, f"{kind}.payload")


def resolve_spec(template: TriggerTemplate, trigger_params: Sequence[TriggerParameter] | None,
                 events: Mapping[str, CloudEvent], used: list[ResolvedParam] | None, kind: str, model: type[S],
                 check: Callable[[S], object]) -> S:
    """The `kind` object one firing uses: trigger `parameters` applied to the template, then the object's own
    `parameters` to it (Argo's ApplyResourceParameters), then `check` (ValueError or ConfigError) on what they
    made, since a rewritten object is not validated at load. Raises ParamError."""
    if trigger_params:
        template = reparse(TriggerTemplate, apply_params(spec_json(template), trigger_params, events, used),
                           "trigger template")
    spec = getattr(template, kind, None)
    if not isinstance(spec, model):
        raise ParamError(f"trigger {template.name} has no {kind} trigger after applying parameters")
    edits = getattr(spec, "parameters", None)
    if edits:
        obj = spec.model_dump(mode="json", by_alias=True, exclude_unset=True)
        spec = reparse(model, apply_params(marshal_ordered(obj), edits, events, used), f"{kind} trigger resource")
    payload = getattr(spec, "payload", None)
    if payload is None:
        raise ParamError("payload parameters are not specified")
    try:
        check(spec)
        check_supported(payload, f"{kind}.payload")
    except (ValueError, ConfigError) as exc:
        raise ParamError(str(exc)) from None
    return spec


def mask(text: str, secrets: Sequence[str]) -> str:
    """`text` with each secret value (longest first) as `***`."""
    for value in sorted(secrets, key=len, reverse=True):
        if value:
            text = text.replace(value, "***")
    return text


class MessageTrigger(abc.ABC, Generic[S]):
    """One instance per trigger for the engine's lifetime (it owns the trigger's rate limiter). A kind names its
    template key (`kind`) and model (`model`), and checks what parameters made (`check`)."""

    kind = ""
    model: type[S]

    def __init__(self, trigger: Trigger, secrets: Secrets, *, rng: RandomSource | None = None,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
                 clock: Callable[[], float] = time.perf_counter, limiter: RateLimiter | None = None,
                 details: bool = True, timeout: float = 10.0) -> None:
        check_spec(trigger.template, trigger.parameters, self.kind)
        spec = getattr(trigger.template, self.kind)
        self.trigger, self.secrets, self.details, self.name = trigger, secrets, details, trigger.name
        self.backoff: Backoff = trigger.backoff()
        self.rng: RandomSource = rng if rng is not None else random.Random()
        self._sleep, self._clock, self._timeout = sleep, clock, timeout
        if limiter is None and trigger.rate_limit is not None:
            limiter = RateLimiter(trigger.rate_limit.requests_per_unit, trigger.rate_limit.unit)
        self.limiter = limiter
        # Without parameters the object, and so the payload's plan and its connection's key, are the same for
        # every firing: worked out once here, not per message.
        self._fixed = (spec, PayloadPlan(spec.payload)) if not trigger.parameters and not spec.parameters else None
        self._fixed_key = self.pool_key(spec) if self._fixed is not None else ""

    @classmethod
    @abc.abstractmethod
    def check(cls, spec: S) -> object:
        """What load-time validation would refuse in an object that parameters rewrote (ValueError)."""

    @classmethod
    def resolve(cls, template: TriggerTemplate, trigger_params: Sequence[TriggerParameter] | None,
                events: Mapping[str, CloudEvent], used: list[ResolvedParam] | None = None) -> S:
        """The object one firing uses (`resolve_spec`)."""
        return resolve_spec(template, trigger_params, events, used, cls.kind, cls.model, cls.check)

    def _message(self, events: Mapping[str, CloudEvent], used: list[ResolvedParam] | None) -> tuple[S, bytes]:
        if self._fixed is not None:
            spec, plan = self._fixed
            return spec, plan.build(events, used)
        spec = self.resolve(self.trigger.template, self.trigger.parameters, events, used)
        return spec, PayloadPlan(getattr(spec, "payload", None)).build(events, used)

    @classmethod
    @abc.abstractmethod
    def pool_key(cls, spec: S) -> str:
        """Which shared connection `spec` sends through (servers, TLS, credentials' references: no values)."""

    def _key(self, spec: S) -> str:
        """`pool_key(spec)`, without working it out again for the object every firing of a fixed trigger uses."""
        fixed = self._fixed
        return self._fixed_key if fixed is not None and spec is fixed[0] else self.pool_key(spec)

    @abc.abstractmethod
    async def _send(self, spec: S, body: bytes, secrets: list[str]) -> None:
        """One attempt: the message sent and confirmed; the secret values it reads go to `secrets` (masked in
        its error). Raises TriggerError (retryable or not)."""

    @abc.abstractmethod
    def target(self, spec: S) -> str:
        """Where the message goes, for messages (no credentials)."""

    @abc.abstractmethod
    def request(self, spec: S, body: bytes) -> HttpRequest:
        """The message as traces and dry runs show it."""

    @abc.abstractmethod
    def note(self, spec: S, body: bytes) -> str:
        """What a successful firing did, in a few words."""

    def _summary(self, message: tuple[S, bytes] | None) -> RequestSummary | None:
        return self.request(*message).summary() if message is not None and self.details else None

    async def fire(self, events: Mapping[str, CloudEvent]) -> FiringOutcome:
        """All attempts of one firing; never raises (except cancellation)."""
        used: list[ResolvedParam] | None = [] if self.details else None
        try:
            attempts: list[Attempt] = []
            delays: Iterator[float] | None = None
            message: tuple[S, bytes] | None = None
            steps = max(self.backoff.steps, 1)
            error = ""
            for number in range(1, steps + 1):
                waited = await self.limiter.take() if self.limiter is not None else 0.0
                at, start = time.time() if self.details else 0.0, self._clock()
                secrets: list[str] = []
                try:
                    if message is None:
                        message = self._message(events, used)
                    try:
                        async with asyncio.timeout(self._timeout):
                            await self._send(*message, secrets)
                    except TimeoutError:
                        raise TriggerError(f"{self.target(message[0])}: no confirmation within {self._timeout:g}s",
                                           retryable=True) from None
                    error, verdict = "", Verdict(VerdictKind.SUCCESS, "")
                except TriggerError as exc:
                    error = mask(str(exc), secrets)
                    verdict = Verdict(VerdictKind.RETRYABLE if exc.retryable else VerdictKind.TERMINAL, error)
                latency = self._clock() - start
                delay = None
                if verdict.retryable and number < steps:
                    if delays is None:
                        delays = self.backoff.delays(self.rng)
                    delay = next(delays)
                attempts.append(Attempt(number, None, latency, error, verdict, delay, waited, at))
                log.debug("trigger %s attempt %d: %s %s", self.name, number, verdict.kind, error)
                if verdict.ok:
                    assert message is not None
                    return FiringOutcome(self.name, self.kind, True, tuple(attempts), request=self._summary(message),
                                         note=self.note(*message), params=tuple(used) if used else ())
                if delay is None:
                    break
                await self._sleep(delay)
            return FiringOutcome(self.name, self.kind, False, tuple(attempts), error=final_error(error),
                                 request=self._summary(message), params=tuple(used) if used else ())
        except Exception as exc:  # a bug must not take the runner down
            return internal_error(self.name, self.kind, exc, tuple(used) if used else ())

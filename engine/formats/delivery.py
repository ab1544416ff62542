"""How translated subscriptions deliver (Kyma Subscriptions, Weik.io EventSubscriptions): one rule, written once.

Each subscription becomes a Sensor with one http trigger that sends the event as a CloudEvent
(`cloudEvent: binary|structured`, triggers.cloudevent_body), counts 2xx as success and retries every other status
and every transport error or timeout (`policy.status.retry: ["100-599"]`, as Kyma's dispatcher does), on RETRY:
8 attempts, waiting 1, 2, 4, 8, 16, 32 and 64 s (each up to 10% longer, jitter), about 2 minutes in all. A
delivery still failing after its last attempt is dead-lettered (`spec.consumer.deadLetter: true`): the event is
stored on `sensorium-dlq` with reason `undeliverable`, counted and logged, and only then acknowledged.

The schedule is the same for every translated subscription of a process; `$SENSORIUM_DELIVERY_ATTEMPTS` (1-30)
and `$SENSORIUM_DELIVERY_BACKOFF` (a Go duration, the first wait, 1ms-1h) change it when the configuration is
read (Kyma and Weik.io have no field for it: Kyma's is its eventing backend's setting).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from sensorium.engine.core.errors import ConfigError
from sensorium.engine.goport.duration import parse_duration
from sensorium.engine.located import Origin

ATTEMPTS_VARIABLE, BACKOFF_VARIABLE = "SENSORIUM_DELIVERY_ATTEMPTS", "SENSORIUM_DELIVERY_BACKOFF"
RETRY: dict[str, Any] = {"steps": 8, "duration": "1s", "factor": 2.0, "jitter": 0.1}
MAX_ATTEMPTS = 30
POLICY = {"status": {"allow": ["200-299"], "retry": ["100-599"]}}
TRANSLATED_FROM = "sensorium.io/translated-from"  # the annotation naming what a document was translated from


def retry_strategy(origin: Origin, environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The `retryStrategy` of a translated subscription's trigger: RETRY, or as the two variables say (module
    docstring). A bad value is a ConfigError at the subscription's line, naming the variable."""
    env = os.environ if environ is None else environ
    retry = dict(RETRY)
    attempts = env.get(ATTEMPTS_VARIABLE)
    if attempts is not None:
        if not attempts.strip().isdigit() or not 1 <= int(attempts) <= MAX_ATTEMPTS:
            raise ConfigError(f"${ATTEMPTS_VARIABLE} must be a whole number of attempts from 1 to {MAX_ATTEMPTS}, "
                              f"got {attempts[:40]!r}", origin.file, origin.line)
        retry["steps"] = int(attempts)
    backoff = env.get(BACKOFF_VARIABLE)
    if backoff is not None:
        try:
            nanos = parse_duration(backoff.strip())
        except ValueError:
            nanos = -1
        if not 1_000_000 <= nanos <= 3_600 * 10**9:
            raise ConfigError(f"${BACKOFF_VARIABLE} must be a Go duration from 1ms to 1h (e.g. 500ms, 2s), got "
                              f"{backoff[:40]!r}", origin.file, origin.line)
        retry["duration"] = backoff.strip()
    return retry


def consumer(name: str, max_in_flight: int | None = None) -> dict[str, Any]:
    """A translated subscription's own durable consumer (`spec.consumer`): a slow target holds up only it, and a
    delivery failing after its last attempt is dead-lettered."""
    return {"name": name, **({"maxInFlight": max_in_flight} if max_in_flight is not None else {}), "deadLetter": True}


def cloudevent_trigger(name: str, url: str, method: str, mode: str, retry: dict[str, Any],
                       conditions: str | None = None) -> dict[str, Any]:
    """An Argo `triggers[]` item (YAML data) delivering the firing's event as a `mode` CloudEvent to `url`, retried
    on `retry` (see `retry_strategy`)."""
    template: dict[str, Any] = {"name": name, "http": {"url": url, "method": method, "cloudEvent": mode}}
    if conditions:
        template["conditions"] = conditions
    return {"template": template, "retryStrategy": dict(retry), "policy": {"status": dict(POLICY["status"])}}

"""How translated subscriptions deliver (Kyma Subscriptions, Weik.io EventSubscriptions): one rule, written once.

Each subscription becomes a Sensor with one http trigger that sends the event as a CloudEvent
(`cloudEvent: binary|structured`, triggers.cloudevent_body), counts 2xx as success and retries anything else on
RETRY: 8 attempts, waiting 1, 2, 4, 8, 16, 32 and 64 s (each up to 10% longer, jitter), about 2 minutes in all;
then the firing is logged and counted as failed (`sensorium_trigger_firings_total{outcome="failed"}`) and the
event acknowledged. A 4xx other than 408 and 429 is not retried (the engine's status rule: it will not change).
"""

from __future__ import annotations

from typing import Any

RETRY: dict[str, Any] = {"steps": 8, "duration": "1s", "factor": 2.0, "jitter": 0.1}
SUCCESS = {"status": {"allow": ["200-299"]}}
TRANSLATED_FROM = "sensorium.io/translated-from"  # the annotation naming what a document was translated from


def consumer(name: str, max_in_flight: int | None = None) -> dict[str, Any]:
    """A translated subscription's own durable consumer (`spec.consumer`): a slow target holds up only it."""
    return {"name": name, **({"maxInFlight": max_in_flight} if max_in_flight is not None else {})}


def cloudevent_trigger(name: str, url: str, method: str, mode: str, conditions: str | None = None) -> dict[str, Any]:
    """An Argo `triggers[]` item (YAML data) delivering the firing's event as a `mode` CloudEvent to `url`."""
    template: dict[str, Any] = {"name": name, "http": {"url": url, "method": method, "cloudEvent": mode}}
    if conditions:
        template["conditions"] = conditions
    return {"template": template, "retryStrategy": dict(RETRY), "policy": SUCCESS}

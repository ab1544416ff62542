"""Small constructors for sensor-stage tests."""

from __future__ import annotations

import json
from typing import Any

from sensorium.engine.core.cloudevent import CloudEvent
from sensorium.sensors.spec import DataFilter, EventDependencyFilter, Sensor

_NO_DATA = object()


def event(data: Any = _NO_DATA, *, raw: bytes | None = None, source: str = "webhook",
          subject: str = "example", event_id: str = "e1", **attrs: Any) -> CloudEvent:
    """A CloudEvent whose data is `data` as compact JSON, or `raw` bytes, or absent."""
    body = raw if raw is not None else None if data is _NO_DATA else json.dumps(data).encode()
    return CloudEvent(id=event_id, source=source, type=attrs.pop("type", "webhook"), subject=subject,
                      datacontenttype=attrs.pop("datacontenttype", "application/json"), data=body, **attrs)


def data_filter(**fields: Any) -> DataFilter:
    fields.setdefault("path", "body.value")
    return DataFilter.model_validate(fields)


def filters(spec: dict[str, Any]) -> EventDependencyFilter:
    return EventDependencyFilter.model_validate(spec)


def dep(name: str, source: str = "webhook", subject: str = "example", **extra: Any) -> dict[str, Any]:
    return {"name": name, "eventSourceName": source, "eventName": subject, **extra}


def trigger(name: str, conditions: str | None = None) -> dict[str, Any]:
    template: dict[str, Any] = {"name": name, "log": {}}
    if conditions is not None:
        template["conditions"] = conditions
    return {"template": template}


def sensor(dependencies: list[dict[str, Any]], triggers: list[dict[str, Any]]) -> Sensor:
    return Sensor.model_validate({
        "apiVersion": "argoproj.io/v1alpha1", "kind": "Sensor", "metadata": {"name": "s"},
        "spec": {"dependencies": dependencies, "triggers": triggers}})

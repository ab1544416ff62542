"""Shared helpers for trigger tests."""

from __future__ import annotations

from typing import Any

from sensorium.engine.core.cloudevent import CloudEvent
from sensorium.triggers.spec import TriggerParameter


def event(data: bytes | None = b'{"a":1}', content_type: str = "application/json", **attrs: Any) -> CloudEvent:
    fields: dict[str, Any] = {"id": "e1", "source": "webhook", "type": "push", "subject": "sub",
                              "time": "2026-01-02T03:04:05.678Z"}
    fields.update(attrs)
    return CloudEvent(datacontenttype=content_type, data=data, **fields)


def param(dest: str = "x", operation: str = "", dep: str = "d", **src: Any) -> TriggerParameter:
    return TriggerParameter.model_validate(
        {"src": {"dependencyName": dep, **src}, "dest": dest, "operation": operation})

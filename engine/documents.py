"""The three Argo document kinds as loaded from YAML (composition root: imports every spec package).

The Sensor document model lives with the sensor stage (`sensors.spec.Sensor`).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from sensorium.buses.spec import EventBusSpec
from sensorium.engine.core.specbase import ArgoModel
from sensorium.sensors.spec import Sensor
from sensorium.sources.spec import EventSourceSpec

__all__ = ["KINDS", "EventBus", "EventSource", "Sensor"]

API_VERSION = "argoproj.io/v1alpha1"


class Metadata(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)
    name: str = Field(min_length=1, description="Object name; a Sensor's name also names its durable consumer.")
    namespace: str | None = Field(default=None, description="Accepted and ignored.")
    labels: dict[str, str] | None = Field(default=None, description="Accepted and ignored.")
    annotations: dict[str, str] | None = Field(default=None, description="Accepted and ignored.")


class _Document(ArgoModel):
    api_version: Literal["argoproj.io/v1alpha1"] = Field(description="Must be argoproj.io/v1alpha1.")
    metadata: Metadata = Field(description="Object metadata.")
    status: dict[str, Any] | None = Field(default=None, description="Kubernetes status; ignored.")


class EventBus(_Document):
    kind: Literal["EventBus"] = Field(description="EventBus")
    spec: EventBusSpec = Field(description="Which bus and how to reach it.")


class EventSource(_Document):
    kind: Literal["EventSource"] = Field(description="EventSource")
    spec: EventSourceSpec = Field(description="Event source definitions.")


KINDS: dict[str, type[ArgoModel]] = {"EventBus": EventBus, "EventSource": EventSource, "Sensor": Sensor}

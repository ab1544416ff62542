"""The valid parts of an invalid Sensor, so that one run reports every problem in a file.

pydantic reports every invalid field of a document, but a model's own checks run only when all its fields are
valid: one bad filter in one dependency hid the sensor-wide checks (`conditions` naming an unknown dependency,
parameters naming none, duplicate names) and every load-time check of the other dependencies and triggers.
`salvage_sensor` validates each dependency and trigger on its own and returns a Sensor holding the valid ones
(an invalid one is replaced by an inert stand-in at the same index, so that every location stays true), plus the
sensor-wide problems over the names the file gives. engine.config runs the usual checks on that Sensor.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from sensorium.engine.core.specbase import Loc
from sensorium.sensors.spec import EventDependency, ObjectMeta, Sensor, SensorSpec, spec_problems
from sensorium.triggers.spec import Trigger

_INERT_TRIGGER = {"template": {"name": "\0", "log": {}}}  # \0: no condition or parameter can name it


SALVAGED = "\0"
"""The name of a salvaged sensor: checks may look at its valid parts, nothing may run it."""


def is_salvaged(sensor: Sensor) -> bool:
    """Was `sensor` made by `salvage_sensor` (an invalid document's valid parts), not loaded whole?"""
    return sensor.metadata.name == SALVAGED


def salvage_sensor(data: Mapping[str, Any]) -> tuple[Sensor | None, list[tuple[Loc, str]]]:
    """(a Sensor of the valid dependencies and triggers of `data`, or None when it has no spec to salvage; the
    sensor-wide problems, `loc` from the document's root). Call it only when `data` failed validation."""
    spec = data.get("spec")
    if data.get("kind") != "Sensor" or not isinstance(spec, Mapping):
        return None, []
    raw_deps = spec.get("dependencies")
    raw_triggers = spec.get("triggers")
    raw_deps = raw_deps if isinstance(raw_deps, list) else []
    raw_triggers = raw_triggers if isinstance(raw_triggers, list) else []
    deps: list[EventDependency] = []
    names: list[str] = []
    for index, raw in enumerate(raw_deps):
        name = raw.get("name") if isinstance(raw, Mapping) else None
        names.append(name if isinstance(name, str) and name else f"\0{index}")
        try:
            deps.append(EventDependency.model_validate(raw))
        except ValidationError:
            deps.append(EventDependency.model_construct(name=names[-1], event_source_name="", event_name=""))
    triggers: list[Trigger] = []
    valid: list[tuple[int, Trigger]] = []
    for index, raw in enumerate(raw_triggers):
        try:
            trigger = Trigger.model_validate(raw)
            valid.append((index, trigger))
        except ValidationError:
            trigger = Trigger.model_validate(_INERT_TRIGGER)
        triggers.append(trigger)
    problems = [(("spec", *loc), message) for loc, message in spec_problems(names, valid)]
    sensor = Sensor.model_construct(api_version="argoproj.io/v1alpha1", kind="Sensor",
                                    metadata=ObjectMeta.model_construct(name=SALVAGED),
                                    spec=SensorSpec.model_construct(dependencies=deps, triggers=triggers))
    return sensor, problems

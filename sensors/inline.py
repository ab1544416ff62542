"""Which events a sensor's stage may evaluate on the event loop itself, without the hop to its stage thread.

The runner evaluates each event (dependency match, transforms, filters) in a thread of the sensor's own, so a
slow event (a Lua script, a jq program, a template, a huge document) never holds the loop the other sensors
share. The hop costs CPU on every event (a thread-pool submit, a wake-up of the thread, a wake-up of the loop
through its self-pipe: measured with `python -m bench.engine --only engine,engine-inline`, README
"Performance"). For a stage whose cost is bounded by the size of the event, and an event that is small, the
hop buys nothing: `InlineGate.inline(event)` says when the runner may call `evaluate` directly (still under
`engine.goport.deadline.event_deadline`, which the filters check cooperatively).

A stage is *bounded* when no dependency has a transform (jq or Lua), a `script` filter (Lua), `exprs`
(govaluate), or a data filter with a `template` (Go templates have loops): what remains is exact comparisons,
number and bool comparisons, time windows and RE2 regular expressions, all linear in the data they read
(`engine.goport.re2`). An event is *small* when its data is at most `max_bytes` (default 64 KiB): parsing it
and running those filters takes well under a millisecond.

How the runner uses it (engine/runner.py `SensorRunner._process`, given `inline=InlineGate(sensor).inline` by
engine/app.py):

    gate = InlineGate(sensor)                     # once per sensor, with its stage
    ...
    if gate.inline(event):
        verdicts = self._evaluate(event)          # on the loop, under the same event deadline
    else:
        verdicts = await loop.run_in_executor(self._stage_thread, self._evaluate, event)
    return self.stage.decide(event, verdicts, self.clock())
"""

from __future__ import annotations

from sensorium.engine.core.cloudevent import CloudEvent
from sensorium.sensors.spec import EventDependency, Sensor

DEFAULT_MAX_BYTES = 64 * 1024


def bounded_dependency(dep: EventDependency) -> bool:
    """The dependency's transforms and filters cost at most linear time in the event's data."""
    transform = dep.transform
    if transform is not None and (transform.jq or transform.script):
        return False
    filters = dep.filters
    if filters is None:
        return True
    if filters.script or filters.exprs:
        return False
    return not any(f.template for f in filters.data or ())


def bounded_stage(sensor: Sensor) -> bool:
    """Every dependency of the sensor is bounded (`bounded_dependency`)."""
    return all(bounded_dependency(dep) for dep in sensor.spec.dependencies)


class InlineGate:
    """Decides, per event, whether the sensor's stage may evaluate it on the event loop (see the module)."""

    def __init__(self, sensor: Sensor, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.bounded = bounded_stage(sensor)
        self.max_bytes = max_bytes

    def inline(self, event: CloudEvent) -> bool:
        """A bounded stage and a small event."""
        return self.bounded and (event.data is None or len(event.data) <= self.max_bytes)

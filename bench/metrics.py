"""`python -m bench.metrics`: CPU of the metric updates of one event of bench.engine's shape (one dependency
passes, one firing, one attempt answered 200), against the same calls on the null object (no --ops-port)."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from sensorium.engine.core.cloudevent import CloudEvent, now_rfc3339
from sensorium.engine.metrics import NULL_SENSOR_METRICS, EngineMetrics, SensorMetricsLike
from sensorium.sensors.spec import Sensor
from sensorium.sensors.stage import SensorStage
from sensorium.triggers.outcome import Attempt, FiringOutcome
from sensorium.triggers.policy import Verdict, VerdictKind

stage = SensorStage(Sensor.model_validate({
    "apiVersion": "argoproj.io/v1alpha1", "kind": "Sensor", "metadata": {"name": "s"},
    "spec": {"dependencies": [{"name": "d", "eventSourceName": "src", "eventName": "e", "filters": {
        "data": [{"path": "body.n", "type": "number", "value": ["1"]}]}}],
             "triggers": [{"template": {"name": "t", "log": {}}}]}}))
ev = CloudEvent(id="1", source="src", type="webhook", subject="e", datacontenttype="application/json",
                time=now_rfc3339(), data=b'{"body":{"n":1}}')
result = stage.process(ev, datetime.now(UTC))
outcome = FiringOutcome("t", "http", True, attempts=(Attempt(1, 200, 0.002, "", Verdict(VerdictKind.SUCCESS, "")),))
m = EngineMetrics().sensor("s", ["d"], ["t"])
N = 200_000
targets: tuple[tuple[str, SensorMetricsLike], ...] = (
    ("null", NULL_SENSOR_METRICS), ("metrics", m), ("null", NULL_SENSOR_METRICS), ("metrics", m))
for name, target in targets:
    t0 = time.process_time()
    for _ in range(N):
        target.delivered()
        target.decided(result)
        target.fired("t", ev, outcome)
    print(f"{name}: {(time.process_time() - t0) / N * 1e6:.2f} us CPU per event")

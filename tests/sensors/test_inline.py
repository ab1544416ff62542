"""sensors.inline: which events a stage may evaluate on the loop (bounded filters, small data), and that doing so
decides exactly what the stage thread would."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from sensorium.engine.goport.deadline import event_deadline
from sensorium.sensors.inline import InlineGate, bounded_stage
from sensorium.sensors.stage import SensorStage

from .builders import dep, event, sensor, trigger

BOUNDED: dict[str, Any] = {
    "context": {"type": "webhook"},
    "data": [{"path": "body.action", "type": "string", "value": ["push|merge"]},  # an RE2 regex: linear
             {"path": "body.n", "type": "number", "value": ["2"], "comparator": ">"}],
    "time": {"start": "00:00:00", "stop": "23:59:59"},
}


@pytest.mark.parametrize("extra,bounded", [
    ({}, True),
    ({"filters": BOUNDED}, True),
    ({"filters": {"script": "return true"}}, False),
    ({"filters": {"exprs": [{"expr": "a == 1", "fields": [{"name": "a", "path": "body.n"}]}]}}, False),
    ({"filters": {"data": [{"path": "body.action", "type": "string", "value": ["push"],
                            "template": "{{ .Input }}"}]}}, False),
    ({"transform": {"jq": ".body"}}, False),
    ({"transform": {"script": "return event"}}, False),
])
def test_bounded_stage(extra: dict[str, Any], bounded: bool) -> None:
    plain = dep("plain")
    assert bounded_stage(sensor([plain, dep("d", **extra)], [trigger("t")])) is bounded


def test_only_small_events_of_a_bounded_stage_go_inline() -> None:
    gate = InlineGate(sensor([dep("d", filters=BOUNDED)], [trigger("t")]), max_bytes=100)
    assert gate.inline(event())  # no data
    assert gate.inline(event({"body": {"action": "push"}}))
    assert not gate.inline(event({"body": {"action": "x" * 100}}))  # over max_bytes: the stage thread
    unbounded = InlineGate(sensor([dep("d", filters={"script": "return true"})], [trigger("t")]))
    assert not unbounded.inline(event())


def test_inline_evaluation_decides_as_the_thread_does() -> None:
    spec = sensor([dep("d", filters=BOUNDED)], [trigger("t")])
    now = datetime(2026, 12, 6, 12, tzinfo=UTC)
    cases = [event({"body": {"action": "push", "n": 3}}, time="2026-12-06T12:00:00Z", event_id="1"),
             event({"body": {"action": "pull", "n": 3}}, time="2026-12-06T12:00:00Z", event_id="2"),
             event({"body": {"action": "merge", "n": 1}}, time="2026-12-06T12:00:00Z", event_id="3")]
    inline, threaded = SensorStage(spec), SensorStage(spec)
    gate = InlineGate(spec)
    for case in cases:
        assert gate.inline(case)
        with event_deadline(1.0):
            verdicts = inline.evaluate(case)
        assert inline.decide(case, verdicts, now) == threaded.process(case, now)
    assert [len(threaded.process(c, now).firings) for c in cases] == [1, 0, 0]

"""Issue 11 item 5: the sensor stage against generated events (random JSON, deep and wide, odd types, huge
numbers, unicode, bytes that are not JSON) with a sensor using every filter kind. Whatever the event holds, the
stage never raises, decides within the per-event limit, and every dependency verdict says why."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from sensorium.engine.goport.deadline import event_deadline
from sensorium.sensors.stage import SensorStage
from tests.sensors.builders import dep, event, sensor, trigger

LIMIT = 1.0
DEPENDENCIES: list[dict[str, Any]] = [
    dep("ctx", filters={"context": {"type": "webhook", "source": "webhook"}}),
    dep("dstr", filters={"data": [{"path": "a", "type": "string", "value": ["^x.*", "^(a+)+$", "\\pL"]}]}),
    dep("dnum", filters={"data": [{"path": "n", "type": "number", "comparator": ">=", "value": ["1.5"]}]}),
    dep("dbool", filters={"data": [{"path": "b", "type": "bool", "value": ["true"]}]}),
    dep("dtpl", filters={"data": [{"path": "a", "type": "string", "value": ["^A"],
                                   "template": "{{ .Input | upper }}{{ regexFind `(a|aa)+$` .Input }}"}]}),
    dep("expr", filters={"exprs": [{"expr": "n > 1 && a =~ '(a+)+$'",
                                    "fields": [{"name": "n", "path": "n"}, {"name": "a", "path": "a"}]}]}),
    dep("time", filters={"time": {"start": "00:00:00", "stop": "23:59:59"}}),
    dep("script", filters={"script": "return event.n ~= nil and string.find(tostring(event.a), 'a+') ~= nil"}),
    dep("either", filters={"data": [{"path": "a.#", "type": "number", "value": ["2"]},
                                    {"path": "b", "type": "string", "value": ["t"]}],
                           "exprs": [{"expr": "a == b",
                                      "fields": [{"name": "a", "path": "a"}, {"name": "b", "path": "b"}]}],
                           "dataLogicalOperator": "or"},
        filtersLogicalOperator="or"),
    dep("transform", transform={"script": "event.t = 1 return event"},
        filters={"data": [{"path": "t", "type": "number", "value": ["1"]}]}),
]
STAGE = SensorStage(sensor(DEPENDENCIES, [trigger("any", " || ".join(d["name"] for d in DEPENDENCIES)),
                                          trigger("all", "ctx && dnum")]))
NOW = datetime(2024, 3, 5, 12, 0, tzinfo=UTC)

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(10**40), max_value=10**40),
    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=40),
    st.sampled_from(["a" * 5000 + "!", "x" + "é" * 100, "\u0000", "true", "1e400", "-0", "\U0001f600"]))
json_values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=8), st.dictionaries(st.text(max_size=8), inner, max_size=8)), max_leaves=40)
records = st.fixed_dictionaries({}, optional={"a": json_values, "n": json_values, "b": json_values,
                                             "s": json_values}).map(lambda d: json.dumps(d).encode())
deep = st.integers(min_value=1, max_value=5000).map(lambda d: b'{"a":' + b"[" * d + b"]" * d + b"}")
garbage = st.binary(max_size=200)
bodies = st.one_of(records, records, deep, garbage, json_values.map(lambda v: json.dumps(v).encode()))


@pytest.mark.slow  # fuzz (hypothesis)
@settings(max_examples=150, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(bodies)
@example(b'{"a": "' + b"a" * 100_000 + b'!", "n": 2}')  # the regex bomb through data, expr and template
@example(b'{"a":' + b"[" * 20_000 + b"]" * 20_000 + b"}")  # deeper than any recursion limit
@example(b'{"n": 1e999, "a": "\\ud800"}')  # an overflowing number, a lone surrogate
@example(b"\xff\xfe not json")
def test_the_stage_decides_any_event_in_time_with_reasons(body: bytes) -> None:
    started = time.monotonic()
    with event_deadline(LIMIT):
        verdicts = STAGE.evaluate(event(raw=body))
    elapsed = time.monotonic() - started
    result = STAGE.decide(event(raw=body), verdicts, NOW)
    assert elapsed < LIMIT + 0.5, f"took {elapsed:.2f}s"
    assert [v.name for v in result.dependencies] == [d["name"] for d in DEPENDENCIES]
    for verdict in result.dependencies:
        assert verdict.error or verdict.filters.reason, f"{verdict.name} has no reason: {verdict}"


# ---- `SensorStage.plain`: what the runner's trace takes for routine without looking ------------------------------

PLAIN = {"ctx", "dstr", "dnum", "dbool", "dtpl", "expr", "time", "script"}  # "either" has "or", "transform" one
ALONE = [(SensorStage(sensor([d], [trigger("t", conditions)])), d["name"]) for d in DEPENDENCIES
         for conditions in (None, d["name"])]  # (no conditions: the dependency's name is the default)
SHARED = SensorStage(sensor(DEPENDENCIES[:2], [trigger("t", "ctx")]))  # two dependencies: never plain


def test_plain_stages_are_one_dependency_under_and_without_a_transform_and_one_trigger_on_it() -> None:
    assert {name for stage, name in ALONE if stage.plain} == PLAIN
    assert all(stage.plain == (name in PLAIN) for stage, name in ALONE)
    assert not SHARED.plain and not STAGE.plain
    assert not SensorStage(sensor(DEPENDENCIES[:1], [trigger("t", "(ctx)")])).plain  # (not the dependency's name)
    assert not SensorStage(sensor(DEPENDENCIES[:1], [trigger("t", "ctx"), trigger("u", "ctx")])).plain


@settings(max_examples=40, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(bodies, st.sampled_from(["webhook", "other"]))
@example(b'{"a": "xa", "n": 2, "b": true}', "webhook")  # every filter passes
def test_a_plain_stage_fires_only_what_routine_start_takes_for_routine(body: bytes, kind: str) -> None:
    """What the runner relies on (`SensorStage.plain`): for a plain stage, an event that fires is one
    `routine_start` takes for routine so far, and one that does not fire is not."""
    from sensorium.engine.trace.steps import routine_start

    for stage, _ in ALONE:
        ev = event(raw=body, type=kind)
        with event_deadline(LIMIT):
            result = stage.decide(ev, stage.evaluate(ev), NOW)
        if stage.plain:
            assert routine_start(result) == (len(result.firings) == 1), result


def test_plain_stages_fire_on_an_event_that_passes_their_checks() -> None:
    ev = event(raw=b'{"a": "xa", "n": 2, "b": true}')
    fired = {name for stage, name in ALONE if stage.plain and stage.process(ev, NOW).firings}
    assert fired >= {"ctx", "dstr", "dnum", "dbool", "expr", "script"}, fired  # (the case above is not empty)

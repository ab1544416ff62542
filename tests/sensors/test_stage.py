"""The sensor stage: dependency matching, filters and accumulation (reference sections 2.1 and 4.2)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from sensorium.sensors.stage import SensorStage, StageConfigError
from sensorium.sensors.state import ConditionState
from tests.sensors.builders import dep, event, sensor, trigger

NOW = datetime(2024, 7, 15, 10, 0, tzinfo=UTC)


def fired(stage: SensorStage, *events: Any) -> list[list[tuple[str, dict[str, str]]]]:
    """Feed events; per event, the firings as (trigger, {dep: event id})."""
    out = []
    for i, ev in enumerate(events):
        result = stage.process(ev, NOW + timedelta(seconds=i))
        out.append([(f.trigger, {d: e.id for d, e in f.events.items()}) for f in result.firings])
    return out


def ev(name: str, event_id: str, data: Any = None) -> Any:
    return event({} if data is None else data, source=name, subject="e", event_id=event_id)


AB = [dep("A", "A", "e"), dep("B", "B", "e"), dep("C", "C", "e")]


def test_and_fires_once_with_both_events_then_starts_over() -> None:
    stage = SensorStage(sensor(AB, [trigger("t", "A && B")]))
    assert fired(stage, ev("A", "a1"), ev("B", "b1"), ev("B", "b2"), ev("A", "a2")) == [
        [], [("t", {"A": "a1", "B": "b1"})], [], [("t", {"A": "a2", "B": "b2"})]]
    assert stage.state.held("t") == {}


def test_latest_event_per_dependency_is_kept() -> None:
    stage = SensorStage(sensor(AB, [trigger("t", "A && B")]))
    assert fired(stage, ev("A", "a1"), ev("A", "a2"), ev("B", "b1"))[-1] == [("t", {"A": "a2", "B": "b1"})]


def test_or_branch_firing_includes_stored_events_of_other_branches() -> None:
    stage = SensorStage(sensor(AB, [trigger("t", "A || (B && C)")]))
    assert fired(stage, ev("B", "b1"), ev("A", "a1"), ev("C", "c1")) == [
        [], [("t", {"A": "a1", "B": "b1"})], []]
    assert stage.state.held("t") == {"C": ev("C", "c1")}


def test_expression_without_and_fires_on_every_event_and_stores_nothing() -> None:
    stage = SensorStage(sensor(AB, [trigger("t", "A || B")]))
    assert fired(stage, ev("A", "a1"), ev("A", "a2"), ev("B", "b1")) == [
        [("t", {"A": "a1"})], [("t", {"A": "a2"})], [("t", {"B": "b1"})]]
    assert stage.state.snapshot()["triggers"] == {}


def test_triggers_are_independent() -> None:
    stage = SensorStage(sensor(AB, [trigger("now", "A"), trigger("both", "A && B")]))
    assert fired(stage, ev("A", "a1"), ev("B", "b1")) == [
        [("now", {"A": "a1"})], [("both", {"A": "a1", "B": "b1"})]]


def test_one_event_can_complete_several_triggers_in_spec_order() -> None:
    stage = SensorStage(sensor(AB, [trigger("t1", "A && B"), trigger("t2", "B && A")]))
    assert fired(stage, ev("A", "a1"), ev("B", "b1"))[-1] == [
        ("t1", {"A": "a1", "B": "b1"}), ("t2", {"A": "a1", "B": "b1"})]


def test_default_conditions_wait_for_all_dependencies() -> None:
    stage = SensorStage(sensor(AB, [trigger("t")]))
    assert fired(stage, ev("A", "a1"), ev("B", "b1"), ev("C", "c1")) == [
        [], [], [("t", {"A": "a1", "B": "b1", "C": "c1"})]]


def test_one_event_matching_two_dependencies_satisfies_both() -> None:
    deps = [dep("d1", "hook", "e"), dep("d2", "hook", "e")]
    stage = SensorStage(sensor(deps, [trigger("and", "d1 && d2"), trigger("or", "d1 || d2")]))
    result = stage.process(event({}, source="hook", subject="e", event_id="x"), NOW)
    assert [v.name for v in result.dependencies] == ["d1", "d2"]
    assert [(f.trigger, sorted(f.events)) for f in result.firings] == [
        ("and", ["d1", "d2"]), ("or", ["d1"]), ("or", ["d2"])]


def test_filtered_out_events_are_not_accumulated() -> None:
    deps = [dep("A", "A", "e", filters={"data": [{"path": "ok", "type": "bool", "value": ["true"]}]}),
            dep("B", "B", "e")]
    stage = SensorStage(sensor(deps, [trigger("t", "A && B")]))
    result = stage.process(ev("A", "a1", {"ok": False}), NOW)
    assert [(v.name, v.passed, v.error) for v in result.dependencies] == [("A", False, None)]
    assert (result.conditions, result.firings) == ((), ())
    [detail] = result.dependencies[0].filters.failures()
    assert (detail.target, detail.seen, detail.wanted) == ("path 'ok'", "false", ("true",))
    assert detail.reason == "reads as false, none of the values"
    assert fired(stage, ev("A", "a2", {"ok": True}), ev("B", "b1")) == [[], [("t", {"A": "a2", "B": "b1"})]]


def test_or_mode_filter_error_still_passes_and_is_reported() -> None:
    deps = [dep("A", "A", "e", filtersLogicalOperator="or",
                filters={"data": [{"path": "nope", "type": "string", "value": ["x"]}],
                         "context": {"source": "A"}})]
    result = SensorStage(sensor(deps, [trigger("t")])).process(ev("A", "a1"), NOW)
    assert [(v.name, v.passed, v.error) for v in result.dependencies] == [
        ("A", True, "data filter error (path 'nope' does not exist)")]
    assert len(result.firings) == 1


def test_condition_verdicts() -> None:
    stage = SensorStage(sensor(AB, [trigger("t", "A && B"), trigger("u", "B")]))
    stage.process(ev("A", "a1"), NOW)
    result = stage.process(ev("B", "b1"), NOW)
    verdicts = [(c.trigger, c.expression, c.dependency, c.held, c.satisfied, c.immediate)
                for c in result.conditions]
    assert verdicts == [
        ("t", "A && B", "B", ("A", "B"), True, False), ("u", "B", "B", ("B",), True, True)]


def test_unmatched_event_gives_an_empty_result() -> None:
    result = SensorStage(sensor(AB, [trigger("t")])).process(ev("Z", "z1"), NOW)
    assert (result.dependencies, result.conditions, result.firings) == ((), (), ())


def test_state_survives_a_restart_through_a_snapshot() -> None:
    spec = sensor(AB, [trigger("t", "A && B")])
    first = SensorStage(spec)
    first.process(ev("A", "a1", {"k": 1.50}), NOW)
    restored = ConditionState()
    restored.restore(first.state.snapshot())
    second = SensorStage(spec, restored)
    result = second.process(ev("B", "b1"), NOW)
    assert [(f.trigger, f.events["A"]) for f in result.firings] == [("t", ev("A", "a1", {"k": 1.50}))]


def test_state_of_removed_triggers_and_dependencies_is_dropped() -> None:
    state = ConditionState()
    state.store("t", "A", ev("A", "a1"), NOW)
    state.store("t", "C", ev("C", "c1"), NOW)
    state.store("gone", "A", ev("A", "a1"), NOW)
    SensorStage(sensor(AB, [trigger("t", "A && B")]), state)
    assert sorted(state.snapshot()["triggers"]) == ["t"]
    assert list(state.held("t")) == ["A"]


@pytest.mark.parametrize(("extra", "field", "message"), [
    ({"filters": {"data": [{"path": "a", "type": "string", "value": ["x"], "template": "{{ define \"x\" }}"}]}},
     "spec.dependencies.1.filters.data.0.template", "template: param:1: unsupported template action 'define' "
                                                    "(named templates are not part of Sensorium's template subset)"),
    ({"filters": {"data": [{"path": "a", "type": "string", "value": ["x"], "template": "{{ .Input "}]}},
     "spec.dependencies.1.filters.data.0.template", "template does not parse: template: param:1: unclosed action"),
])
def test_unsupported_features_are_refused_at_construction(extra: dict[str, Any], field: str,
                                                           message: str) -> None:
    spec = sensor([dep("ok"), dep("X", **extra)], [trigger("t")])
    with pytest.raises(StageConfigError) as info:
        SensorStage(spec)
    assert (info.value.field, str(info.value)) == (field, f"{field}: {message}")


def test_empty_transform_is_accepted() -> None:
    SensorStage(sensor([dep("A", transform={})], [trigger("t")]))


def test_conditions_reset_by_time_expires_partial_matches() -> None:
    reset = trigger("t", "A && B")
    reset["template"]["conditionsReset"] = [{"byTime": {"cron": "0 * * * *", "timezone": "UTC"}}]
    stage = SensorStage(sensor(AB, [reset]))
    before_tick = datetime(2024, 7, 15, 10, 59, 30, tzinfo=UTC)
    assert stage.process(ev("A", "a1"), before_tick).firings == ()
    changes = stage.state.changes
    result = stage.process(ev("B", "b1"), before_tick + timedelta(minutes=1))  # 11:00:30: a1 expired at 11:00
    assert result.firings == ()
    assert stage.state.changes > changes
    assert set(stage.state.held("t")) == {"B"}
    result = stage.process(ev("A", "a2"), before_tick + timedelta(minutes=2))
    assert [(f.trigger, {d: e.id for d, e in f.events.items()}) for f in result.firings] == [
        ("t", {"A": "a2", "B": "b1"})]


def test_conditions_reset_with_a_bad_cron_is_a_load_error() -> None:
    reset = trigger("t", "A && B")
    reset["template"]["conditionsReset"] = [{"byTime": {"cron": "@daily"}}]
    with pytest.raises(StageConfigError) as info:
        SensorStage(sensor(AB, [reset]))
    assert info.value.field == "spec.triggers.0.template.conditionsReset.0.byTime"

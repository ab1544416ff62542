"""The sensor stage: one CloudEvent in, a `StageResult` out (dependency and condition verdicts, firings).

Pure and synchronous: no I/O, the time is passed in. Matching, filtering and accumulation follow Argo
(section 2.1 and 4.2 of the semantics reference); the condition state lives in a `ConditionState`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

import msgspec

from sensorium.engine.core.cloudevent import CloudEvent
from sensorium.engine.goport.deadline import DeadlineExceeded
from sensorium.engine.goport.deadline import check as check_deadline
from sensorium.sensors.conditions import Condition, compile_condition
from sensorium.sensors.filters import FilterVerdict, check_filters, evaluate_filters, unsupported
from sensorium.sensors.reset import ResetSchedule, cutoff
from sensorium.sensors.spec import EventDependency, Sensor
from sensorium.sensors.state import ConditionState
from sensorium.sensors.transform import TransformConfigError, TransformResult, apply_transform, check_transform
from sensorium.triggers.spec import Trigger


class StageConfigError(ValueError):
    """A sensor uses a feature the stage cannot run yet; `field` is the dotted path in the document."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(f"{field}: {message}")


@dataclass(frozen=True)
class DependencyVerdict:
    """A dependency whose (eventSourceName, eventName) matched the event, and its filter decision.

    `transform` is the dependency's transform of the event (None without one); its `event` is what the
    filters saw and what a firing carries. A failed transform drops the event: `passed` is False and `error`
    says why (the filters did not run).
    """

    name: str
    passed: bool
    error: str | None
    filters: FilterVerdict
    transform: TransformResult | None = None
    seen: CloudEvent | None = field(default=None, compare=False, repr=False)  # the event after the transform


class ConditionVerdict(msgspec.Struct, frozen=True, gc=False):
    """One evaluation of a trigger's expression after `dependency` passed.

    `held` lists the dependencies counted as received (stored ones plus this one). `immediate` means the
    expression has no `&&`, so Argo fires on every passing event without storing anything.
    """

    trigger: str
    expression: str
    dependency: str
    held: tuple[str, ...]
    satisfied: bool
    immediate: bool


class Firing(msgspec.Struct, frozen=True):
    trigger: str
    events: Mapping[str, CloudEvent]


class StageResult(msgspec.Struct, frozen=True):
    event: CloudEvent
    dependencies: tuple[DependencyVerdict, ...]
    conditions: tuple[ConditionVerdict, ...]
    firings: tuple[Firing, ...]


def dependency_problems(index: int, dep: EventDependency) -> list[StageConfigError]:
    """Load-time checks of one dependency, all of them: unsupported features, and expressions, scripts, jq
    programs and time filters that could never run (Argo would only find them event by event)."""
    where = f"spec.dependencies.{index}"
    problems: list[StageConfigError] = []
    try:
        check_transform(dep.transform)
    except TransformConfigError as exc:
        problems.append(StageConfigError(f"{where}.transform.{exc.field}", str(exc)))
    if dep.filters is not None:
        for field, message in unsupported(dep.filters) + check_filters(dep.filters):
            problems.append(StageConfigError(f"{where}.filters.{field}", message))
    return problems


def stage_problems(sensor: Sensor) -> list[StageConfigError]:
    """Everything `SensorStage(sensor)` would refuse, every problem rather than the first, building nothing."""
    problems = [p for index, dep in enumerate(sensor.spec.dependencies) for p in dependency_problems(index, dep)]
    for index, trigger in enumerate(sensor.spec.triggers):
        try:
            _resets(index, trigger)
        except StageConfigError as exc:
            problems.append(exc)
    return problems


def _refuse_unsupported(index: int, dep: EventDependency) -> None:
    for problem in dependency_problems(index, dep)[:1]:
        raise problem


def _dependency(dep: EventDependency, event: CloudEvent) -> DependencyVerdict:
    """Transform (L:176-185), then filters on the transformed event (L:187-212)."""
    transform = apply_transform(dep.transform, event)
    if transform is not None:
        if transform.event is None:
            dropped = FilterVerdict("filters", False, transform.error, reason=transform.reason)
            return DependencyVerdict(dep.name, False, transform.error, dropped, transform, event)
        event = transform.event
    result = evaluate_filters(dep.filters, dep.filters_logical_operator, event)
    return DependencyVerdict(dep.name, result.passed, result.error, result, transform, event)


def _plain(sensor: Sensor, conditions: Mapping[str, Condition]) -> bool:
    """`SensorStage.plain`. Under "and", a filter kind with an error fails, and so does the dependency
    (`sensors.filters.combine_filters`); a data or expr filter kind passes only when each of its checks passed, a
    context filter only when every attribute is equal, a time or script filter is its one check."""
    spec = sensor.spec
    if len(spec.dependencies) != 1 or len(conditions) != 1:
        return False
    dep = spec.dependencies[0]
    filters = dep.filters
    if dep.transform is not None or dep.filters_logical_operator == "or" or (filters is not None and "or" in (
            filters.data_logical_operator, filters.expr_logical_operator)):
        return False
    (condition,) = conditions.values()
    return condition.text == dep.name and not condition.has_and()


def _resets(index: int, trigger: Trigger) -> tuple[ResetSchedule, ...]:
    schedules = []
    for n, reset in enumerate(trigger.template.conditions_reset or ()):
        try:
            schedules.append(ResetSchedule.compile(reset.by_time.cron, reset.by_time.timezone))
        except ValueError as exc:
            raise StageConfigError(f"spec.triggers.{index}.template.conditionsReset.{n}.byTime", str(exc)) from None
    return tuple(schedules)


class SensorStage:
    """One sensor's dependencies, transforms, filters and conditions; StageConfigError at construction for
    unsupported features and for programs that can never run (expressions, Lua, jq, templates, time filters)."""

    def __init__(self, sensor: Sensor, state: ConditionState | None = None) -> None:
        self.sensor = sensor
        spec = sensor.spec
        for index, dep in enumerate(spec.dependencies):
            _refuse_unsupported(index, dep)
        names = [d.name for d in spec.dependencies]
        self.conditions: dict[str, Condition] = {
            t.template.name: compile_condition(t.template.conditions, names) for t in spec.triggers}
        self._order = {name: i for i, name in enumerate(names)}
        self._resets = {t.template.name: _resets(i, t) for i, t in enumerate(spec.triggers)}
        self.state = state if state is not None else ConditionState()
        self.state.prune({t: c.names() for t, c in self.conditions.items() if c.has_and()})
        self.plain = _plain(sensor, self.conditions)
        """One dependency without a transform, its filters combined and checked under "and" only, and one trigger
        whose condition is that dependency: an event either passes every check of the dependency (no check
        failed, no error) and fires that one trigger on itself alone, or fires nothing. The runner's trace
        then knows an event that fires is routine so far without looking through its verdicts
        (`engine.trace.steps.routine_start`; tests/sensors/test_stage_fuzz.py holds the two to each other)."""

    def process(self, event: CloudEvent, now: datetime) -> StageResult:
        """evaluate() then decide(): the whole stage for one event."""
        return self.decide(event, self.evaluate(event), now)

    def evaluate(self, event: CloudEvent) -> tuple[DependencyVerdict, ...]:
        """Match, transform and filter: everything whose cost grows with the input, and nothing that reads or
        changes the condition state, so the runner may call it in another thread (under engine.goport.deadline's
        per-event limit) while the event loop keeps serving other sensors. A dependency whose turn comes after
        the event's time is up fails with `timed out after ...`."""
        verdicts: list[DependencyVerdict] = []
        for dep in self.sensor.spec.dependencies:
            if dep.event_source_name != event.source or dep.event_name != event.subject:
                continue
            try:
                check_deadline()
            except DeadlineExceeded as exc:
                timed_out = FilterVerdict("filters", False, str(exc), reason="the event exceeded its time limit")
                verdicts.append(DependencyVerdict(dep.name, False, str(exc), timed_out))
                continue
            verdicts.append(_dependency(dep, event))
        return tuple(verdicts)

    def decide(self, event: CloudEvent, verdicts: tuple[DependencyVerdict, ...], now: datetime) -> StageResult:
        """Conditions and firings from evaluate()'s verdicts; the only part that touches the condition state."""
        passed = {v.name: v.seen for v in verdicts if v.passed and v.seen is not None}
        conditions: list[ConditionVerdict] = []
        firings: list[Firing] = []
        for trigger, condition in self.conditions.items():
            for dep_name in condition.names():  # Argo processes a trigger's matching deps in this order
                if dep_name in passed:
                    self._accumulate(trigger, condition, dep_name, passed[dep_name], now, conditions, firings)
        return StageResult(event, verdicts, tuple(conditions), tuple(firings))

    def _accumulate(self, trigger: str, condition: Condition, dep: str, event: CloudEvent, now: datetime,
                    conditions: list[ConditionVerdict], firings: list[Firing]) -> None:
        if not condition.has_and():
            conditions.append(ConditionVerdict(trigger, condition.text, dep, (dep,), True, True))
            firings.append(Firing(trigger, {dep: event}))
            return
        expired_before = cutoff(self._resets[trigger], now)
        if expired_before is not None:
            self.state.clear_before(trigger, expired_before)  # conditionsReset.byTime
        held = self.state.held(trigger)
        received = set(held) | {dep}
        satisfied = condition.evaluate(received)
        conditions.append(
            ConditionVerdict(trigger, condition.text, dep, self._sorted(received), satisfied, False))
        if satisfied:
            held[dep] = event
            firings.append(Firing(trigger, {name: held[name] for name in self._sorted(held)}))
            self.state.clear(trigger)
        else:
            self.state.store(trigger, dep, event, now)

    def _sorted(self, names: set[str] | Mapping[str, object]) -> tuple[str, ...]:
        return tuple(sorted(names, key=lambda n: self._order.get(n, len(self._order))))

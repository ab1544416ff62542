"""Turning the values each stage returns into trace records (composition root: reads sensor and trigger values).

Shared by the running engine and `sensorium test`, so both explain a decision the same way. Pure: no I/O.
Parameters are the ones the trigger itself resolved (reported through `triggers.params.PARAM_OBSERVER`);
requests come from the trigger's redacted summary.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence

from engine.cloudevent import CloudEvent
from engine.trace import (
    ConditionChecked,
    DependencyMatched,
    FilterChecked,
    FiringDone,
    FiringStarted,
    ParamResolved,
    RequestBuilt,
    ResponseReceived,
    RetryScheduled,
    TraceRecord,
    Transformed,
)
from sensors.filters import FilterVerdict
from sensors.stage import StageResult
from triggers.httprequest import safe_url
from triggers.outcome import FiringOutcome, RequestSummary
from triggers.params import Resolved
from triggers.spec import Trigger, TriggerParameter

PREVIEW_CHARS = 200


def preview(body: bytes, limit: int = PREVIEW_CHARS) -> str:
    text = body[: limit * 4].decode("utf-8", "replace")
    return text if len(text) <= limit else text[:limit] + "…"


def _filter_records(sensor: str, event: str, dependency: str, verdict: FilterVerdict) -> Iterator[TraceRecord]:
    for part in verdict.parts or (verdict,):
        if part.kind == "filters":
            continue
        for d in part.details:
            yield FilterChecked(sensor=sensor, event=event, dependency=dependency, kind=part.kind,
                                target=d.target, seen=d.seen, wanted=d.wanted, comparator=d.comparator,
                                type=d.type, passed=d.passed, reason=d.reason)
        if not part.details and (part.reason or part.error):
            yield FilterChecked(sensor=sensor, event=event, dependency=dependency, kind=part.kind, target="",
                                seen=None, wanted=(), comparator="", type="", passed=part.passed,
                                reason=part.reason, error=part.error)
        elif part.details and part.error and not any(d.reason in part.error for d in part.details):
            yield FilterChecked(sensor=sensor, event=event, dependency=dependency, kind=part.kind, target="",
                                seen=None, wanted=(), comparator="", type="", passed=part.passed,
                                reason=part.reason, error=part.error)


def stage_records(sensor: str, result: StageResult) -> Iterator[TraceRecord]:
    """dependency (+ its filters) and condition records for one processed event, in evaluation order."""
    event = result.event.id
    for dep in result.dependencies:
        yield DependencyMatched(sensor=sensor, event=event, dependency=dep.name, passed=dep.passed,
                                error=dep.error, reason=dep.filters.reason)
        transform = getattr(dep, "transform", None)
        if transform is not None:
            data = transform.event.data if transform.event is not None else None
            yield Transformed(sensor=sensor, event=event, dependency=dep.name, kind=str(transform.kind),
                              passed=transform.event is not None, data_bytes=len(data or b""),
                              data_preview=preview(data or b""), reason=transform.reason, error=transform.error)
            if transform.event is None:
                continue  # dropped: the filters did not run
        yield from _filter_records(sensor, event, dep.name, dep.filters)
    for c in result.conditions:
        yield ConditionChecked(sensor=sensor, event=event, trigger=c.trigger, expression=c.expression,
                               dependency=c.dependency, held=c.held, satisfied=c.satisfied, immediate=c.immediate)


def firing_started(sensor: str, event: str, firing: str, trigger: str, kind: str,
                   events: Mapping[str, CloudEvent]) -> FiringStarted:
    return FiringStarted(sensor=sensor, event=event, firing=firing, trigger=trigger, kind=kind,
                         events={dep: e.id for dep, e in events.items()})


def _source(param: TriggerParameter) -> tuple[str, str]:
    src = param.src
    for name, value in (("dataKey", src.data_key), ("jsonPath", src.json_path), ("jmesPath", src.jmes_path),
                        ("contextKey", src.context_key)):
        if value:
            return name, value
    return ("value", "") if src.value is not None else ("event", "")


def _lists(trigger: Trigger) -> list[tuple[str, Sequence[TriggerParameter] | None]]:
    http = trigger.template.http
    lists: list[tuple[str, Sequence[TriggerParameter] | None]] = [("parameters", trigger.parameters)]
    if http is not None:
        lists += [("http.parameters", http.parameters), ("payload", http.payload),
                  ("dynamicHeaders", http.dynamic_headers)]
    return lists


def _where(trigger: Trigger, param: TriggerParameter) -> str:
    """Which list of the trigger declares `param` (identity first; equal values after `parameters` rewrote
    the template)."""
    lists = _lists(trigger)
    for where, params in lists:
        if any(p is param for p in params or ()):
            return where
    for where, params in lists:
        if param in (params or ()):
            return where
    return "parameters"


_DESCRIBED: dict[int, tuple[TriggerParameter, str, str, str]] = {}  # id -> (param, where, source, path)


def _describe(trigger: Trigger, param: TriggerParameter) -> tuple[str, str, str]:
    """(where, source, path) of a parameter; cached for the trigger's own parameter objects (the identity
    check makes a recycled id harmless; re-parsed copies are not cached, so the cache stays bounded)."""
    hit = _DESCRIBED.get(id(param))
    if hit is not None and hit[0] is param:
        return hit[1], hit[2], hit[3]
    where = _where(trigger, param)
    source, path = _source(param)
    if any(p is param for _, params in _lists(trigger) for p in params or ()):
        _DESCRIBED[id(param)] = (param, where, source, path)
    return where, source, path


def param_records(sensor: str, event: str, firing: str, trigger: Trigger,
                  observed: Sequence[tuple[TriggerParameter, Resolved]]) -> Iterator[TraceRecord]:
    """Each parameter the trigger resolved while building its request, with the value it used (values are
    event data, never secrets: secrets reach headers only through secureHeaders and basicAuth)."""
    name = trigger.name
    for param, resolved in observed:
        where, source, path = _describe(trigger, param)
        value = resolved.value
        if value is not None and len(value) > PREVIEW_CHARS:
            value = value[:PREVIEW_CHARS] + "…"
        yield ParamResolved(sensor=sensor, event=event, firing=firing, trigger=name, where=where,
                            dependency=param.src.dependency_name, source=source, path=path, value=value,
                            dest=param.dest)


def request_record(sensor: str, event: str, firing: str, trigger: str, summary: RequestSummary) -> RequestBuilt:
    return RequestBuilt(sensor=sensor, event=event, firing=firing, trigger=trigger, method=summary.method,
                        url=safe_url(summary.url), headers=dict(summary.headers), body_bytes=summary.body_bytes,
                        body_preview=summary.body_preview)


def outcome_records(sensor: str, event: str, firing: str, outcome: object) -> Iterator[TraceRecord]:
    """request, then per attempt the response (with the policy verdict) and any retry, then the outcome.
    Works on any Outcome; the details come from a FiringOutcome."""
    if not isinstance(outcome, FiringOutcome):
        success = bool(getattr(outcome, "success", False))
        yield FiringDone(sensor=sensor, event=event, firing=firing, trigger="", success=success, attempts=0,
                         error=getattr(outcome, "error", None) or None)
        return
    trigger = outcome.trigger
    if outcome.request is not None:
        yield request_record(sensor, event, firing, trigger, outcome.request)
    for a in outcome.attempts:
        yield ResponseReceived(sensor=sensor, event=event, firing=firing, trigger=trigger, attempt=a.number,
                               status=a.status, latency_ms=round(a.latency_s * 1000, 3),
                               verdict=str(a.verdict.kind), reason=a.verdict.reason,
                               error=a.error if a.status is None and a.error else None,
                               rate_limited_ms=round(a.waited_s * 1000, 3))
        if a.delay_s is not None:
            yield RetryScheduled(sensor=sensor, event=event, firing=firing, trigger=trigger,
                                 attempt=a.number + 1, delay_s=round(a.delay_s, 6))
    yield FiringDone(sensor=sensor, event=event, firing=firing, trigger=trigger, success=outcome.success,
                     attempts=len(outcome.attempts), error=outcome.error or None, note=outcome.note)


def trigger_kind(trigger: Trigger) -> str:
    return trigger.kind() or ""


def chain(*parts: Sequence[TraceRecord] | Iterator[TraceRecord]) -> Iterator[TraceRecord]:
    for part in parts:
        yield from part

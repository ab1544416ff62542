"""Turning the values each stage returns into trace records (composition root: reads sensor and trigger values).

Shared by the running engine and `sensorium test`, so both explain a decision the same way. Pure: no I/O.
Parameters are the ones the trigger itself resolved (`FiringOutcome.params`); requests come from the trigger's
redacted summary.

The `*_rows(out, sensor, t, ...)` functions are the single source of what a record says: they append the records
of one step (with the time `t`, from `engine.trace.records.now()`, taken when the step happened; a firing's
records take the times its outcome carries: the request and parameters when the first attempt started, each
response and retry when that attempt's response came, the outcome at `t`) to `out`; the `*_records` functions wrap them
for callers that want them returned. Every input they read is immutable (frozen stage results, outcomes,
events), so the engine can hand them over on the event path and have them built a little later
(`TraceHub.defer`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from msgspec.structs import replace

from sensorium.engine.core.cloudevent import CloudEvent
from sensorium.engine.core.preview import mask_credentials
from sensorium.engine.core.preview import preview as data_preview
from sensorium.engine.trace.records import (
    Acknowledged,
    ConditionChecked,
    DependencyMatched,
    FilterChecked,
    FiringDone,
    FiringStarted,
    ParamResolved,
    Received,
    RequestBuilt,
    ResponseReceived,
    RetryScheduled,
    Routine,
    TraceRecord,
    Transformed,
    Unmatched,
    now,
    stamp,
)
from sensorium.sensors.filters import FilterVerdict
from sensorium.sensors.stage import StageResult
from sensorium.triggers.outcome import FiringOutcome, RequestSummary
from sensorium.triggers.params import Resolved
from sensorium.triggers.policy import VerdictKind
from sensorium.triggers.spec import Trigger, TriggerParameter

PREVIEW_CHARS = 200

RowsFn = Callable[..., None]  # rows_fn(out: list[TraceRecord], *args): appends the records of one step or event


def preview(body: bytes, limit: int = PREVIEW_CHARS) -> str:
    """The start of `body`: at most `limit` characters, credentials masked (`engine.core.preview`)."""
    text = body[: limit * 4].decode("utf-8", "replace")
    return mask_credentials(text if len(text) <= limit else text[:limit] + "…")


VALUE_CHARS = 1000
"""A value, reason or error in a filter record is cut to this many characters: hostile event data (a 100,000-character
string a filter looked at) must not make trace lines, bus trace messages or logs grow without bound."""


def cap(text: str | None, limit: int = VALUE_CHARS) -> str | None:
    """`text` cut to `limit` characters, saying how long it was."""
    if text is None or len(text) <= limit:
        return text
    return f"{text[:limit]}… ({len(text)} characters)"


def rows_of(rows_fn: RowsFn, *args: Any) -> list[TraceRecord]:
    """The records `rows_fn(out, *args)` appends."""
    out: list[TraceRecord] = []
    rows_fn(out, *args)
    return out


def records(rows_fn: RowsFn, *args: Any) -> Iterator[TraceRecord]:
    """The records `rows_fn(out, *args)` appends."""
    yield from rows_of(rows_fn, *args)


def attributes(event: CloudEvent) -> dict[str, str]:
    """The CloudEvent attributes a `received` record shows."""
    attrs = {"id": event.id, "source": event.source, "type": event.type, "subject": event.subject,
             "datacontenttype": event.datacontenttype, "time": event.time}
    if event.extensions:
        attrs.update(event.extensions)
    return attrs


def received_rows(out: list[TraceRecord], sensor: str, t: str, bus: str, position: str, delivery: int | None,
                  event: CloudEvent | None, data_bytes: int = 0, error: str | None = None, body: bytes = b"") -> None:
    """A message arrived: as a CloudEvent (`event`), or not one (`error`, `data_bytes` of the message, and a
    preview of its `body`)."""
    if event is None:
        out.append(Received(time=t, sensor=sensor, event=None, bus=bus, position=position, delivery=delivery,
                            data_bytes=data_bytes, data_preview=data_preview(body), error=error))
    else:
        data = event.data
        out.append(Received(time=t, sensor=sensor, event=event.id, bus=bus, position=position,
                            delivery=delivery, attributes=attributes(event),
                            data_bytes=len(data) if data is not None else 0, content_type=event.datacontenttype,
                            data_preview=data_preview(data)))


def unmatched_rows(out: list[TraceRecord], sensor: str, t: str, event: CloudEvent,
                   listening: tuple[str, ...]) -> None:
    """No dependency of `sensor` (which listens to `listening`) listens to `event`."""
    out.append(Unmatched(time=t, sensor=sensor, event=event.id, source=event.source, subject=event.subject,
                         listening=listening))


def event_rows(out: list[TraceRecord], sensor: str, t: str, bus: str, position: str, delivery: int | None,
               result: StageResult, full: bool = True) -> None:
    """`received` for the event the stage processed, then what the stage decided: the records of `received_rows`
    and `stage_rows` (with the same `full`), in one function because it runs for every traced event (each Python
    call and keyword lookup counts there; tests/test_trace_build.py holds it to the two)."""
    event = result.event
    event_id = event.id
    data = event.data
    attrs = {"id": event_id, "source": event.source, "type": event.type, "subject": event.subject,
             "datacontenttype": event.datacontenttype, "time": event.time}
    if event.extensions:
        attrs.update(event.extensions)
    append = out.append
    append(Received(time=t, sensor=sensor, event=event_id, bus=bus, position=position, delivery=delivery,
                    attributes=attrs, data_bytes=len(data) if data is not None else 0,
                    content_type=event.datacontenttype, data_preview=data_preview(data)))
    for dep in result.dependencies:
        name = dep.name
        verdict = dep.filters
        append(DependencyMatched(time=t, sensor=sensor, event=event_id, dependency=name, passed=dep.passed,
                                 error=dep.error, reason=verdict.reason))
        transform = dep.transform
        if transform is not None:
            new = transform.event
            tdata = (new.data if new is not None else None) or b""
            append(Transformed(time=t, sensor=sensor, event=event_id, dependency=name, kind=str(transform.kind),
                               passed=new is not None, data_bytes=len(tdata), data_preview=preview(tdata),
                               reason=transform.reason, error=transform.error))
            if new is None:
                continue  # dropped: the filters did not run
        brief = not full and dep.passed
        for part in verdict.parts or (verdict,):
            kind = part.kind
            if kind == "filters":
                continue
            details = part.details
            error = part.error
            if brief and part.passed and not error:  # the checks that passed are implied
                for d in details:
                    if not d.passed:
                        details = tuple(d for d in details if not d.passed)
                        break
                else:  # (the common case: no generator)
                    continue
            for d in details:
                seen, reason = d.seen, d.reason
                # cap() only when long: its call costs more than the check
                append(FilterChecked(time=t, sensor=sensor, event=event_id, dependency=name, kind=kind,
                                     target=d.target,
                                     seen=seen if seen is None or len(seen) <= VALUE_CHARS else cap(seen),
                                     wanted=d.wanted, comparator=d.comparator, type=d.type, passed=d.passed,
                                     reason=reason if len(reason) <= VALUE_CHARS else cap(reason) or ""))
            if (error and (not details or not any(d.reason in error for d in details))) or (
                    not details and part.reason):
                append(FilterChecked(time=t, sensor=sensor, event=event_id, dependency=name, kind=kind, target="",
                                     seen=None, wanted=(), comparator="", type="", passed=part.passed,
                                     reason=cap(part.reason) or "", error=cap(error)))
    for c in result.conditions:
        if not full and c.satisfied and c.expression == c.dependency:
            continue  # implied: a trigger whose condition is the dependency that passed
        append(ConditionChecked(time=t, sensor=sensor, event=event_id, trigger=c.trigger, expression=c.expression,
                                dependency=c.dependency, held=c.held, satisfied=c.satisfied, immediate=c.immediate))


def _filter_rows(out: list[TraceRecord], sensor: str, t: str, event: str, dependency: str,
                 verdict: FilterVerdict, brief: bool = False) -> None:
    append = out.append
    for part in verdict.parts or (verdict,):
        if part.kind == "filters":
            continue
        kind = part.kind
        implied = brief and part.passed and not part.error  # its checks that passed, and its own decision
        for d in (tuple(d for d in part.details if not d.passed) if implied else part.details):
            append(FilterChecked(time=t, sensor=sensor, event=event, dependency=dependency, kind=kind, target=d.target,
                                 seen=cap(d.seen), wanted=d.wanted, comparator=d.comparator, type=d.type,
                                 passed=d.passed, reason=cap(d.reason) or ""))
        if not implied and ((not part.details and (part.reason or part.error)) or (
                part.details and part.error and not any(d.reason in part.error for d in part.details))):
            append(FilterChecked(time=t, sensor=sensor, event=event, dependency=dependency, kind=kind, target="",
                                 seen=None, wanted=(), comparator="", type="", passed=part.passed,
                                 reason=cap(part.reason) or "", error=cap(part.error)))


def stage_rows(out: list[TraceRecord], sensor: str, t: str, result: StageResult, full: bool = True) -> None:
    """dependency (+ its transform and filters) and condition records for one processed event, in evaluation
    order. Not `full` (DETAIL "decisions"): a dependency that passed gets no record for the checks that passed
    (its `dependency` record says it passed; a check that failed or erred inside it keeps its record), and a
    satisfied condition that is that one dependency gets none either."""
    event = result.event.id
    append = out.append
    for dep in result.dependencies:
        append(DependencyMatched(time=t, sensor=sensor, event=event, dependency=dep.name, passed=dep.passed,
                                 error=dep.error, reason=dep.filters.reason))
        transform = dep.transform
        if transform is not None:
            data = transform.event.data if transform.event is not None else None
            append(Transformed(time=t, sensor=sensor, event=event, dependency=dep.name, kind=str(transform.kind),
                               passed=transform.event is not None, data_bytes=len(data or b""),
                               data_preview=preview(data or b""), reason=transform.reason, error=transform.error))
            if transform.event is None:
                continue  # dropped: the filters did not run
        _filter_rows(out, sensor, t, event, dep.name, dep.filters, not full and dep.passed)
    for c in result.conditions:
        if not full and c.satisfied and c.expression == c.dependency:
            continue  # implied: a trigger whose condition is the dependency that passed
        append(ConditionChecked(time=t, sensor=sensor, event=event, trigger=c.trigger, expression=c.expression,
                                dependency=c.dependency, held=c.held, satisfied=c.satisfied, immediate=c.immediate))


def stage_records(sensor: str, result: StageResult) -> Iterator[TraceRecord]:
    """dependency (+ its filters) and condition records for one processed event, in evaluation order."""
    return records(stage_rows, sensor, now(), result)


def firing_rows(out: list[TraceRecord], sensor: str, t: str, event: str, firing: str, trigger: str, kind: str,
                events: Mapping[str, CloudEvent]) -> None:
    ids = {}
    for dep, e in events.items():
        ids[dep] = e.id
    out.append(FiringStarted(time=t, sensor=sensor, event=event, firing=firing, trigger=trigger, kind=kind,
                             events=ids))


def firing_started(sensor: str, event: str, firing: str, trigger: str, kind: str,
                   events: Mapping[str, CloudEvent]) -> FiringStarted:
    (record,) = records(firing_rows, sensor, now(), event, firing, trigger, kind, events)
    assert isinstance(record, FiringStarted)
    return record


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
    for kind, spec in (("nats", trigger.template.nats), ("kafka", trigger.template.kafka)):
        if spec is not None:
            lists += [(f"{kind}.parameters", spec.parameters), ("payload", spec.payload)]
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


# id(param) -> (param, its record with no time, event, firing or value): what never changes is worked out once.
# Only the trigger's own parameter objects are cached (re-parsed copies are not, so the cache stays bounded);
# the identity check makes a recycled id harmless.
_PARAM_RECORDS: dict[int, tuple[TriggerParameter, ParamResolved]] = {}


def _param_record(sensor: str, trigger: Trigger, param: TriggerParameter) -> ParamResolved:
    source, path = _source(param)
    record = ParamResolved(time="", sensor=sensor, event=None, firing="", trigger=trigger.name,
                           where=_where(trigger, param), dependency=param.src.dependency_name, source=source,
                           path=path, value=None, dest=param.dest)
    if any(p is param for _, params in _lists(trigger) for p in params or ()):
        _PARAM_RECORDS[id(param)] = (param, record)
    return record


def param_rows(out: list[TraceRecord], sensor: str, t: str, event: str, firing: str, trigger: Trigger,
               observed: Sequence[tuple[TriggerParameter, Resolved]]) -> None:
    """Each parameter the trigger resolved while building its request, with the value it used (values are
    event data, never secrets: secrets reach headers only through secureHeaders and basicAuth)."""
    cached = _PARAM_RECORDS.get
    append = out.append
    for param, resolved in observed:
        hit = cached(id(param))
        if hit is not None and hit[0] is param and hit[1].sensor == sensor:
            record = hit[1]
        else:
            record = _param_record(sensor, trigger, param)
        value = resolved.value
        if value is not None and len(value) > PREVIEW_CHARS:
            value = value[:PREVIEW_CHARS] + "…"
        append(replace(record, time=t, event=event, firing=firing, value=value))


def param_records(sensor: str, event: str, firing: str, trigger: Trigger,
                  observed: Sequence[tuple[TriggerParameter, Resolved]]) -> Iterator[TraceRecord]:
    return records(param_rows, sensor, now(), event, firing, trigger, observed)


def _request(sensor: str, t: str, event: str, firing: str, trigger: str, summary: RequestSummary) -> RequestBuilt:
    # summary.url is safe already: HttpRequest.summary() masks a password (a RequestSummary holds no secret)
    return RequestBuilt(time=t, sensor=sensor, event=event, firing=firing, trigger=trigger, method=summary.method,
                        url=summary.url, headers=dict(summary.headers), body_bytes=summary.body_bytes,
                        body_preview=summary.body_preview)


def request_record(sensor: str, event: str, firing: str, trigger: str, summary: RequestSummary) -> RequestBuilt:
    return _request(sensor, now(), event, firing, trigger, summary)


def outcome_rows(out: list[TraceRecord], sensor: str, t: str, event: str, firing: str, outcome: object) -> None:
    """request, then per attempt the response (with the policy verdict) and any retry, then the outcome.
    Works on any Outcome; the details come from a FiringOutcome."""
    append = out.append
    if not isinstance(outcome, FiringOutcome):
        append(FiringDone(time=t, sensor=sensor, event=event, firing=firing, trigger="",
                          success=bool(getattr(outcome, "success", False)), attempts=0,
                          error=getattr(outcome, "error", None) or None))
        return
    trigger = outcome.trigger
    if outcome.request is not None:
        append(_request(sensor, sent_at(outcome, t), event, firing, trigger, outcome.request))
    for a in outcome.attempts:
        answered = stamp(a.at + a.latency_s) if a.at else t
        append(ResponseReceived(time=answered, sensor=sensor, event=event, firing=firing, trigger=trigger,
                                attempt=a.number, status=a.status, latency_ms=round(a.latency_s * 1000, 3),
                                verdict=str(a.verdict.kind), reason=a.verdict.reason,
                                error=a.error if a.status is None and a.error else None,
                                rate_limited_ms=round(a.waited_s * 1000, 3), body_preview=a.response))
        if a.delay_s is not None:
            append(RetryScheduled(time=answered, sensor=sensor, event=event, firing=firing, trigger=trigger,
                                  attempt=a.number + 1, delay_s=round(a.delay_s, 6)))
    append(FiringDone(time=t, sensor=sensor, event=event, firing=firing, trigger=trigger, success=outcome.success,
                      attempts=len(outcome.attempts), error=outcome.error or None, note=outcome.note))


def sent_at(outcome: FiringOutcome, t: str) -> str:
    """When the firing's request was built and first sent (its parameters were resolved then): the first
    attempt's start, or `t` when the outcome does not say."""
    first = outcome.attempts[0].at if outcome.attempts else 0.0
    return stamp(first) if first else t


Started = tuple[float, str, str, Mapping[str, CloudEvent]]
"""When a firing started (seconds since the epoch), its trigger, the trigger's kind and its events: what its
`firing` record says, for `fired_rows` to write with the others when the runner did not write it at the start."""


def fired_rows(out: list[TraceRecord], sensor: str, t: str, event: str, firing: str, trigger: Trigger | None,
               outcome: object, full: bool = True, started: Started | None = None) -> None:
    """What a firing did once it finished: its `firing` record when `started` is given (the runner leaves it to
    this call when not `full`), the parameters it resolved (`trigger` None: not an HTTP trigger's spec), then
    request, responses, retries and outcome: the records of `firing_rows`, `param_rows` and `outcome_rows`, in
    one function because it runs for every traced firing (tests/test_trace_build.py holds it to them).

    Not `full` (DETAIL "decisions") leaves out what the other records imply when the firing succeeded at its
    first attempt: the parameters (the request shows what they made), the `firing` record of a firing of this
    one event, and the `outcome` (its one `response` says success). Any other firing keeps every record."""
    if not isinstance(outcome, FiringOutcome):
        if started is not None:
            firing_rows(out, sensor, stamp(started[0]), event, firing, *started[1:])
        outcome_rows(out, sensor, t, event, firing, outcome)
        return
    append = out.append
    attempts = outcome.attempts
    first = attempts[0].at if attempts else 0.0
    sent = stamp(first) if first else t  # when the request was built and first sent (its parameters resolved)
    name = outcome.trigger
    brief = not full and outcome.success and len(attempts) == 1 and not outcome.note  # the normal path
    if started is not None:
        at, trigger_name, kind, events = started
        if not (brief and len(events) == 1 and next(iter(events.values())).id == event):
            firing_rows(out, sensor, stamp(at), event, firing, trigger_name, kind, events)
    if trigger is not None and not brief:
        param_rows(out, sensor, sent, event, firing, trigger, outcome.params)  # one call per firing
    summary = outcome.request
    if summary is not None:
        # summary.url is safe already: HttpRequest.summary() masks a password (a RequestSummary holds no secret)
        append(RequestBuilt(time=sent, sensor=sensor, event=event, firing=firing, trigger=name,
                            method=summary.method, url=summary.url, headers=dict(summary.headers),
                            body_bytes=summary.body_bytes, body_preview=summary.body_preview))
    for a in attempts:
        at = a.at
        answered = stamp(at + a.latency_s) if at else t
        status, error, waited = a.status, a.error, a.waited_s
        verdict = a.verdict
        append(ResponseReceived(time=answered, sensor=sensor, event=event, firing=firing, trigger=name,
                                attempt=a.number, status=status, latency_ms=round(a.latency_s * 1000, 3),
                                verdict=str(verdict.kind), reason=verdict.reason,
                                error=error if status is None and error else None,
                                # round() of a zero is the zero itself
                                rate_limited_ms=round(waited * 1000, 3) if waited else waited * 1000,
                                body_preview=a.response))
        if a.delay_s is not None:
            append(RetryScheduled(time=answered, sensor=sensor, event=event, firing=firing, trigger=name,
                                  attempt=a.number + 1, delay_s=round(a.delay_s, 6)))
    if brief:
        return  # implied by the one response, a success
    append(FiringDone(time=t, sensor=sensor, event=event, firing=firing, trigger=name, success=outcome.success,
                      attempts=len(attempts), error=outcome.error or None, note=outcome.note))


def routine_start(result: StageResult) -> bool:
    """Whether an event may turn out routine (`Routine`): at DETAIL "decisions", `event_rows` would write only
    its `received` record and one passed `dependency` record for `result`, which fires one trigger on this event
    alone. (tests/test_trace_build.py holds this to `event_rows`. It runs for every traced event: plain loops.)"""
    deps, firings = result.dependencies, result.firings
    if len(deps) != 1 or len(firings) != 1:
        return False
    dep = deps[0]
    if not dep.passed or dep.error is not None or dep.transform is not None:
        return False
    verdict = dep.filters
    for part in verdict.parts or (verdict,):
        if part.passed and not part.error:
            for d in part.details:
                if not d.passed and part.kind != "filters":
                    return False
        elif part.kind != "filters":
            return False
    for c in result.conditions:
        if not c.satisfied or c.expression != c.dependency:
            return False
    events = firings[0].events
    if len(events) != 1:
        return False
    for only in events.values():
        return only.id == result.event.id
    return False


def routine_outcome(outcome: object) -> bool:
    """Whether `fired_rows` at DETAIL "decisions" would write only the request and its one response, a success,
    for a firing of one event (`routine_start`) that finished with `outcome`."""
    if not isinstance(outcome, FiringOutcome) or not outcome.success or outcome.note or outcome.request is None:
        return False
    attempts = outcome.attempts
    if len(attempts) != 1:
        return False
    a = attempts[0]
    return a.number == 1 and a.status is not None and a.at != 0.0 and a.delay_s is None and (
        a.verdict.kind is VerdictKind.SUCCESS)


Told = tuple[str, float, str, str, int | None, StageResult, bool]
"""`event_rows`' arguments but `out`, with the time as seconds since the epoch (a runner formats it only for
records it writes): sensor, time, bus, position, delivery count, stage result, every detail or not."""


def routine_rows(out: list[TraceRecord], told: Told, firing: str, outcome: FiringOutcome, acked: float,
                 ack_reason: str, copy: bool = False) -> None:
    """The `Routine` record of an event that went as it should: received as `told` says (`routine_start`), fired
    as `firing` with `outcome` (`routine_outcome`), acknowledged at `acked` (seconds since the epoch) for
    `ack_reason`. Says what `event_rows`, `fired_rows` and `ack_rows` would (tests/test_trace_build.py holds it
    to them), but for the data's preview: the reader makes it from the event stored at `position` (`Routine`),
    unless `copy` (the bus does not keep delivered events: `Bus.keeps_delivered`)."""
    sensor, t, bus, position, delivery, result, _ = told
    event = result.event
    data = event.data
    dep = result.dependencies[0]
    summary = outcome.request
    assert summary is not None  # (routine_outcome)
    a = outcome.attempts[0]
    out.append(Routine(bus, position, delivery,
                       (event.source, event.type, event.subject, event.datacontenttype, event.time),
                       event.extensions or None, len(data) if data is not None else 0,
                       data_preview(data) if copy else None, dep.name,
                       dep.filters.reason, firing, outcome.trigger, summary.method, summary.url, summary.headers,
                       summary.body_bytes, summary.body_preview, a.status or 0, (a.at, a.latency_s, a.waited_s),
                       a.verdict.reason, a.response, acked, ack_reason, time=stamp(t), sensor=sensor, event=event.id))


def ack_rows(out: list[TraceRecord], sensor: str, t: str, event: str | None, position: str, action: str,
             reason: str) -> None:
    out.append(Acknowledged(time=t, sensor=sensor, event=event, position=position, action=action,
                            reason=reason))


def chain(*parts: Sequence[TraceRecord] | Iterator[TraceRecord]) -> Iterator[TraceRecord]:
    for part in parts:
        yield from part

"""The per-event trace builders (`event_rows`, `fired_rows`) are flattened for speed: they must append exactly the
records of the step functions they stand for (`received_rows` + `stage_rows`, `param_rows` + `outcome_rows`), in
the same order, with the same fields and values, on every branch."""

from __future__ import annotations

import asyncio
import dis
import json
from collections.abc import Sequence
from typing import Any

import msgspec
import pytest

from sensorium.buses.base import StoredEvents
from sensorium.engine.core.cloudevent import CloudEvent, encode_structured
from sensorium.engine.core.errors import BusError
from sensorium.engine.trace.bus import NOT_STORED
from sensorium.engine.trace.bus import _parse as bus_parse
from sensorium.engine.trace.bus import _read_previews as read_previews
from sensorium.engine.trace.records import (
    ConditionChecked,
    DependencyMatched,
    FilterChecked,
    FiringDone,
    FiringStarted,
    ParamResolved,
    Received,
    RequestBuilt,
    ResponseReceived,
    Routine,
    TraceRecord,
    encode_lines,
    stamp,
)
from sensorium.engine.trace.steps import (
    PREVIEW_CHARS,
    VALUE_CHARS,
    ack_rows,
    event_rows,
    fired_rows,
    firing_rows,
    outcome_rows,
    param_rows,
    received_rows,
    routine_outcome,
    routine_rows,
    routine_start,
    rows_of,
    sent_at,
    stage_rows,
)
from sensorium.sensors.filters import FilterDetail, FilterVerdict
from sensorium.sensors.stage import ConditionVerdict, DependencyVerdict, Firing, StageResult
from sensorium.sensors.transform import TransformResult
from sensorium.triggers.outcome import Attempt, FiringOutcome, RequestSummary
from sensorium.triggers.params import Resolved
from sensorium.triggers.policy import Verdict, VerdictKind
from sensorium.triggers.spec import Trigger

T = "2026-12-06T10:00:00.000Z"
LONG = "v" * (VALUE_CHARS + 5)


def event(data: bytes | None = b'{"body":{"token":"abc","n":1}}', extensions: dict[str, str] | None = None
          ) -> CloudEvent:
    return CloudEvent(id="e-1", source="hook", type="webhook", subject="example", datacontenttype="application/json",
                      time="2026-12-06T09:59:59Z", data=data, extensions=extensions or {})


def detail(target: str, passed: bool, seen: str | None = "x", reason: str = "r") -> FilterDetail:
    return FilterDetail(target, seen, ("a", "b"), "=", "string", passed, reason)


VERDICTS = [
    FilterVerdict("filters", True),
    FilterVerdict("filters", False, reason="and", parts=(
        FilterVerdict("context", True, details=(detail("context.type", True),)),
        FilterVerdict("data", False, error="bad path x", details=(detail("p", False, None, "bad path x"),
                                                                 detail("q", True, LONG, LONG))),
        FilterVerdict("exprs", False, error="boom", details=(detail("e", False),)),
        FilterVerdict("time", False, reason="outside"),
        FilterVerdict("script", False, error=LONG),
        FilterVerdict("data", True),
    )),
    FilterVerdict("data", True, details=(detail("d", True, "y"),)),
]


def stage_result(ev: CloudEvent) -> StageResult:
    deps = [DependencyVerdict(f"dep{i}", v.passed, None if v.passed else "err", v) for i, v in enumerate(VERDICTS)]
    deps.append(DependencyVerdict("jq", True, None, VERDICTS[2], TransformResult("jq", ev, reason="ok")))
    deps.append(DependencyVerdict("jq-empty", True, None, VERDICTS[2],
                                  TransformResult("jq", CloudEvent(id="e-1", source="s", type="t"))))
    deps.append(DependencyVerdict("lua", False, "dropped", VERDICTS[1], TransformResult("script", None, "lua err")))
    conditions = (ConditionVerdict("t", "dep0 && dep1", "dep0", ("dep0",), False, False),
                  ConditionVerdict("u", "dep2", "dep2", ("dep2",), True, True))
    return StageResult(ev, tuple(deps), conditions, ())


@pytest.mark.parametrize("ev", [event(), event(extensions={"traceparent": "00-ab-cd-01", "id": "override"}),
                                event(data=None), event(data=b"")])
def test_event_rows_are_received_then_stage_rows(ev: CloudEvent) -> None:
    result = stage_result(ev)
    expected = rows_of(received_rows, "s", T, "nats://h:1", "sub seq 1", 2, ev)
    stage_rows(expected, "s", T, result)
    got = rows_of(event_rows, "s", T, "nats://h:1", "sub seq 1", 2, result)
    assert got == expected
    assert encode_lines(got) == encode_lines(expected)


def trigger() -> Trigger:
    return Trigger.model_validate({"template": {"name": "t", "http": {
        "url": "http://h/x", "payload": [{"src": {"dependencyName": "d", "dataKey": "body.n"}, "dest": "n"},
                                         {"src": {"dependencyName": "d", "contextKey": "id"}, "dest": "id"}],
        "parameters": [{"src": {"dependencyName": "d", "value": "v"}, "dest": "url"}]}}})


def outcomes(trig: Trigger) -> list[object]:
    http = trig.template.http
    assert http is not None and http.payload and http.parameters
    params = ((http.payload[0], Resolved("5", "Number")), (http.payload[1], Resolved("x" * (PREVIEW_CHARS + 9))),
              (http.parameters[0], Resolved(None)))
    request = RequestSummary("POST", "http://h/x", (("Content-Type", "application/json"), ("X-Key", "***")), 12,
                             '{"n":5}')
    ok, retry = Verdict(VerdictKind.SUCCESS, "2xx"), Verdict(VerdictKind.RETRYABLE, "5xx")
    at = 1796578632.8722112
    attempts = (Attempt(1, None, 0.01234567, "connection refused", retry, delay_s=0.1234567, at=at),
                Attempt(2, 503, 0.02, "", retry, delay_s=0.5, waited_s=0.0123456, at=at + 0.2, response="down"),
                Attempt(3, 200, 0.0301, "", ok, at=at + 1.3, response="ok"))
    return [
        FiringOutcome("t", "http", True, attempts, request=request, params=params),
        FiringOutcome("t", "http", False, attempts[:1], error="failed after retries: x", request=request),
        FiringOutcome("t", "http", True, (Attempt(1, 200, 0.001, "", ok),), params=params[:1]),  # `at` unknown
        FiringOutcome("t", "log", True, skipped=True, note="inside its interval"),
        FiringOutcome("t", "http", False, error="secret 'a/b' not found", params=params),
    ]


def test_fired_rows_are_param_rows_then_outcome_rows() -> None:
    trig = trigger()
    for outcome in outcomes(trig):
        assert isinstance(outcome, FiringOutcome)
        for given in (trig, None):
            expected = []
            if given is not None:
                expected = rows_of(param_rows, "s", sent_at(outcome, T), "e-1", "f-1", given, outcome.params)
            outcome_rows(expected, "s", T, "e-1", "f-1", outcome)
            got = rows_of(fired_rows, "s", T, "e-1", "f-1", given, outcome)
            assert got == expected
            assert encode_lines(got) == encode_lines(expected)


class Other:
    success = False
    error = "not an outcome"


def test_fired_rows_of_any_outcome() -> None:
    expected = rows_of(outcome_rows, "s", T, "e-1", "f-1", Other())
    assert rows_of(fired_rows, "s", T, "e-1", "f-1", trigger(), Other()) == expected


@pytest.mark.parametrize("at", [0.0, 59.9996, 60.0, 86399.5, 1796578632.8722112, 1796578679.9999, 951782400.001])
def test_stamp_is_rfc3339_utc_milliseconds(at: float) -> None:
    from datetime import UTC, datetime

    ms = int(at * 1000)
    whole = datetime.fromtimestamp(ms // 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    assert stamp(at) == f"{whole}.{ms % 1000:03d}Z"


def test_is_credential_name_is_any_word_in_the_lowered_text() -> None:
    import random
    import string

    from sensorium.engine.core.preview import _NAMES, is_credential_name

    rnd = random.Random(7)
    texts = [*_NAMES, "API", "Api_Key", "xAPI-KEYx", "apI", "ap-ikey", "", "Authorization", "x-api-kez"]
    for _ in range(20_000):
        text = "".join(rnd.choice(string.ascii_letters + "-_ ") for _ in range(rnd.randint(0, 12)))
        texts.append(text + (rnd.choice(_NAMES).upper() if rnd.random() < 0.3 else ""))
    for text in texts:
        assert is_credential_name(text) == any(word in text.lower() for word in _NAMES), text


@pytest.mark.parametrize("ev", [event(), event(data=None)])
def test_event_rows_in_brief_are_received_then_brief_stage_rows(ev: CloudEvent) -> None:
    result = stage_result(ev)
    expected = rows_of(received_rows, "s", T, "nats://h:1", "sub seq 1", 2, ev)
    stage_rows(expected, "s", T, result, False)
    got = rows_of(event_rows, "s", T, "nats://h:1", "sub seq 1", 2, result, False)
    assert got == expected
    assert encode_lines(got) == encode_lines(expected)


def test_decisions_leave_out_only_the_checks_that_passed_in_a_dependency_that_passed() -> None:
    result = stage_result(event())
    full = rows_of(event_rows, "s", T, "b", "p", 1, result)
    brief = rows_of(event_rows, "s", T, "b", "p", 1, result, False)
    passed = {d.name for d in result.dependencies if d.passed}

    def left_out(record: object) -> bool:
        if isinstance(record, ConditionChecked):  # (the next test's)
            return record.satisfied and record.expression == record.dependency
        return isinstance(record, FilterChecked) and record.dependency in passed and record.passed \
            and record.error is None

    assert [r for r in full if not left_out(r)] == brief
    assert any(left_out(r) for r in full)  # (the case is there to leave out)
    # a dependency that did not pass keeps every check, passed or not: they say why
    failed = [r for r in brief if isinstance(r, FilterChecked) and r.dependency == "dep1"]
    assert [r.target for r in failed] == [r.target for r in full
                                          if isinstance(r, FilterChecked) and r.dependency == "dep1"]
    assert any(r.passed for r in failed)


def test_decisions_leave_out_what_a_firing_that_succeeded_implies() -> None:
    trig = trigger()
    mine, other = event(), CloudEvent(id="e-0", source="hook", type="webhook", subject="other")
    for outcome in outcomes(trig):
        assert isinstance(outcome, FiringOutcome)
        for events in ({"d": mine}, {"d": mine, "o": other}):
            started = (1796578632.5, "t", "http", events)
            full = rows_of(firing_rows, "s", stamp(started[0]), "e-1", "f-1", "t", "http", events)
            fired_rows(full, "s", T, "e-1", "f-1", trig, outcome)
            got = rows_of(fired_rows, "s", T, "e-1", "f-1", trig, outcome, False, started)

            def implied(record: TraceRecord, outcome: FiringOutcome = outcome,
                        events: dict[str, CloudEvent] = events) -> bool:
                if not (outcome.success and len(outcome.attempts) == 1 and not outcome.note):
                    return False  # a firing that failed, was retried or skipped keeps everything
                if isinstance(record, FiringStarted):  # a firing of this one event
                    return list(events) == ["d"]
                return isinstance(record, (ParamResolved, FiringDone))

            assert got == [r for r in full if not implied(r)]
        # the runner that wrote the `firing` record at the start passes no `started`
        assert rows_of(fired_rows, "s", T, "e-1", "f-1", trig, outcome, False) == [
            r for r in rows_of(fired_rows, "s", T, "e-1", "f-1", trig, outcome, False, (0.0, "t", "http", {}))
            if not isinstance(r, FiringStarted)]


def test_decisions_leave_out_a_condition_that_is_the_dependency_that_passed() -> None:
    result = stage_result(event())
    full = rows_of(event_rows, "s", T, "b", "p", 1, result)
    brief = rows_of(event_rows, "s", T, "b", "p", 1, result, False)
    assert [(r.trigger, r.satisfied) for r in full if isinstance(r, ConditionChecked)] == [("t", False), ("u", True)]
    # "u" is `dep2` alone and held: implied by dep2's record; "t" (dep0 && dep1, not satisfied) says why not
    assert [r.trigger for r in brief if isinstance(r, ConditionChecked)] == ["t"]


def test_sensorium_run_traces_decisions_unless_told_all_or_tracing_on_the_terminal() -> None:
    from sensorium.engine.cli import _trace_hub, build_parser

    def detail(*options: str) -> str:
        return _trace_hub(build_parser().parse_args(["run", "s.yaml", *options])).detail

    assert detail() == "decisions"
    assert detail("--trace-detail", "all") == "all"
    assert detail("--trace") == detail("--trace-format", "json") == "all"
    assert detail("--trace", "--trace-detail", "decisions") == "decisions"
    with pytest.raises(SystemExit):
        build_parser().parse_args(["run", "s.yaml", "--trace-detail", "some"])


# ---- a routine event in one record (`Routine`, what `sensorium run` publishes at DETAIL "decisions") -----------

def routine_results(ev: CloudEvent) -> list[StageResult]:
    """Stage results of one event, routine or not in every way `routine_start` looks at."""
    other = CloudEvent(id="e-0", source="hook", type="webhook", subject="other")
    one = (Firing("u", {"d": ev}),)
    held = (ConditionVerdict("u", "d", "d", ("d",), True, True),)
    results = []
    one_failed = FilterVerdict("filters", True, parts=(  # ("or": a check failed, the kind passed)
        FilterVerdict("data", True, details=(detail("p", True), detail("q", False))),))
    for verdict in [*VERDICTS, one_failed]:
        for dep in (DependencyVerdict("d", verdict.passed, None if verdict.passed else "err", verdict),
                    DependencyVerdict("d", True, "lenient", verdict),
                    DependencyVerdict("d", True, None, verdict, TransformResult("jq", ev, reason="ok"))):
            for conditions in (held, (), (ConditionVerdict("u", "d && x", "d", ("d",), True, False),),
                               (ConditionVerdict("u", "d", "d", ("d",), False, True),)):
                for firings in (one, (), one * 2, (Firing("u", {"d": ev, "x": other}),), (Firing("u", {"d": other}),)):
                    results.append(StageResult(ev, (dep,), conditions, firings))
    dep = DependencyVerdict("d", True, None, VERDICTS[0])
    results.append(StageResult(ev, (dep, DependencyVerdict("e", True, None, VERDICTS[0])), held, one))
    return results


def test_routine_start_is_an_event_whose_decisions_are_received_and_its_dependency() -> None:
    ev = event()
    starts = 0
    for result in routine_results(ev):
        brief = rows_of(event_rows, "s", T, "b", "p", 1, result, False)
        alone = len(result.firings) == 1 and [e.id for e in result.firings[0].events.values()] == [ev.id]
        expected = alone and [type(r) for r in brief] == [Received, DependencyMatched] and (
            brief[1].passed and brief[1].error is None and result.dependencies[0].transform is None)
        assert routine_start(result) == expected, result
        starts += expected
    assert starts == 4  # (routine cases are there: two verdicts, with and without a condition record left out)


def routine_outcomes() -> list[object]:
    ok = Verdict(VerdictKind.SUCCESS, "http response status 200 is 2xx (no policy)")
    request = RequestSummary("POST", "http://h/x", (("Content-Type", "application/json"),), 7, '{"n":5}')
    at = 1796578632.8722112
    first = Attempt(1, 200, 0.0068134, "", ok, at=at, response="fine")
    return [
        FiringOutcome("t", "http", True, (first,), request=request),
        FiringOutcome("t", "http", True, (Attempt(1, 200, 0.004, "", ok, waited_s=0.0123456, at=at),),
                      request=request),
        FiringOutcome("t", "http", True, (first,)),  # no request summary
        FiringOutcome("t", "http", True, (first,), request=request, note="a note"),
        *outcomes(trigger()),
    ]


def test_routine_outcome_is_a_firing_whose_decisions_are_its_request_and_one_success() -> None:
    ev = event()
    routine = 0
    for outcome in routine_outcomes():
        got = rows_of(fired_rows, "s", T, "e-1", "f-1", trigger(), outcome, False, (1796578632.5, "t", "http",
                                                                                     {"d": ev}))
        expected = [type(r) for r in got] == [RequestBuilt, ResponseReceived] and isinstance(outcome, FiringOutcome) \
            and bool(outcome.attempts[0].at)  # (when `at` is not known the records take the done time)
        assert routine_outcome(outcome) == expected, outcome
        routine += expected
    assert routine == 2


@pytest.mark.parametrize("ev", [event(), event(extensions={"traceparent": "00-ab-cd-01"}), event(data=None)])
def test_a_routine_record_stands_for_the_records_of_each_step(ev: CloudEvent) -> None:
    result = StageResult(ev, (DependencyVerdict("d", True, None, VERDICTS[2]),),
                         (ConditionVerdict("u", "d", "d", ("d",), True, True),), (Firing("u", {"d": ev}),))
    assert routine_start(result)
    received, acked = 1796578632.4567, 1796578633.0129
    for outcome in routine_outcomes()[:2]:
        assert isinstance(outcome, FiringOutcome) and routine_outcome(outcome)
        steps = rows_of(event_rows, "s", stamp(received), "nats://h:1", "sub seq 1", 2, result, False)
        fired_rows(steps, "s", "2026-12-06T10:00:01.000Z", ev.id, "f-1", trigger(), outcome, False,
                   (1796578632.5, "u", "http", {"d": ev}))
        ack_rows(steps, "s", stamp(acked), ev.id, "sub seq 1", "ack", "1 firing(s) finished")
        told = ("s", received, "nats://h:1", "sub seq 1", 2, result, False)
        (routine,) = rows_of(routine_rows, told, "f-1", outcome, acked, "1 firing(s) finished")
        assert isinstance(routine, Routine)
        # the same five records, but for the data's preview: not copied, the reader makes it (below)
        assert routine.data_preview is None
        assert list(routine.steps()) == [msgspec.structs.replace(steps[0], data_preview=""), *steps[1:]]
        # and so when read back from the bus: the five records' JSON, in order, the preview made from the event
        # stored where the record says
        data, _ = encode_lines([routine])
        unread: list[tuple[dict[str, Any], str]] = []
        got = bus_parse(data, unread)
        assert unread == ([(got[0], "sub seq 1")] if ev.data else [])
        asyncio.run(read_previews(Stored({"sub seq 1": (encode_structured(ev), {})}), unread))
        assert got == [r.to_json() for r in steps]
        assert len(data) < len(encode_lines(steps)[0]) * 0.6


def routine_of(ev: CloudEvent, position: str) -> TraceRecord:
    """The `Routine` record of `ev`, routine in every way, received at `position`."""
    result = StageResult(ev, (DependencyVerdict("d", True, None, VERDICTS[0]),),
                         (ConditionVerdict("u", "d", "d", ("d",), True, True),), (Firing("u", {"d": ev}),))
    outcome = routine_outcomes()[0]
    assert isinstance(outcome, FiringOutcome)
    (routine,) = rows_of(routine_rows, ("s", 1796578632.4, "b", position, 1, result, False), "f-1", outcome,
                         1796578633.0, "1 firing(s) finished")
    return routine


class Stored(StoredEvents):
    """Events stored by position, in a dict (what `Bus.stored_events` gives: tests/test_trace_bus.py reads the
    real buses')."""

    def __init__(self, events: dict[str, tuple[bytes, dict[str, str]]], fail: str = "") -> None:
        self.events, self.fail = events, fail

    async def get(self, positions: Sequence[str]) -> dict[str, tuple[bytes, dict[str, str]]]:
        if self.fail:
            raise BusError(self.fail)
        return {p: self.events[p] for p in positions if p in self.events}

    async def close(self) -> None:
        return None


def test_the_reader_says_why_a_routine_events_data_is_not_shown() -> None:
    ev = event()
    line = encode_lines([routine_of(ev, "sub seq 7")])[0]
    other = CloudEvent(id="someone-else", source="hook", type="webhook", data=b"{}")
    for stored, shown in ((Stored({}), NOT_STORED), (None, NOT_STORED),
                          (Stored({"sub seq 7": (encode_structured(other), {})}), NOT_STORED),
                          (Stored({"sub seq 7": (b"not an event", {})}), "(not shown: the event's data could not"),
                          (Stored({}, fail="nats x: down"), "(not shown: the event's data could not be read from "
                                                            "the bus: nats x: down)")):
        unread: list[tuple[dict[str, Any], str]] = []
        received = bus_parse(line, unread)[0]
        asyncio.run(read_previews(stored, unread))
        assert received["data_preview"].startswith(shown), (stored, received["data_preview"])
    # a routine record of an engine before this one copied the preview: nothing to read
    old = json.loads(line)
    old["data_preview"] = '{"copied":1}'
    unread = []
    assert bus_parse(json.dumps(old).encode(), unread)[0]["data_preview"] == '{"copied":1}' and unread == []
    # an event without data has nothing to look up
    old["data_preview"], old["data_bytes"] = None, 0
    assert bus_parse(json.dumps(old).encode(), unread)[0]["data_preview"] == "" and unread == []


def test_a_routine_record_copies_the_preview_when_the_bus_does_not_keep_the_event() -> None:
    """`copy` (`Bus.keeps_delivered` False: a JetStream stream with interest or work-queue retention drops an
    event once acknowledged): the record carries the preview, masked, and the reader looks nothing up."""
    secret = CloudEvent(id="e-9", source="hook", type="webhook", data=b'{"user":"a","token":"zzz-secret"}')
    result = StageResult(secret, (DependencyVerdict("d", True, None, VERDICTS[0]),),
                         (ConditionVerdict("u", "d", "d", ("d",), True, True),), (Firing("u", {"d": secret}),))
    outcome = routine_outcomes()[0]
    assert isinstance(outcome, FiringOutcome)
    (routine,) = rows_of(routine_rows, ("s", 1796578632.4, "b", "sub seq 3", 1, result, False), "f-1", outcome,
                         1796578633.0, "1 firing(s) finished", True)
    assert isinstance(routine, Routine) and routine.data_preview == '{"user":"a","token":"***"}'
    unread: list[tuple[dict[str, Any], str]] = []
    assert bus_parse(encode_lines([routine])[0], unread)[0]["data_preview"] == routine.data_preview
    assert unread == []


def test_the_reader_masks_the_preview_it_makes() -> None:
    secret = CloudEvent(id="e-9", source="hook", type="webhook", datacontenttype="application/json",
                        data=b'{"user":"a","api_key":"zzz-secret","n":1}')
    line = encode_lines([routine_of(secret, "sub seq 3")])[0]
    assert b"zzz-secret" not in line and b"api_key" not in line  # the trace holds no copy of the data
    unread: list[tuple[dict[str, Any], str]] = []
    received = bus_parse(line, unread)[0]
    asyncio.run(read_previews(Stored({"sub seq 3": (encode_structured(secret), {})}), unread))
    assert received["data_preview"] == '{"user":"a","api_key":"***","n":1}'


def test_a_record_that_says_routine_without_a_routines_fields_is_read_as_it_is() -> None:
    line = b'{"step":"routine","time":"x","sensor":"s","event":"e"}\n'
    assert bus_parse(line) == [json.loads(line)]


@pytest.mark.parametrize("sent", ["NaN", "Infinity", "-Infinity", "1e300", "-1e300", "1e18"])
def test_a_routine_record_with_times_that_are_no_times_is_read_as_it_is(sent: str) -> None:
    good = encode_lines([routine_of(event(), "p")])[0]
    forged = json.loads(good)
    forged["timing"][0] = "SENT"
    line = json.dumps(forged).replace('"SENT"', sent).encode()  # (json.loads reads NaN and Infinity)
    assert bus_parse(line) == [json.loads(line)]
    assert len(bus_parse(good)) == 5


def test_a_routine_record_is_made_without_a_dict_for_its_fields() -> None:
    """CPython calls with more than 15 keywords (30 stack slots) through a dict built for the call
    (`CALL_FUNCTION_EX`): about 13,000 instructions more per routine event, a sixth of the trace's cost
    (bench/README.md, eleventh session)."""
    assert "CALL_FUNCTION_EX" not in {i.opname for i in dis.get_instructions(routine_rows)}
    assert "CALL_FUNCTION_EX" in {i.opname for i in dis.get_instructions(_too_many_keywords)}  # (what it looks like)


def _too_many_keywords() -> dict[str, int]:
    return dict(a=1, b=2, c=3, d=4, e=5, f=6, g=7, h=8, i=9, j=10, k=11, l=12, m=13, n=14, o=15, p=16)

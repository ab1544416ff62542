"""engine.metrics without a running engine: label vocabulary and bounds, the deciding filter kind of a real
sensor stage's verdicts, and what a firing outcome adds up to."""

from __future__ import annotations

from datetime import UTC, datetime

from prometheus_client.parser import text_string_to_metric_families

from sensorium.engine.metrics import EngineMetrics, code_label, deciding_filter, event_age, label
from sensorium.sensors.stage import SensorStage
from sensorium.triggers.outcome import Attempt, FiringOutcome
from sensorium.triggers.policy import Verdict, VerdictKind
from tests.sensors.builders import dep, event, sensor, trigger

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def samples(metrics: EngineMetrics) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {(s.name, frozenset(s.labels.items())): s.value
            for f in text_string_to_metric_families(metrics.exposition().decode()) for s in f.samples}


def test_status_codes_outside_http_share_one_label_and_names_are_bounded() -> None:
    assert [code_label(c) for c in (99, 100, 204, 599, 600, -1, 10**9)] == [
        "other", "100", "204", "599", "other", "other", "other"]
    assert label("x" * 10_000) == "x" * 128


def test_the_deciding_filter_kind_is_the_one_that_rejected_the_event() -> None:
    deps = [dep("ctx", filters={"context": {"type": "push"}}),
            dep("data", filters={"data": [{"path": "body.n", "type": "number", "value": ["1"]}]}),
            dep("both", filters={"data": [{"path": "body.n", "type": "number", "value": ["2"]}],
                                 "context": {"type": "webhook"}}),
            dep("drop", transform={"jq": ".missing | error"})]
    stage = SensorStage(sensor(deps, [trigger("t", "ctx || data || both || drop")]))
    result = stage.process(event({"body": {"n": 2}}), NOW)
    assert {v.name: (v.passed, None if v.passed else deciding_filter(v)) for v in result.dependencies} == {
        "ctx": (False, "context"), "data": (False, "data"), "both": (True, None), "drop": (False, "transform")}

    metrics = EngineMetrics()
    m = metrics.sensor("s", ["ctx", "data", "both", "drop"], ["t"])
    m.delivered()
    m.decided(result)
    m.decided(stage.process(event(source="other"), NOW))  # matches no dependency
    got = samples(metrics)
    assert got["sensorium_events_received_total", frozenset({("sensor", "s")})] == 1
    assert got["sensorium_sensor_events_unmatched_total", frozenset({("sensor", "s")})] == 1
    assert got["sensorium_events_matched_total", frozenset({("sensor", "s"), ("dependency", "both")})] == 1
    filtered = {dict(k[1])["dependency"] + "/" + dict(k[1])["filter"]: v for k, v in got.items()
                if k[0] == "sensorium_events_filtered_total" and v}
    assert filtered == {"ctx/context": 1, "data/data": 1, "drop/transform": 1}


def test_a_firing_adds_its_attempts_codes_and_latencies() -> None:
    retry, ok = Verdict(VerdictKind.RETRYABLE, ""), Verdict(VerdictKind.SUCCESS, "")
    outcome = FiringOutcome("t", "http", True, attempts=(
        Attempt(1, None, 0.5, "timeout", retry, delay_s=1.0),
        Attempt(2, 700, 0.25, "", retry, delay_s=1.0),
        Attempt(3, 201, 0.125, "", ok)))
    metrics = EngineMetrics()
    m = metrics.sensor("s", ["d"], ["t"], namespace="ns")
    m.fired("t", event(time="2025-12-31T23:59:59.000000001Z"), outcome)
    got = samples(metrics)
    t = {("sensor", "s"), ("trigger", "t")}
    assert got["sensorium_trigger_attempts_total", frozenset(t)] == 3
    assert got["sensorium_trigger_retries_total", frozenset(t)] == 2
    assert {dict(k[1])["code"]: v for k, v in got.items() if k[0] == "sensorium_trigger_responses_total"} == {
        "other": 1, "201": 1}
    assert got["sensorium_trigger_request_duration_seconds_sum", frozenset(t)] == 0.875
    assert got["sensorium_trigger_firings_total", frozenset(t | {("outcome", "success")})] == 1
    argo = frozenset({("namespace", "ns"), ("sensor_name", "s"), ("trigger_name", "t")})
    assert got["argo_events_action_triggered_total", argo] == 1
    assert got["argo_events_action_duration_milliseconds_sum", argo] == 2875.0
    assert got["sensorium_event_to_response_duration_seconds_count", frozenset(t)] == 1


def test_event_age_reads_argo_nanosecond_times_and_never_goes_negative() -> None:
    stamp = datetime(2026, 1, 1, tzinfo=UTC).timestamp()
    assert event_age(event(time="2026-01-01T00:00:00.000000000Z"), stamp + 2.5) == 2.5
    assert event_age(event(time="2026-01-01T00:00:10Z"), stamp) == 0.0
    assert event_age(event(time="yesterday"), stamp) is None
    assert event_age(event(), stamp) is None

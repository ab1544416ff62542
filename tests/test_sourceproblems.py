"""A source's problems (engine/sourceproblems.py): one `source` trace record per sensor listening to the entry,
none for the others, and a count in `sensorium_source_problems_total`."""

from __future__ import annotations

from sensorium.buses.base import EventKey
from sensorium.engine.metrics import EngineMetrics
from sensorium.engine.sourceproblems import SourceProblems
from sensorium.engine.trace.records import NULL_TRACER, RecordingTracer, SourceProblem
from sensorium.engine.unmatched import UnmatchedWatch


def test_each_listening_sensor_gets_a_record_and_the_metric_counts() -> None:
    tracer = RecordingTracer()
    watch = UnmatchedWatch([("orders", [EventKey("hook", "orders")]), ("other", [EventKey("cal", "tick")]),
                            ("both", [EventKey("hook", "orders"), EventKey("cal", "tick")])], tracer)
    metrics = EngineMetrics()
    problems = SourceProblems(watch, tracer, metrics)
    problems.report("webhook", "hook", "orders", "X-Signature does not match", 401)
    problems.report("webhook", "hook", "orders", "x" * 2000, 403)
    records = [r for r in tracer.records if isinstance(r, SourceProblem)]
    assert [(r.sensor, r.source, r.subject, r.kind, r.status) for r in records] == [
        ("orders", "hook", "orders", "webhook", 401), ("both", "hook", "orders", "webhook", 401),
        ("orders", "hook", "orders", "webhook", 403), ("both", "hook", "orders", "webhook", 403)]
    assert len(records[-1].problem) == 500
    scrape = metrics.exposition().decode()
    assert 'sensorium_source_problems_total{event_name="orders",event_source="hook",kind="webhook"} 2.0' in scrape


def test_without_tracing_or_metrics_nothing_is_recorded() -> None:
    problems = SourceProblems(UnmatchedWatch([("s", [EventKey("hook", "orders")])], NULL_TRACER), NULL_TRACER)
    problems.report("httpPoll", "hook", "orders", "poll failed", None)
    assert problems.reported == 1

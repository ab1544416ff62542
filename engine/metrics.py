"""Prometheus metrics of a running engine (`prometheus-client`), served on the operations port's `/metrics`.

Names follow Prometheus conventions (`sensorium_` prefix, `_total` counters, `_seconds` histograms); Argo
Events' own sensor and event-source names are exported too (`argo_events_*`, same labels and units as Argo's
`pkg/metrics`), so existing dashboards keep working. Every label value comes from configuration (sensor,
dependency, trigger, EventSource and event names), a fixed vocabulary (filter kinds, outcomes, dead-letter
reasons) or an HTTP status code (`"100"`..`"599"`, anything else `"other"`): no event id, URL, header or body
ever becomes a label, so the number of series is bounded by the configuration and no secret can reach a scrape.

Hot path: every child a sensor or webhook endpoint updates is bound once at assembly (`SensorMetrics`,
`WebhookMetrics`); per event the runner makes a few `inc()`/`observe()` calls on them, never `.labels()`.
Status codes are bound on first sight, into a dict of at most 501 entries per trigger or endpoint.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import datetime
from typing import Protocol

from prometheus_client import CollectorRegistry, Counter, Histogram, Summary
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import Collector

from sensorium.engine.core.cloudevent import CloudEvent
from sensorium.engine.dlq import UNDECODABLE, UNDELIVERABLE, UNPROCESSABLE
from sensorium.sensors.stage import DependencyVerdict, StageResult
from sensorium.sources.webhook import Endpoint
from sensorium.triggers.outcome import FiringOutcome

FILTER_KINDS = ("exprs", "data", "context", "time", "script", "transform", "timeout", "error")
"""Values of the `filter` label: the filter kind that rejected the event, `transform` when the dependency's
transform dropped it, `timeout` when it ran out of its time limit, `error` when no single kind is to blame."""
OUTCOMES = ("success", "failed")
DEAD_LETTER_REASONS = (UNDECODABLE, UNPROCESSABLE, UNDELIVERABLE)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
"""What /metrics answers: the classic text format, read by every Prometheus version (all names here are plain
ASCII, so prometheus_client's output is the same in its 0.0.4 and 1.0.0 text formats)."""
MAX_LABEL = 128  # characters of a configuration name used as a label value
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
                   120.0, 300.0)


def label(name: str) -> str:
    """A configuration name as a label value, bounded."""
    return name[:MAX_LABEL]


def code_label(status: int) -> str:
    """An HTTP status as the `code` label: its number for 100-599, otherwise "other"."""
    return str(status) if 100 <= status <= 599 else "other"


def deciding_filter(verdict: DependencyVerdict) -> str:
    """The `filter` label of a dependency that matched by name but did not pass (one of FILTER_KINDS)."""
    if verdict.transform is not None and verdict.transform.event is None:
        return "transform"
    filters = verdict.filters
    if "time limit" in filters.reason or "timed out" in filters.reason:
        return "timeout"
    if filters.kind != "filters":
        return filters.kind
    for part in filters.parts:
        if not part.passed or part.error is not None:
            return "timeout" if "time limit" in part.reason else part.kind
    return "error"


def event_age(event: CloudEvent, now: float) -> float | None:
    """Seconds from the event's `time` attribute to `now` (Unix seconds); None without a readable time.
    Clocks of the publisher and the engine may differ: a negative age counts as 0."""
    if not event.time:
        return None
    try:
        stamp = datetime.fromisoformat(event.time).timestamp()
    except ValueError:
        return None
    return max(0.0, now - stamp)


class _Codes:
    """Children of a counter with a trailing `code` label, bound on first sight of each code."""

    def __init__(self, counter: Counter, *labels: str) -> None:
        self._counter, self._labels = counter, labels
        self._children: dict[int, Counter] = {}

    def inc(self, status: int) -> None:
        child = self._children.get(status)
        if child is None:
            child = self._children[status] = self._counter.labels(*self._labels, code_label(status))
        child.inc()


class SensorMetricsLike(Protocol):
    """What a sensor's runner reports (engine.runner.SensorRunner): one call per step, never raising."""

    def delivered(self) -> None: ...
    def decided(self, result: object) -> None: ...
    def fired(self, trigger: str, event: CloudEvent, outcome: FiringOutcome) -> None: ...
    def dead_lettered(self, reason: str) -> None: ...


class NullSensorMetrics:
    """No metrics (no operations port): every call does nothing."""

    def delivered(self) -> None:
        pass

    def decided(self, result: object) -> None:
        pass

    def fired(self, trigger: str, event: CloudEvent, outcome: FiringOutcome) -> None:
        pass

    def dead_lettered(self, reason: str) -> None:
        pass


NULL_SENSOR_METRICS = NullSensorMetrics()


class _TriggerMetrics:
    def __init__(self, m: EngineMetrics, sensor: str, trigger: str, namespace: str) -> None:
        self.success = m.firings.labels(sensor, trigger, "success")
        self.failed = m.firings.labels(sensor, trigger, "failed")
        self.attempts = m.attempts.labels(sensor, trigger)
        self.retries = m.retries.labels(sensor, trigger)
        self.codes = _Codes(m.responses, sensor, trigger)
        self.request = m.request_seconds.labels(sensor, trigger)
        self.end_to_end = m.end_to_end_seconds.labels(sensor, trigger)
        self.argo_triggered = m.argo_action_triggered.labels(namespace, sensor, trigger)
        self.argo_failed = m.argo_action_failed.labels(namespace, sensor, trigger)
        self.argo_duration = m.argo_action_duration.labels(namespace, sensor, trigger)


class SensorMetrics:
    """One sensor's children, bound at assembly for its dependencies and triggers."""

    def __init__(self, m: EngineMetrics, sensor: str, dependencies: Iterable[str], triggers: Iterable[str],
                 namespace: str = "") -> None:
        name = label(sensor)
        self._received = m.received.labels(name)
        self._unmatched = m.sensor_unmatched.labels(name)
        self._matched = {d: m.matched.labels(name, label(d)) for d in dependencies}
        self._filtered = {(d, k): m.filtered.labels(name, label(d), k) for d in self._matched for k in FILTER_KINDS}
        self._triggers = {t: _TriggerMetrics(m, name, label(t), label(namespace)) for t in triggers}
        self._dead = {r: m.dead_letters.labels(name, r) for r in DEAD_LETTER_REASONS}
        self._m, self._name = m, name

    def delivered(self) -> None:
        self._received.inc()

    def decided(self, result: object) -> None:
        if not isinstance(result, StageResult):
            return
        if not result.dependencies:
            self._unmatched.inc()
            return
        for verdict in result.dependencies:
            if verdict.passed:
                self._matched[verdict.name].inc()
            else:
                self._filtered[verdict.name, deciding_filter(verdict)].inc()

    def fired(self, trigger: str, event: CloudEvent, outcome: FiringOutcome) -> None:
        t = self._triggers[trigger]
        (t.success if outcome.success else t.failed).inc()
        (t.argo_triggered if outcome.success else t.argo_failed).inc()
        attempts = outcome.attempts
        if attempts:
            t.attempts.inc(len(attempts))
            if len(attempts) > 1:
                t.retries.inc(len(attempts) - 1)
        spent = 0.0
        for attempt in attempts:
            t.request.observe(attempt.latency_s)
            spent += attempt.latency_s + attempt.waited_s + (attempt.delay_s or 0.0)
            if attempt.status is not None:
                t.codes.inc(attempt.status)
        t.argo_duration.observe(spent * 1000.0)
        age = event_age(event, time.time())
        if age is not None:
            t.end_to_end.observe(age)

    def dead_lettered(self, reason: str) -> None:
        child = self._dead.get(reason)
        if child is None:  # a reason added later: bounded by the code's vocabulary
            child = self._dead[reason] = self._m.dead_letters.labels(self._name, label(reason))
        child.inc()


INTAKE_OUTCOMES = ("dispatched", "unselected", "undecodable")


class IntakeMetrics:
    """The shared intake's counts (engine.intake): a message `dispatched` to at least one sensor, `unselected`
    (no loaded sensor can be affected by it: acked unseen), `undecodable` (not a CloudEvent)."""

    def __init__(self, m: EngineMetrics) -> None:
        self._children = {o: m.intake.labels(o) for o in INTAKE_OUTCOMES}

    def count(self, outcome: str) -> None:
        self._children[outcome].inc()


class NullIntakeMetrics:
    def count(self, outcome: str) -> None:
        return None


class _EndpointMetrics:
    def __init__(self, m: EngineMetrics, endpoint: Endpoint, routed: bool) -> None:
        source, event = label(endpoint.source), label(endpoint.event)
        self.codes = _Codes(m.webhook_requests, source, event)
        self.unmatched = None if routed else m.unmatched.labels(source, event)
        self.argo_sent = m.argo_events_sent.labels("", source, event)
        self.argo_sent_failed = m.argo_events_sent_failed.labels("", source, event)
        self.argo_duration = m.argo_event_processing.labels("", source, event)


class WebhookMetrics:
    """The webhook endpoints' children, made at an endpoint's first response (only configured endpoints answer, so
    they stay bounded); `observe` is the webhook server's per-response callback."""

    def __init__(self, m: EngineMetrics, listened: Callable[[str, str], bool]) -> None:
        self._m, self._listened = m, listened
        self._by_endpoint: dict[tuple[str, str], _EndpointMetrics] = {}

    def observe(self, endpoint: Endpoint, status: int, seconds: float) -> None:
        key = (endpoint.source, endpoint.event)
        e = self._by_endpoint.get(key)
        if e is None:
            e = self._by_endpoint[key] = _EndpointMetrics(self._m, endpoint, self._listened(*key))
        e.codes.inc(status)
        if status == 200:
            e.argo_sent.inc()
            e.argo_duration.observe(seconds * 1000.0)
            if e.unmatched is not None:
                e.unmatched.inc()
        elif status == 503:  # the bus did not store the event
            e.argo_sent_failed.inc()


class Gauges(Protocol):
    """What the scrape-time collector reads from the running engine (engine.app)."""

    def unsettled(self) -> Mapping[str, int]: ...
    def bus_connected(self) -> bool | None: ...
    def trace_dropped(self) -> int | None: ...


class _StateCollector(Collector):
    """Values read at scrape time, so the event path pays nothing for them."""

    def __init__(self) -> None:
        self.source: Gauges | None = None

    def collect(self) -> Iterator[Metric]:
        source = self.source
        if source is None:
            return
        unsettled = GaugeMetricFamily("sensorium_deliveries_unsettled",
                                      "Bus messages a sensor holds unacknowledged (its firings still running)",
                                      labels=["sensor"])
        for sensor, count in source.unsettled().items():
            unsettled.add_metric([label(sensor)], count)
        yield unsettled
        connected = source.bus_connected()
        if connected is not None:
            yield GaugeMetricFamily("sensorium_bus_connected", "1 while the engine is connected to its bus",
                                    value=1 if connected else 0)
        dropped = source.trace_dropped()
        if dropped is not None:
            yield CounterMetricFamily("sensorium_trace_records_dropped",
                                      "Trace records dropped because the trace buffer was full", value=dropped)


class EngineMetrics:
    """Every metric of one engine, in a registry of its own (several engines may share a process in tests)."""

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.received = Counter("sensorium_events_received", "Bus messages delivered to a sensor",
                                ["sensor"], registry=r)
        self.sensor_unmatched = Counter(
            "sensorium_sensor_events_unmatched", "Events a sensor received that match none of its dependencies",
            ["sensor"], registry=r)
        self.matched = Counter("sensorium_events_matched", "Events that passed a dependency's filters",
                               ["sensor", "dependency"], registry=r)
        self.filtered = Counter(
            "sensorium_events_filtered", "Events a dependency matched by name whose filters (or transform) rejected "
            "them; `filter` is the deciding kind", ["sensor", "dependency", "filter"], registry=r)
        self.unmatched = Counter(
            "sensorium_events_unmatched", "Events this engine's webhooks stored that no loaded sensor listens to",
            ["event_source", "event_name"], registry=r)
        self.firings = Counter("sensorium_trigger_firings", "Firings by final outcome (after retries)",
                               ["sensor", "trigger", "outcome"], registry=r)
        self.attempts = Counter("sensorium_trigger_attempts", "Trigger attempts (requests sent)",
                                ["sensor", "trigger"], registry=r)
        self.retries = Counter("sensorium_trigger_retries", "Trigger attempts after the first one",
                               ["sensor", "trigger"], registry=r)
        self.responses = Counter("sensorium_trigger_responses", "Trigger responses by HTTP status",
                                 ["sensor", "trigger", "code"], registry=r)
        self.request_seconds = Histogram(
            "sensorium_trigger_request_duration_seconds", "One trigger attempt, request to response (or error)",
            ["sensor", "trigger"], buckets=LATENCY_BUCKETS, registry=r)
        self.end_to_end_seconds = Histogram(
            "sensorium_event_to_response_duration_seconds", "From the event's time attribute (the webhook's "
            "receipt) to the firing's final response", ["sensor", "trigger"], buckets=LATENCY_BUCKETS, registry=r)
        self.dead_letters = Counter("sensorium_dead_letters", "Bus messages a sensor stored as dead letters",
                                    ["sensor", "reason"], registry=r)
        self.webhook_requests = Counter("sensorium_webhook_requests", "Webhook requests by answered status",
                                        ["event_source", "event_name", "code"], registry=r)
        self.source_problems = Counter(
            "sensorium_source_problems", "Times a source stored no event: a refused webhook request, a failed poll, "
            "a custom source that raised, a missing watched directory", ["event_source", "event_name", "kind"],
            registry=r)
        # Argo Events' names, labels and units (pkg/metrics/metrics.go); namespace from the Sensor's metadata.
        self.argo_action_triggered = Counter(
            "argo_events_action_triggered", "How many actions have been triggered successfully",
            ["namespace", "sensor_name", "trigger_name"], registry=r)
        self.argo_action_failed = Counter("argo_events_action_failed", "How many actions failed",
                                          ["namespace", "sensor_name", "trigger_name"], registry=r)
        self.argo_action_duration = Summary(
            "argo_events_action_duration_milliseconds", "Summary of durations of triggering actions",
            ["namespace", "sensor_name", "trigger_name"], registry=r)
        self.argo_events_sent = Counter("argo_events_events_sent", "How many events have been sent successfully",
                                        ["namespace", "eventsource_name", "event_name"], registry=r)
        self.argo_events_sent_failed = Counter(
            "argo_events_events_sent_failed", "How many events failed to send to EventBus",
            ["namespace", "eventsource_name", "event_name"], registry=r)
        self.argo_event_processing = Summary(
            "argo_events_event_processing_duration_milliseconds", "Summary of durations of event processing",
            ["namespace", "eventsource_name", "event_name"], registry=r)
        self.intake = Counter("sensorium_intake_messages", "Bus messages the shared intake fetched, by what became "
                              "of them", ["outcome"], registry=r)
        self._state = _StateCollector()
        r.register(self._state)

    def sensor(self, name: str, dependencies: Iterable[str], triggers: Iterable[str],
               namespace: str = "") -> SensorMetrics:
        return SensorMetrics(self, name, dependencies, triggers, namespace)

    def intake_counts(self) -> IntakeMetrics:
        return IntakeMetrics(self)

    def webhooks(self, listened: Callable[[str, str], bool]) -> WebhookMetrics:
        return WebhookMetrics(self, listened)

    def watch(self, gauges: Gauges) -> None:
        self._state.source = gauges

    def exposition(self) -> bytes:
        """The registry in Prometheus' text format."""
        return generate_latest(self.registry)

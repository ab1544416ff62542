"""OpenTelemetry tracing, optional and off by default (`sensorium run --otlp-endpoint URL`, or the standard
`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` / `OTEL_EXPORTER_OTLP_ENDPOINT` variables).

Spans, exported over OTLP/HTTP (protobuf) through a BatchSpanProcessor (`shutdown()` flushes what is queued):

    event <sensor>      one per event a sensor received and decided (kind CONSUMER); its parent is the event's
                        `traceparent` extension (the webhook caller's span) when it has one, else it starts a trace
    fire <trigger>      one per firing, child of the event's span; ends when the firing's last attempt did
    attempt <trigger>   one per HTTP request (kind CLIENT), child of the firing; its id is the parent id of the
                        `traceparent` the trigger sends, so the target's spans join the same trace

Attributes name the sensor, trigger, event id, source, subject, HTTP status and retry number; never a URL,
header or body (no secret can reach a collector). With tracing off this module's OpenTelemetry imports are never
made and the runner holds None: the event path pays one `is None` test per event and per firing.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING

from sensorium.engine.core.cloudevent import CloudEvent
from sensorium.engine.core.tracecontext import from_extensions
from sensorium.triggers.httprequest import safe_url

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.trace import Span, Tracer

log = logging.getLogger("sensorium.otel")

TRACES_PATH = "/v1/traces"
FiringDone = Callable[[bool, str], None]
"""Told how a firing ended: (success, error text, empty on success)."""


def otlp_traces_url(flag: str | None, env: Mapping[str, str] = os.environ) -> str | None:
    """Where spans go, or None (tracing off). `--otlp-endpoint` and `OTEL_EXPORTER_OTLP_ENDPOINT` are base URLs
    (`/v1/traces` is appended, as the OpenTelemetry specification says for the variable);
    `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` is used as it is. The flag wins, then the traces variable."""
    if flag:
        return flag if flag.rstrip("/").endswith(TRACES_PATH) else flag.rstrip("/") + TRACES_PATH
    traces = env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "").strip()
    if traces:
        return traces
    base = env.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip()
    return base.rstrip("/") + TRACES_PATH if base else None


def _error(span: Span, message: str) -> None:
    from opentelemetry.trace import Status, StatusCode
    span.set_status(Status(StatusCode.ERROR, message[:500]))


class AttemptSpan:
    """One HTTP request of a firing (`triggers.tracehook.AttemptSpan`)."""

    def __init__(self, span: Span) -> None:
        self.span = span

    def headers(self) -> dict[str, str]:
        from opentelemetry.trace import set_span_in_context
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
        carrier: dict[str, str] = {}
        TraceContextTextMapPropagator().inject(carrier, context=set_span_in_context(self.span))
        return carrier

    def end(self, status: int | None, error: str, retry: bool) -> None:
        if status is not None:
            self.span.set_attribute("http.response.status_code", status)
        self.span.set_attribute("sensorium.retry_follows", retry)
        if error:
            _error(self.span, error)
        self.span.end()


class AttemptSpans:
    """`triggers.tracehook.AttemptSpans` for the engine's HTTP client: an attempt's parent is the current span
    (the firing's, made current by `EventSpan.firing` for the task that runs the trigger)."""

    def __init__(self, tracer: Tracer) -> None:
        self.tracer = tracer

    def start(self, number: int) -> AttemptSpan:
        from opentelemetry.trace import SpanKind
        span = self.tracer.start_span("attempt", kind=SpanKind.CLIENT, attributes={
            "sensorium.attempt": number, "http.request.resend_count": number - 1})
        return AttemptSpan(span)


class EventSpan:
    """The span of one event a sensor received; `decided` ends it, `firing` makes each firing's span."""

    def __init__(self, tracer: Tracer, sensor: str, event: CloudEvent) -> None:
        from opentelemetry.trace import SpanKind
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
        self.tracer, self.sensor = tracer, sensor
        carried = from_extensions(event.extensions) if event.extensions else {}
        parent = TraceContextTextMapPropagator().extract(carried) if carried else None
        self.span = tracer.start_span(f"event {sensor}", context=parent, kind=SpanKind.CONSUMER, attributes={
            "sensorium.sensor": sensor, "cloudevents.event_id": event.id, "cloudevents.event_source": event.source,
            "cloudevents.event_subject": event.subject, "cloudevents.event_type": event.type})

    def decided(self, firings: int) -> None:
        self.span.set_attribute("sensorium.firings", firings)
        self.span.end()

    def failed(self, error: str) -> None:
        _error(self.span, error)
        self.span.end()

    @contextmanager
    def firing(self, trigger: str, firing_id: str = "") -> Iterator[FiringDone]:
        """The firing's span, current while the body runs (the trigger's attempts become its children)."""
        from opentelemetry.trace import set_span_in_context
        attributes: dict[str, str] = {"sensorium.sensor": self.sensor, "sensorium.trigger": trigger}
        if firing_id:
            attributes["sensorium.firing_id"] = firing_id
        with self.tracer.start_as_current_span(f"fire {trigger}", context=set_span_in_context(self.span),
                                               attributes=attributes, record_exception=False) as span:
            def done(success: bool, error: str) -> None:
                span.set_attribute("sensorium.success", success)
                if not success:
                    _error(span, error)
            yield done


class SensorSpans:
    """Span factory for one sensor's runner."""

    def __init__(self, tracer: Tracer, sensor: str) -> None:
        self.tracer, self.sensor = tracer, sensor

    def event(self, event: CloudEvent) -> EventSpan:
        return EventSpan(self.tracer, self.sensor, event)


class Otel:
    """The engine's tracer provider and OTLP/HTTP exporter. Made only when tracing is on."""

    def __init__(self, traces_url: str, provider: TracerProvider | None = None) -> None:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        self.url = traces_url
        if provider is None:
            provider = TracerProvider(resource=Resource.create({"service.name": "sensorium"}))
            provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=traces_url)))
        self.provider = provider
        self.tracer = provider.get_tracer("sensorium")
        self.attempts = AttemptSpans(self.tracer)
        log.info("tracing: spans exported over OTLP/HTTP to %s", safe_url(traces_url))

    def sensor(self, name: str) -> SensorSpans:
        return SensorSpans(self.tracer, name)

    def shutdown(self) -> None:
        """Export what is queued (the exporter's own timeouts bound it), then stop."""
        self.provider.shutdown()

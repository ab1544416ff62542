"""`python -m bench.otel`: CPU that tracing support adds to one event of bench.engine's shape (a webhook request
with 6 headers, one firing, one attempt), measured piece by piece with `time.process_time`, best of 3 rounds:

  off, no traceparent   what every event pays with tracing off: the webhook's header scan (`from_headers`), the
                        trigger's two checks per firing (`_names_trace`, `_event_trace`) and the runner's extra
                        coroutine frame per firing (`_fire` -> `_fire_one`)
  off, traceparent      the same for an event that carries a context (it is validated and forwarded)
  on                    the spans of one event (event, firing, attempt) with the SDK's BatchSpanProcessor
                        (exporter that drops: the export itself runs in the processor's thread)
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

from sensorium.engine.core.cloudevent import CloudEvent
from sensorium.engine.core.tracecontext import from_headers
from sensorium.engine.otel import Otel
from sensorium.triggers.http import _event_trace, _names_trace
from sensorium.triggers.httprequest import HttpRequest

N = 100_000
TP = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
HEADERS = [("Host", "127.0.0.1:12000"), ("User-Agent", "curl/8.5.0"), ("Accept", "*/*"),
           ("Content-Type", "application/json"), ("Content-Length", "20"), ("X-Request-Id", "abc")]
REQUEST = HttpRequest("POST", "http://127.0.0.1:9000/hello", (("Content-Type", "application/json"),), b"{}")


class Drop(SpanExporter):
    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS


async def _one() -> int:
    return 1


async def _frame() -> int:
    return await _one()


def _frames(n: int) -> None:
    async def run() -> None:
        for _ in range(n):
            await _frame()
    asyncio.run(run())


def _bare(n: int) -> None:
    async def run() -> None:
        for _ in range(n):
            await _one()
    asyncio.run(run())


def per_event(work: Callable[[], object]) -> float:
    best = float("inf")
    for _ in range(3):
        t0 = time.process_time()
        for _ in range(N):
            work()
        best = min(best, time.process_time() - t0)
    return best / N * 1e6


def best_of(fn: Callable[[int], None]) -> float:
    best = float("inf")
    for _ in range(3):
        t0 = time.process_time()
        fn(N)
        best = min(best, time.process_time() - t0)
    return best / N * 1e6


def main() -> None:
    plain = {"d": CloudEvent(id="1", source="s", type="webhook", subject="e")}
    traced = {"d": CloudEvent(id="1", source="s", type="webhook", subject="e",
                              extensions={"traceparent": TP})}
    headers_tp = [*HEADERS, ("traceparent", TP)]
    frame = best_of(_frames) - best_of(_bare)
    for name, headers, events in (("off, no traceparent", HEADERS, plain), ("off, traceparent", headers_tp, traced)):
        scan = per_event(lambda h=headers: from_headers(h))  # type: ignore[misc]
        checks = per_event(lambda e=events: (_names_trace(REQUEST.headers), _event_trace(e)))  # type: ignore[misc]
        print(f"{name}: header scan {scan:.2f} us + trigger checks {checks:.2f} us + coroutine frame "
              f"{frame:.2f} us = {scan + checks + frame:.2f} us CPU per event")

    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(Drop(), max_queue_size=N * 4))
    otel = Otel("http://unused/v1/traces", provider)
    spans = otel.sensor("s")
    event = traced["d"]

    def on() -> None:
        span = spans.event(event)
        span.decided(1)
        with span.firing("t") as done:
            attempt = otel.attempts.start(1)
            attempt.headers()
            attempt.end(200, "", False)
            done(True, "")
    print(f"on: {per_event(on):.2f} us CPU per event (3 spans, one traceparent injected)")
    provider.shutdown()


if __name__ == "__main__":
    main()

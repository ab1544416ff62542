"""How a trigger reports its attempts to a tracing backend without knowing it (the engine's OpenTelemetry
spans implement this; triggers import no tracing library).

`AttemptSpans.start(number)` is called right before an attempt's request is sent, inside the firing's span, and
returns the span whose W3C headers go out on that request; `end` is called once with the attempt's result.
Neither may raise.
"""

from __future__ import annotations

from typing import Protocol


class AttemptSpan(Protocol):
    def headers(self) -> dict[str, str]:
        """`traceparent` (and `tracestate`) naming this span as the parent, for the outgoing request."""
        ...

    def end(self, status: int | None, error: str, retry: bool) -> None:
        """The attempt finished: HTTP status (None: no response), a scrubbed error (empty on success), and
        whether another attempt follows."""
        ...


class AttemptSpans(Protocol):
    def start(self, number: int) -> AttemptSpan:
        """A span for attempt `number` (1 for the first request, 2 for the first retry, ...)."""
        ...

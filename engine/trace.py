"""Trace records: what each step did and why (kernel). Tracing must never break or stall the pipeline."""

from __future__ import annotations

from typing import Any, Protocol


class Tracer(Protocol):
    def emit(self, step: str, **fields: Any) -> None: ...


class _NullTracer:
    def emit(self, step: str, **fields: Any) -> None:
        return None


NULL_TRACER: Tracer = _NullTracer()

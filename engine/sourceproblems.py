"""A source's problems as trace records and a metric (composition root): a refused webhook request, a failed
poll, a custom source that raised, a missing watched directory. Sources report them through `SourceDeps.report`
(`sources.base.Report`); each becomes one `source` record for every running sensor that listens to the entry's
(eventSourceName, eventName), so `sensorium trace --sensor NAME` shows why an event that sensor waits for never
came, and one count of `sensorium_source_problems_total` (with `--ops-port`). The log line is the source's own;
this adds nothing to the log. Never raises.
"""

from __future__ import annotations

import logging

from sensorium.engine.metrics import EngineMetrics
from sensorium.engine.trace.records import SourceProblem, Tracer
from sensorium.engine.unmatched import UnmatchedWatch

__all__ = ["MAX_PROBLEM", "SourceProblems"]

log = logging.getLogger("sensorium.engine")

MAX_PROBLEM = 500
"""Longest `problem` text recorded, in characters."""


class SourceProblems:
    """`report(kind, source, event, problem, status)`: records for the sensors `watch` knows to listen there."""

    def __init__(self, watch: UnmatchedWatch, tracer: Tracer, metrics: EngineMetrics | None = None) -> None:
        self.watch, self.tracer, self.metrics = watch, tracer, metrics
        self.reported = 0

    def report(self, kind: str, source: str, event: str, problem: str, status: int | None) -> None:
        self.reported += 1
        if self.metrics is not None:
            try:
                self.metrics.source_problems.labels(source, event, kind).inc()
            except Exception as exc:  # metrics never fail a source
                log.debug("source problem not counted: %r", exc)
        if not self.tracer.enabled:
            return
        dotted = f"{source}.{event}"
        try:
            for sensor, listening in self.watch.sensors:
                if dotted in listening:
                    self.tracer.emit(SourceProblem(sensor=sensor, event=None, source=source, subject=event,
                                                   kind=kind, problem=problem[:MAX_PROBLEM], status=status))
        except Exception as exc:  # tracing never fails a source
            log.debug("source problem not recorded: %r", exc)

"""Logging for every command: one stream (stderr), text or JSON Lines, and the log lines of events that matter.

Built on the standard library's `logging` (every library the engine uses, aiohttp, nats-py and aiokafka among
them, logs through it, so one handler on the root logger catches everything) with a small JSON formatter on
msgspec's encoder (a dependency already): no structlog or python-json-logger, whose extra features (processor
chains, contextvars binding) Sensorium does not need for one formatter of thirty lines.

A JSON line holds `time` (RFC 3339 UTC, milliseconds), `level`, `logger`, `message`, then the structured
fields the call passed in `extra=` (`sensor`, `trigger`, `event_id`, `status`, ...), then `exception` (the
traceback) when there is one. Field values are bounded (`MAX_FIELD_CHARS`); messages are the engine's own and
never hold a secret value (see README "Running your Argo Events files").
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, TextIO

import msgspec

from sensorium.triggers.outcome import FiringOutcome

__all__ = ["FORMATS", "MAX_FIELD_CHARS", "TEXT_FORMAT", "JsonFormatter", "firing_failed", "setup_logging"]

FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
MAX_FIELD_CHARS = 2000
"""A structured field's text is cut to this many characters (a value built from event data stays bounded)."""

# every attribute a LogRecord has of itself: anything else on a record came from `extra=`
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "taskName"}


def _bounded(value: Any) -> Any:
    if isinstance(value, str):
        return value if len(value) <= MAX_FIELD_CHARS else value[:MAX_FIELD_CHARS] + "…"
    if value is None or isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, Mapping):
        return {str(k): _bounded(v) for k, v in list(value.items())[:100]}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_bounded(v) for v in list(value)[:100]]
    return _bounded(str(value))


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, the record's `extra=` fields, exception."""

    def __init__(self) -> None:
        super().__init__()
        self._encoder = msgspec.json.Encoder()

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).strftime("%Y-%m-%dT%H:%M:%S.")
            + f"{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and key not in out:
                out[key] = _bounded(value)
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            out["exception"] = record.exc_text
        return self._encoder.encode(out).decode()


class _TextFormatter(logging.Formatter):
    """The text line: `time level logger: message`, the time in UTC (as the JSON lines and the trace)."""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(record.created)) + f",{int(record.msecs):03d}"


def setup_logging(level: str = "INFO", fmt: str = "text", stream: TextIO | None = None) -> None:
    """Log everything at `level` and above to `stream` (stderr) as `fmt` (text or json), replacing any handler
    the root logger had. aiohttp's access log stays at WARNING."""
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else _TextFormatter(TEXT_FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(getattr(logging, level.upper()))
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)


def firing_failed(log: logging.Logger, sensor: str, trigger: str, event_id: str, outcome: object) -> None:
    """The one ERROR line of a firing that failed after its last retry: sensor, trigger, event id, the last
    status and the start of the last response body (bounded and masked by the trigger), as text and as fields."""
    error = str(getattr(outcome, "error", "") or "")
    status: int | None = None
    response = ""
    attempts = 0
    if isinstance(outcome, FiringOutcome):
        attempts = len(outcome.attempts)
        if outcome.attempts:
            last = outcome.attempts[-1]
            status, response = last.status, last.response
    text = f"sensor {sensor}: trigger {trigger} failed for event {event_id}: {error}"
    if response:
        text += f"; response: {response}"
    log.error(text.replace("\n", "\\n").replace("\r", "\\r"),
              extra={"sensor": sensor, "trigger": trigger, "event_id": event_id, "status": status,
                     "attempts": attempts, "error": error, "response": response})

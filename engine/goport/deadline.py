"""The per-event time limit of the sensor stage (Go library): a cooperative deadline for the current thread.

The stage runs each event under `event_deadline(seconds)`; code whose work grows with the input (template
loops, filter loops, Lua calls) calls `check()` or asks `remaining()` and stops with DeadlineExceeded, whose
text is the reason shown in the trace: `timed out after 1.0 s`. Outside an event there is no deadline. It is
per thread (each sensor's stage runs in a thread of its own), so one sensor's deadline never limits another.
Not a Go rule: it lives in engine.goport because the template executor checks it, and goport imports nothing else.
"""

from __future__ import annotations

import threading
import time
from contextlib import AbstractContextManager
from typing import Final

DEFAULT_EVENT_TIMEOUT: Final = 1.0
"""Seconds one event may hold a sensor's stage (`sensorium run --event-timeout`)."""

_local = threading.local()


class DeadlineExceeded(Exception):
    """The current event used up its time; str() is the reason for the trace."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        super().__init__(timed_out(seconds))


def timed_out(seconds: float) -> str:
    """`timed out after 1.0 s` (one decimal unless the limit needs more)."""
    text = f"{seconds:.1f}" if round(seconds, 1) == seconds else f"{seconds:g}"
    return f"timed out after {text} s"


class _Deadline:
    """`event_deadline`'s context manager; a class rather than `contextlib.contextmanager`, whose generator and
    wrapper objects cost about a microsecond per event."""

    __slots__ = ("outer", "seconds")

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.outer: tuple[float, float] | None = None

    def __enter__(self) -> None:
        outer = self.outer = getattr(_local, "deadline", None)
        mine = (time.monotonic() + self.seconds, self.seconds)
        _local.deadline = mine if outer is None or mine[0] < outer[0] else outer

    def __exit__(self, *_: object) -> None:
        _local.deadline = self.outer


def event_deadline(seconds: float) -> AbstractContextManager[None]:
    """Run the block under a deadline `seconds` from now (nested calls keep the earlier deadline)."""
    return _Deadline(seconds)


def remaining() -> tuple[float, float] | None:
    """(seconds left, the limit) of the current event's deadline; None outside an event."""
    current: tuple[float, float] | None = getattr(_local, "deadline", None)
    if current is None:
        return None
    return current[0] - time.monotonic(), current[1]


def check() -> None:
    """Raise DeadlineExceeded when the current event's deadline has passed."""
    current: tuple[float, float] | None = getattr(_local, "deadline", None)
    if current is not None and time.monotonic() > current[0]:
        raise DeadlineExceeded(current[1])

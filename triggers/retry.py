"""Retry strategy (Argo `retryStrategy` / k8s `wait.Backoff`): how many attempts, how long to sleep between.

Pure values: the trigger loop asks `Backoff.delays(rng)` for the sleeps and does the sleeping itself.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

_NS = 1
_UNITS: dict[str, int] = {
    "ns": _NS, "us": 1_000, "\u00b5s": 1_000, "\u03bcs": 1_000, "ms": 1_000_000,
    "s": 1_000_000_000, "m": 60_000_000_000, "h": 3_600_000_000_000,
}
_PART = re.compile(r"([0-9]*)(?:\.([0-9]*))?([^0-9.]*)")
DEFAULT_DURATION_NS = 1_000_000_000
DEFAULT_STEPS_WHEN_PRESENT = 5


class RandomSource(Protocol):
    def random(self) -> float: ...


def parse_go_duration(text: str) -> int:
    """Go `time.ParseDuration` ("1.5s", "300ms", "1h2m"): nanoseconds, or ValueError with Go's message."""
    orig, s, neg = text, text, False
    if s[:1] in ("-", "+"):
        neg, s = s[0] == "-", s[1:]
    if s == "0":
        return 0
    if s == "":
        raise ValueError(f'time: invalid duration "{orig}"')
    total = 0
    while s:
        if not (s[0] == "." or (s[0].isascii() and s[0].isdigit())):
            raise ValueError(f'time: invalid duration "{orig}"')
        m = _PART.match(s)
        assert m is not None
        whole, frac, unit = m.group(1), m.group(2), m.group(3)
        if whole == "" and not frac:
            raise ValueError(f'time: invalid duration "{orig}"')
        if unit == "":
            raise ValueError(f'time: missing unit in duration "{orig}"')
        if unit not in _UNITS:
            raise ValueError(f'time: unknown unit "{unit}" in duration "{orig}"')
        scale = _UNITS[unit]
        value = int(whole or "0") * scale
        if frac:
            # Go: uint64(float64(f) * (float64(unit) / scale)) - same float arithmetic for the same rounding
            value += int(float(int(frac)) * (float(scale) / float(10 ** len(frac))))
        total += value
        s = s[m.end():]
    if total > 2**63 - 1:
        raise ValueError(f'time: invalid duration "{orig}"')
    return -total if neg else total


def parse_duration_field(value: str | int) -> int:
    """`retryStrategy.duration`: Go duration string, or a bare integer meaning NANOSECONDS (Int64OrString)."""
    if isinstance(value, bool):
        raise ValueError("duration must be a Go duration string or an integer number of nanoseconds")
    if isinstance(value, int):
        return value
    return parse_go_duration(value)


@dataclass(frozen=True)
class Backoff:
    """`steps` counts ATTEMPTS; sleep i is d_i + U[0, jitter)*d_i (no jitter when jitter <= 0);
    d_{i+1} = d_i*factor."""

    steps: int = 1
    duration_ns: int = DEFAULT_DURATION_NS
    factor: float = 1.0
    jitter: float = 1.0

    @classmethod
    def from_fields(cls, steps: int | None, duration: str | int | None, factor: float | None,
                    jitter: float | None) -> Backoff:
        """A present `retryStrategy`: omitted/0 steps => 5, duration 1s, factor 1.0, jitter 1 (Argo)."""
        return cls(
            steps=steps if steps is not None and steps > 0 else DEFAULT_STEPS_WHEN_PRESENT,
            duration_ns=DEFAULT_DURATION_NS if duration is None else parse_duration_field(duration),
            factor=1.0 if factor is None else float(factor),
            jitter=1.0 if jitter is None else float(jitter),
        )

    def delays(self, rng: RandomSource | None = None) -> Iterator[float]:
        """Seconds to sleep after attempts 1 .. steps-1 (k8s `wait.Backoff.Step`, integer nanoseconds)."""
        source: RandomSource = rng if rng is not None else random.Random()
        duration = self.duration_ns
        for _ in range(self.steps - 1):
            current = duration
            if self.factor != 0:
                duration = int(float(duration) * self.factor)
            if self.jitter > 0:
                current = current + int(source.random() * self.jitter * float(current))
            yield max(current, 0) / 1e9


SINGLE_ATTEMPT = Backoff(steps=1)


def final_error(last_error: str) -> str:
    """Argo's `DoWithRetry` wording for a firing that failed."""
    return f"failed after retries: {last_error}"

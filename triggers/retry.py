"""Retry strategy (Argo `retryStrategy` / k8s `wait.Backoff`): how many attempts, how long to sleep between.

Pure values: the trigger loop asks `Backoff.delays(rng)` for the sleeps and does the sleeping itself.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

from sensorium.engine.goport.duration import parse_duration

DEFAULT_DURATION_NS = 1_000_000_000
DEFAULT_STEPS_WHEN_PRESENT = 5


class RandomSource(Protocol):
    def random(self) -> float: ...


def parse_duration_field(value: str | int) -> int:
    """`retryStrategy.duration`: Go duration string, or a bare integer meaning NANOSECONDS (Int64OrString)."""
    if isinstance(value, bool):
        raise ValueError("duration must be a Go duration string or an integer number of nanoseconds")
    if isinstance(value, int):
        return value
    return parse_duration(value)


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

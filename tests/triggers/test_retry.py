from __future__ import annotations

import pytest

from sensorium.triggers.ratelimit import RateLimiter
from sensorium.triggers.retry import Backoff, final_error, parse_duration_field


class Fixed:
    def __init__(self, *values: float) -> None:
        self.values = list(values)

    def random(self) -> float:
        return self.values.pop(0)


def test_bare_integer_duration_is_nanoseconds() -> None:
    assert parse_duration_field(1_000) == 1_000
    assert parse_duration_field("1us") == 1_000


def test_delays_with_fixed_random() -> None:
    b = Backoff(steps=4, duration_ns=100_000_000, factor=2.0, jitter=0.5)
    # sleep_i = d_i + rand*jitter*d_i; d doubles each time
    assert list(b.delays(Fixed(0.0, 0.5, 0.999))) == pytest.approx([0.1, 0.2 * 1.25, 0.4 * 1.4995])


def test_delays_defaults_and_edge_cases() -> None:
    assert list(Backoff(steps=1).delays(Fixed())) == []
    assert list(Backoff.from_fields(None, None, None, None).delays(Fixed(0, 0, 0, 0))) == [1.0] * 4
    assert list(Backoff.from_fields(3, "1s", None, None).delays(Fixed(0.5, 0.5))) == [1.5, 1.5]  # jitter 1
    assert list(Backoff.from_fields(3, "10ms", 3.0, 0.0).delays(Fixed())) == pytest.approx([0.01, 0.03])
    assert list(Backoff.from_fields(3, "-1s", None, 0.0).delays(Fixed())) == [0.0, 0.0]
    sleeps = list(Backoff.from_fields(50, "10ms", 1.0, 1.0).delays())
    assert all(0.01 <= s < 0.02 for s in sleeps) and len(sleeps) == 49


def test_final_error_text() -> None:
    assert final_error("boom") == "failed after retries: boom"


class Clock:
    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


async def test_rate_limiter_spaces_attempts_evenly() -> None:
    clock = Clock()
    limiter = RateLimiter(4, "Second", clock=clock, sleep=clock.sleep)
    waits = [await limiter.take() for _ in range(4)]
    assert waits == pytest.approx([0.0, 0.25, 0.25, 0.25])
    limiter = RateLimiter(2, "Minute", clock=clock, sleep=clock.sleep)
    assert [await limiter.take() for _ in range(2)] == pytest.approx([0.0, 30.0])


async def test_rate_limiter_slack_after_idle() -> None:
    clock = Clock()
    limiter = RateLimiter(10, "Second", clock=clock, sleep=clock.sleep)
    await limiter.take()
    clock.now += 100  # long idle: at most 10 attempts (slack) may go at once
    waits = [await limiter.take() for _ in range(12)]
    assert waits[:10] == [0.0] * 10 and waits[10] == pytest.approx(0.0) and waits[11] == pytest.approx(0.1)


def test_rate_limiter_unknown_unit_is_second() -> None:
    assert RateLimiter(2, "second").per_request == 0.5
    with pytest.raises(ValueError):
        RateLimiter(0)

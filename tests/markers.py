"""The test markers' rules, shared by the conftest hooks and the broker fixtures (see tests/conftest.py)."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

# fixture -> the broker it starts (or needs started); a test using one by name is marked at collection
BROKER_FIXTURES = {
    "nats_server": "nats", "nats_url": "nats", "restart_nats": "nats", "fresh_nats": "nats",
    "kafka_server": "kafka", "kafka_broker": "kafka", "restart_kafka": "kafka",
}


# The engine's own sandbox workers: Lua scripts and jq programs always run in one pooled child process each
# (`python -m sensorium.sensors.luaworker` / `sensorium.sensors.jqworker`), so that a runaway script can be
# killed. They are part of the sensor code a unit test exercises, not a broker, a server or the CLI, and may start
# in any test.
SANDBOX_WORKERS = frozenset({"sensorium.sensors.luaworker", "sensorium.sensors.jqworker"})


def is_sandbox_worker(args: Any) -> bool:
    """`[python, "-m", "<a SANDBOX_WORKERS module>", ...]`."""
    return isinstance(args, (list, tuple)) and len(args) >= 3 and args[1] == "-m" and args[2] in SANDBOX_WORKERS


class ChildProcessOutsideIntegration(RuntimeError):
    """A test without the `integration` marker started a child process, or asked for a broker."""


@contextmanager
def refusing_child_processes(item: pytest.Item) -> Iterator[None]:
    """While it lasts, `subprocess.Popen` (which asyncio's subprocesses use too) raises, naming the test, for
    any child but the engine's sandbox workers."""
    original = subprocess.Popen.__init__

    def refuse(self: subprocess.Popen[Any], args: Any, *rest: Any, **kwargs: Any) -> None:
        if is_sandbox_worker(args):
            original(self, args, *rest, **kwargs)
            return
        raise ChildProcessOutsideIntegration(
            f"{item.nodeid} starts a child process ({args!r}) but is not marked `integration`: add "
            "@pytest.mark.integration (and `nats`/`kafka` for a broker), see tests/conftest.py")

    subprocess.Popen.__init__ = refuse  # type: ignore[method-assign]
    try:
        yield
    finally:
        subprocess.Popen.__init__ = original  # type: ignore[method-assign]


def needs_integration_marker(request: pytest.FixtureRequest, what: str) -> None:
    """For broker fixtures a test may reach by `getfixturevalue` (invisible at collection): refuse to hand out a
    broker that is already running to a test without the `integration` marker."""
    if request.node.get_closest_marker("integration") is None:
        raise ChildProcessOutsideIntegration(
            f"{request.node.nodeid} uses {what} but is not marked `integration`: add @pytest.mark.integration "
            "and the broker's marker (`nats`/`kafka`), see tests/conftest.py")


# The two brokers as parameters that carry their marker: for `@pytest.mark.parametrize("bus", BUSES)` and
# fixtures with `params=BUSES` that reach a broker fixture by `getfixturevalue`.
BUSES = [pytest.param("jetstream", marks=pytest.mark.nats, id="jetstream"),
         pytest.param("kafka", marks=pytest.mark.kafka, id="kafka")]

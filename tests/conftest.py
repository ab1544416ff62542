"""Shared fixtures: real brokers (nats-server, Kafka KRaft) started on free ports, real local HTTP servers.

Markers (registered in pyproject.toml), and why they cannot rot:

- `integration`: the test starts a broker or any child process (`sensorium` itself, a sink, `openssl`, ruff,
  mypy, the embedded nats-server of an engine without a bus URL); only the engine's own Lua/jq sandbox workers
  (`tests.markers.SANDBOX_WORKERS`) may start in a unit test. The plain `python -m pytest` (CI) runs everything.
- `nats` / `kafka`: which broker an integration test needs (sub-markers: each implies `integration`).
- `slow`: a test without broker or process that waits on a real clock (a timeout, a backoff: its subject) or
  fuzzes. The unit loop, `python -m pytest -m "not integration and not slow"`, leaves these out too; a unit
  test over `SLOW_UNIT_SECONDS` that is not marked is named at the end of the run (not a failure: a loaded
  machine is slow too).

A test that uses a broker fixture by name (`tests.markers.BROKER_FIXTURES`) is marked here, at collection.
Everything else is held at run time: in a test without the `integration` marker, starting any child process
raises (during its setup too, where module- and session-scoped fixtures start), and the broker fixtures a test
can reach by `getfixturevalue` refuse it. So a new test that starts a broker or a process fails loudly until it
is marked, in the unit loop and in the full run alike.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import pytest

from tests.markers import BROKER_FIXTURES, refusing_child_processes

SLOW_UNIT_SECONDS = 0.5
_slow_unit_tests: list[tuple[float, str]] = []

pytest_plugins = [
    "pytester", "tests.fixtures_nats", "tests.fixtures_kafka", "tests.fixtures_bus", "tests.fixtures_http",
    "tests.fixtures_postgres",
]


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        brokers = {BROKER_FIXTURES[name] for name in getattr(item, "fixturenames", ()) if name in BROKER_FIXTURES}
        brokers |= {name for name in ("nats", "kafka") if item.get_closest_marker(name) is not None}
        for broker in sorted(brokers):
            item.add_marker(broker)
        if brokers:
            item.add_marker(pytest.mark.integration)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Generator[None, None, None]:
    if item.get_closest_marker("integration") is not None:
        return (yield)
    with refusing_child_processes(item):
        return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, None, None]:
    if item.get_closest_marker("integration") is not None:
        return (yield)
    with refusing_child_processes(item):
        return (yield)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when == "call" and report.duration > SLOW_UNIT_SECONDS and not {"integration", "slow"} & set(
            report.keywords):
        _slow_unit_tests.append((report.duration, report.nodeid))


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if _slow_unit_tests:
        terminalreporter.section(f"unit tests slower than {SLOW_UNIT_SECONDS} s, not marked slow")
        for duration, nodeid in sorted(_slow_unit_tests, reverse=True):
            terminalreporter.write_line(f"{duration:6.2f}s {nodeid}")

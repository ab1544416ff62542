"""Fixtures: a real nats-server (JetStream, file storage) started through `buses.embedded.EmbeddedNats`.

`nats_server` is one server for the whole session, on a free port with a temporary data directory. A server
that cannot start fails the test run (never a skip). `restart_nats` restarts that same server on the same port
with the same data, for "the bus restarted under the engine" tests; `fresh_nats` is a private server per test.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

import pytest

from sensorium.buses.embedded import EmbeddedNats
from tests.markers import needs_integration_marker


@pytest.fixture(scope="session")
def nats_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedNats]:
    server = EmbeddedNats(tmp_path_factory.mktemp("nats-data"))
    server.start_blocking()  # raises BusError (with the server's log tail) if it cannot start
    try:
        yield server
    finally:
        server.stop_blocking()


@pytest.fixture
def nats_url(nats_server: EmbeddedNats, request: pytest.FixtureRequest) -> str:
    needs_integration_marker(request, "the nats-server (nats_url)")  # also when reached by getfixturevalue
    if not nats_server.running:  # a previous test stopped it and failed before restarting
        nats_server.start_blocking()
    return nats_server.url


RestartNats = Callable[..., Awaitable[None]]


@pytest.fixture
async def restart_nats(nats_server: EmbeddedNats) -> AsyncIterator[RestartNats]:
    """`await restart_nats(down_for=0.0)`: stop the session server, wait, start it again (same port, data)."""
    if not nats_server.running:
        await nats_server.start()

    async def restart(down_for: float = 0.0) -> None:
        await nats_server.restart(down_for)

    yield restart
    if not nats_server.running:
        await nats_server.start()


@pytest.fixture
async def fresh_nats(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[EmbeddedNats]:
    """A private server for tests that change server-wide state (e.g. the stream's settings)."""
    server = EmbeddedNats(tmp_path_factory.mktemp("nats-fresh"))
    await server.start()
    try:
        yield server
    finally:
        await server.stop()

"""Fixtures: a real Apache Kafka broker (KRaft, one node) started through `buses.kafka_broker.KafkaBroker`.

`kafka_server` is one broker for the whole session, started lazily by the first test that needs it, on free
ports with a temporary data directory, and with a SASL_PLAINTEXT listener for the user `KAFKA_USER` (PLAIN,
SCRAM-SHA-256, SCRAM-SHA-512). `kafka_broker` is its bootstrap address. A broker that cannot start fails the
test run (never a skip). `restart_kafka` restarts that same broker on the same ports with the same data, for
"the bus restarted under the engine" tests.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

import pytest

from sensorium.buses.kafka_broker import KafkaBroker, free_port
from tests.markers import needs_integration_marker

KAFKA_USER, KAFKA_PASSWORD = "sensorium", "sensorium-secret"


@pytest.fixture(scope="session")
def kafka_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaBroker]:
    data = tmp_path_factory.mktemp("kafka-data")
    broker = KafkaBroker(free_port(), data, users={KAFKA_USER: KAFKA_PASSWORD})
    broker.start()  # raises BrokerError (with the broker's log tail) if it cannot start
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture
def kafka_broker(kafka_server: KafkaBroker, request: pytest.FixtureRequest) -> str:
    """Bootstrap address `127.0.0.1:PORT` of the session broker (PLAINTEXT)."""
    needs_integration_marker(request, "the Kafka broker (kafka_broker)")  # also when reached by getfixturevalue
    return kafka_server.bootstrap


RestartKafka = Callable[..., Awaitable[None]]


@pytest.fixture
async def restart_kafka(kafka_server: KafkaBroker) -> AsyncIterator[RestartKafka]:
    """`await restart_kafka(down_for=0.0)`: stop the session broker, wait, start it again (same ports, data).
    Runs in a thread so the event loop (and a live consumer) keeps running during the outage."""
    if not kafka_server.running:
        await asyncio.to_thread(kafka_server.start)

    async def restart(down_for: float = 0.0) -> None:
        await asyncio.to_thread(kafka_server.stop)
        await asyncio.sleep(down_for)
        await asyncio.to_thread(kafka_server.start)

    yield restart
    if not kafka_server.running:
        await asyncio.to_thread(kafka_server.start)

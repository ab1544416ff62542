"""Fixture: `bus_url`, the URL of a real broker, once for JetStream and once for Kafka (each marked for it)."""

from __future__ import annotations

import pytest

from tests.markers import BUSES


@pytest.fixture(params=BUSES)
def bus_url(request: pytest.FixtureRequest) -> str:
    """`nats://...` of the session nats-server, or `kafka://...` of the session Kafka broker."""
    if request.param == "jetstream":
        return str(request.getfixturevalue("nats_url"))
    return "kafka://" + str(request.getfixturevalue("kafka_broker"))

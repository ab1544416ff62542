"""`Bus.publish_dead_letter` on every backend: a binary-mode CloudEvent on `sensorium-dlq` whose data is the
original bytes, its attributes as CloudEvents headers; cut to the bus's message limit; BusError when closed."""

from __future__ import annotations

import pytest

from sensorium.buses.base import DEAD_LETTER_HEADROOM, fit_dead_letter
from sensorium.buses.jetstream.bus import JetStreamBus
from sensorium.buses.kafka.bus import KafkaBus
from sensorium.buses.memory import MemoryBus
from sensorium.engine.core.errors import BusError
from tests import test_bus_contract as contract
from tests.test_bus_contract import Backend, unique
from tests.test_poison_e2e import dead_letters_jetstream, dead_letters_kafka

# The contract suite's backends (pytest finds fixtures among a module's attributes).
jetstream_backend, kafka_backend, memory_backend = (
    contract.jetstream_backend, contract.kafka_backend, contract.memory_backend)
bus_backend, broker_backend = contract.bus_backend, contract.broker_backend


async def read(bus: object, sensor: str) -> list[tuple[dict[str, str], bytes]]:
    """The dead letters of `sensor` as (attributes, body), attribute names without their header prefix: all
    there are, since `publish_dead_letter` returns once the bus stored the letter."""
    if isinstance(bus, MemoryBus):
        return [(attrs, body) for s, attrs, body in bus.broker.dead_letters if s == sensor]
    if isinstance(bus, JetStreamBus):
        raw = await dead_letters_jetstream(bus.url, sensor.replace(".", "_").replace(" ", "_"))
        prefix = "ce-"
    else:
        assert isinstance(bus, KafkaBus)
        raw = await dead_letters_kafka(bus.where, sensor)
        prefix = "ce_"
    return [({k.removeprefix(prefix): v for k, v in headers.items() if k.startswith(prefix)}, body)
            for headers, body in raw]


def attributes(sensor: str, letter_id: str) -> dict[str, str]:
    return {"specversion": "1.0", "id": letter_id, "source": f"sensorium/{sensor}", "type": "io.sensorium.deadletter",
            "dlqsensor": sensor, "dlqreason": "undecodable", "dlqerror": "not a CloudEvent: not JSON: x"}


async def test_dead_letter_round_trip(bus_backend: Backend) -> None:
    bus = await bus_backend.make_bus()
    sensor = unique("dlq") + ".with dots"
    body = b"\xff\x00 original bytes {["
    await bus.publish_dead_letter(sensor, attributes(sensor, unique("id")), body)
    await bus.publish_dead_letter(sensor, attributes(sensor, unique("id")), b"second")
    [(attrs, first), (_, second)] = await read(bus, sensor)
    assert (first, second) == (body, b"second")
    assert {k: v for k, v in attrs.items() if k != "id"} == {k: v for k, v in attributes(sensor, "").items()
                                                             if k != "id"}


async def test_same_id_is_stored_once_where_the_bus_deduplicates(bus_backend: Backend) -> None:
    bus = await bus_backend.make_bus()
    sensor, letter = unique("dlq"), unique("id")
    for _ in range(2):
        await bus.publish_dead_letter(sensor, attributes(sensor, letter), b"once")
    stored = await read(bus, sensor)
    assert len(stored) == (2 if bus_backend.name == "kafka" else 1)  # Kafka: at least once


async def test_a_body_at_the_message_limit_is_cut_to_fit(broker_backend: Backend) -> None:
    bus = await broker_backend.make_bus()
    sensor = unique("dlq")
    limit = bus.max_payload if isinstance(bus, JetStreamBus) else 1_000_000  # the server's / the producer's
    body = b"x" * limit
    await bus.publish_dead_letter(sensor, attributes(sensor, unique("id")), body)
    [(attrs, stored)] = await read(bus, sensor)
    assert attrs["dlqtruncated"] == str(limit)
    assert stored == body[: limit - DEAD_LETTER_HEADROOM]


async def test_closed_bus_refuses_with_bus_error(bus_backend: Backend) -> None:
    bus = await bus_backend.make_bus()
    await bus.close()
    with pytest.raises(BusError):
        await bus.publish_dead_letter("s", attributes("s", "i"), b"x")


def test_fit_dead_letter() -> None:
    limit = DEAD_LETTER_HEADROOM + 10
    assert fit_dead_letter({"id": "1"}, b"0123456789", limit) == ({"id": "1"}, b"0123456789")
    assert fit_dead_letter({"id": "1"}, b"0123456789ab", limit) == ({"id": "1", "dlqtruncated": "12"}, b"0123456789")

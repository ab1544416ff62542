"""The condition-state store contract (buses/base.py `StateStore`), written once and run against every backend of
tests/test_bus_contract.py (JetStream, Kafka, memory), plus the bus-specific storage checks: the JetStream KV
bucket and the compacted Kafka topic.
"""

from __future__ import annotations

import asyncio
import os
import time

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from nats.js import api

from sensorium.buses.base import StateStore
from sensorium.buses.embedded import EmbeddedNats
from sensorium.buses.jetstream.bus import JetStreamBus
from sensorium.buses.jetstream.state import STATE_BUCKET, state_key
from sensorium.buses.kafka.bus import KafkaBus
from sensorium.buses.kafka.state import STATE_TOPIC, KafkaStateTopic
from sensorium.buses.kafka_broker import KafkaBroker
from sensorium.buses.memory import MemoryBroker, MemoryBus
from sensorium.engine.core.errors import BusError
from tests import test_bus_contract as contract
from tests.test_bus_contract import Backend, unique

# The contract suite's backends (pytest finds fixtures among a module's attributes).
jetstream_backend, kafka_backend, memory_backend = (
    contract.jetstream_backend, contract.kafka_backend, contract.memory_backend)
bus_backend, broker_backend = contract.bus_backend, contract.broker_backend


async def new_store(backend: Backend, sensor: str) -> StateStore:
    """The store of `sensor` on a new client of the backend (a fresh engine process, as after a restart)."""
    bus = await backend.make_bus()
    return await bus.state_store(sensor)


async def test_load_before_any_save_is_none(bus_backend: Backend) -> None:
    store = await new_store(bus_backend, unique("sensor"))
    assert await store.load() is None


async def test_saved_state_is_seen_by_a_new_client(bus_backend: Backend) -> None:
    sensor = unique("sensor")
    store = await new_store(bus_backend, sensor)
    snapshot = b'{"version":1,"triggers":{"t":{"a":{"event":{"id":"\xc3\xa9"}}}}}'
    await store.save(snapshot)
    assert await store.load() == snapshot
    await store.close()
    assert await (await new_store(bus_backend, sensor)).load() == snapshot


async def test_sensors_do_not_see_each_other(bus_backend: Backend) -> None:
    base = unique("sensor")
    # plain names, names a KV key cannot hold as they are, and two that sanitize to the same text
    names = [f"{base}-a", f"{base}-b", f"{base}.dotted", f"{base} with space/ü", f"{base} with space/ö",
             f"{base}-" + "x" * 300]
    stores = [await new_store(bus_backend, name) for name in names]
    for i, store in enumerate(stores[:-1]):
        await store.save(f"state {i}".encode())
    reader = await bus_backend.make_bus()
    for i, name in enumerate(names[:-1]):
        assert await (await reader.state_store(name)).load() == f"state {i}".encode()
    assert await (await reader.state_store(names[-1])).load() is None
    assert await (await reader.state_store(base)).load() is None  # a prefix of the others


async def test_last_save_wins(bus_backend: Backend) -> None:
    sensor = unique("sensor")
    store = await new_store(bus_backend, sensor)
    for i in range(10):
        await store.save(f"sequential {i}".encode())
    await asyncio.gather(*(store.save(f"concurrent {i}".encode()) for i in range(20)))  # applied in call order
    assert await store.load() == b"concurrent 19"
    assert await (await new_store(bus_backend, sensor)).load() == b"concurrent 19"


async def test_empty_snapshot_clears_the_state(bus_backend: Backend) -> None:
    sensor = unique("sensor")
    store = await new_store(bus_backend, sensor)
    await store.save(b"partial match")
    await store.save(b"")
    assert await (await new_store(bus_backend, sensor)).load() is None
    await store.save(b"again")
    assert await (await new_store(bus_backend, sensor)).load() == b"again"


async def test_large_snapshot_round_trips(bus_backend: Backend) -> None:
    sensor = unique("sensor")
    snapshot = os.urandom(200 * 1024)  # binary, incompressible
    await (await new_store(bus_backend, sensor)).save(snapshot)
    assert await (await new_store(bus_backend, sensor)).load() == snapshot


async def test_size_limit(bus_backend: Backend) -> None:
    sensor = unique("sensor")
    store = await new_store(bus_backend, sensor)
    assert store.max_size == 1024 * 1024  # every bus's default (JetStream: the server's max_payload)
    with pytest.raises(BusError) as err:
        await store.save(b"x" * (store.max_size + 1))
    assert f"{store.max_size + 1} bytes" in str(err.value) and f"{store.max_size} bytes" in str(err.value)
    assert sensor in str(err.value)
    largest = os.urandom(store.max_size)
    await store.save(largest)
    assert await (await new_store(bus_backend, sensor)).load() == largest


async def test_closed_store_and_closed_bus_raise(bus_backend: Backend) -> None:
    bus = await bus_backend.make_bus()
    store, other = await bus.state_store(unique("sensor")), await bus.state_store(unique("sensor"))
    await store.save(b"kept")
    await store.close()
    with pytest.raises(BusError, match="closed"):
        await store.load()
    await bus.close()
    with pytest.raises(BusError):
        await other.save(b"x")
    with pytest.raises(BusError):
        await other.load()


async def test_state_survives_a_broker_restart(broker_backend: Backend) -> None:
    assert broker_backend.restart_broker is not None
    sensor = unique("sensor")
    store = await new_store(broker_backend, sensor)
    await store.save(b"before restart")
    await broker_backend.restart_broker()
    assert await (await new_store(broker_backend, sensor)).load() == b"before restart"
    await store.save(b"after restart")  # the old client reconnects
    assert await (await new_store(broker_backend, sensor)).load() == b"after restart"


async def test_memory_state_is_shared_by_the_clients_of_one_broker() -> None:
    broker = MemoryBroker()
    first = MemoryBus(broker)
    await first.start()
    await (await first.state_store("s")).save(b"held")
    await first.close()
    second, elsewhere = MemoryBus(broker), MemoryBus()
    await second.start()
    await elsewhere.start()
    assert await (await second.state_store("s")).load() == b"held"
    assert await (await elsewhere.state_store("s")).load() is None


# -- JetStream: the KV bucket ---------------------------------------------------------------------------------

def test_kv_keys() -> None:
    assert state_key("my-sensor") == "my-sensor"
    assert state_key("my.sensor_v2=/x") == "my.sensor_v2=/x"
    for bad in ("with space", "a..b", ".lead", "trail.", "ü", "x" * 201, "a*b", "a>b"):
        key = state_key(bad)
        assert key != bad and key == state_key(bad)
    assert state_key("a b") != state_key("a_b") != state_key("a\tb")


async def test_jetstream_bucket_settings(nats_url: str) -> None:
    bus = JetStreamBus(nats_url)
    await bus.start()
    try:
        await bus.state_store(unique("sensor"))
        kv = await bus.js.key_value(STATE_BUCKET)
        status = await kv.status()
        assert status.history == 1
        config = status.stream_info.config
        assert config.storage == api.StorageType.FILE and config.num_replicas == 1 and config.allow_direct
    finally:
        await bus.close()


async def test_jetstream_stores_of_many_sensors_look_the_bucket_up_once(nats_url: str,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    bus = JetStreamBus(nats_url)
    await bus.start()
    try:
        lookups: list[str] = []
        look_up = bus.js.key_value

        async def counted(bucket: str) -> object:
            lookups.append(bucket)
            return await look_up(bucket)

        monkeypatch.setattr(bus.js, "key_value", counted)
        names = [unique("sensor") for _ in range(50)]
        stores = [await bus.state_store(name) for name in names]
        await asyncio.gather(*(store.save(name.encode()) for name, store in zip(names, stores, strict=True)))
        assert [await new_store_of(nats_url, name) for name in names] == [name.encode() for name in names]
        assert lookups == [STATE_BUCKET]  # one round trip for the bucket, not one per sensor
    finally:
        await bus.close()


async def new_store_of(url: str, sensor: str) -> bytes | None:
    """What a fresh engine process would load for `sensor`."""
    bus = JetStreamBus(url)
    await bus.start()
    try:
        return await (await bus.state_store(sensor)).load()
    finally:
        await bus.close()


async def test_jetstream_bucket_lost_with_server_data_is_recreated(fresh_nats: EmbeddedNats) -> None:
    bus = JetStreamBus(fresh_nats.url)
    await bus.start()
    try:
        store = await bus.state_store("sensor")
        await store.save(b"one")
        await bus.js.delete_key_value(STATE_BUCKET)  # as if the server came back without its data
        assert await store.load() is None
        await store.save(b"two")
        assert await (await bus.state_store("sensor")).load() == b"two"
    finally:
        await bus.close()


# -- Kafka: the compacted topic -------------------------------------------------------------------------------

async def topic_settings(bootstrap: str, topic: str) -> dict[str, str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        (response,) = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
        (meta,) = await admin.describe_topics([topic])
    finally:
        await admin.close()
    (resource,) = response.to_object()["resources"]
    settings = {e["config_names"]: e["config_value"] for e in resource["config_entries"]}
    settings["partitions"] = str(len(meta["partitions"]))
    return settings


async def test_kafka_topic_is_compacted(kafka_server: KafkaBroker) -> None:
    bus = KafkaBus(kafka_server.bootstrap, topic=unique("contract"))
    await bus.start()
    try:
        await bus.state_store(unique("sensor"))
    finally:
        await bus.close()
    settings = await topic_settings(kafka_server.bootstrap, STATE_TOPIC)
    assert settings["cleanup.policy"] == "compact"
    assert settings["partitions"] == "1"
    assert int(settings["max.message.bytes"]) > 1024 * 1024


async def test_kafka_load_from_an_empty_topic_is_fast(kafka_server: KafkaBroker) -> None:
    bus = KafkaBus(kafka_server.bootstrap, topic=unique("contract"))
    await bus.start()
    topic = KafkaStateTopic(bus.client_options(), bus.where, topic=unique("state"))
    try:
        store = await topic.store("sensor")
        started = time.monotonic()
        assert await store.load() is None
        assert time.monotonic() - started < 1.0
        for i in range(50):
            await (await topic.store(f"other-{i}")).save(b"y" * 1000)
        await store.save(b"mine")
        started = time.monotonic()
        assert await store.load() == b"mine"
        assert time.monotonic() - started < 1.0
    finally:
        await topic.close()
        await bus.close()


async def test_kafka_refuses_a_topic_that_deletes_state(kafka_server: KafkaBroker) -> None:
    name = unique("state")
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_server.bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, 1, 1, topic_configs={"cleanup.policy": "delete"})])
    finally:
        await admin.close()
    topic = KafkaStateTopic({"bootstrap_servers": kafka_server.bootstrap}, kafka_server.bootstrap, topic=name)
    try:
        with pytest.raises(BusError, match=r"cleanup\.policy=delete"):
            await topic.store("sensor")
    finally:
        await topic.close()

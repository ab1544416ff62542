"""The bus contract, written once and run against every backend (buses/base.py).

Adding a backend: write an async fixture returning a `Backend` (a factory of started buses and, when the
backend has a broker process, a way to restart it), and add its name and fixture name to `BACKENDS`.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any

import pytest

from sensorium.buses.base import Bus, Consumer, ConsumerSpec, Delivery, EventKey, Health
from sensorium.buses.embedded import EmbeddedNats
from sensorium.buses.jetstream.bus import JetStreamBus
from sensorium.buses.kafka.bus import KafkaBus
from sensorium.buses.kafka_broker import KafkaBroker
from sensorium.buses.memory import MemoryBroker, MemoryBus
from tests.fixtures_kafka import RestartKafka


@dataclass
class Backend:
    name: str
    make_bus: Callable[[], Awaitable[Bus]]  # a new, started client; closed by the fixture at teardown
    restart_broker: Callable[[], Coroutine[Any, Any, None]] | None  # None: no broker process to restart


# backend name -> name of the fixture that provides its Backend
BACKENDS: dict[str, str] = {
    "jetstream": "jetstream_backend", "memory": "memory_backend", "kafka": "kafka_backend",
}


async def _closing(make: Callable[[], Bus]) -> AsyncIterator[Callable[[], Awaitable[Bus]]]:
    buses: list[Bus] = []

    async def make_bus() -> Bus:
        bus = make()
        buses.append(bus)
        await bus.start()
        return bus

    yield make_bus
    for bus in buses:
        await bus.close()


@pytest.fixture
async def jetstream_backend(nats_server: EmbeddedNats, nats_url: str) -> AsyncIterator[Backend]:
    async for make_bus in _closing(lambda: JetStreamBus(nats_url)):
        yield Backend("jetstream", make_bus, lambda: nats_server.restart(down_for=0.2))
    if not nats_server.running:
        await nats_server.start()


@pytest.fixture
async def kafka_backend(kafka_server: KafkaBroker, restart_kafka: RestartKafka) -> AsyncIterator[Backend]:
    topic = unique("contract")  # a topic per test: its partitions start empty

    async def restart() -> None:
        await restart_kafka(down_for=0.2)

    async for make_bus in _closing(lambda: KafkaBus(kafka_server.bootstrap, topic=topic)):
        yield Backend("kafka", make_bus, restart)


@pytest.fixture
async def memory_backend() -> AsyncIterator[Backend]:
    broker = MemoryBroker()
    async for make_bus in _closing(lambda: MemoryBus(broker)):
        yield Backend("memory", make_bus, None)


# backend name -> its marker (the broker it needs); the memory bus needs none
MARKS = {"jetstream": [pytest.mark.nats], "memory": [], "kafka": [pytest.mark.kafka]}


@pytest.fixture(params=[pytest.param(name, marks=MARKS[name], id=name) for name in BACKENDS])
def bus_backend(request: pytest.FixtureRequest) -> Backend:
    backend: Backend = request.getfixturevalue(BACKENDS[request.param])
    return backend


@pytest.fixture(params=[pytest.param(name, marks=MARKS[name], id=name) for name in BACKENDS if name != "memory"])
def broker_backend(request: pytest.FixtureRequest) -> Backend:
    """Backends with a broker process (the in-memory bus has none to restart)."""
    backend: Backend = request.getfixturevalue(BACKENDS[request.param])
    return backend


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def spec_for(keys: list[EventKey], ack_wait: float = 30.0, name: str | None = None) -> ConsumerSpec:
    return ConsumerSpec(name=name or unique("sensor"), keys=keys, ack_wait=ack_wait)


async def collect(consumer: Consumer, count: int, timeout: float = 5.0, ack: bool = True) -> list[Delivery]:
    """Fetch until `count` deliveries arrived (or `timeout`), acking each when `ack`."""
    got: list[Delivery] = []
    deadline = time.monotonic() + timeout
    while len(got) < count and time.monotonic() < deadline:
        wait = min(1.0, max(0.05, deadline - time.monotonic()))
        batch = await consumer.fetch(count - len(got), timeout=wait)
        for d in batch:
            if ack:
                await d.ack()
        got.extend(batch)
    return got


async def nothing_more(consumer: Consumer, wait: float = 0.5) -> list[Delivery]:
    return await collect(consumer, 1_000, timeout=wait)


def bodies(deliveries: list[Delivery]) -> list[bytes]:
    return [d.body for d in deliveries]


def events(key: EventKey, n: int, tag: str = "e") -> list[tuple[EventKey, str, bytes]]:
    return [(key, uuid.uuid4().hex, f'{{"{tag}":{i},"text":"héllo ✓"}}'.encode()) for i in range(n)]


async def test_round_trip(bus_backend: Backend) -> None:
    bus = await bus_backend.make_bus()
    key = EventKey(unique("src"), "ev")
    consumer = await bus.consumer(spec_for([key]))
    body = b'{"specversion":"1.0","id":"x","data":{"a":[1,2]},"bin":"\xc3\xa9\x00"}'
    await bus.publish(key, uuid.uuid4().hex, body)
    [delivery] = await collect(consumer, 1)
    assert delivery.body == body
    assert delivery.position
    assert delivery.settled
    assert bus.health is Health.CONNECTED


async def test_a_delivered_event_is_found_again_by_its_position(broker_backend: Backend) -> None:
    """`Bus.stored_events`: what the trace's reader uses to show a routine event's data (engine.trace.bus)."""
    bus = await broker_backend.make_bus()
    key = EventKey(unique("src"), "ev")
    consumer = await bus.consumer(spec_for([key]))
    sent = events(key, 40)
    await bus.publish_many(sent)
    delivered = await collect(consumer, len(sent))
    assert len(delivered) == len(sent)
    stored = bus.stored_events()
    assert stored is not None
    try:
        one = await stored.get([delivered[7].position])  # one alone, then all at once (a range, on JetStream)
        assert {p: body for p, (body, _) in one.items()} == {delivered[7].position: delivered[7].body}
        found = await stored.get([d.position for d in delivered] + ["no such position", f"{key.source} seq x"])
        assert {p: body for p, (body, _) in found.items()} == {d.position: d.body for d in delivered}
        assert all(found[d.position][1] == dict(d.headers) for d in delivered)
    finally:
        await stored.close()
    assert MemoryBus(MemoryBroker()).stored_events() is None  # (the memory bus keeps no events to look up)


@pytest.mark.slow  # waits to see nothing more arrives (every bus)
async def test_consumer_only_sees_its_keys_and_new_events(bus_backend: Backend) -> None:
    bus = await bus_backend.make_bus()
    mine, other = EventKey(unique("src"), "a"), EventKey(unique("src"), "b")
    await bus.publish_many(events(mine, 2, "old"))  # before the consumer exists: DeliverNew skips them
    consumer = await bus.consumer(spec_for([mine]))
    await bus.publish_many(events(other, 2) + events(mine, 3, "new"))
    got = await collect(consumer, 3)
    assert [b'"new"' in b for b in bodies(got)] == [True, True, True]
    assert await nothing_more(consumer) == []


@pytest.mark.slow  # waits out ack_wait to see nothing more arrives (every bus)
async def test_durable_resume(bus_backend: Backend) -> None:
    key, name = EventKey(unique("src"), "ev"), unique("sensor")
    first = await bus_backend.make_bus()
    consumer = await first.consumer(spec_for([key], ack_wait=1.0, name=name))
    batch1 = events(key, 5, "one")
    await first.publish_many(batch1)
    got = await collect(consumer, 5, ack=False)
    assert bodies(got) == [b for _, _, b in batch1]
    for d in got[:3]:
        await d.ack()
    await consumer.close()
    await first.close()

    publisher = await bus_backend.make_bus()  # nobody consumes while these are published
    batch2 = events(key, 3, "two")
    await publisher.publish_many(batch2)

    second = await bus_backend.make_bus()
    resumed = await second.consumer(spec_for([key], ack_wait=1.0, name=name))
    again = await collect(resumed, 5, timeout=5.0)
    expected = [b for _, _, b in batch1[3:] + batch2]
    assert sorted(bodies(again)) == sorted(expected)
    assert await nothing_more(resumed, 1.5) == []


@pytest.mark.slow  # waits out ack_wait to see nothing more arrives (every bus)
async def test_unacked_is_redelivered_acked_is_not(bus_backend: Backend) -> None:
    bus = await bus_backend.make_bus()
    key, name = EventKey(unique("src"), "ev"), unique("sensor")
    consumer = await bus.consumer(spec_for([key], ack_wait=1.0, name=name))
    batch = events(key, 3)
    await bus.publish_many(batch)
    first = await collect(consumer, 3, ack=False)
    assert len(first) == 3
    await first[0].ack()
    await first[1].nak()
    await first[1].ack()  # settlement is idempotent: the nak stands
    assert first[1].settled
    await consumer.close()  # first[2] left unsettled

    other = await bus.consumer(spec_for([key], ack_wait=1.0, name=name))
    redelivered = await collect(other, 2, timeout=5.0)
    assert sorted(bodies(redelivered)) == sorted([batch[1][2], batch[2][2]])
    assert await nothing_more(other, 1.5) == []


@pytest.mark.slow  # waits out the nak delay (every bus)
async def test_nak_with_delay_redelivers_later(bus_backend: Backend) -> None:
    bus = await bus_backend.make_bus()
    key = EventKey(unique("src"), "ev")
    consumer = await bus.consumer(spec_for([key], ack_wait=10.0))
    await bus.publish(key, uuid.uuid4().hex, b"x")
    [d] = await collect(consumer, 1, ack=False)
    started = time.monotonic()
    await d.nak(delay=0.5)
    [again] = await collect(consumer, 1, timeout=5.0)
    assert again.body == b"x"
    assert time.monotonic() - started >= 0.4


async def test_order_preserved_for_one_key(bus_backend: Backend) -> None:
    bus = await bus_backend.make_bus()
    key = EventKey(unique("src"), "ev")
    consumer = await bus.consumer(spec_for([key]))
    batch = events(key, 50)
    await bus.publish_many(batch)
    for i in range(5):
        await bus.publish(key, uuid.uuid4().hex, f"late-{i}".encode())
    got = await collect(consumer, 55)
    assert bodies(got) == [b for _, _, b in batch] + [f"late-{i}".encode() for i in range(5)]


@pytest.mark.slow  # waits to see nothing more arrives (every bus)
async def test_same_name_shares_messages(bus_backend: Backend) -> None:
    key, name = EventKey(unique("src"), "ev"), unique("sensor")
    a, b = await bus_backend.make_bus(), await bus_backend.make_bus()
    ca = await a.consumer(spec_for([key], name=name))
    cb = await b.consumer(spec_for([key], name=name))
    batch = events(key, 40)
    await a.publish_many(batch)
    seen: list[bytes] = []

    async def work(c: Consumer) -> None:
        deadline = time.monotonic() + 5.0
        while len(seen) < len(batch) and time.monotonic() < deadline:
            for d in await c.fetch(4, timeout=0.3):
                seen.append(d.body)
                await d.ack()

    await asyncio.gather(work(ca), work(cb))
    assert sorted(seen) == sorted(b for _, _, b in batch)  # every message exactly once
    assert await nothing_more(ca, 0.3) == [] and await nothing_more(cb, 0.3) == []


async def test_broker_restart_under_live_consumer(broker_backend: Backend) -> None:
    bus_backend = broker_backend
    assert bus_backend.restart_broker is not None
    bus = await bus_backend.make_bus()
    key = EventKey(unique("src"), "ev")
    consumer = await bus.consumer(spec_for([key], ack_wait=5.0))
    before, stored, after = events(key, 3, "before"), events(key, 3, "stored"), events(key, 3, "after")
    expected = {b for _, _, b in before + stored + after}
    seen: list[bytes] = []
    running = asyncio.Event()
    running.set()

    async def live() -> None:  # keeps fetching through the outage; any exception fails the test
        while not expected <= set(seen):
            await running.wait()
            for d in await consumer.fetch(10, timeout=0.3):
                seen.append(d.body)
                await d.ack()

    task = asyncio.create_task(live())
    await bus.publish_many(before)
    while len(seen) < len(before):
        await asyncio.sleep(0.01)
    running.clear()
    await asyncio.sleep(0.35)  # the last fetch returns; `stored` waits in the stream until after the restart
    await bus.publish_many(stored)
    restart = asyncio.create_task(bus_backend.restart_broker())
    await asyncio.sleep(0.05)
    running.set()  # fetch during the outage: must not raise
    await restart
    await bus.publish_many(after)  # may wait for the reconnect; returns once stored
    await asyncio.wait_for(task, 8.0)
    assert set(seen) == expected  # nothing lost; an ack in flight during the restart may cause a redelivery
    assert bus.health is Health.CONNECTED

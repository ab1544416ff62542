"""`buses.jetstream.pull.Puller` against a real nats-server: whole batches from a backlog, prompt when idle, a long
poll's late messages kept, an old request's end not taken for the newest's, and refusals raised."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import nats
import pytest
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.errors import Error as NatsError
from nats.js import JetStreamContext, api

from sensorium.buses.jetstream.pull import Puller

pytestmark = pytest.mark.nats


@dataclass
class Setup:
    nc: NATS
    js: JetStreamContext
    stream: str
    subject: str
    puller: Puller

    async def publish(self, *numbers: int) -> None:
        for n in numbers:
            await self.js.publish(self.subject, b"%d" % n)


@pytest.fixture
async def setup(nats_url: str) -> AsyncIterator[Setup]:
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    name = f"PULL{uuid.uuid4().hex[:8].upper()}"
    subject = f"pull.{name.lower()}"
    await js.add_stream(name=name, subjects=[subject])
    await js.add_consumer(name, api.ConsumerConfig(durable_name="d", ack_policy=api.AckPolicy.EXPLICIT,
                                                   max_ack_pending=10_000))
    puller = Puller(nc, name, "d")
    await puller.start()
    try:
        yield Setup(nc, js, name, subject, puller)
    finally:
        await puller.close()
        await js.delete_stream(name)
        await nc.close()


def numbers(msgs: list[Msg]) -> list[int]:
    return [int(m.data) for m in msgs]


async def test_a_backlog_comes_in_whole_batches_in_order(setup: Setup) -> None:
    await setup.publish(*range(150))
    got: list[int] = []
    sizes = []
    while len(got) < 150:
        batch = await setup.puller.fetch(64, 1.0)
        sizes.append(len(batch))
        got += numbers(batch)
        for m in batch:
            await m.ack()
    assert got == list(range(150))
    assert sizes == [64, 64, 22]


async def test_an_idle_fetch_waits_its_timeout_and_returns_nothing(setup: Setup) -> None:
    started = time.monotonic()
    assert await setup.puller.fetch(64, 0.5) == []
    assert 0.4 <= time.monotonic() - started < 1.0


async def test_a_message_published_during_a_wait_comes_at_once(setup: Setup) -> None:
    async def later() -> None:
        await asyncio.sleep(0.3)
        await setup.publish(7)

    task = asyncio.create_task(later())
    started = time.monotonic()
    batch = await setup.puller.fetch(64, 5.0)
    waited = time.monotonic() - started
    await task
    assert numbers(batch) == [7]
    assert waited < 1.0  # not the 5 s the request could have lingered for the rest of its batch


async def test_messages_published_between_fetches_come_with_the_next(setup: Setup) -> None:
    async def later() -> None:
        await asyncio.sleep(0.2)
        await setup.publish(1)

    task = asyncio.create_task(later())
    assert numbers(await setup.puller.fetch(64, 3.0)) == [1]
    await task
    await setup.publish(2, 3)
    assert numbers(await setup.puller.fetch(64, 1.0)) == [2, 3]
    assert numbers(await setup.puller.fetch(1, 0.3)) == []


async def test_a_steady_trickle_leaves_no_requests_waiting_on_the_server(setup: Setup) -> None:
    """A fetch returns after the first message of a long poll; its request must not stay open for the rest of
    the batch (nats-py's do: one more waiting request per message at a steady rate, 409 past max_waiting)."""
    got: list[int] = []

    async def consume() -> None:
        while len(got) < 100:
            batch = await setup.puller.fetch(64, 1.0)
            got.extend(numbers(batch))
            for m in batch:
                await m.ack()

    task = asyncio.create_task(consume())
    for n in range(100):
        await setup.publish(n)
        await asyncio.sleep(0.005)
    await asyncio.wait_for(task, 10)
    info = await setup.js.consumer_info(setup.stream, "d")
    assert got == list(range(100))
    assert info.num_waiting <= 1, info.num_waiting


async def test_the_end_of_an_older_request_does_not_end_the_newest(setup: Setup) -> None:
    puller = setup.puller
    await puller._ask({"batch": 1, "no_wait": True})  # request 1: no messages, its 404 comes
    await puller._ask({"batch": 1, "expires": 2_000_000_000})  # request 2, the newest
    await asyncio.sleep(0.3)  # request 1's 404 arrived meanwhile
    assert puller._ended is None
    await setup.publish(5)
    assert numbers(await puller.fetch(64, 1.0)) == [5]


async def test_a_consumer_that_is_gone_is_an_error(setup: Setup) -> None:
    await setup.js.delete_consumer(setup.stream, "d")
    with pytest.raises((NatsError, TimeoutError)) as raised:
        await setup.puller.fetch(64, 1.0)
    assert isinstance(raised.value, NatsError), raised.value  # refused, not waited out


async def test_a_full_buffer_leaves_the_rest_to_redelivery_and_loses_nothing(nats_url: str) -> None:
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    name = f"PULL{uuid.uuid4().hex[:8].upper()}"
    await js.add_stream(name=name, subjects=[f"pull.{name.lower()}"])
    await js.add_consumer(name, api.ConsumerConfig(durable_name="d", ack_policy=api.AckPolicy.EXPLICIT, ack_wait=1.0))
    puller = Puller(nc, name, "d", limit=5)
    await puller.start()
    try:
        for n in range(10):
            await js.publish(f"pull.{name.lower()}", b"%d" % n)
        first = await puller.fetch(64, 1.0)
        assert numbers(first) == [0, 1, 2, 3, 4]
        assert puller.dropped == 5
        got = numbers(first)
        for m in first:
            await m.ack()
        deadline = time.monotonic() + 5
        while len(got) < 10 and time.monotonic() < deadline:  # the 5 not kept come again after the ack wait
            batch = await puller.fetch(64, 1.0)
            got += numbers(batch)
            for m in batch:
                await m.ack()
        assert sorted(got) == list(range(10))
    finally:
        await puller.close()
        await js.delete_stream(name)
        await nc.close()

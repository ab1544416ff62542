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


def numbers(msgs: list[nats.aio.msg.Msg]) -> list[int]:
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


async def test_what_a_long_poll_brings_after_its_fetch_returned_goes_to_the_next_fetch(setup: Setup) -> None:
    async def later() -> None:
        await asyncio.sleep(0.2)
        await setup.publish(1)

    task = asyncio.create_task(later())
    assert numbers(await setup.puller.fetch(64, 3.0)) == [1]
    await task
    await setup.publish(2, 3)  # delivered to the long poll, still open for 63 more
    await asyncio.sleep(0.2)
    assert numbers(await setup.puller.fetch(64, 1.0)) == [2, 3]
    assert numbers(await setup.puller.fetch(1, 0.3)) == []


async def test_an_older_request_ending_does_not_end_the_newest(setup: Setup) -> None:
    async def first() -> None:
        await asyncio.sleep(0.1)
        await setup.publish(1)

    task = asyncio.create_task(first())
    # the long poll gets 1 and returns; its request stays open until it expires (0.4 s from now), then a 408
    assert numbers(await setup.puller.fetch(64, 0.45)) == [1]
    await task

    async def second() -> None:
        await asyncio.sleep(0.8)  # after the first request's 408
        await setup.publish(2)

    task = asyncio.create_task(second())
    started = time.monotonic()
    batch = await setup.puller.fetch(64, 3.0)
    await task
    assert numbers(batch) == [2]
    assert time.monotonic() - started >= 0.7


async def test_a_consumer_that_is_gone_is_an_error(setup: Setup) -> None:
    await setup.js.delete_consumer(setup.stream, "d")
    with pytest.raises((NatsError, TimeoutError)) as raised:
        await setup.puller.fetch(64, 1.0)
    assert isinstance(raised.value, NatsError), raised.value  # refused, not waited out

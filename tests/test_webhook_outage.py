"""While the bus cannot store events, the webhook answers 503 with Retry-After within its publish timeout (5 s),
never hangs; once the bus is back it answers 200 again. Real brokers stopped under a running engine."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import aiohttp

from sensorium.buses.embedded import EmbeddedNats
from sensorium.buses.kafka_broker import KafkaBroker
from sensorium.sources.webhook import WebhookLimits
from tests.engine_harness import Engine, free_port, unique, write_config
from tests.fixtures_kafka import RestartKafka

PROMPT = WebhookLimits().publish_timeout + 1.5  # the documented bound plus scheduling slack on a busy machine


def source(port: int) -> str:
    return f"""
apiVersion: argoproj.io/v1alpha1
kind: EventSource
metadata: {{name: {unique("hook")}}}
spec:
  webhook:
    example: {{port: "{port}", endpoint: /example, method: POST}}
"""


async def timed_post(url: str) -> tuple[int, str, str | None, float]:
    start = time.monotonic()
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(timeout=timeout) as session, session.post(url, data=b'{"a":1}') as resp:
        return resp.status, await resp.text(), resp.headers.get("Retry-After"), time.monotonic() - start


async def answers_while_down(url: str) -> None:
    answers = await asyncio.gather(*(timed_post(url) for _ in range(3)))
    for status, text, retry_after, elapsed in answers:
        assert (status, text, retry_after) == (503, "event bus unavailable, retry later\n", "1")
        assert elapsed < PROMPT, answers


async def test_503_promptly_while_the_kafka_broker_is_down(kafka_server: KafkaBroker, restart_kafka: RestartKafka,
                                                           tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}/example"
    async with Engine(write_config(tmp_path, source(port)), "kafka://" + kafka_server.bootstrap):
        assert (await timed_post(url))[0] == 200
        await asyncio.to_thread(kafka_server.stop)
        try:
            await answers_while_down(url)
            await answers_while_down(url)  # again, once the producer knows the broker is gone
        finally:
            await asyncio.to_thread(kafka_server.start)
        deadline = time.monotonic() + 60
        while (status := (await timed_post(url))[0]) != 200 and time.monotonic() < deadline:
            await asyncio.sleep(1)
        assert status == 200


async def test_503_promptly_while_jetstream_is_down(fresh_nats: EmbeddedNats, tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}/example"
    async with Engine(write_config(tmp_path, source(port)), fresh_nats.url):
        assert (await timed_post(url))[0] == 200
        await fresh_nats.stop()
        await answers_while_down(url)
        await fresh_nats.start()
        deadline = time.monotonic() + 30
        while (status := (await timed_post(url))[0]) != 200 and time.monotonic() < deadline:
            await asyncio.sleep(0.5)
        assert status == 200

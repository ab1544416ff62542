"""A real webhook server on a free port, publishing to an in-memory bus, and raw-socket clients for it."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from sensorium.buses.memory import MemoryBus
from sensorium.engine.app import publish_event
from sensorium.engine.core.cloudevent import CloudEvent
from sensorium.engine.core.secrets import Secrets
from sensorium.sources.spec import WebhookContext
from sensorium.sources.webhook import Endpoint, WebhookLimits, WebhookServer
from tests.engine_harness import free_port


@dataclass
class Hook:
    port: int
    server: WebhookServer
    published: list[CloudEvent]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def bodies(self) -> list[object]:
        return [json.loads(e.data or b"null")["body"] for e in self.published]


@asynccontextmanager
async def webhook(limits: WebhookLimits | None = None, **context: object) -> AsyncIterator[Hook]:
    """A WebhookServer with one endpoint `/hook` (POST unless `method` is given) storing events on a MemoryBus."""
    port = free_port()
    bus = MemoryBus()
    await bus.start()
    published: list[CloudEvent] = []

    async def publish(event: CloudEvent) -> None:
        await publish_event(bus, event)
        published.append(event)

    ctx = WebhookContext.model_validate({"endpoint": "/hook", "port": str(port), **context})
    server = WebhookServer([Endpoint("src", "hook", ctx)], publish, Secrets(None), "127.0.0.1", limits)
    await server.start()
    try:
        yield Hook(port, server, published)
    finally:
        await server.stop()
        await bus.close()


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes


def parse_answer(raw: bytes) -> Answer:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
    return Answer(int(lines[0].split()[1]), headers, body)


async def exchange(port: int, request: bytes, timeout: float = 10.0) -> Answer:
    """Send raw request bytes (which should ask `Connection: close`), read the whole answer."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        await writer.drain()
        return parse_answer(await asyncio.wait_for(reader.read(), timeout))
    finally:
        writer.close()


def post(path: str, body: bytes, *headers: str) -> bytes:
    head = [f"POST {path} HTTP/1.1", "Host: test", f"Content-Length: {len(body)}", "Connection: close", *headers]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body

"""NATS JetStream bus, wire-compatible with Argo Events (transport only: never decides when to acknowledge).

Stream `default` with subjects `default.*.*`; an event for `(eventSourceName, eventName)` is published on
`default.<eventSourceName>.<eventName>` with header `Nats-Msg-Id: <CloudEvent id>` (server-side dedup) and the
structured-mode CloudEvent JSON as body. Each ConsumerSpec is one durable pull consumer shared by every engine
process that uses the same name.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Mapping, Sequence

from nats.errors import Error as NatsError
from nats.js import api
from nats.js.errors import NotFoundError
from nats.js.kv import KeyValue

from sensorium.buses import spec as bus_spec
from sensorium.buses.base import (
    DEAD_LETTERS,
    Bus,
    Consumer,
    ConsumerSpec,
    EventKey,
    Mark,
    ReplayRange,
    ReplayReader,
    StateStore,
    TraceChannel,
    fit_dead_letter,
)
from sensorium.buses.jetstream.connection import JetStreamConnection, describe
from sensorium.buses.jetstream.consumer import JetStreamConsumer
from sensorium.buses.jetstream.replay import JetStreamReplay
from sensorium.buses.jetstream.state import JetStreamStateStore, open_state_bucket
from sensorium.buses.jetstream.stored import JetStreamStoredEvents
from sensorium.buses.jetstream.stream import (
    STREAM,
    dead_letter_subject,
    durable_name,
    ensure_dead_letter_stream,
    subject_for,
)
from sensorium.buses.jetstream.trace import JetStreamTraceChannel, read_trace
from sensorium.engine.core.errors import BusError, EventTooLarge
from sensorium.engine.core.secrets import Secrets
from sensorium.engine.core.tls import client_context

log = logging.getLogger("buses.jetstream.bus")


class JetStreamBus(JetStreamConnection, Bus):
    """A JetStream bus at `url`. `credentials` is a token or `user:password`; `tls` an SSLContext.

    nats-py reconnects forever with capped exponential backoff (`reconnect_wait` min/max seconds); `health`
    follows the connection and each state change is logged once, naming the URL and the cause.
    """

    @classmethod
    def from_spec(cls, spec: bus_spec.JetStreamBus, secrets: Secrets, url: str | None = None) -> JetStreamBus:
        """Build from the EventBus document; `url` overrides `spec.url` (e.g. an embedded server's)."""
        target = url or spec.url
        if not target:
            raise BusError("jetstream bus has no url (start an EmbeddedNats and pass its url)")
        creds = secrets.get(spec.access_secret.name, spec.access_secret.key) if spec.access_secret else None
        tls = client_context(spec.tls, secrets) if spec.tls is not None else None
        return cls(target, spec.stream_config, creds, tls)

    async def _publish_async(self, key: EventKey, event_id: str, body: bytes) -> asyncio.Future[api.PubAck]:
        subject = subject_for(key)
        headers = {"Nats-Msg-Id": event_id}
        stall = self.publish_timeout
        if self._async_ready:
            return await self.js.publish_async(subject, body, wait_stall=stall, headers=headers)
        async with self._init_lock:  # the first call sets up the reply subscription: do not race it
            fut = await self.js.publish_async(subject, body, wait_stall=stall, headers=headers)
            self._async_ready = True
            return fut

    async def publish(self, key: EventKey, event_id: str, body: bytes) -> None:
        await self.publish_many([(key, event_id, body)])

    async def publish_many(self, items: Sequence[tuple[EventKey, str, bytes]]) -> None:
        if self.closed:
            raise BusError(f"bus {self.url} is closed")
        for _, event_id, body in items:
            if len(body) > self.max_payload:
                raise EventTooLarge(f"event {event_id[:200]} of {len(body)} bytes is larger than {self.url} takes "
                                    f"({self.max_payload} bytes)")
        futures: list[asyncio.Future[api.PubAck]] = []
        try:
            for key, event_id, body in items:
                futures.append(await self._publish_async(key, event_id, body))
            done = await asyncio.wait_for(asyncio.gather(*futures), self.publish_timeout)
        except (NatsError, OSError, TimeoutError) as exc:
            for fut in futures:
                fut.cancel()
            cause = self.redact(describe(exc))
            raise BusError(f"publish to {self.url} not acknowledged: {cause}") from exc
        for ack in done:
            if ack.stream != STREAM:
                raise BusError(f"publish to {self.url} stored in stream {ack.stream!r}, not {STREAM!r}")

    async def publish_dead_letter(self, sensor: str, attributes: Mapping[str, str], body: bytes) -> None:
        """Subject `sensorium-dlq.<sensor>` (sanitized) in the stream `sensorium-dlq` (DLQ_SETTINGS), headers
        `ce-<attribute>` (CloudEvents NATS binary mode) and `Nats-Msg-Id` = the dead letter's id."""
        if self.closed:
            raise BusError(f"bus {self.url} is closed")
        attrs, data = fit_dead_letter(attributes, body, self.max_payload)
        headers = {f"ce-{name}": value for name, value in attrs.items()}
        headers["Nats-Msg-Id"] = attrs.get("id", "")
        try:
            if not self._dlq_ready:
                async with self._init_lock:
                    if not self._dlq_ready:
                        await ensure_dead_letter_stream(self.js)
                        self._dlq_ready = True
            ack = await self.js.publish(dead_letter_subject(sensor), data, timeout=self.publish_timeout,
                                        stream=DEAD_LETTERS, headers=headers)
        except (NatsError, OSError, TimeoutError) as exc:
            raise BusError(f"dead letter to {DEAD_LETTERS} on {self.url} not stored: "
                           f"{self.redact(describe(exc))}") from exc
        if ack.stream != DEAD_LETTERS:
            raise BusError(f"dead letter on {self.url} stored in stream {ack.stream!r}, not {DEAD_LETTERS!r}")

    async def consumer(self, spec: ConsumerSpec) -> Consumer:
        consumer = JetStreamConsumer(self, spec)
        try:
            await consumer.bind()
        except (NatsError, OSError, TimeoutError) as exc:
            raise BusError(f"NATS at {self.url}: cannot create consumer {consumer.durable}: "
                           f"{self.redact(describe(exc))}") from exc
        return consumer

    async def consumer_positions(self, names: Sequence[str]) -> dict[str, Mark]:
        wanted = {durable_name(n): n for n in names}
        out: dict[str, Mark] = {}
        seen = 0
        try:
            while True:  # pages of 256
                infos = await self.js.consumers_info(STREAM, offset=seen)
                seen += len(infos)
                out.update({wanted[i.name]: int(i.ack_floor.stream_seq if i.ack_floor else 0)
                            for i in infos if i.name in wanted})
                if len(infos) < 256:
                    return out
        except (NatsError, OSError, TimeoutError) as exc:
            raise BusError(f"NATS at {self.url}: cannot list consumers: {self.redact(describe(exc))}") from exc

    async def delete_consumer(self, name: str) -> None:
        try:
            await self.js.delete_consumer(STREAM, durable_name(name))
        except NotFoundError:
            return
        except (NatsError, OSError, TimeoutError) as exc:
            raise BusError(f"NATS at {self.url}: cannot delete consumer {name}: "
                           f"{self.redact(describe(exc))}") from exc

    _state_bucket: KeyValue | None = None

    async def state_store(self, sensor: str) -> StateStore:
        """Key `sensor` (sanitized) of the KV bucket `sensorium-state`, created if missing
        (buses/jetstream/state.py). The bucket is looked up once per bus, not once per store (a round trip each
        made starting 2,000 sensors with `&&` conditions take 0.6 s more); a store whose bucket was lost with the
        server's data opens it again itself."""
        if self._state_bucket is None:
            self._state_bucket = await open_state_bucket(self)
        return JetStreamStateStore(self, self._state_bucket, sensor)

    async def replay_reader(self, keys: Sequence[EventKey], span: ReplayRange, label: str = "") -> ReplayReader:
        """An ephemeral consumer of its own, deleted on close (buses/jetstream/replay.py)."""
        if self.closed:
            raise BusError(f"bus {self.url} is closed")
        reader = JetStreamReplay(self, keys, span, label)
        await reader.open()
        return reader

    def trace_channel(self) -> TraceChannel:
        """Subject `sensorium.trace.<sensor>` in the stream `sensorium-trace` (buses/jetstream/trace.py)."""
        return JetStreamTraceChannel(self)

    def stored_events(self) -> JetStreamStoredEvents:
        """Looked up by stream sequence in the stream holding the subject (buses/jetstream/stored.py)."""
        return JetStreamStoredEvents(self._raw_url, self.url)

    def read_trace(self, sensor: str | None, start: float | None, follow: bool,
                   idle: float) -> AsyncIterator[bytes]:
        return read_trace(self._raw_url, self.url, sensor, start, follow, idle)

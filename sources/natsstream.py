"""The `natsStream` event source: messages of an existing JetStream stream in, CloudEvents on the bus out.

Written as `spec.natsStream.<eventName>` (a Sensorium extension; HNS-style `config.d` subscriptions translate into
it, engine.formats.hns). Producers of such a stream publish plain payloads (JSON or any bytes, not CloudEvents) on
subjects such as `order.completed`. Each entry reads the stream through its own durable pull consumer (`consumer`,
created if missing, otherwise updated to this entry's subject filter and ack wait) filtered on `subject` (NATS
wildcards `*` and `>`), and wraps each message into a CloudEvent:

| attribute | value |
|---|---|
| `id` | `<message id>@<eventSource>.<eventName>` (one message read by two entries is two events) |
| `source`, `subject` | the EventSource and the event name (how sensors' dependencies match, as for every source) |
| `type` | `natsStream` |
| `time` | when the stream stored the message (RFC 3339, UTC) |
| `datacontenttype`, data | `application/json`; the payload byte for byte when it is JSON, else as a JSON string |
| `natsmsgid` | extension: the message id, its `Nats-Msg-Id` header, else `<stream>-<stream sequence>` |
| `natssubject`, `natsstream`, `natssequence` | extensions: the message's NATS subject, stream and stream sequence |

The event id names the entry because the bus drops a second message with an id it stored within its duplicate
window (JetStream's `Nats-Msg-Id`, per stream, not per subject): the catch-all `>` and `mail.>` subscriptions both
read `mail.welcome`, and both must deliver it.

A message is acknowledged on its stream only after the Sensorium bus stored its event, so nothing is lost when the
engine is killed in between: the stream redelivers it after the consumer's ack wait, and the event, published again
with the same id, is dropped by the bus's duplicate window (JetStream, 300 s by default; on Kafka it is
delivered twice: at least once). A publish the bus refuses is retried (0.1 s doubling to 5 s, one log line per
failure). Stopping (a reload that changes an entry, the engine's end) naks the messages whose events are not
stored yet, so the stream redelivers them at once rather than after the ack wait.

Where the stream is: `url` (a `nats://` URL; default the engine's bus, when it is JetStream) and `stream` (default:
the one stream whose subjects capture `subject`; none or several: the entry waits, retried and named by `problems()`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from datetime import UTC
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.errors import Error as NatsError
from nats.js import JetStreamContext, api
from nats.js.errors import NotFoundError
from pydantic import Field, field_validator

from sensorium.engine.core.cloudevent import CloudEvent, encode_structured, is_json
from sensorium.engine.core.errors import BusError, SensoriumError
from sensorium.engine.core.specbase import ArgoModel, check_url, positive_duration
from sensorium.engine.goport.duration import parse_duration
from sensorium.sources.base import EntryTasks, Publish

__all__ = ["NatsStreamContext", "NatsStreamSource", "check_subject", "event_of", "printable_url"]

log = logging.getLogger("sensorium.sources.natsstream")

BATCH = 64
"""Messages fetched at once per entry (published together, then acknowledged in order)."""
_NAME = re.compile(r"[^\s.*>]+")


def check_subject(subject: str) -> str:
    """A NATS subject filter: dot-separated non-empty tokens without whitespace; `*` only as a whole token, `>`
    only as the whole last token (raises ValueError)."""
    if not subject:
        raise ValueError("subject must not be empty")
    tokens = subject.split(".")
    for index, token in enumerate(tokens):
        if not token:
            raise ValueError(f"subject {subject!r} has an empty token (two dots, or a dot at an end)")
        if any(c.isspace() for c in token):
            raise ValueError(f"subject {subject!r} contains whitespace")
        if token == ">" and index != len(tokens) - 1:
            raise ValueError(f"subject {subject!r}: '>' must be the last token")
        if token not in ("*", ">") and ("*" in token or ">" in token):
            raise ValueError(f"subject {subject!r}: '*' and '>' must be whole tokens (e.g. mail.> or order.*)")
    return subject


def check_name(value: str, what: str) -> str:
    """A JetStream stream or consumer name: no whitespace, '.', '*' or '>' (raises ValueError)."""
    if not _NAME.fullmatch(value):
        raise ValueError(f"{what} {value!r} must be non-empty without whitespace, '.', '*' or '>'")
    return value


def _sensoriums(stream: str) -> bool:
    """Whether `stream` is one of Sensorium's own bus streams (events, trace, dead letters, KV state), which a
    wildcard subject such as `>` also captures and which are never an external stream."""
    return stream == "default" or stream.startswith(("sensorium", "KV_"))


def printable_url(url: str) -> str:
    """The URL without user info, for logs and errors."""
    parts = urlsplit(url)
    netloc = (parts.hostname or "") + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


class NatsStreamContext(ArgoModel):
    """One `spec.natsStream.<eventName>` entry: a durable consumer on an existing JetStream stream."""

    url: str | None = Field(default=None, description="nats:// URL of the server holding the stream; default: the "
                            "engine's bus (JetStream).")
    stream: str | None = Field(default=None, description="Stream name; default: the one stream capturing `subject`.")
    subject: str = Field(description="Subject filter; NATS wildcards `*` (one token) and `>` (the rest).")
    consumer: str = Field(description="Durable consumer name on the stream (created if missing).")
    ack_wait: str = Field(default="30s", description="Go duration the stream waits for an ack before redelivering.")

    @field_validator("url")
    @classmethod
    def _url(cls, v: str | None) -> str | None:
        if v is not None:
            check_url(v, ("nats", "tls"))
        return v

    @field_validator("subject")
    @classmethod
    def _subject(cls, v: str) -> str:
        return check_subject(v)

    @field_validator("stream")
    @classmethod
    def _stream(cls, v: str | None) -> str | None:
        return check_name(v, "stream") if v is not None else None

    @field_validator("consumer")
    @classmethod
    def _consumer(cls, v: str) -> str:
        return check_name(v, "consumer")

    @field_validator("ack_wait")
    @classmethod
    def _duration(cls, v: str) -> str:
        return positive_duration(v, "ackWait")


def _header(msg: Msg, name: str) -> str | None:
    return next((v for k, v in (msg.headers or {}).items() if k.lower() == name.lower()), None)


def event_of(msg: Msg, source: str, name: str) -> CloudEvent:
    """The CloudEvent of one stream message (module docstring)."""
    meta = msg.metadata
    data = msg.data if is_json(msg.data) else json.dumps(msg.data.decode("utf-8", "replace"),
                                                         ensure_ascii=False).encode()
    timestamp = meta.timestamp.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    sequence = str(meta.sequence.stream)
    message_id = _header(msg, "Nats-Msg-Id") or f"{meta.stream}-{sequence}"
    return CloudEvent(
        id=f"{message_id}@{source}.{name}", source=source, type="natsStream", subject=name,
        datacontenttype="application/json", time=timestamp, data=data,
        extensions={"natsmsgid": message_id, "natssubject": msg.subject, "natsstream": meta.stream,
                    "natssequence": sequence})


@dataclass(frozen=True)
class _Entry:
    source: str
    name: str
    spec: NatsStreamContext

    @property
    def key(self) -> str:
        return f"{self.source}/{self.name}"


async def _quiet(exc: Exception) -> None:
    """nats-py's error callback: its default logs a traceback per failed (re)connect attempt; the entries report
    what matters (`problems()`, one WARNING per new cause)."""
    log.debug("natsStream connection: %s", _describe(exc))


def _describe(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.errno:
        return os.strerror(exc.errno).lower()
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


class _NotServing(Exception):
    """Why an entry cannot consume yet (the server, the stream or the consumer); retried with backoff."""


class NatsStreamSource:
    """Every `natsStream` entry: one NATS connection per server URL, one durable pull consumer and task per entry.

    `start()` makes one attempt per entry to connect, find the stream and create or bind the consumer, then
    returns; an entry that could not (the server is unreachable, the stream does not exist yet, several streams
    capture its subject) keeps trying in the background (0.5 s doubling to 30 s, one WARNING per new cause) and
    is named by `problems()` until it consumes, so the engine's /readyz is 503 until every entry consumes. Only
    an entry with no server to read from (no `url`, and the bus is not JetStream) is a SensoriumError."""

    def __init__(self, entries: Sequence[tuple[str, str, NatsStreamContext]], publish: Publish,
                 bus_url: str | None, retry: Callable[[int], float] | None = None) -> None:
        self.entries = [_Entry(*e) for e in entries]
        self.publish, self.bus_url = publish, bus_url
        self._delay = retry or (lambda failures: min(5.0, 0.1 * 2 ** failures))
        self._clients: dict[str, Client] = {}
        self._connecting = asyncio.Lock()  # one client per URL, however many entries connect at once
        self._tasks: EntryTasks[Any] = EntryTasks()
        self._problems: dict[str, str] = {}  # entry ("source/name") -> why it does not consume right now
        self._streams: dict[str, str] = {}  # entry ("source/name") -> the stream its consumer reads

    def problems(self) -> list[str]:
        """Why entries do not consume right now (sources.base.Reporting: the engine's /readyz lists them)."""
        return [f"natsStream {entry}: {problem}" for entry, problem in sorted(self._problems.items())]

    def _url(self, entry: _Entry) -> str:
        url = entry.spec.url or self.bus_url
        if url is None or not url.startswith(("nats://", "tls://")):
            raise SensoriumError(f"natsStream {entry.source}/{entry.name}: no `url`, and the engine's bus is not "
                                 "NATS JetStream: give the URL of the server holding the stream")
        return url

    async def _client(self, url: str) -> Client:
        async with self._connecting:
            if url not in self._clients:
                client = Client()
                try:  # one bounded attempt (nats-py would retry the first connect forever), then reconnect forever
                    await client.connect(url, name="sensorium-natsstream", allow_reconnect=False,
                                         max_reconnect_attempts=1, reconnect_time_wait=0, connect_timeout=2,
                                         error_cb=_quiet)
                except (NatsError, OSError, TimeoutError) as exc:
                    raise _NotServing(f"cannot connect to {printable_url(url)}: {_describe(exc)}") from None
                client.options["allow_reconnect"] = True
                client.options["max_reconnect_attempts"] = -1
                self._clients[url] = client
            return self._clients[url]

    async def start(self) -> None:
        urls = [self._url(entry) for entry in self.entries]  # the only error that stops the engine
        attempts: list[asyncio.Event] = []
        for entry, url in zip(self.entries, urls, strict=True):
            attempted = asyncio.Event()
            attempts.append(attempted)
            await self._tasks.spawn(f"natsStream.{entry.source}.{entry.name}", None,
                                    self._runner(entry, url, attempted))
        await asyncio.gather(*(attempted.wait() for attempted in attempts))

    def _runner(self, entry: _Entry, url: str, attempted: asyncio.Event) -> Callable[
            [Any], Coroutine[Any, Any, None]]:
        return lambda _store: self._serve(entry, url, attempted)

    async def _serve(self, entry: _Entry, url: str, attempted: asyncio.Event) -> None:
        """Subscribe (retrying with backoff until it works), then consume until cancelled."""
        delay = 0.5
        while True:
            try:
                client = await self._client(url)
                psub = await self._subscribe(client.jetstream(), entry)
                break
            except _NotServing as exc:
                self._failing(entry, str(exc))
            finally:
                attempted.set()
            await asyncio.sleep(delay)
            delay = min(delay * 2, 30.0)
        self._failing(entry, None)
        await self._run(entry, psub, client, printable_url(url))

    async def _stream(self, js: JetStreamContext, entry: _Entry) -> str:
        if entry.spec.stream is not None:
            return entry.spec.stream
        try:  # the server's stream-by-subject lookup; nats-py's find_stream_name_by_subject keeps only the first
            reply = await js._api_request("$JS.API.STREAM.NAMES",
                                          json.dumps({"subject": entry.spec.subject}).encode(), timeout=5)
        except (NatsError, TimeoutError) as exc:
            raise _NotServing(f"cannot list the streams: {type(exc).__name__}: {exc}") from None
        names = [str(n) for n in reply.get("streams") or [] if not _sensoriums(str(n))]
        if len(names) != 1:
            found = ", ".join(names) if names else "none"
            raise _NotServing(f"want exactly one stream capturing subject {entry.spec.subject!r} (found: {found}); "
                              "set `stream`")
        return names[0]

    async def _subscribe(self, js: JetStreamContext, entry: _Entry) -> JetStreamContext.PullSubscription:
        stream = self._streams[entry.key] = await self._stream(js, entry)
        config = api.ConsumerConfig(
            durable_name=entry.spec.consumer, ack_policy=api.AckPolicy.EXPLICIT,
            ack_wait=parse_duration(entry.spec.ack_wait) / 1e9, filter_subject=entry.spec.subject,
            max_ack_pending=4 * BATCH)
        try:
            try:
                await js.consumer_info(stream, entry.spec.consumer)
                exists = True
            except NotFoundError:
                exists = False
            await js.add_consumer(stream, config)  # create, or update an existing one's filter and ack wait
            psub = await js.pull_subscribe_bind(durable=entry.spec.consumer, stream=stream)
        except NotFoundError:
            raise _NotServing(f"stream {stream!r} not found") from None
        except (NatsError, TimeoutError) as exc:
            raise _NotServing(f"cannot create consumer {entry.spec.consumer!r} on stream {stream!r}: "
                              f"{type(exc).__name__}: {exc}") from None
        log.info("natsStream %s/%s: %s consumer %s on stream %s, subject %s", entry.source, entry.name,
                 "resumed" if exists else "created", entry.spec.consumer, stream, entry.spec.subject)
        return psub

    async def _resubscribed(self, js: JetStreamContext, entry: _Entry,
                            psub: JetStreamContext.PullSubscription) -> JetStreamContext.PullSubscription:
        """`psub`, or a new subscription when its consumer is gone (deleted, or a server that came back without it:
        the new consumer starts again at the stream's first message; the bus drops the repeats it still knows)."""
        try:
            await js.consumer_info(self._streams[entry.key], entry.spec.consumer)
            return psub
        except NotFoundError:
            pass
        except (NatsError, OSError, TimeoutError, KeyError):
            return psub
        try:
            fresh = await self._subscribe(js, entry)
        except _NotServing as exc:
            self._failing(entry, str(exc))
            return psub
        with contextlib.suppress(NatsError, OSError, TimeoutError):
            await psub.unsubscribe()
        return fresh

    def _failing(self, entry: _Entry, problem: str | None) -> None:
        """Record (None: clear) why `entry` does not consume; each change is one log line."""
        key = entry.key
        if problem == self._problems.get(key):
            return
        if problem is None:
            del self._problems[key]
            log.info("natsStream %s: consuming again", key)
        else:
            self._problems[key] = problem
            log.warning("natsStream %s: %s; retrying", key, problem)

    async def _run(self, entry: _Entry, psub: JetStreamContext.PullSubscription, client: Client, url: str) -> None:
        while True:
            if not client.is_connected:
                self._failing(entry, f"disconnected from {url}")
                await asyncio.sleep(0.5)
                continue
            try:
                msgs = await psub.fetch(BATCH, timeout=1.0)
            except TimeoutError:
                if client.is_connected:
                    self._failing(entry, None)
                continue
            except (NatsError, OSError) as exc:
                self._failing(entry, f"cannot fetch from {url}: {_describe(exc)}"[:300])
                await asyncio.sleep(1.0)
                psub = await self._resubscribed(client.jetstream(), entry, psub)
                continue
            self._failing(entry, None)
            settled: set[int] = set()  # ids of the messages acknowledged or terminated
            try:
                await self._forward(entry, msgs, client.max_payload, settled)
            except asyncio.CancelledError:  # stopping (a reload, the engine's end): the stream redelivers at once
                for msg in msgs:
                    if id(msg) not in settled:
                        with contextlib.suppress(NatsError, OSError, TimeoutError):
                            await msg.nak()
                raise
            except Exception as exc:  # a bug must not end the entry silently: unacked messages come back
                log.exception("natsStream %s/%s: forwarding failed; fetching again in 1s", entry.source, entry.name)
                self._failing(entry, f"forwarding failed: {type(exc).__name__}: {exc}"[:300])
                await asyncio.sleep(1.0)

    async def _forward(self, entry: _Entry, msgs: Sequence[Msg], limit: int, settled: set[int]) -> None:
        """Publish the messages' events together, then acknowledge each once its event is stored. A message whose
        event is larger than `limit` (the stream server's max_payload, which the bus is assumed to share) can never
        be stored: it is logged and terminated on its stream (never redelivered) instead of blocking the entry."""
        events: list[CloudEvent | None] = []
        for msg in msgs:
            event = event_of(msg, entry.source, entry.name)
            if len(encode_structured(event)) > limit:
                log.error("natsStream %s/%s: message %s (subject %s, %d bytes) is too large for the bus once "
                          "wrapped (over %d bytes); terminated on its stream, not delivered", entry.source,
                          entry.name, event.extensions["natsmsgid"], msg.subject, len(msg.data), limit)
                with contextlib.suppress(NatsError, OSError):
                    await msg.term()
                settled.add(id(msg))
                events.append(None)
                continue
            events.append(event)
        results = await asyncio.gather(*(self.publish(e) for e in events if e is not None), return_exceptions=True)
        outcomes = iter(results)
        for msg, maybe in zip(msgs, events, strict=True):
            if maybe is None:
                continue
            result = next(outcomes)
            if isinstance(result, BaseException):
                if not isinstance(result, (BusError, OSError, TimeoutError)):
                    raise result
                await self._publish_until_stored(entry, maybe, result)
            with contextlib.suppress(NatsError, OSError):  # unacked: redelivered, then deduplicated
                await msg.ack()
            settled.add(id(msg))

    async def _publish_until_stored(self, entry: _Entry, event: CloudEvent, first: BaseException) -> None:
        failures, error = 0, first
        while True:
            delay = self._delay(failures)
            log.error("natsStream %s/%s: event %s not stored on the bus, retrying in %.1fs: %s", entry.source,
                      entry.name, event.id, delay, error)
            await asyncio.sleep(delay)
            failures += 1
            try:
                await self.publish(event)
                return
            except (BusError, OSError, TimeoutError) as exc:
                error = exc

    async def stop(self) -> None:
        await self._tasks.stop()
        for client in self._clients.values():
            with contextlib.suppress(NatsError, OSError, TimeoutError):
                await client.close()
        self._clients.clear()

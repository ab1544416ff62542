"""The `nats` event source (Argo pkg/eventsources/sources/nats): messages on a core NATS subject in, CloudEvents
on the bus out. Written as `spec.nats.<eventName>` with Argo's fields: `url`, `subject` (wildcards `*`, `>`),
`queue` (a queue group: engines subscribed with the same one share the messages), `jsonBody`, `metadata`, `auth`
(basic, token, nkey, credential), `tls`, `connectionBackoff` (accepted; the connection retries by itself).

The event is Argo's: type `nats`, source the EventSource, subject the event name, and as data
`{"subject": ..., "body": ..., "header": {...}, "metadata": {...}}`: `body` is the message as JSON with
`jsonBody: true` (a message that is not JSON is then carried as a JSON string, not dropped) and base64 otherwise
(Go's []byte), `header` the message's NATS headers (name: [values]), `metadata` only when written.

Core NATS delivers a message to whoever subscribes at that moment and never again: a message published while the
engine is down, or while this subscription is not connected, is not received (Argo's source is the same). Use
`natsStream` on a JetStream stream when messages must outlive the engine. What Sensorium adds: each message is
held until the bus stored its event (retried while the bus refuses it, one log line per failure); at most
`PENDING` messages wait at once, and beyond them nats-py drops what arrives (a slow consumer), which is logged
with the count so far and reported (the trace's `source` records), never silently.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import ssl
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.errors import Error as NatsError
from nats.errors import SlowConsumerError
from pydantic import Field, field_validator

from sensorium.engine.core.cloudevent import CloudEvent, is_json, new_id, now_rfc3339
from sensorium.engine.core.errors import SensoriumError
from sensorium.engine.core.natsclient import NatsCredentialError, connect_options, printable_url, servers
from sensorium.engine.core.secrets import SecretNotFound, Secrets
from sensorium.engine.core.specbase import ArgoModel, NATSAuth, TLSConfig, check_url
from sensorium.engine.core.tls import client_context
from sensorium.sources.base import Entry, EntryProblems, EntryTasks, Publish, Report, no_report, publish_retrying
from sensorium.sources.natsstream import check_subject

__all__ = ["NatsSource", "NatsSourceContext", "event_of"]

log = logging.getLogger("sensorium.sources.nats")

PENDING = 1024
"""Messages of one entry held while their events are being stored: this many in the entry's queue, as many again
in nats-py's (its pending limit), then dropped as a slow consumer's."""
RETRY = 2.0  # seconds between connection attempts of an entry whose server cannot be reached


class NatsSourceContext(ArgoModel):
    """One `spec.nats.<eventName>` entry (Argo's NATSEventsSource)."""

    url: str = Field(description="NATS server URL (required): nats://, tls:// or HOST:PORT; several separated by "
                                 "commas.")
    subject: str = Field(description="Subject to subscribe to (required); wildcards `*` and `>`.")
    queue: str | None = Field(default=None, description="Queue group: subscribers with the same one share the "
                                                        "messages.")
    json_body: bool = Field(default=False, description="The message is JSON: the event's `body` holds it as JSON "
                                                       "(else base64).")
    metadata: dict[str, str] | None = Field(default=None, description="Copied into the event data as `metadata`.")
    auth: NATSAuth | None = Field(default=None, description="Credentials: basic, token, nkey or credential.")
    tls: TLSConfig | None = Field(default=None, description="TLS client settings.")
    connection_backoff: dict[str, Any] | None = Field(
        default=None, description="Accepted for Argo's files: the connection retries by itself, every 2 s.")
    filter: dict[str, Any] | None = Field(default=None, description="Event source filter: not supported yet.")

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not value:
            raise ValueError("url must be specified")
        for one in servers(value):
            check_url(one, ("nats", "tls"))
        return value

    @field_validator("subject")
    @classmethod
    def _subject(cls, value: str) -> str:
        if not value:
            raise ValueError("subject must be specified")
        return check_subject(value)

    @field_validator("filter")
    @classmethod
    def _filter(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None:
            raise ValueError("event source filters are not supported yet; filter in the sensor instead")
        return value


def event_of(msg: Msg, source: str, name: str, spec: NatsSourceContext) -> CloudEvent:
    """Argo's event for one message (see the module)."""
    if spec.json_body:
        body: Any = json.loads(msg.data) if is_json(msg.data) else msg.data.decode("utf-8", "replace")
    else:
        body = base64.b64encode(msg.data).decode()
    data: dict[str, Any] = {"subject": msg.subject, "body": body,
                            "header": {k: [v] for k, v in (msg.headers or {}).items()}}
    if spec.metadata:
        data["metadata"] = spec.metadata
    return CloudEvent(id=new_id(), source=source, type="nats", subject=name, time=now_rfc3339(),
                      datacontenttype="application/json", data=json.dumps(data).encode())


NatsEntry = Entry[NatsSourceContext]


class NatsSource:
    """Every `nats` entry: a connection and a subscription each (see the module)."""

    def __init__(self, entries: Sequence[tuple[str, str, NatsSourceContext]], publish: Publish, secrets: Secrets,
                 report: Report = no_report) -> None:
        self.entries = [Entry("nats", source, name, spec) for source, name, spec in entries]
        self.publish, self.secrets, self.report = publish, secrets, report
        self._tasks: EntryTasks[Any] = EntryTasks()
        self._problems = EntryProblems(log, report)
        self.dropped: dict[str, int] = {}  # messages nats-py dropped per entry (a slow consumer)
        self.subscribed: set[str] = set()  # the entries whose subscription the server has (`where`)
        self._refusals: dict[str, str] = {}  # a permission error the server sent on an entry's connection
        self._closing: set[str] = set()  # entries whose connection this source is closing
        self._marks: set[asyncio.Task[None]] = set()  # refusals on their way into an entry's queue

    def problems(self) -> list[str]:
        return self._problems.lines()

    async def start(self) -> None:
        for entry in self.entries:  # not serving until subscribed (readiness says so)
            self._problems.waiting(entry, f"connecting to {printable_url(entry.spec.url)}")
            await self._tasks.spawn(entry.where, None, self._runner(entry))

    def _runner(self, entry: NatsEntry) -> Callable[[Any], Coroutine[Any, Any, None]]:
        def run(_: Any) -> Coroutine[Any, Any, None]:
            return self._serve(entry)
        return run

    async def stop(self) -> None:
        await self._tasks.stop()

    def _options(self, entry: NatsEntry) -> dict[str, Any]:
        """Connect options (auth, TLS) from secrets; raises SensoriumError naming what is wrong."""
        try:
            options, _ = connect_options(entry.spec.auth, self.secrets)
            tls: ssl.SSLContext | None = client_context(entry.spec.tls, self.secrets) if entry.spec.tls else None
        except (SecretNotFound, NatsCredentialError) as exc:
            raise SensoriumError(str(exc)) from None
        except (ssl.SSLError, ValueError) as exc:
            raise SensoriumError(f"TLS settings unusable: {type(exc).__name__}") from None
        return {**options, "tls": tls} if tls is not None else options

    async def _serve(self, entry: NatsEntry) -> None:
        """Connect, subscribe, and hand each message's event to the bus; when connecting or subscribing fails
        (the server away, a permission refused), report it and try again every RETRY seconds."""
        where = printable_url(entry.spec.url)
        while True:
            client = Client()
            # Full: nats-py's own pending fills. None: the server refused the subscription (its -ERR may come
            # before or after the flush's PONG).
            queue: asyncio.Queue[Msg | None] = asyncio.Queue(maxsize=PENDING)
            try:
                await self._connect(client, entry, queue)
                await client.subscribe(entry.spec.subject, queue=entry.spec.queue or "",
                                       pending_msgs_limit=PENDING, cb=queue.put)
                await client.flush()
                self.subscribed.add(entry.where)
                again = " again" if self._problems.clear(entry) else ""
                log.info("%s: subscribed to %s at %s%s", entry.where, entry.spec.subject, where, again)
                while True:
                    msg = await queue.get()
                    if msg is None:
                        raise SensoriumError(self._refusals.pop(entry.where, "the server refused"))
                    event = event_of(msg, entry.source, entry.name, entry.spec)
                    await publish_retrying(self.publish, event, f"{entry.where}: event {event.id}", log)
            except (NatsError, OSError, TimeoutError, SensoriumError) as exc:
                self._problems.set(entry, f"cannot subscribe at {where}: {_describe(exc)}")
            finally:
                self.subscribed.discard(entry.where)
                self._closing.add(entry.where)  # (its disconnection is ours, not a problem to report)
                with contextlib.suppress(NatsError, OSError, TimeoutError):
                    await client.close()
                self._closing.discard(entry.where)
            await asyncio.sleep(RETRY)

    async def _connect(self, client: Client, entry: NatsEntry, queue: asyncio.Queue[Msg | None]) -> None:
        async def errors(exc: Exception) -> None:
            if isinstance(exc, SlowConsumerError):  # logged and reported; not a readiness problem (it passes)
                count = self.dropped[entry.where] = self.dropped.get(entry.where, 0) + 1
                problem = f"slow consumer: {count} message(s) dropped so far (over {PENDING} waiting for the bus)"
                log.error("%s: %s", entry.where, problem)
                self.report("nats", entry.source, entry.name, problem, None)
                return
            if "permissions violation" in str(exc).lower():  # the server refused the subscription
                self._refusals[entry.where] = f"the server refused: {str(exc)[:300]}"
                task = asyncio.get_running_loop().create_task(queue.put(None))  # (behind what came before it)
                self._marks.add(task)
                task.add_done_callback(self._marks.discard)
                return
            log.debug("%s: %s", entry.where, type(exc).__name__)

        connected = False

        async def disconnected() -> None:
            if connected and entry.where not in self._closing:  # (nats-py calls it when a first connect fails too)
                self._problems.set(entry, f"disconnected from {printable_url(entry.spec.url)}; reconnecting")

        async def reconnected() -> None:
            if self._problems.clear(entry):
                log.info("%s: reconnected to %s", entry.where, printable_url(entry.spec.url))

        await client.connect(servers=servers(entry.spec.url), name=f"sensorium-{entry.source}-{entry.name}",
                             error_cb=errors, disconnected_cb=disconnected, reconnected_cb=reconnected,
                             allow_reconnect=False, max_reconnect_attempts=1, reconnect_time_wait=0,
                             connect_timeout=2, **self._options(entry))
        client.options["allow_reconnect"] = True
        client.options["max_reconnect_attempts"] = -1
        client.options["reconnect_time_wait"] = 1
        connected = True


def _describe(exc: BaseException) -> str:
    text = str(exc).strip()
    name = type(exc).__name__
    return text if isinstance(exc, SensoriumError) else (f"{name}: {text}" if text and text != name else name)

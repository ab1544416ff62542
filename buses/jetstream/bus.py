"""NATS JetStream bus, wire-compatible with Argo Events (transport only: never decides when to acknowledge).

Stream `default` with subjects `default.*.*`; an event for `(eventSourceName, eventName)` is published on
`default.<eventSourceName>.<eventName>` with header `Nats-Msg-Id: <CloudEvent id>` (server-side dedup) and the
structured-mode CloudEvent JSON as body. Each ConsumerSpec is one durable pull consumer shared by every engine
process that uses the same name.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import re
import ssl
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from nats.aio.client import Client as NATS
from nats.aio.client import Server
from nats.aio.msg import Msg
from nats.errors import Error as NatsError
from nats.errors import StaleConnectionError, UnexpectedEOF
from nats.js import JetStreamContext, api
from nats.js.errors import NotFoundError

from buses import spec as bus_spec
from buses.base import (
    DEAD_LETTERS,
    Bus,
    Consumer,
    ConsumerSpec,
    Delivery,
    EventKey,
    Health,
    StateStore,
    fit_dead_letter,
)
from engine.core import yamlread
from engine.core.errors import BusError, ConfigError
from engine.core.secrets import Secrets
from engine.core.specbase import TLSConfig
from engine.goport.duration import cast_to_duration
from engine.goport.fnv import fnv32a

log = logging.getLogger(__name__)

STREAM = "default"
STREAM_SUBJECTS = "default.*.*"
_BAD_TOKEN = re.compile(r"[.*>\s]")
_INTEGER = re.compile(r"[+-]?[0-9]+")
_CONNECTION_ERRORS = (OSError, TimeoutError, UnexpectedEOF, StaleConnectionError)


def parse_go_duration(value: object) -> float:
    """Seconds in a Go duration as viper reads it: `"72h"`, `"1h30m"`, `"300s"`; bare numbers are ns."""
    try:
        return cast_to_duration(value) / 1e9
    except ValueError:
        raise ValueError(f"not a Go duration: {value!r}") from None


@dataclass(frozen=True)
class StreamSettings:
    """Argo's `streamConfig` over the controller defaults, except `replicas: 1` (one server cannot hold 3)."""

    max_msgs: int = 50000
    max_age: float = 168 * 3600.0
    max_bytes: int = -1
    replicas: int = 1
    duplicates: float = 300.0
    retention: int = 0
    discard: int = 0

    @classmethod
    def from_yaml(cls, text: str | None) -> StreamSettings:
        """Parse the `streamConfig` YAML string; keys are case-insensitive (viper). Raises ConfigError."""
        if not text or not text.strip():
            return cls()
        try:  # the engine's bounded reader: no tags, no recursion, one-line errors
            docs = yamlread.parse(text, "streamConfig")
        except ConfigError as exc:
            raise ConfigError(f"not valid YAML: {exc.message} (line {exc.line} of the value)",
                              field="streamConfig") from None
        doc = docs[0].data if docs else None
        if doc is None:
            return cls()
        if not isinstance(doc, dict):
            raise ConfigError("must be a YAML mapping", field="streamConfig")
        names = {"maxmsgs": "max_msgs", "maxage": "max_age", "maxbytes": "max_bytes", "replicas": "replicas",
                 "duplicates": "duplicates", "retention": "retention", "discard": "discard"}
        values: dict[str, Any] = {}
        for key, raw in doc.items():
            attr = names.get(str(key).lower())
            if attr is None:
                raise ConfigError(f"unknown key (known: {', '.join(sorted(names))})",
                                  field=f"streamConfig.{key}")
            try:
                if attr in ("max_age", "duplicates"):
                    values[attr] = parse_go_duration(raw)
                elif isinstance(raw, bool) or not isinstance(raw, int | str) or not _INTEGER.fullmatch(str(raw)):
                    raise ValueError(f"not an integer: {raw!r}")
                else:
                    values[attr] = int(raw)
            except ValueError as exc:
                raise ConfigError(str(exc), field=f"streamConfig.{key}") from exc
        settings = cls(**values)
        if settings.retention not in (0, 1, 2):
            raise ConfigError("must be 0 (limits), 1 (interest) or 2 (workqueue)",
                              field="streamConfig.retention")
        if settings.discard not in (0, 1):
            raise ConfigError("must be 0 (old) or 1 (new)", field="streamConfig.discard")
        return settings

    def stream_config(self) -> api.StreamConfig:
        return api.StreamConfig(
            name=STREAM, subjects=[STREAM_SUBJECTS], storage=api.StorageType.FILE,
            retention=[api.RetentionPolicy.LIMITS, api.RetentionPolicy.INTEREST,
                       api.RetentionPolicy.WORK_QUEUE][self.retention],
            discard=[api.DiscardPolicy.OLD, api.DiscardPolicy.NEW][self.discard],
            max_msgs=self.max_msgs, max_age=self.max_age, max_bytes=self.max_bytes,
            num_replicas=self.replicas, duplicate_window=self.duplicates)


def subject_for(key: EventKey) -> str:
    for part in (key.source, key.name):
        if not part or _BAD_TOKEN.search(part):
            raise BusError(f"event key {key.dotted()!r}: eventSourceName and eventName must be non-empty and "
                           "contain no '.', '*', '>' or whitespace on a JetStream bus")
    return f"{STREAM}.{key.source}.{key.name}"


# Dead letters (Bus.publish_dead_letter): their own stream, apart from the events, kept a week, at most
# 100,000 messages or 1 GiB, oldest dropped first; 2 minutes of dedup on the dead letter's id.
DLQ_SUBJECTS = f"{DEAD_LETTERS}.>"
DLQ_SETTINGS = {"max_age": 7 * 24 * 3600.0, "max_msgs": 100_000, "max_bytes": 1 << 30, "duplicate_window": 120.0}


def dead_letter_subject(sensor: str) -> str:
    return f"{DEAD_LETTERS}.{re.sub(r'[^A-Za-z0-9_-]', '_', sensor) or '_'}"


async def ensure_dead_letter_stream(js: JetStreamContext) -> None:
    try:
        await js.stream_info(DEAD_LETTERS)
    except NotFoundError:
        await js.add_stream(api.StreamConfig(
            name=DEAD_LETTERS, subjects=[DLQ_SUBJECTS], storage=api.StorageType.FILE,
            retention=api.RetentionPolicy.LIMITS, discard=api.DiscardPolicy.OLD, num_replicas=1,
            max_age=DLQ_SETTINGS["max_age"], max_msgs=int(DLQ_SETTINGS["max_msgs"]),
            max_bytes=int(DLQ_SETTINGS["max_bytes"]), duplicate_window=DLQ_SETTINGS["duplicate_window"]))
        log.info("created stream %s (dead letters)", DEAD_LETTERS)


def durable_name(consumer_name: str) -> str:
    """The durable consumer for a ConsumerSpec name: the name itself when NATS accepts it, else a sanitized
    form plus the fnv32a hash of the original (as Argo's `group-<fnv32a>`): stable across restarts and
    distinct for distinct names."""
    if re.fullmatch(r"[A-Za-z0-9_-]{1,200}", consumer_name):
        return consumer_name
    clean = re.sub(r"[^A-Za-z0-9_-]", "_", consumer_name)[:180]
    return f"{clean}-{fnv32a(consumer_name):08x}"


def printable_url(url: str) -> str:
    """The URL without user info, for logs and errors."""
    parts = urlsplit(url if "://" in url else f"nats://{url}")
    netloc = parts.hostname or ""
    if parts.port:
        netloc = f"{netloc}:{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def _describe(exc: BaseException | None) -> str:
    if isinstance(exc, OSError) and exc.errno:
        return os.strerror(exc.errno).lower()
    if isinstance(exc, TimeoutError):
        return "timed out"
    return str(exc) or repr(exc)


def ssl_context(tls: TLSConfig | None, secrets: Secrets) -> ssl.SSLContext | None:
    """An SSLContext for Argo's TLSConfig (PEM values read from secrets); None when TLS is not configured."""
    if tls is None:
        return None
    ctx = ssl.create_default_context()
    if tls.ca_cert_secret is not None:
        ctx.load_verify_locations(cadata=secrets.get(tls.ca_cert_secret.name, tls.ca_cert_secret.key))
    if tls.client_cert_secret is not None and tls.client_key_secret is not None:
        with tempfile.TemporaryDirectory() as tmp:
            cert, key = os.path.join(tmp, "cert.pem"), os.path.join(tmp, "key.pem")
            for path, sel in ((cert, tls.client_cert_secret), (key, tls.client_key_secret)):
                with open(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600), "w") as f:
                    f.write(secrets.get(sel.name, sel.key))
            ctx.load_cert_chain(cert, key)
    if tls.insecure_skip_verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


class JetStreamDelivery(Delivery):
    def __init__(self, msg: Msg) -> None:
        sequence = msg.metadata.sequence.stream
        super().__init__(msg.data, dict(msg.headers or {}), f"{msg.subject} seq {sequence}",
                         {"subject": msg.subject, "stream": msg.metadata.stream, "sequence": str(sequence)})
        self._msg = msg
        self.delivery_count = msg.metadata.num_delivered

    async def _ack(self) -> None:
        try:
            await self._msg.ack()
        except NatsError as exc:
            raise BusError(f"ack of {self.position} failed: {exc!r}") from exc

    async def _nak(self, delay: float) -> None:
        try:
            await self._msg.nak(delay=delay if delay > 0 else None)
        except NatsError as exc:
            raise BusError(f"nak of {self.position} failed: {exc!r}") from exc

    async def _in_progress(self) -> None:
        # Best effort: a lost progress signal only risks an early redelivery, never a loss.
        with contextlib.suppress(NatsError):
            await self._msg.in_progress()


class JetStreamConsumer(Consumer):
    def __init__(self, bus: JetStreamBus, spec: ConsumerSpec) -> None:
        if not spec.keys:
            raise BusError(f"consumer {spec.name!r} has no event keys")
        self._bus, self.spec = bus, spec
        self.durable = durable_name(spec.name)
        self.subjects = sorted({subject_for(k) for k in spec.keys})
        self._psub: JetStreamContext.PullSubscription | None = None
        self._problem: str | None = None
        self._closed = False

    async def bind(self) -> None:
        """Create the durable (DeliverNew) or update an existing one's filters/limits, then subscribe."""
        js = self._bus.js
        want = api.ConsumerConfig(
            name=self.durable, durable_name=self.durable, deliver_policy=api.DeliverPolicy.NEW,
            ack_policy=api.AckPolicy.EXPLICIT, ack_wait=self.spec.ack_wait,
            max_ack_pending=self.spec.max_in_flight, filter_subjects=self.subjects)
        try:
            info = await js.consumer_info(STREAM, self.durable)
        except NotFoundError:
            info = None
        if info is None:
            await js.add_consumer(STREAM, want)
            log.info("created durable consumer %s on %s (deliver new) for %s", self.durable, self._bus.url,
                     ", ".join(self.subjects))
        else:
            have = info.config
            current = sorted(have.filter_subjects or ([have.filter_subject] if have.filter_subject else []))
            if (current, have.ack_wait, have.max_ack_pending) != (self.subjects, want.ack_wait,
                                                                   want.max_ack_pending):
                want.deliver_policy = have.deliver_policy  # immutable on an existing consumer
                await js.add_consumer(STREAM, want)  # create-or-update
                log.info("updated durable consumer %s on %s: subjects %s", self.durable, self._bus.url,
                         ", ".join(self.subjects))
        if self._psub is None:
            self._psub = await js.pull_subscribe_bind(durable=self.durable, stream=STREAM)

    async def fetch(self, max_messages: int, timeout: float) -> list[Delivery]:
        if self._closed or self._bus.closed:
            raise BusError(f"consumer {self.durable} on {self._bus.url} is closed")
        deadline = time.monotonic() + timeout
        if not await self._bus.wait_connected(timeout):
            return []
        remaining = deadline - time.monotonic()
        if remaining <= 0.001:
            return []
        try:
            if self._problem is not None or self._psub is None:
                await self._bus.ensure_stream()  # e.g. a server that came back with no data
                await self.bind()
            assert self._psub is not None
            msgs = await self._psub.fetch(max(1, max_messages), timeout=remaining)
        except TimeoutError:
            msgs = []
        except (NatsError, OSError) as exc:
            if self._bus.closed:
                raise BusError(f"consumer {self.durable}: bus {self._bus.url} closed") from exc
            problem = self._bus.redact(repr(exc))
            if problem != self._problem:
                log.warning("consumer %s on %s cannot fetch, retrying: %s", self.durable, self._bus.url,
                            problem)
            self._problem = problem
            await asyncio.sleep(max(0.0, deadline - time.monotonic()))
            return []
        if self._problem is not None:
            log.info("consumer %s on %s fetching again", self.durable, self._bus.url)
            self._problem = None
        return [JetStreamDelivery(m) for m in msgs if m.reply]

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        psub, self._psub = self._psub, None
        if psub is not None and not self._bus.closed:
            with contextlib.suppress(NatsError, OSError):
                await psub.unsubscribe()


class JetStreamBus(Bus):
    """A JetStream bus at `url`. `credentials` is a token or `user:password`; `tls` an SSLContext.

    nats-py reconnects forever with capped exponential backoff (`reconnect_wait` min/max seconds); `health`
    follows the connection and each state change is logged once, naming the URL and the cause.
    """

    def __init__(
        self,
        url: str,
        stream_config_yaml: str | None = None,
        credentials: str | None = None,
        tls: ssl.SSLContext | None = None,
        *,
        connect_attempts: int = 3,
        publish_timeout: float = 10.0,
        reconnect_wait: tuple[float, float] = (0.1, 2.0),
        client_name: str = "sensorium",
    ) -> None:
        self._raw_url = url if "://" in url else f"nats://{url}"
        self.url = printable_url(self._raw_url)
        self.settings = StreamSettings.from_yaml(stream_config_yaml)
        self._credentials, self._tls = credentials, tls
        self._connect_attempts = max(1, connect_attempts)
        self.publish_timeout = publish_timeout
        self._reconnect_wait = reconnect_wait
        self._client_name = client_name
        self._nc: NATS | None = None
        self._js: JetStreamContext | None = None
        self._connected = asyncio.Event()
        self._last_error: BaseException | None = None
        self._lost_at = 0.0
        self._async_ready = False
        self._init_lock = asyncio.Lock()
        self._dlq_ready = False
        self.health = Health.CONNECTING

    @classmethod
    def from_spec(cls, spec: bus_spec.JetStreamBus, secrets: Secrets, url: str | None = None) -> JetStreamBus:
        """Build from the EventBus document; `url` overrides `spec.url` (e.g. an embedded server's)."""
        target = url or spec.url
        if not target:
            raise BusError("jetstream bus has no url (start an EmbeddedNats and pass its url)")
        creds = secrets.get(spec.access_secret.name, spec.access_secret.key) if spec.access_secret else None
        return cls(target, spec.stream_config, creds, ssl_context(spec.tls, secrets))

    @property
    def js(self) -> JetStreamContext:
        if self._js is None:
            raise BusError(f"bus {self.url} is not started")
        return self._js

    @property
    def closed(self) -> bool:
        return self.health is Health.CLOSED

    @property
    def max_payload(self) -> int:
        """The largest message the server accepts (its `max_payload`, 1 MiB by default)."""
        return self._nc.max_payload if self._nc is not None else 1024 * 1024

    def redact(self, text: str) -> str:
        for secret in filter(None, [self._credentials, *(self._credentials or "").split(":", 1),
                                    urlsplit(self._raw_url).password]):
            text = text.replace(secret, "***")
        return text

    def _auth(self) -> dict[str, Any]:
        if not self._credentials:
            return {}
        if ":" in self._credentials:
            user, password = self._credentials.split(":", 1)
            return {"user": user, "password": password}
        return {"token": self._credentials}

    def _backoff(self, servers: list[Server], _info: dict[str, Any]) -> tuple[Server | None, float]:
        low, high = self._reconnect_wait
        tries = servers[0].reconnects if servers else 0
        return (servers[0] if servers else None), min(high, low * 2 ** tries) * random.uniform(0.8, 1.2)

    async def _on_error(self, exc: Exception) -> None:
        self._last_error = exc
        quiet = self.health is not Health.CONNECTED or isinstance(exc, _CONNECTION_ERRORS)
        (log.debug if quiet else log.warning)("nats %s: %s", self.url, self.redact(repr(exc)))

    async def _on_disconnected(self) -> None:
        if self.health is Health.CONNECTED:
            self._connected.clear()
            self._lost_at = time.monotonic()
            self.health = Health.DISCONNECTED
            cause = self.redact(str(self._last_error or "connection closed"))
            log.warning("lost connection to NATS at %s: %s; reconnecting", self.url, cause)

    async def _on_reconnected(self) -> None:
        if self.health is not Health.CLOSED:
            self.health = Health.CONNECTED
            self._connected.set()
            log.warning("reconnected to NATS at %s after %.1fs", self.url, time.monotonic() - self._lost_at)

    async def _connect_once(self) -> NATS:
        nc = NATS()
        # Bounded here (two quick tries per call); switched to "reconnect forever" once connected.
        await nc.connect(
            self._raw_url, error_cb=self._on_error, disconnected_cb=self._on_disconnected,
            reconnected_cb=self._on_reconnected, name=self._client_name, allow_reconnect=False,
            max_reconnect_attempts=1, reconnect_time_wait=0, connect_timeout=2, ping_interval=10,
            max_outstanding_pings=3, tls=self._tls, reconnect_to_server_handler=self._backoff, **self._auth())
        nc.options["allow_reconnect"] = True
        nc.options["max_reconnect_attempts"] = -1
        return nc

    async def start(self) -> None:
        if self._nc is not None:
            return
        cause: BaseException | None = None
        for attempt in range(self._connect_attempts):
            self._last_error = None
            try:
                self._nc = await self._connect_once()
                break
            except (NatsError, OSError, TimeoutError) as exc:
                cause = self._last_error or exc
            if attempt + 1 < self._connect_attempts:
                await asyncio.sleep(0.2 * 2 ** attempt)
        if self._nc is None:
            raise BusError(f"cannot reach NATS at {self.url}: {self.redact(_describe(cause))}")
        self._js = self._nc.jetstream(timeout=5.0, publish_async_max_pending=4000)
        try:
            await self.ensure_stream()
        except (NatsError, OSError, TimeoutError, BusError) as exc:
            await self.close()
            raise BusError(f"NATS at {self.url}: cannot set up stream {STREAM!r}: "
                           f"{self.redact(_describe(exc))}") from exc
        self.health = Health.CONNECTED
        self._connected.set()
        log.info("connected to NATS at %s (stream %s)", self.url, STREAM)

    async def ensure_stream(self) -> None:
        try:
            info = await self.js.stream_info(STREAM)
        except NotFoundError:
            await self.js.add_stream(self.settings.stream_config())
            log.info("created stream %s on %s: %s", STREAM, self.url, self.settings)
            return
        if STREAM_SUBJECTS not in (info.config.subjects or []):
            raise BusError(f"stream {STREAM!r} on {self.url} does not capture {STREAM_SUBJECTS!r} "
                           f"(subjects {info.config.subjects})")

    async def wait_connected(self, timeout: float) -> bool:
        if self._connected.is_set():
            return True
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._connected.wait(), timeout)
        return self._connected.is_set()

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
        futures: list[asyncio.Future[api.PubAck]] = []
        try:
            for key, event_id, body in items:
                futures.append(await self._publish_async(key, event_id, body))
            done = await asyncio.wait_for(asyncio.gather(*futures), self.publish_timeout)
        except (NatsError, OSError, TimeoutError) as exc:
            for fut in futures:
                fut.cancel()
            cause = self.redact(_describe(exc))
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
                           f"{self.redact(_describe(exc))}") from exc
        if ack.stream != DEAD_LETTERS:
            raise BusError(f"dead letter on {self.url} stored in stream {ack.stream!r}, not {DEAD_LETTERS!r}")

    async def consumer(self, spec: ConsumerSpec) -> Consumer:
        consumer = JetStreamConsumer(self, spec)
        try:
            await consumer.bind()
        except (NatsError, OSError, TimeoutError) as exc:
            raise BusError(f"NATS at {self.url}: cannot create consumer {consumer.durable}: "
                           f"{self.redact(_describe(exc))}") from exc
        return consumer

    async def state_store(self, sensor: str) -> StateStore:
        """Key `sensor` (sanitized) of the KV bucket `sensorium-state`, created if missing
        (buses/jetstream/state.py)."""
        from buses.jetstream.state import open_state_store  # it imports this module

        return await open_state_store(self, sensor)

    async def close(self) -> None:
        nc, self._nc = self._nc, None
        if self.health is Health.CLOSED:
            return
        self.health = Health.CLOSED
        self._connected.set()  # wake waiters; fetch() sees `closed`
        if nc is None:
            return
        with contextlib.suppress(NatsError, OSError, TimeoutError):
            if nc.is_connected:
                await nc.flush(timeout=2)  # acks written so far reach the server
        with contextlib.suppress(NatsError, OSError, TimeoutError):
            await nc.close()
        log.info("closed connection to NATS at %s", self.url)


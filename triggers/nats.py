"""NATS trigger (Argo pkg/sensors/triggers/nats): publish one message, built from the `payload` parameters, to
`subject` on the NATS server at `url` (core NATS: whoever subscribes gets it, and a JetStream stream whose
subjects capture it stores it). `fire()` never raises and never puts a secret into its outcome or logs.

Where Sensorium differs from Argo, on purpose:
* **A firing succeeds once the server has the message.** After the publish the trigger flushes: it sends a PING
  behind the message and waits for the server's PONG (at most `TIMEOUT` seconds for the whole attempt). Argo
  returns as soon as the client has buffered the message, so a server that is gone, or a connection that drops
  before the buffer is written, loses the message without a word. Here such an attempt fails, retryably, and
  `retryStrategy` and the dead-letter trigger take over. Nothing is buffered across a disconnection: the client
  refuses to publish while reconnecting (`pending_size=0`), so a message is never sent late and once more. A
  retried attempt may still deliver the message twice (its first copy reached the server but the PONG did
  not come back in time): at least once, like every trigger.
* **`parameters` that change `subject` are honoured.** Argo applies them and then publishes to the template's
  subject anyway. A subject they make invalid (empty, whitespace, a wildcard) fails the firing, terminally.
* **A message larger than the server's `max_payload`** (1 MiB by default) fails at once, terminally, naming
  both sizes, instead of each retry failing the same way.
* **The connection is made by the first firing**, not at start: a server that is down when the engine starts
  costs retryable attempts, not an engine that cannot start. Triggers with the same `url`, `tls` and `auth`
  share one connection (Argo: one per trigger name), which reconnects by itself and is closed with the engine
  (`NatsClients`).
* `auth` (basic, token, nkey, credential) reads its secrets at the first connection; an nkey seed or a
  credentials file that is not one fails the firing at once, naming which, never the value.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from nats.aio.client import Client
from nats.errors import Error as NatsError
from nats.errors import MaxPayloadError

from sensorium.engine.core.cloudevent import CloudEvent
from sensorium.engine.core.errors import ConfigError, TriggerError
from sensorium.engine.core.natsclient import NatsCredentialError, connect_options, printable_url, servers
from sensorium.engine.core.secrets import SecretNotFound, Secrets
from sensorium.engine.core.specbase import NATSAuth
from sensorium.triggers.http import tls_context
from sensorium.triggers.httprequest import HttpRequest, SecretError
from sensorium.triggers.message import MessageTrigger, check_spec
from sensorium.triggers.params import (
    PayloadPlan,
    ResolvedParam,
    marshal_ordered,
)
from sensorium.triggers.pool import LIMIT, Pool
from sensorium.triggers.spec import (
    NATSTrigger,
    Trigger,
    TriggerParameter,
    TriggerTemplate,
    check_publish_subject,
)

__all__ = ["NatsClients", "NatsTrigger", "as_request", "build_message", "check_nats_spec", "printable_url"]

log = logging.getLogger("sensorium.triggers.nats")

TIMEOUT = 10.0
"""Seconds one attempt may take: connecting (when there is no connection yet), publishing and the flush."""
CONNECT_TIMEOUT = 2  # seconds (nats-py takes whole seconds)


def check_nats_spec(template: TriggerTemplate, trigger_params: Sequence[TriggerParameter] | None) -> None:
    """Construction-time check of what a firing evaluates; raises ConfigError."""
    check_spec(template, trigger_params, "nats")


def as_request(nats: NATSTrigger, body: bytes) -> HttpRequest:
    """The message in the form traces and dry runs show a trigger's output: method `PUB`, the address
    `<server URL(s), no user info>/<subject>`, no headers, the payload as the body."""
    return HttpRequest("PUB", f"{printable_url(nats.url)}/{nats.subject}", (), body)


def build_message(template: TriggerTemplate, trigger_params: Sequence[TriggerParameter] | None,
                  events: Mapping[str, CloudEvent], used: list[ResolvedParam] | None = None) -> HttpRequest:
    """The message one firing publishes (`as_request`), for `sensorium test`. Raises ParamError."""
    nats = NatsTrigger.resolve(template, trigger_params, events, used)
    return as_request(nats, PayloadPlan(nats.payload).build(events, used))


def _credentials(auth: NATSAuth | None, secrets: Secrets) -> tuple[dict[str, Any], tuple[str, ...]]:
    """`connect_options`, its failures as the trigger's: a missing secret retryable (Argo's wording), a secret
    holding the wrong thing terminal."""
    try:
        return connect_options(auth, secrets)
    except SecretNotFound as exc:
        raise SecretError(f"failed to retrieve the NATS credentials, {exc}") from None
    except NatsCredentialError as exc:
        raise TriggerError(str(exc)) from None


async def _quiet(exc: Exception) -> None:
    """nats-py's error callback: the attempt that meets the error reports it; nothing to log here."""
    log.debug("nats trigger connection: %s", type(exc).__name__)


class Connection:
    """A NATS connection and its confirmations: `confirm()` returns once the server has every message published
    on it before the call. One PING answered by a PONG confirms all that was written before it, so concurrent
    firings share flushes: while one is in flight, the next callers wait for the one after it (theirs may have
    been written after the first PING), which starts when the first ends. Under load that is one round trip per
    group of firings instead of one each; when idle, one per firing, at once. Measured with
    `python -m bench.message_triggers` (3,000 firings, 64 in flight; ratios to the http trigger in the same
    run): a flush per firing x0.70 and x0.87 of the http trigger's CPU per firing (199 and 187 us), shared
    flushes x0.60 and x0.62 (118 and 132 us), publishing without confirming at all x0.50 (101 us)."""

    def __init__(self, client: Client, timeout: float) -> None:
        self.client, self._timeout = client, max(int(timeout), 1)
        self._running: asyncio.Future[None] | None = None
        self._next: asyncio.Future[None] | None = None

    async def confirm(self) -> None:
        """Raises what the flush raised (NatsError, TimeoutError...)."""
        if self._running is None:
            self._running = asyncio.ensure_future(self._flush())
            self._running.add_done_callback(_retrieved)
            await asyncio.shield(self._running)
            return
        if self._next is None:
            self._next = asyncio.get_running_loop().create_future()
            self._next.add_done_callback(_retrieved)
        await asyncio.shield(self._next)

    async def _flush(self) -> None:
        try:
            await self.client.flush(timeout=self._timeout)
        finally:
            waiting, self._next = self._next, None
            self._running = None
            if waiting is not None:  # the next group's flush, its PING written after all of their messages
                self._running = asyncio.ensure_future(self._flush())
                self._running.add_done_callback(lambda done: _settle(waiting, done))


def _retrieved(done: asyncio.Future[None]) -> None:
    """A flush's failure is its waiters' to report; when they were all cancelled (their attempt timed out),
    nobody is left to, and asyncio would log it as never retrieved."""
    if not done.cancelled():
        done.exception()


def _settle(waiting: asyncio.Future[None], done: asyncio.Future[None]) -> None:
    if waiting.done():
        return
    if done.cancelled():
        waiting.cancel()
    elif done.exception() is not None:
        waiting.set_exception(done.exception())  # type: ignore[arg-type]
    else:
        waiting.set_result(None)


async def _close(connection: Connection) -> None:
    """Close a connection, waiting 5 s at most (a server that is gone must not hold up the engine's end)."""
    try:
        async with asyncio.timeout(5):
            await connection.client.close()
    except (NatsError, OSError, TimeoutError):
        pass


class NatsClients(Pool[Connection]):
    """The NATS connections of the engine's NATS triggers (`triggers.pool`): one per server URL, TLS settings and
    credentials (the spec's references, not their values), reconnecting by themselves once made. `headers` go
    with every message (a replay's mark)."""

    def __init__(self, name: str = "sensorium-trigger", headers: Mapping[str, str] | None = None,
                 limit: int = LIMIT) -> None:
        super().__init__(_close, lambda connection: not connection.client.is_closed, limit)
        self._name = name
        self.headers = dict(headers) if headers else None

    async def connect(self, key: str, servers: list[str], options: Callable[[], dict[str, Any]],
                      timeout: float = TIMEOUT / 2) -> Connection:
        """The connection for `key`, connecting with `options()` (read only then: secrets, TLS) when there is
        none. Raises what nats-py raises when the server cannot be reached (NatsError, OSError; ValueError for
        a URL it cannot read)."""

        async def open_one() -> Connection:
            client = Client()
            # Bounded while connecting (one try per server), then reconnecting forever, as the bus connection.
            await client.connect(servers=servers, name=self._name, error_cb=_quiet, allow_reconnect=False,
                                 max_reconnect_attempts=1, reconnect_time_wait=0, connect_timeout=CONNECT_TIMEOUT,
                                 pending_size=0, **options())
            client.options["allow_reconnect"] = True
            client.options["max_reconnect_attempts"] = -1
            client.options["reconnect_time_wait"] = 0.5
            return Connection(client, timeout)

        return await self.get(key, open_one)


class NatsTrigger(MessageTrigger[NATSTrigger]):
    """The `nats` kind (see the module); `options` as for `MessageTrigger`."""

    kind, model = "nats", NATSTrigger

    def __init__(self, trigger: Trigger, clients: NatsClients, secrets: Secrets, **options: Any) -> None:
        super().__init__(trigger, secrets, **{"timeout": TIMEOUT, **options})
        self.clients = clients

    @classmethod
    def check(cls, spec: NATSTrigger) -> object:
        return check_publish_subject(spec.subject)

    @classmethod
    def pool_key(cls, spec: NATSTrigger) -> str:
        return marshal_ordered([spec.url, spec.model_dump(mode="json", by_alias=True, include={"tls", "auth"})])

    def target(self, spec: NATSTrigger) -> str:
        return f"publish to {spec.subject} at {printable_url(spec.url)}"

    def request(self, spec: NATSTrigger, body: bytes) -> HttpRequest:
        return as_request(spec, body)

    def note(self, spec: NATSTrigger, body: bytes) -> str:
        return f"published {len(body)} bytes to {spec.subject}"

    async def _send(self, nats: NATSTrigger, body: bytes, secrets: list[str]) -> None:
        def options() -> dict[str, Any]:
            found, values = _credentials(nats.auth, self.secrets)
            secrets.extend(values)
            try:
                tls: ssl.SSLContext | None = tls_context(nats.tls, self.secrets)
            except ConfigError as exc:
                raise TriggerError(exc.message) from None
            return {**found, "tls": tls} if tls is not None else found

        try:
            connection = await self.clients.connect(self._key(nats), servers(nats.url), options,
                                                    self._timeout / 2)
        except (NatsError, OSError) as exc:
            raise TriggerError(f"cannot connect to NATS at {printable_url(nats.url)}: {_describe(exc)}",
                               retryable=True) from None
        except ValueError:  # a URL `parameters` made: nothing to retry
            raise TriggerError(f"cannot connect to NATS at {printable_url(nats.url)}: not a server URL") from None
        client = connection.client
        try:
            if len(body) > client.max_payload:
                raise MaxPayloadError
            await client.publish(nats.subject, body, headers=self.clients.headers)
            await connection.confirm()
        except MaxPayloadError:
            raise TriggerError(f"message of {len(body)} bytes is larger than the server's max_payload "
                               f"({client.max_payload} bytes) at {printable_url(nats.url)}") from None
        except (NatsError, OSError, TimeoutError) as exc:
            raise TriggerError(f"publish to {nats.subject} at {printable_url(nats.url)} not confirmed: "
                               f"{_describe(exc)}", retryable=True) from None


def _describe(exc: BaseException) -> str:
    text = str(exc).strip()
    name = type(exc).__name__
    return f"{name}: {text}" if text and text != name else name

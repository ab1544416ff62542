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
import random
import ssl
import time
import traceback
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import nkeys
from nats.aio.client import Client, RawCredentials
from nats.errors import Error as NatsError
from nats.errors import MaxPayloadError

from sensorium.engine.core.cloudevent import CloudEvent
from sensorium.engine.core.errors import ConfigError, TriggerError
from sensorium.engine.core.secrets import SecretNotFound, Secrets
from sensorium.triggers.http import tls_context
from sensorium.triggers.httprequest import HttpRequest, SecretError, reparse
from sensorium.triggers.outcome import Attempt, FiringOutcome, RequestSummary
from sensorium.triggers.params import (
    ParamError,
    PayloadPlan,
    ResolvedParam,
    apply_params,
    check_supported,
    marshal_ordered,
    spec_json,
)
from sensorium.triggers.policy import Verdict, VerdictKind
from sensorium.triggers.ratelimit import RateLimiter
from sensorium.triggers.retry import Backoff, RandomSource, final_error
from sensorium.triggers.spec import (
    NATSAuth,
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
MAX_CONNECTIONS = 32
"""Connections a pool keeps open at most: `parameters` that rewrite `url` could otherwise open one per value an
event brings. Beyond it the least recently used one is closed (a firing still using it fails, retryably)."""


def servers(url: str) -> list[str]:
    """The server URLs of a trigger's `url`: comma-separated, `nats://` assumed where no scheme is written
    (`nats.example:4222`, as Argo's own example writes it, and as nats.go reads it)."""
    return [one if "://" in one else f"nats://{one}" for one in (part.strip() for part in url.split(","))]


def printable_url(url: str) -> str:
    """The server URL(s) without user info (a NATS URL's user part may be a token), for messages."""
    out = []
    for one in servers(url):
        try:
            parts = urlsplit(one)
            host = parts.hostname or ""
            port = parts.port
        except ValueError:
            out.append("(an unreadable URL)")
            continue
        out.append(urlunsplit((parts.scheme, f"{host}:{port}" if port else host, parts.path, "", "")))
    return ",".join(out)


def check_nats_spec(template: TriggerTemplate, trigger_params: Sequence[TriggerParameter] | None) -> None:
    """Construction-time check of what a firing evaluates; raises ConfigError."""
    check_supported(trigger_params, "parameters")
    nats = template.nats
    if nats is None:
        raise ConfigError(f"trigger {template.name} has no nats trigger", field=f"trigger {template.name}")
    check_supported(nats.parameters, "nats.parameters")
    check_supported(nats.payload, "nats.payload")


def resolve_nats(template: TriggerTemplate, trigger_params: Sequence[TriggerParameter] | None,
                 events: Mapping[str, CloudEvent], used: list[ResolvedParam] | None = None) -> NATSTrigger:
    """The nats object one firing uses: trigger `parameters` applied to the template, then `nats.parameters` to
    the nats object (Argo's ApplyResourceParameters). Raises ParamError."""
    if trigger_params:
        template = reparse(TriggerTemplate, apply_params(spec_json(template), trigger_params, events, used),
                            "trigger template")
    nats = template.nats
    if nats is None:
        raise ParamError(f"trigger {template.name} has no nats trigger after applying parameters")
    if nats.parameters:
        obj = nats.model_dump(mode="json", by_alias=True, exclude_unset=True)
        nats = reparse(NATSTrigger, apply_params(marshal_ordered(obj), nats.parameters, events, used),
                        "nats trigger resource")
    if nats.payload is None:
        raise ParamError("payload parameters are not specified")
    try:
        check_publish_subject(nats.subject)
        check_supported(nats.payload, "nats.payload")
    except (ValueError, ConfigError) as exc:
        raise ParamError(str(exc)) from None
    return nats


def as_request(nats: NATSTrigger, body: bytes) -> HttpRequest:
    """The message in the form traces and dry runs show a trigger's output: method `PUB`, the address
    `<server URL(s), no user info>/<subject>`, no headers, the payload as the body."""
    return HttpRequest("PUB", f"{printable_url(nats.url)}/{nats.subject}", (), body)


def build_message(template: TriggerTemplate, trigger_params: Sequence[TriggerParameter] | None,
                  events: Mapping[str, CloudEvent], used: list[ResolvedParam] | None = None) -> HttpRequest:
    """The message one firing publishes (`as_request`), for `sensorium test`. Raises ParamError."""
    nats = resolve_nats(template, trigger_params, events, used)
    return as_request(nats, PayloadPlan(nats.payload).build(events, used))


def _secret(secrets: Secrets, name: str, key: str, what: str) -> str:
    try:
        return secrets.get(name, key)
    except SecretNotFound as exc:
        raise SecretError(f"failed to retrieve the {what}, {exc}") from None


def _seed(text: str, what: str) -> str:
    """An NKey seed (`S...`, as `nsc` writes it), checked: nats-py would fail on a bad one only while
    connecting, with an error that says less. Raises TriggerError (terminal: retrying reads the same secret)."""
    seed = text.strip()
    try:
        nkeys.from_seed(bytearray(seed.encode())).wipe()
    except (nkeys.NkeysError, ValueError, TypeError):
        raise TriggerError(f"the {what} secret does not hold an NKey seed") from None
    return seed


def user_credentials(text: str) -> tuple[str, str]:
    """(user JWT, user seed) of a NATS credentials file's text (`nsc generate creds`), or TriggerError naming
    what is missing. Read here, not by nats-py, whose reader loops forever on a text without the JWT's
    `BEGIN` line."""
    found: dict[str, str] = {}
    lines = [line.strip() for line in text.splitlines()]
    for marker, name in (("BEGIN NATS USER JWT", "jwt"), ("BEGIN USER NKEY SEED", "seed")):
        for index, line in enumerate(lines[:-1]):
            if marker in line and lines[index + 1]:
                found[name] = lines[index + 1]
                break
        else:
            raise TriggerError(f"the credential secret is not a NATS credentials file (no `{marker}` block)")
    jwt = found["jwt"]
    if jwt.count(".") != 2:
        raise TriggerError("the credential secret is not a NATS credentials file (its user JWT is not a JWT)")
    return jwt, _seed(found["seed"], "credential")


def _credentials(auth: NATSAuth | None, secrets: Secrets) -> tuple[dict[str, Any], tuple[str, ...]]:
    """nats-py's connect options for `auth`, and the secret values they hold (masked in every message)."""
    if auth is None:
        return {}, ()
    if auth.basic is not None:
        user = password = ""
        if auth.basic.username is not None:
            user = _secret(secrets, auth.basic.username.name, auth.basic.username.key, "username")
        if auth.basic.password is not None:
            password = _secret(secrets, auth.basic.password.name, auth.basic.password.key, "password")
        return {"user": user, "password": password}, (user, password)
    if auth.token is not None:
        token = _secret(secrets, auth.token.name, auth.token.key, "token")
        return {"token": token}, (token,)
    if auth.nkey is not None:  # Argo: the secret holds the seed (nats.go's NkeyOptionFromSeed reads it)
        seed = _seed(_secret(secrets, auth.nkey.name, auth.nkey.key, "nkey"), "nkey")
        return {"nkeys_seed_str": seed}, (seed,)
    if auth.credential is not None:  # Argo: the secret holds a credentials file (nats.go's UserCredentials)
        jwt, seed = user_credentials(_secret(secrets, auth.credential.name, auth.credential.key, "credential"))
        text = (f"-----BEGIN NATS USER JWT-----\n{jwt}\n------END NATS USER JWT------\n\n"
                f"-----BEGIN USER NKEY SEED-----\n{seed}\n------END USER NKEY SEED------\n")
        return {"user_credentials": RawCredentials(text)}, (seed,)
    return {}, ()


async def _quiet(exc: Exception) -> None:
    """nats-py's error callback: the attempt that meets the error reports it; nothing to log here."""
    log.debug("nats trigger connection: %s", type(exc).__name__)


class NatsClients:
    """The NATS connections of the engine's NATS triggers: one per server URL, TLS settings and credentials
    (the spec's references, not their values), made by the first firing that needs it, then reconnecting by
    itself; `close()` closes them all (the engine's end). `headers` go with every message (a replay's mark)."""

    def __init__(self, name: str = "sensorium-trigger", headers: Mapping[str, str] | None = None,
                 limit: int = MAX_CONNECTIONS) -> None:
        self._name, self._limit = name, max(1, limit)
        self.headers = dict(headers) if headers else None
        self._clients: dict[str, Client] = {}  # in the order of their last use
        self._locks: dict[str, asyncio.Lock] = {}

    def __len__(self) -> int:
        return len(self._clients)

    async def get(self, key: str, servers: list[str], options: Callable[[], dict[str, Any]]) -> Client:
        """The connection for `key`, connecting with `options()` (read only then: secrets, TLS) when there is
        none. Raises what nats-py raises when the server cannot be reached (NatsError, OSError; ValueError for
        a URL it cannot read)."""
        client = self._clients.pop(key, None)
        if client is not None and not client.is_closed:
            self._clients[key] = client  # the most recently used, last
            return client
        lock = self._locks.setdefault(key, asyncio.Lock())
        try:
            async with lock:
                client = self._clients.get(key)
                if client is not None and not client.is_closed:
                    return client
                client = Client()
                # Bounded while connecting (one try per server), then reconnecting forever, as the bus connection.
                await client.connect(servers=servers, name=self._name, error_cb=_quiet, allow_reconnect=False,
                                     max_reconnect_attempts=1, reconnect_time_wait=0,
                                     connect_timeout=CONNECT_TIMEOUT, pending_size=0, **options())
                client.options["allow_reconnect"] = True
                client.options["max_reconnect_attempts"] = -1
                client.options["reconnect_time_wait"] = 0.5
                existing = self._clients.get(key)
                if existing is not None and not existing.is_closed:  # connected meanwhile, under a newer lock
                    await _close(client)
                    return existing
                self._clients[key] = client
        finally:
            if not lock.locked() and key not in self._clients:
                self._locks.pop(key, None)
        while len(self._clients) > self._limit:
            oldest = next(iter(self._clients))
            self._locks.pop(oldest, None)
            await _close(self._clients.pop(oldest))
        return client

    async def close(self) -> None:
        clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            await _close(client)

    async def __aenter__(self) -> NatsClients:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()


async def _close(client: Client) -> None:
    """Close a connection, waiting 5 s at most (a server that is gone must not hold up the engine's end)."""
    try:
        async with asyncio.timeout(5):
            await client.close()
    except (NatsError, OSError, TimeoutError):
        pass


class NatsTrigger:
    """One instance per trigger for the engine's lifetime (it owns the trigger's rate limiter)."""

    kind = "nats"

    def __init__(self, trigger: Trigger, clients: NatsClients, secrets: Secrets, *,
                 rng: RandomSource | None = None,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
                 clock: Callable[[], float] = time.perf_counter,
                 limiter: RateLimiter | None = None, details: bool = True, timeout: float = TIMEOUT) -> None:
        check_nats_spec(trigger.template, trigger.parameters)
        self.trigger, self.clients, self.secrets, self.details = trigger, clients, secrets, details
        self.name = trigger.name
        self.backoff: Backoff = trigger.backoff()
        self.rng: RandomSource = rng if rng is not None else random.Random()
        self._sleep, self._clock, self._timeout = sleep, clock, timeout
        if limiter is None and trigger.rate_limit is not None:
            limiter = RateLimiter(trigger.rate_limit.requests_per_unit, trigger.rate_limit.unit)
        self.limiter = limiter
        nats = trigger.template.nats
        assert nats is not None
        # Without parameters the nats object, and so the payload's plan, is the same for every firing.
        self._fixed = nats if not trigger.parameters and not nats.parameters else None
        self._payload = PayloadPlan(nats.payload) if self._fixed is not None else None

    def _summary(self, message: tuple[NATSTrigger, bytes] | None) -> RequestSummary | None:
        """What the trace shows of the message (`as_request`), when outcomes keep details."""
        return as_request(*message).summary() if message is not None and self.details else None

    def _message(self, events: Mapping[str, CloudEvent], used: list[ResolvedParam] | None
                 ) -> tuple[NATSTrigger, bytes]:
        nats = self._fixed
        if nats is not None and self._payload is not None:
            return nats, self._payload.build(events, used)
        nats = resolve_nats(self.trigger.template, self.trigger.parameters, events, used)
        return nats, PayloadPlan(nats.payload).build(events, used)

    async def _publish(self, nats: NATSTrigger, body: bytes, secrets: list[str]) -> None:
        """One attempt's publish, flushed; the secret values it reads go to `secrets` (masked in its error).
        Raises TriggerError."""

        def options() -> dict[str, Any]:
            found, values = _credentials(nats.auth, self.secrets)
            secrets.extend(values)
            try:
                tls: ssl.SSLContext | None = tls_context(nats.tls, self.secrets)
            except ConfigError as exc:
                raise TriggerError(exc.message) from None
            return {**found, "tls": tls} if tls is not None else found

        where = printable_url(nats.url)
        key = marshal_ordered([nats.url, nats.model_dump(mode="json", by_alias=True, include={"tls", "auth"})])
        try:
            async with asyncio.timeout(self._timeout):
                try:
                    client = await self.clients.get(key, servers(nats.url), options)
                except (NatsError, OSError) as exc:
                    raise TriggerError(f"cannot connect to NATS at {where}: {_describe(exc)}",
                                       retryable=True) from None
                except ValueError:  # a URL `parameters` made: nothing to retry
                    raise TriggerError(f"cannot connect to NATS at {where}: not a server URL") from None
                if len(body) > client.max_payload:
                    raise TriggerError(f"message of {len(body)} bytes is larger than the server's max_payload "
                                       f"({client.max_payload} bytes) at {where}")
                try:
                    await client.publish(nats.subject, body, headers=self.clients.headers)
                    await client.flush(timeout=max(int(self._timeout / 2), 1))
                except MaxPayloadError:
                    raise TriggerError(f"message of {len(body)} bytes is larger than the server's max_payload "
                                       f"({client.max_payload} bytes) at {where}") from None
                except (NatsError, OSError, TimeoutError) as exc:
                    raise TriggerError(f"publish to {nats.subject} at {where} not confirmed: {_describe(exc)}",
                                       retryable=True) from None
        except TimeoutError:
            raise TriggerError(f"publish to {nats.subject} at {where} timed out after {self._timeout:g}s",
                               retryable=True) from None

    async def fire(self, events: Mapping[str, CloudEvent]) -> FiringOutcome:
        """All attempts of one firing; never raises (except cancellation)."""
        used: list[ResolvedParam] | None = [] if self.details else None
        try:
            attempts: list[Attempt] = []
            delays: Iterator[float] | None = None
            message: tuple[NATSTrigger, bytes] | None = None
            steps = max(self.backoff.steps, 1)
            error = ""
            for number in range(1, steps + 1):
                waited = await self.limiter.take() if self.limiter is not None else 0.0
                at, start = time.time() if self.details else 0.0, self._clock()
                secrets: list[str] = []
                try:
                    if message is None:
                        message = self._message(events, used)
                    await self._publish(*message, secrets)
                    error, verdict = "", Verdict(VerdictKind.SUCCESS, "")
                except TriggerError as exc:
                    error = _mask(str(exc), secrets)
                    verdict = Verdict(VerdictKind.RETRYABLE if exc.retryable else VerdictKind.TERMINAL, error)
                latency = self._clock() - start
                last = number == steps or verdict.kind is not VerdictKind.RETRYABLE
                delay = None
                if not verdict.ok and not last:
                    if delays is None:
                        delays = self.backoff.delays(self.rng)
                    delay = next(delays)
                attempts.append(Attempt(number, None, latency, error, verdict, delay, waited, at))
                log.debug("trigger %s attempt %d: %s %s", self.name, number, verdict.kind, error)
                if verdict.ok:
                    assert message is not None
                    return FiringOutcome(self.name, self.kind, True, tuple(attempts), request=self._summary(message),
                                         note=f"published {len(message[1])} bytes to {message[0].subject}",
                                         params=tuple(used) if used else ())
                if delay is None:
                    break
                await self._sleep(delay)
            return FiringOutcome(self.name, self.kind, False, tuple(attempts), error=final_error(error),
                                 request=self._summary(message), params=tuple(used) if used else ())
        except Exception as exc:  # a bug must not take the runner down; log where, never the message
            where = "".join(traceback.format_tb(exc.__traceback__))
            log.error("trigger %s: internal error %s\n%s", self.name, type(exc).__name__, where)
            return FiringOutcome(self.name, self.kind, False,
                                 error=final_error(f"internal error: {type(exc).__name__}"),
                                 params=tuple(used) if used else ())


def _describe(exc: BaseException) -> str:
    text = str(exc).strip()
    name = type(exc).__name__
    return f"{name}: {text}" if text and text != name else name


def _mask(text: str, secrets: Sequence[str]) -> str:
    for value in secrets:
        if value:
            text = text.replace(value, "***")
    return text

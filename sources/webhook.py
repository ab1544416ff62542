"""Webhook event source: HTTP requests in, CloudEvents on the bus out (Argo's webhook data shape, section 5.2).

A request is answered 200 only once the bus has stored its event, 503 when it could not (the caller retries),
413 over `maxPayloadSize`, 400 for a JSON body nested deeper than `MAX_JSON_DEPTH`. Servers are grouped by port:
several event names may share one.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import json
import logging
import ssl
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from itertools import accumulate
from urllib.parse import parse_qs

import msgspec
from aiohttp import web

from sensorium.engine.core.cloudevent import CloudEvent, new_id, now_rfc3339
from sensorium.engine.core.errors import BusError, SensoriumError
from sensorium.engine.core.secrets import Secrets
from sensorium.engine.core.tls import server_context
from sensorium.engine.core.tracecontext import from_headers
from sensorium.engine.goport.jsonenc import compact, is_valid_json, marshal, marshal_string
from sensorium.sources.base import Publish, Report, no_report
from sensorium.sources.eventshape import Transform, TransformError, dress
from sensorium.sources.httpguard import CLIENT_FAULTS, ConnectionGuard
from sensorium.sources.signature import Check, verifier
from sensorium.sources.spec import WebhookContext

log = logging.getLogger("sensorium.webhook")


Shape = Callable[["Endpoint", str, "Sequence[tuple[str, str]]", bytes, str], "CloudEvent | None"]
"""(endpoint, method, headers, raw body, query) -> the event to publish, or None when a source filter drops it
(answered 200, nothing published). Raises BodyError for a body that cannot become event data."""


@dataclass(frozen=True)
class Endpoint:
    """One served path: its events have source `source` and subject `event`; `shape` makes them (default: the
    generic webhook's `event_from_request`; provider kinds such as `github` give their own)."""

    source: str  # EventSource name -> CloudEvent source
    event: str  # event name -> CloudEvent subject
    context: WebhookContext
    shape: Shape | None = None


def client_allowed(remote: str | None, networks: Sequence[str]) -> bool:
    """Whether the client address `remote` is in one of `networks` (CIDR; an IPv4-mapped IPv6 address counts as
    its IPv4 address). An unknown address (a Unix socket) is not allowed."""
    try:
        address = ipaddress.ip_address(remote or "")
    except ValueError:
        return False
    addresses = [address]
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        addresses.append(address.ipv4_mapped)
    nets = [ipaddress.ip_network(n, strict=False) for n in networks]
    return any(a.version == n.version and a in n for a in addresses for n in nets)


def canonical_header(name: str) -> str:
    """Go's textproto.CanonicalMIMEHeaderKey, so Argo paths like `header.X-Github-Event.0` keep working."""
    if not all(c.isalnum() or c in "!#$%&'*+-.^_`|~" for c in name):
        return name
    return "-".join(part[:1].upper() + part[1:].lower() for part in name.split("-"))


def go_header(headers: Sequence[tuple[str, str]]) -> dict[str, list[str]]:
    """The request headers as Go's `r.Header` holds them: canonical names, values in order, no `Host` (Go's server
    moves it to `r.Host`)."""
    header: dict[str, list[str]] = {}
    for name, value in headers:
        if name.lower() != "host":
            header.setdefault(canonical_header(name), []).append(value)
    return header


MAX_JSON_DEPTH = 256
"""Deepest JSON body accepted (arrays and objects open at once). Go's encoding/json allows 10,000; Python's
parsers recurse per level, and the sensors' path parser (engine.goport.gjson.parse_json, pure Python, about three frames
per level) gives up at about 330 levels. The event data puts the body one level down, so 256 keeps every accepted
body readable by the sensors with room for their stack. Real webhook payloads nest a few dozen levels at most."""


class BodyError(ValueError):
    """The request body cannot become event data (answered 400 with this message)."""


class Answer(Exception):
    """Raised by a shape that answers the request itself and publishes nothing (Slack's url_verification)."""

    def __init__(self, text: str, content_type: str = "text/plain", status: int = 200) -> None:
        super().__init__(text)
        self.text, self.content_type, self.status = text, content_type, status


_STEP = [0] * 256
_STEP[ord("[")] = _STEP[ord("{")] = 1
_STEP[ord("]")] = _STEP[ord("}")] = -1
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")


def json_depth_exceeds(raw: bytes, limit: int) -> bool:
    """Whether JSON text `raw` has more than `limit` arrays/objects open at once (brackets in strings skipped).

    Written here, not by a parser: Python's json and msgspec both recurse per level and fail with RecursionError
    at a depth that depends on the caller's stack. This scan is linear and runs in C (bytes methods, no regex: a
    string pattern backtracks quadratically on unterminated strings full of escaped quotes). A body that is not
    valid JSON may be reported too deep; it would have been refused at that depth anyway."""
    if raw.lstrip()[:1] not in (b"[", b"{"):
        return False  # a scalar nests nothing
    if raw.count(b"[") + raw.count(b"{") <= limit:
        return False  # cannot be deeper than the number of openers: the usual body stops here
    # Escapes first: pairs of backslashes from the left, then escaped quotes; what is left of `"` delimits strings.
    unescaped = raw.replace(b"\\\\", b"").replace(b'\\"', b"")
    outside = b"".join(unescaped.split(b'"')[::2])
    brackets = outside.translate(None, _NOT_BRACKETS)
    return max(accumulate(map(_STEP.__getitem__, brackets)), default=0) > limit


def json_body(raw: bytes) -> str | None:
    """A JSON body compacted as Go marshals a RawMessage (numbers kept as written); None when it is not JSON.
    Raises BodyError for a body nested deeper than MAX_JSON_DEPTH."""
    if json_depth_exceeds(raw, MAX_JSON_DEPTH):
        raise BodyError(f"JSON body nested deeper than {MAX_JSON_DEPTH} levels")
    try:
        text = raw.decode("utf-8")
        valid = is_valid_json(text)
    except UnicodeDecodeError:
        valid = False
    except RecursionError:  # the scan above makes this unreachable; kept so a parser change cannot become a 500
        raise BodyError(f"JSON body nested deeper than {MAX_JSON_DEPTH} levels") from None
    return compact(text) if valid else None


def _json_body(raw: bytes) -> str:
    """A JSON body compacted as Go marshals a RawMessage; any other body as a JSON string (where Argo fails)."""
    body = json_body(raw)
    return body if body is not None else marshal_string(raw.decode("utf-8", "replace"))


def _body(request_method: str, content_type: str, raw: bytes, query: str) -> str:
    """The `body` member as Argo's Go code marshals it: the query or form map, or the request JSON compacted
    with its number literals kept (Go's RawMessage), or - where Argo would fail - the text as a JSON string.
    Raises BodyError for a JSON body nested deeper than MAX_JSON_DEPTH."""
    if request_method == "GET":
        return marshal(parse_qs(query, keep_blank_values=True))
    if content_type.startswith("application/x-www-form-urlencoded"):
        return marshal(parse_qs(raw.decode("utf-8", "replace"), keep_blank_values=True))
    if not raw.strip():
        return "null"
    return _json_body(raw)


def event_from_request(endpoint: Endpoint, method: str, headers: Sequence[tuple[str, str]], raw: bytes,
                       query: str) -> CloudEvent:
    """The event Argo's webhook would publish for this request. A valid W3C `traceparent` (and `tracestate`)
    header also becomes the CloudEvents distributed-tracing extension attributes (the data is unchanged: the
    headers stay in `header` as Argo puts them there)."""
    header = go_header(headers)
    content_type = next((v for k, v in headers if k.lower() == "content-type"), "")
    data = '{"header":' + marshal(header) + ',"body":' + _body(method, content_type, raw, query)
    if endpoint.context.metadata:
        data += ',"metadata":' + marshal(endpoint.context.metadata)
    return CloudEvent(
        id=new_id(), source=endpoint.source, type="webhook", subject=endpoint.event,
        datacontenttype="application/json", time=now_rfc3339(), data=(data + "}").encode(),
        extensions=from_headers(headers),
    )


async def reshape(endpoint: Endpoint, event: CloudEvent, transform: Transform | None) -> CloudEvent:
    """The event as the entry's Sensorium extensions want it (`WebhookContext.reshapes`): the body transformed,
    made the data (`bodyAsData`), variables lifted from the resulting data, the declared CloudEvent attributes
    (`sources.eventshape.dress`). TransformError when the transform fails."""
    context = endpoint.context
    data = json.loads(event.data) if event.data is not None else None
    if isinstance(data, dict) and "body" in data and (transform is not None or context.body_as_data):
        body = data["body"]
        if transform is not None:
            body = json.loads(await transform(body))
        data = body if context.body_as_data else {**data, "body": body}
    if data is not None:
        encoded = json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode()
        event = msgspec.structs.replace(event, data=encoded)
    return dress(event, context.cloud_event, context.variables or ())


Observe = Callable[[Endpoint, int, float], None]
Handler = Callable[[web.Request], Awaitable[web.Response]]


def observed(handle: Handler, observe: Observe | None, endpoint: Endpoint) -> Handler:
    """`handle`, reporting each answer's status and duration to `observe` (the webhook metrics), if any."""
    if observe is None:
        return handle

    async def timed(request: web.Request) -> web.Response:
        started = time.perf_counter()
        response = await handle(request)
        observe(endpoint, response.status, time.perf_counter() - started)
        return response

    return timed
"""Told of every answer an endpoint gives: (endpoint, HTTP status, seconds spent); must not raise (metrics)."""


@dataclass(frozen=True)
class WebhookLimits:
    """What one HTTP client may hold or cost (README, "Webhook limits"). Request lines and header fields over
    8190 bytes are refused by aiohttp's parser (400); bodies over `maxPayloadSize` get 413."""

    head_timeout: float = 10.0  # seconds to send a request line and headers, from connecting or the first byte
    idle_timeout: float = 60.0  # seconds a kept-alive connection may wait for its next request
    body_timeout: float = 30.0  # seconds to send the body once the headers are in (408 after)
    publish_timeout: float = 5.0  # seconds for the bus to confirm it stored the event (503 + Retry-After after)
    max_connections: int = 1000  # open connections per port; more are answered 503 and closed


class WebhookServer:
    """All webhook endpoints, one aiohttp server per port. `start()` binds; `stop()` closes. A kind with its own
    request handling (sources.cloudevents) subclasses it and gives its own `_handler`, reusing `_read_body` and
    `_store`, so its ports get the same limits."""

    def __init__(self, endpoints: Sequence[Endpoint], publish: Publish, secrets: Secrets,
                 host: str = "0.0.0.0", limits: WebhookLimits | None = None, observe: Observe | None = None,
                 reuse_port: bool = False, report: Report = no_report) -> None:
        self.report = report  # refusals (401, 403, 500, 503) as the engine's trace records
        self.reuse_port = reuse_port  # SO_REUSEPORT: several processes bind the port, the kernel spreads connections
        self.endpoints, self.publish, self.secrets, self.host = endpoints, publish, secrets, host
        self.observe = observe
        self.limits = limits or WebhookLimits()
        self._runners: list[web.AppRunner] = []
        self._servers: list[asyncio.Server] = []
        self._transforms: list[Transform] = []

    async def _read_body(self, request: web.Request, limit: int) -> bytes | web.Response:
        """The body, or the answer when it is too large, too slow or never finished (the client went away)."""
        if request.content_length is not None and request.content_length > limit:
            return web.Response(status=413, text=f"request body over {limit} bytes\n")
        raw = bytearray()
        try:
            async with asyncio.timeout(self.limits.body_timeout):
                async for chunk in request.content.iter_chunked(65536):
                    raw += chunk
                    if len(raw) > limit:
                        return web.Response(status=413, text=f"request body over {limit} bytes\n")
        except TimeoutError:
            return web.Response(status=408, text=f"request body not received within {self.limits.body_timeout:g}s\n")
        except CLIENT_FAULTS as exc:
            log.debug("webhook %s: request body from %s not received: %s: %s", request.path, request.remote,
                      type(exc).__name__, exc)
            return web.Response(status=400, text="request body not received\n")
        return bytes(raw)

    async def _store(self, endpoint: Endpoint, event: CloudEvent) -> web.Response | None:
        """Publish within `publish_timeout`; None once stored, else the 503 answer. A publish cut by the timeout
        may still be stored later (the caller was told 503 and retries: at least once, README)."""
        try:
            async with asyncio.timeout(self.limits.publish_timeout):
                await self.publish(event)
        except (BusError, OSError, TimeoutError) as exc:
            cause = str(exc) or f"not confirmed within {self.limits.publish_timeout:g}s"
            log.warning("webhook %s/%s: event %s not stored on the bus: %s",
                        endpoint.source, endpoint.event, event.id, cause)
            return web.Response(status=503, text="event bus unavailable, retry later\n",
                                headers={"Retry-After": "1"})
        return None

    def _handler(self, endpoint: Endpoint, token: str | None,
                 check: Check | None) -> Callable[[web.Request], Awaitable[web.Response]]:
        reshapes = endpoint.context.reshapes()
        transform = None
        if endpoint.context.transform_payload is not None:
            try:
                transform = Transform(endpoint.context.transform_payload)
            except ValueError as exc:
                raise SensoriumError(f"webhook {endpoint.source}/{endpoint.event}: {exc}") from None
            self._transforms.append(transform)
        limit = endpoint.context.max_payload_size
        networks = endpoint.context.allowed_networks
        shape = endpoint.shape or event_from_request
        where = f"{endpoint.source}/{endpoint.event}"
        kind = "webhook"  # the provider kinds (github, slack, ...) are served as webhooks too

        async def handle(request: web.Request) -> web.Response:
            if request.method != endpoint.context.method:
                return web.Response(status=405, text=f"method {request.method} not allowed\n")
            if networks is not None and not client_allowed(request.remote, networks):
                log.warning("webhook %s: client %s is outside the allowed networks", where, request.remote)
                self.report(kind, endpoint.source, endpoint.event, f"client {request.remote} is outside the allowed "
                            "networks", 403)
                return web.Response(status=403, text="forbidden\n")
            if token is not None:
                given = request.headers.get("Authorization", "")
                # aiohttp decodes header bytes that are not UTF-8 as surrogates: compare the bytes as sent
                if not hmac.compare_digest(given.encode("utf-8", "surrogateescape"), f"Bearer {token}".encode()):
                    self.report(kind, endpoint.source, endpoint.event, "no valid bearer token", 401)
                    return web.Response(status=401, text="unauthorized\n")
            raw = await self._read_body(request, limit)
            if isinstance(raw, web.Response):
                return raw
            if check is not None:
                refusal = check(request.headers, raw, time.time())
                if refusal is not None:
                    log.warning("webhook %s: request from %s refused: %s", where, request.remote, refusal)
                    self.report(kind, endpoint.source, endpoint.event, refusal, 401)
                    return web.Response(status=401, text="unauthorized\n")
            try:
                event = shape(endpoint, request.method, list(request.headers.items()), raw, request.query_string)
            except BodyError as exc:
                return web.Response(status=400, text=f"{exc}\n")
            except Answer as answer:
                return web.Response(status=answer.status, text=answer.text, content_type=answer.content_type)
            if event is None:
                return web.Response(status=200, text="success")
            if reshapes:
                try:
                    event = await reshape(endpoint, event, transform)
                except TransformError as exc:
                    log.error("webhook %s: request from %s refused: transformPayload failed: %s", where,
                              request.remote, exc)
                    self.report(kind, endpoint.source, endpoint.event, f"transformPayload failed: {exc}", 500)
                    return web.Response(status=500, text="transformPayload failed\n")
            refused = await self._store(endpoint, event)
            if refused is not None:
                self.report(kind, endpoint.source, endpoint.event, "the bus did not store the event", 503)
                return refused
            # Argo answers `success` with no newline
            return web.Response(status=200, text="success", headers={"X-Sensorium-Event-Id": event.id})

        return observed(handle, self.observe, endpoint)

    def _ssl(self, context: WebhookContext) -> ssl.SSLContext | None:
        if context.server_cert_secret is None or context.server_key_secret is None:
            return None
        return server_context(self.secrets, context.server_cert_secret, context.server_key_secret)

    async def start(self) -> None:
        by_port: dict[int, list[Endpoint]] = {}
        for endpoint in self.endpoints:
            by_port.setdefault(endpoint.context.port, []).append(endpoint)
        try:
            for port, group in by_port.items():
                await self._listen(port, group)
        except OSError as exc:
            await self.stop()
            raise SensoriumError(f"webhook cannot listen: {exc}") from None

    async def _listen(self, port: int, group: list[Endpoint]) -> None:
        guard_args = port, self.limits.head_timeout, self.limits.max_connections, self.limits.idle_timeout
        app = web.Application(client_max_size=max(e.context.max_payload_size for e in group) + 1)
        tls = None
        for endpoint in group:
            secret = endpoint.context.auth_secret
            token = self.secrets.get(secret.name, secret.key) if secret else None
            signed = endpoint.context.signature
            check = verifier(signed, self.secrets.get(signed.secret.name, signed.secret.key)) if signed else None
            app.router.add_route("*", endpoint.context.endpoint, self._handler(endpoint, token, check))
            tls = tls or self._ssl(endpoint.context)
        runner = web.AppRunner(app)  # its protocol objects are made by the guard
        guard = ConnectionGuard(runner, *guard_args)
        app.middlewares.append(guard.middleware)
        await runner.setup()
        self._runners.append(runner)
        loop = asyncio.get_running_loop()
        self._servers.append(await loop.create_server(
            guard, self.host, port, ssl=tls, ssl_handshake_timeout=self.limits.head_timeout if tls else None,
            reuse_address=True, reuse_port=self.reuse_port or None))
        for endpoint in group:
            scheme = "https" if tls else "http"
            log.info("webhook %s/%s listening on %s://%s:%d%s", endpoint.source, endpoint.event,
                     scheme, self.host, port, endpoint.context.endpoint)

    async def stop(self) -> None:
        for server in self._servers:
            server.close()
        for runner in self._runners:
            await runner.cleanup()
        for server in self._servers:
            await server.wait_closed()
        self._servers.clear()
        self._runners.clear()
        for transform in self._transforms:
            transform.close()
        self._transforms.clear()

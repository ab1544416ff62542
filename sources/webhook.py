"""Webhook event source: HTTP requests in, CloudEvents on the bus out (Argo's webhook data shape, section 5.2).

A request is answered 200 only once the bus has stored its event, 503 when it could not (the caller retries),
413 over `maxPayloadSize`. Servers are grouped by port: several event names may share one.
"""

from __future__ import annotations

import hmac
import json
import logging
import ssl
import tempfile
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs

from aiohttp import web

from engine.cloudevent import CloudEvent, new_id, now_rfc3339
from engine.errors import BusError, SensoriumError
from engine.gojson import compact, marshal, marshal_string
from engine.secrets import Secrets
from sources.spec import WebhookContext

log = logging.getLogger("sensorium.webhook")

Publish = Callable[[CloudEvent], Awaitable[None]]


@dataclass(frozen=True)
class Endpoint:
    source: str  # EventSource name -> CloudEvent source
    event: str  # event name -> CloudEvent subject
    context: WebhookContext


def canonical_header(name: str) -> str:
    """Go's textproto.CanonicalMIMEHeaderKey, so Argo paths like `header.X-Github-Event.0` keep working."""
    if not all(c.isalnum() or c in "!#$%&'*+-.^_`|~" for c in name):
        return name
    return "-".join(part[:1].upper() + part[1:].lower() for part in name.split("-"))


def _body(request_method: str, content_type: str, raw: bytes, query: str) -> str:
    """The `body` member as Argo's Go code marshals it: the query or form map, or the request JSON compacted
    with its number literals kept (Go's RawMessage), or - where Argo would fail - the text as a JSON string."""
    if request_method == "GET":
        return marshal(parse_qs(query, keep_blank_values=True))
    if content_type.startswith("application/x-www-form-urlencoded"):
        return marshal(parse_qs(raw.decode("utf-8", "replace"), keep_blank_values=True))
    if not raw.strip():
        return "null"
    try:
        text = raw.decode("utf-8")
        json.loads(text)
    except (ValueError, UnicodeDecodeError):
        return marshal_string(raw.decode("utf-8", "replace"))
    return compact(text)


def event_from_request(endpoint: Endpoint, method: str, headers: Sequence[tuple[str, str]], raw: bytes,
                       query: str) -> CloudEvent:
    header: dict[str, list[str]] = {}
    for name, value in headers:
        header.setdefault(canonical_header(name), []).append(value)
    content_type = next((v for k, v in headers if k.lower() == "content-type"), "")
    data = '{"header":' + marshal(header) + ',"body":' + _body(method, content_type, raw, query)
    if endpoint.context.metadata:
        data += ',"metadata":' + marshal(endpoint.context.metadata)
    return CloudEvent(
        id=new_id(), source=endpoint.source, type="webhook", subject=endpoint.event,
        datacontenttype="application/json", time=now_rfc3339(), data=(data + "}").encode(),
    )


class WebhookServer:
    """All webhook endpoints, one aiohttp site per port. `start()` binds; `stop()` closes."""

    def __init__(self, endpoints: Sequence[Endpoint], publish: Publish, secrets: Secrets,
                 host: str = "0.0.0.0") -> None:
        self.endpoints, self.publish, self.secrets, self.host = endpoints, publish, secrets, host
        self._runners: list[web.AppRunner] = []

    def _handler(self, endpoint: Endpoint, token: str | None) -> Callable[[web.Request], Awaitable[web.Response]]:
        limit = endpoint.context.max_payload_size

        async def handle(request: web.Request) -> web.Response:
            if request.method != endpoint.context.method:
                return web.Response(status=405, text=f"method {request.method} not allowed\n")
            if token is not None:
                given = request.headers.get("Authorization", "")
                if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
                    return web.Response(status=401, text="unauthorized\n")
            if request.content_length is not None and request.content_length > limit:
                return web.Response(status=413, text=f"request body over {limit} bytes\n")
            raw = bytearray()
            async for chunk in request.content.iter_chunked(65536):
                raw += chunk
                if len(raw) > limit:
                    return web.Response(status=413, text=f"request body over {limit} bytes\n")
            event = event_from_request(endpoint, request.method, list(request.headers.items()), bytes(raw),
                                       request.query_string)
            try:
                await self.publish(event)
            except (BusError, OSError, TimeoutError) as exc:
                log.warning("webhook %s/%s: event %s not stored on the bus: %s",
                            endpoint.source, endpoint.event, event.id, exc)
                return web.Response(status=503, text="event bus unavailable, retry later\n",
                                    headers={"Retry-After": "1"})
            return web.Response(status=200, text="success\n", headers={"X-Sensorium-Event-Id": event.id})

        return handle

    def _ssl(self, context: WebhookContext) -> ssl.SSLContext | None:
        if context.server_cert_secret is None or context.server_key_secret is None:
            return None
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        with tempfile.TemporaryDirectory() as tmp:
            cert, key = Path(tmp, "cert.pem"), Path(tmp, "key.pem")
            sel_c, sel_k = context.server_cert_secret, context.server_key_secret
            cert.write_text(self.secrets.get(sel_c.name, sel_c.key))
            key.write_text(self.secrets.get(sel_k.name, sel_k.key))
            tls.load_cert_chain(cert, key)
        return tls

    async def start(self) -> None:
        by_port: dict[int, list[Endpoint]] = {}
        for endpoint in self.endpoints:
            by_port.setdefault(endpoint.context.port, []).append(endpoint)
        try:
            for port, group in by_port.items():
                app = web.Application(client_max_size=max(e.context.max_payload_size for e in group) + 1)
                tls = None
                for endpoint in group:
                    secret = endpoint.context.auth_secret
                    token = self.secrets.get(secret.name, secret.key) if secret else None
                    app.router.add_route("*", endpoint.context.endpoint, self._handler(endpoint, token))
                    tls = tls or self._ssl(endpoint.context)
                runner = web.AppRunner(app, access_log=None)
                await runner.setup()
                self._runners.append(runner)
                await web.TCPSite(runner, self.host, port, ssl_context=tls).start()
                for endpoint in group:
                    scheme = "https" if tls else "http"
                    log.info("webhook %s/%s listening on %s://%s:%d%s", endpoint.source, endpoint.event,
                             scheme, self.host, port, endpoint.context.endpoint)
        except OSError as exc:
            await self.stop()
            raise SensoriumError(f"webhook cannot listen: {exc}") from None

    async def stop(self) -> None:
        for runner in self._runners:
            await runner.cleanup()
        self._runners.clear()

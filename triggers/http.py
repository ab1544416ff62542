"""HTTP trigger: send the firing's request through the engine's one shared connection pool, judge the status,
retry with backoff. `fire()` never raises and never puts a secret into its outcome or logs.

Client choice, measured with bench/http_clients.py (one process run; 5000 POSTs of a 342-byte JSON body, 50 in
flight, against a local aiohttp sink in a separate process; 2 CPUs, Python 3.11.7, aiohttp 3.14.5, httpx
0.28.1, httpx-aiohttp 0.2.0; best of 3 interleaved rounds):
    httpx.AsyncClient (default httpcore transport)   276 req/s   x0.06 of aiohttp
    httpx + httpx_aiohttp.AiohttpTransport          1357 req/s   x0.29
    aiohttp.ClientSession                           4666 req/s   x1.00
    raw asyncio keep-alive client (sink ceiling)    6291 req/s   x1.35
  (at 10 in flight: 544 / 1428 / 3186 / 6196 req/s.)
aiohttp is the fastest and has everything the trigger needs per request on ONE session: `timeout=` per
request, `ssl=` per request (an SSLContext with CA / client cert+key / no verification; pooled connections are
keyed by it), and one pooled TCPConnector. So: one `aiohttp.ClientSession` for the whole engine
(`HttpClient`).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
import ssl
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence

import aiohttp

from sensorium.engine.core.cloudevent import CloudEvent
from sensorium.engine.core.errors import ConfigError, TriggerError
from sensorium.engine.core.preview import PREVIEW_BYTES, preview
from sensorium.engine.core.secrets import SecretNotFound, Secrets
from sensorium.engine.core.specbase import TLSConfig
from sensorium.engine.core.tls import client_context
from sensorium.engine.core.tracecontext import TRACEPARENT, TRACESTATE, from_extensions
from sensorium.triggers.httprequest import (
    HttpRequest,
    RequestPlan,
    SecretError,
    build_request,
    check_http_spec,
    redact_headers,
    safe_url,
)
from sensorium.triggers.outcome import Attempt, FiringOutcome, RequestSummary, internal_error
from sensorium.triggers.params import ResolvedParam
from sensorium.triggers.policy import StatusPolicy, Verdict, VerdictKind
from sensorium.triggers.ratelimit import RateLimiter
from sensorium.triggers.retry import Backoff, RandomSource, final_error
from sensorium.triggers.spec import Trigger
from sensorium.triggers.tracehook import AttemptSpans

__all__ = ["HttpClient", "HttpRequest", "HttpTrigger", "build_request", "tls_context"]

log = logging.getLogger("sensorium.triggers.http")
DRAIN_LIMIT = 64 * 1024
# bytes of a response body kept for its preview: enough beyond the preview that a secret the target echoes across
# the preview's end is still whole when it is masked (then the preview is cut)
RESPONSE_HEAD = PREVIEW_BYTES + 4096
MAX_REDIRECTS = 10  # Go's default client follows up to 10 redirects


def _op(method: str) -> str:
    return method[:1].upper() + method[1:].lower()


def _where(request: HttpRequest) -> str:
    """`Post "URL"` for error messages (built only when one is)."""
    return f'{_op(request.method)} "{safe_url(request.url)}"'


class HttpClient:
    """The engine's single HTTP connection pool (created lazily inside the running loop). `attempt_spans`, when
    set (OpenTelemetry on), gets a span per request every HTTP trigger sends (`triggers.tracehook`)."""

    def __init__(self, *, max_connections: int = 100, max_per_host: int = 0,
                 attempt_spans: AttemptSpans | None = None) -> None:
        self.max_connections, self.max_per_host = max_connections, max_per_host
        self.attempt_spans = attempt_spans
        self._session: aiohttp.ClientSession | None = None

    def _get(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(limit=self.max_connections, limit_per_host=self.max_per_host)
            # No default Content-Type (as in Argo), said once here: per request aiohttp builds a set of it
            self._session = aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.DummyCookieJar(),
                                                  trust_env=False, skip_auto_headers=("Content-Type",))
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> HttpClient:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    async def send(self, request: HttpRequest, tls: ssl.SSLContext | None = None,
                   extra_headers: Mapping[str, str] | None = None) -> int:
        """Send and return the status (`exchange` without the body's start)."""
        status, _ = await self.exchange(request, tls, extra_headers)
        return status

    async def exchange(self, request: HttpRequest, tls: ssl.SSLContext | None = None,
                       extra_headers: Mapping[str, str] | None = None) -> tuple[int, bytes]:
        """Send and return the status and the first `RESPONSE_HEAD` bytes of the body; the rest is drained (up
        to 64 KiB, so the connection can be reused) and dropped. `extra_headers` (trace context) are sent after
        the request's own. Raises TriggerError: retryable for transport errors and timeouts, terminal for a bad
        request."""
        headers: Sequence[tuple[str, str]] = request.headers
        if extra_headers:
            headers = [*headers, *extra_headers.items()]
        try:
            async with self._get().request(
                request.method, request.url, data=request.body or None, headers=headers,
                timeout=_client_timeout(request.timeout),
                ssl=tls if tls is not None else True, allow_redirects=True, max_redirects=MAX_REDIRECTS,
            ) as response:
                return response.status, await _drain(response)
        except TimeoutError:
            where = _where(request)
            raise TriggerError(f"{where}: timeout: no response within {request.timeout:g}s",
                               retryable=True) from None
        except aiohttp.InvalidURL as exc:
            raise TriggerError(f"failed to construct request for {safe_url(request.url)}, {exc}") from None
        except aiohttp.TooManyRedirects:
            raise TriggerError(f"{_where(request)}: stopped after {MAX_REDIRECTS} redirects", retryable=True) from None
        except (aiohttp.ClientError, OSError) as exc:  # before ValueError: certificate errors are both
            raise TriggerError(f"{_where(request)}: {type(exc).__name__}: {exc}", retryable=True) from None
        except ValueError as exc:  # e.g. a header value with a newline
            raise TriggerError(f"failed to construct request for {safe_url(request.url)}, {exc}") from None


@functools.lru_cache(maxsize=64)
def _client_timeout(total: float) -> aiohttp.ClientTimeout:
    """One (immutable) ClientTimeout per value: building one, an attrs class, cost about 1 us per request."""
    return aiohttp.ClientTimeout(total=total)


async def _drain(response: aiohttp.ClientResponse) -> bytes:
    """Read the body away, keeping its first `RESPONSE_HEAD` bytes (what was read of them when reading fails)."""
    head = b""
    try:
        total = 0
        async for chunk in response.content.iter_any():
            if len(head) < RESPONSE_HEAD:
                head += chunk[:RESPONSE_HEAD - len(head)]
            total += len(chunk)
            if total > DRAIN_LIMIT:
                break  # too big to be worth it: the connection is closed on release
    except (aiohttp.ClientError, TimeoutError, OSError):
        pass
    return head


def _response_preview(head: bytes, request: HttpRequest | None) -> str:
    """The start of a response body for the outcome: bounded, credentials and the request's secrets masked (an
    echoing target sends them back)."""
    if not head:
        return ""
    text = head.decode("utf-8", "replace")
    data = (request.scrub(text) if request is not None else text).encode()  # whole secrets, before the cut
    return preview(data[:PREVIEW_BYTES]) + ("…" if len(data) > PREVIEW_BYTES else "")


def _names_trace(headers: tuple[tuple[str, str], ...]) -> bool:
    """Whether a request's own headers already carry trace context (then none is added)."""
    return any(k.lower() in (TRACEPARENT, TRACESTATE) for k, _ in headers)


def _event_trace(events: Mapping[str, CloudEvent]) -> dict[str, str] | None:
    """The trace context of the first event that carries one, as headers (None: none does)."""
    for event in events.values():
        if event.extensions:
            found = from_extensions(event.extensions)
            if found:
                return found
    return None


def tls_context(tls: TLSConfig | None, secrets: Secrets) -> ssl.SSLContext | None:
    """SSLContext for a trigger's `tls` (None: system defaults). Raises ConfigError (Argo's messages) or
    SecretError. PEM contents are read from secrets; a client cert/key pair passes through a 0600 temporary
    directory that is removed at once (the ssl module only loads key pairs from files)."""
    if tls is None:
        return None
    ca, cert, key = tls.ca_cert_secret, tls.client_cert_secret, tls.client_key_secret
    if ca is None and cert is None and key is None and not tls.insecure_skip_verify and not tls.enabled:
        raise ConfigError("invalid tls config, neither of caCertSecret, clientCertSecret and clientKeySecret "
                          "is configured")
    if (cert is None) != (key is None):
        raise ConfigError("invalid tls config, both of clientCertSecret and clientKeySecret need to be "
                          "configured")
    try:
        return client_context(tls, secrets)
    except SecretNotFound as exc:
        raise SecretError(f"failed to get the tls configuration, {exc}") from None
    except (ssl.SSLError, ValueError) as exc:
        raise ConfigError(f"failed to get the tls configuration, {type(exc).__name__}") from None


class HttpTrigger:
    """One instance per trigger for the engine's lifetime (it owns the trigger's rate limiter and TLS
    context)."""

    kind = "http"

    def __init__(self, trigger: Trigger, client: HttpClient, secrets: Secrets, *,
                 rng: RandomSource | None = None,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
                 clock: Callable[[], float] = time.perf_counter,
                 limiter: RateLimiter | None = None, details: bool = True) -> None:
        check_http_spec(trigger.template, trigger.parameters)
        # Whether outcomes keep what only the trace reads: the request's summary, the parameters resolved, each
        # attempt's start time (`Attempt.at`, else 0.0: not known) and the response previews of successful
        # attempts. Without (`sensorium run --no-bus-trace`), a failed attempt still keeps its preview (the
        # runner's ERROR line shows it).
        self.details = details
        self.trigger, self.client, self.secrets = trigger, client, secrets
        self.name = trigger.name
        status = trigger.policy.status if trigger.policy is not None else None
        self.policy = (StatusPolicy.from_allow(status.allow, status.retry) if status is not None
                       else StatusPolicy())
        self.backoff: Backoff = trigger.backoff()
        self.rng: RandomSource = rng if rng is not None else random.Random()
        self._sleep, self._clock = sleep, clock
        if limiter is None and trigger.rate_limit is not None:
            limiter = RateLimiter(trigger.rate_limit.requests_per_unit, trigger.rate_limit.unit)
        self.limiter = limiter
        self._tls: ssl.SSLContext | None = None
        self._tls_ready = False
        self._request = RequestPlan(trigger.template, trigger.parameters)  # what no firing changes, decided once
        static = self._request.static_headers
        self._static_headers, self._static_own = static, static is not None and _names_trace(static)
        self._static_redacted = tuple(redact_headers(static)) if static is not None else None  # (for summaries)

    def _tls_context(self) -> ssl.SSLContext | None:
        if not self._tls_ready:
            http = self.trigger.template.http
            try:
                self._tls = tls_context(http.tls if http is not None else None, self.secrets)
            except ConfigError as exc:
                raise TriggerError(exc.message) from None
            self._tls_ready = True
        return self._tls

    async def fire(self, events: Mapping[str, CloudEvent]) -> FiringOutcome:
        """All attempts of one firing; never raises (except cancellation).

        Trace context: with `client.attempt_spans` each attempt is a span and its `traceparent` goes out;
        without, the first event's `traceparent`/`tracestate` extensions go out as they came (no span of ours
        in between, so the target's span is the caller's child). A request whose own headers (spec,
        parameters) already name `traceparent` is left alone. (One coroutine: a second one, for the `try`
        around the attempts, was resumed again at every suspension of every request.)"""
        used: list[ResolvedParam] | None = [] if self.details else None
        try:
            attempts: list[Attempt] = []
            spans = self.client.attempt_spans
            propagated: dict[str, str] | None = None
            own = False
            delays: Iterator[float] | None = None  # (a generator: made when a retry needs it, as before)
            request: HttpRequest | None = None
            summary: RequestSummary | None = None
            steps = max(self.backoff.steps, 1)
            details = self.details
            error = ""
            for number in range(1, steps + 1):
                waited = await self.limiter.take() if self.limiter is not None else 0.0
                status: int | None = None
                span = None
                head = b""
                at, start = time.time() if details else 0.0, self._clock()  # (`at`: only traces read it)
                try:
                    if request is None:
                        request = self._request.build(events, self.secrets, used)
                        headers = request.headers
                        static = headers is self._static_headers
                        if details:
                            summary = request.summary(self._static_redacted if static else None)
                        own = self._static_own if static else _names_trace(headers)
                        propagated = None if own or spans is not None else _event_trace(events)
                    if spans is not None:
                        span = spans.start(number)
                        if not own:
                            propagated = span.headers()
                    status, head = await self.client.exchange(request, self._tls_context(), propagated)
                    verdict = self.policy.judge(status)
                    error = "" if verdict.ok else verdict.reason
                except TriggerError as exc:
                    error = request.scrub(str(exc)) if request is not None else str(exc)
                    verdict = Verdict(VerdictKind.RETRYABLE if exc.retryable else VerdictKind.TERMINAL, error)
                except BaseException:  # cancelled (shutdown) or a bug: the span still ends
                    if span is not None:
                        span.end(status, "interrupted", False)
                    raise
                latency = self._clock() - start
                last = number == steps or verdict.kind is not VerdictKind.RETRYABLE
                if verdict.ok or last:
                    delay = None
                else:
                    if delays is None:
                        delays = self.backoff.delays(self.rng)
                    delay = next(delays)
                if span is not None:
                    span.end(status, error, delay is not None)
                attempts.append(Attempt(number, status, latency, error, verdict, delay, waited, at,
                                        _response_preview(head, request) if details or not verdict.ok else ""))
                log.debug("trigger %s attempt %d: %s %s", self.name, number, verdict.kind, error or status)
                if verdict.ok:
                    return FiringOutcome(self.name, self.kind, True, tuple(attempts), request=summary,
                                         params=tuple(used) if used else ())
                if delay is None:
                    break
                await self._sleep(delay)
            return FiringOutcome(self.name, self.kind, False, tuple(attempts), error=final_error(error),
                                 request=summary, params=tuple(used) if used else ())
        except Exception as exc:  # a bug must not take the runner down
            return internal_error(self.name, self.kind, exc, tuple(used) if used else ())

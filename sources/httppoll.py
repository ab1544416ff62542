"""The `httpPoll` event source (a Sensorium extension; Weik.io's `http-poll`): poll a JSON URL, one event per new item.

Written under an Argo-style EventSource as `spec.httpPoll.<eventName>` (Argo has no such kind; the key is ours).
Every `pollingInterval` the URL is requested; `responsePath` (JSONPath, jsonpath-ng's extended syntax) selects
the items: when it selects one array, its elements are the items, else each match is one (no `responsePath`: the
response itself, an array's elements when it is an array). Each item's key is the string of what `keyPath`
(JSONPath, on the item) selects, else a SHA-256 of the item's canonical JSON. An item whose key was seen before is
not published again.

Seen keys and the validators (`ETag`, `Last-Modified`) are kept in the bus's state store under
`httpPoll.<eventSource>.<eventName>`, saved after every item of a poll is stored on the bus, so a restart neither
re-publishes nor misses items. Only the newest `maxSeenKeys` keys (default 10,000) are kept, as 32-hex-digit
digests: an item that dropped out of that window and comes back is published again. A poll sends
`If-None-Match` / `If-Modified-Since` from the last 2xx answer; a 304 publishes nothing. An event's id is derived
from the source, the event name and the item key, so an item published again after a crash between the publish
and the save is dropped by the bus's duplicate detection (JetStream).

Redirects are not followed (a 3xx is an error: secure headers are never sent to another address); write the final
URL. Errors (unreachable URL, timeout, non-2xx, a body that is not JSON, a body over `maxResponseSize`, default 10 MiB,
a secret that cannot be read) are one log line each and the next poll waits twice as long as the last one (from
`pollingInterval` up to `MAX_BACKOFF`, or the interval when longer); the first good poll resets it. Header values
from secrets (`secureHeaders`) never appear in a log line; the URL is logged without its query or credentials.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import json
import logging
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol
from urllib.parse import urlsplit

import aiohttp
from jsonpath_ng import JSONPath
from jsonpath_ng.exceptions import JsonPathLexerError, JsonPathParserError
from jsonpath_ng.ext.parser import parse as jsonpath_parse
from pydantic import Field, field_validator

from sensorium.engine.core.cloudevent import CloudEvent
from sensorium.engine.core.errors import SensoriumError
from sensorium.engine.core.secrets import Secrets
from sensorium.engine.core.specbase import ArgoModel, KeySelector, check_url
from sensorium.engine.goport.duration import parse_duration
from sensorium.sources.base import EntryTasks, Report, no_report
from sensorium.sources.eventshape import EventShape, dress

__all__ = ["DEFAULT_MAX_RESPONSE", "DEFAULT_SEEN_KEYS", "MAX_BACKOFF", "HttpPollContext", "HttpPollSource",
           "PollError", "SeenKeys", "select_items"]

log = logging.getLogger("sensorium.sources.httppoll")

DEFAULT_MAX_RESPONSE = 10 * 1024 * 1024
"""The largest response body read, in bytes (10 MiB); a larger one is an error and publishes nothing."""
DEFAULT_SEEN_KEYS = 10_000
"""How many of the newest item keys are remembered by default (a key is about 35 bytes in the state store)."""
MAX_SEEN_KEYS = 25_000  # 25,000 * ~35 bytes stays under the bus's 1 MiB state snapshot limit
MAX_BACKOFF = 300.0  # seconds: the longest wait after failed polls (unless pollingInterval is longer)
_NAMESPACE = uuid.UUID("0b8f3f1e-7a5c-4f0e-9a43-2f4c1d7e6b29")  # event ids: uuid5 of source/event/key


class PollError(SensoriumError):
    """One failed poll: the message is the log line's reason (never a secret value)."""


class SecureHeaderRef(ArgoModel):
    """`valueFrom` of a secure header: the secret holding the value."""

    secret_key_ref: KeySelector = Field(description="Secret holding the header value.")


class SecureHeader(ArgoModel):
    """A request header whose value comes from a secret (as the HTTP trigger's `secureHeaders`)."""

    name: str = Field(description="Header name.")
    value_from: SecureHeaderRef = Field(description="Where the value is read from (each poll: rotation works).")


class HttpPollContext(EventShape):
    """One `spec.httpPoll.<eventName>` entry: a JSON URL polled at an interval, one event per new item."""

    url: str = Field(description="URL to poll: http:// or https://, with a host (put tokens in secureHeaders).")
    method: str = Field(default="GET", description="GET or POST; default GET.")
    headers: dict[str, str] | None = Field(default=None, description="Static request headers.")
    secure_headers: list[SecureHeader] | None = Field(
        default=None, max_length=50, description="Headers whose value comes from a secret; never logged.")
    polling_interval: str = Field(default="60s", description="Go duration between polls (at least 100ms), e.g. 30s.")
    response_path: str | None = Field(
        default=None, description="JSONPath selecting the items (one array's elements, or each match); "
        "default: the response, an array's elements when it is one.")
    key_path: str | None = Field(
        default=None, description="JSONPath (on an item) of its key; default: a SHA-256 of the item's JSON.")
    max_seen_keys: int = Field(default=DEFAULT_SEEN_KEYS, ge=1, le=MAX_SEEN_KEYS,
                               description="How many of the newest item keys are remembered (1-25000).")
    max_response_size: int = Field(default=DEFAULT_MAX_RESPONSE, ge=1,
                                   description="Largest response body in bytes (default 10 MiB); larger fails.")
    timeout: float = Field(default=30.0, gt=0, le=3600, description="Seconds allowed per request.")

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        check_url(v, ("http", "https"))
        return v

    @field_validator("method")
    @classmethod
    def _method(cls, v: str) -> str:
        if v.upper() not in ("GET", "POST"):
            raise ValueError(f"unsupported method {v[:20]!r} (want GET or POST)")
        return v.upper()

    @field_validator("polling_interval")
    @classmethod
    def _interval(cls, v: str) -> str:
        if parse_duration(v) < 100_000_000:
            raise ValueError(f"pollingInterval must be at least 100ms, got {v!r}")
        return v

    @field_validator("response_path", "key_path")
    @classmethod
    def _jsonpath(cls, v: str | None) -> str | None:
        if v:
            _compile(v)
        return v or None

    def interval(self) -> float:
        """`pollingInterval` in seconds."""
        return parse_duration(self.polling_interval) / 1e9


def _compile(expression: str) -> JSONPath:
    try:
        return jsonpath_parse(expression)
    except (JsonPathLexerError, JsonPathParserError, Exception) as exc:  # the parser raises bare Exceptions too
        raise ValueError(f"invalid JSONPath {expression[:100]!r}: {str(exc)[:200]}") from None


def select_items(doc: Any, response_path: JSONPath | None) -> list[Any]:
    """The items of a response: see the module docstring."""
    if response_path is None:
        return list(doc) if isinstance(doc, list) else [doc]
    matches = [m.value for m in response_path.find(doc)]
    if len(matches) == 1 and isinstance(matches[0], list):
        return list(matches[0])
    return matches


def item_key(item: Any, key_path: JSONPath | None) -> str:
    """The item's key as stored: a digest of the `keyPath` value's JSON, else of the item's canonical JSON."""
    if key_path is not None:
        found = [m.value for m in key_path.find(item)]
        if found:
            item = found[0] if len(found) == 1 else found
            if isinstance(item, str):
                return _digest(item)
    return _digest(json.dumps(item, sort_keys=True, separators=(",", ":"), ensure_ascii=False))


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:32]


@dataclass
class SeenKeys:
    """The newest `limit` item keys (insertion order, oldest first) and the last answer's validators."""

    limit: int
    keys: dict[str, None] = field(default_factory=dict)
    etag: str | None = None
    last_modified: str | None = None

    def __contains__(self, key: str) -> bool:
        return key in self.keys

    def add(self, key: str) -> None:
        self.keys.pop(key, None)
        self.keys[key] = None
        while len(self.keys) > self.limit:
            del self.keys[next(iter(self.keys))]

    def dump(self) -> bytes:
        return json.dumps({"keys": list(self.keys), "etag": self.etag, "lastModified": self.last_modified},
                          separators=(",", ":")).encode()

    @classmethod
    def load(cls, raw: bytes | None, limit: int) -> SeenKeys:
        """The saved state (empty when none or unreadable; an unreadable one is logged by the caller)."""
        seen = cls(limit)
        if not raw:
            return seen
        doc = json.loads(raw)
        for key in doc.get("keys", [])[-limit:]:
            if isinstance(key, str):
                seen.keys[key] = None
        seen.etag = doc.get("etag") if isinstance(doc.get("etag"), str) else None
        seen.last_modified = doc.get("lastModified") if isinstance(doc.get("lastModified"), str) else None
        return seen


class KeyStore(Protocol):
    """Where the seen keys are kept (a bus state store: `buses.base.StateStore`)."""

    async def load(self) -> bytes | None: ...

    async def save(self, snapshot: bytes) -> None: ...

    async def close(self) -> None: ...


StateOpener = Callable[[str], Awaitable[KeyStore]]


@dataclass(frozen=True)
class _Entry:
    event_source: str
    event_name: str
    spec: HttpPollContext

    @property
    def key(self) -> str:
        return f"httpPoll.{self.event_source}.{self.event_name}"

    @property
    def shown_url(self) -> str:
        """The URL without credentials or query, for log lines."""
        parts = urlsplit(self.spec.url)
        host = parts.hostname or ""
        return f"{parts.scheme}://{host}{f':{parts.port}' if parts.port else ''}{parts.path}"


class HttpPollSource:
    """Every httpPoll entry, one polling task each, sharing one HTTP connection pool."""

    def __init__(self, entries: Sequence[tuple[str, str, HttpPollContext]],
                 publish: Callable[[CloudEvent], Awaitable[None]], secrets: Secrets,
                 state: StateOpener | None, report: Report = no_report) -> None:
        self.entries = [_Entry(*e) for e in entries]
        self.publish, self.secrets, self.state, self.report = publish, secrets, state, report
        self._running: EntryTasks[KeyStore] = EntryTasks()
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(auto_decompress=True)
        for entry in self.entries:
            await self._running.spawn(entry.key, self.state, functools.partial(self._run, entry))

    async def stop(self) -> None:
        await self._running.stop()
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _load(self, entry: _Entry, store: KeyStore | None) -> SeenKeys:
        limit = entry.spec.max_seen_keys
        while True:
            try:
                raw = await store.load() if store is not None else None
            except SensoriumError as exc:
                log.error("httpPoll %s: seen keys unreadable, retrying in %gs: %s", entry.key, entry.spec.interval(),
                          exc)
                await asyncio.sleep(entry.spec.interval())
                continue
            try:
                return SeenKeys.load(raw, limit)
            except (ValueError, AttributeError, TypeError):
                log.warning("httpPoll %s: the saved seen keys are unreadable; starting with none", entry.key)
                return SeenKeys(limit)

    async def _run(self, entry: _Entry, store: KeyStore | None) -> None:
        seen = await self._load(entry, store)
        response_path = _compile(entry.spec.response_path) if entry.spec.response_path else None
        key_path = _compile(entry.spec.key_path) if entry.spec.key_path else None
        interval = entry.spec.interval()
        delay = interval
        while True:
            try:
                published = await self._poll(entry, store, seen, response_path, key_path)
                if published:
                    log.info("httpPoll %s: %d new item(s) published", entry.key, published)
                delay = interval
            except PollError as exc:
                delay = min(delay * 2, max(MAX_BACKOFF, interval))
                log.error("httpPoll %s: poll of %s failed: %s; next poll in %gs", entry.key, entry.shown_url, exc,
                          delay)
                self.report("httpPoll", entry.event_source, entry.event_name, f"poll failed: {exc}", None)
            await asyncio.sleep(delay)

    def _headers(self, entry: _Entry, seen: SeenKeys) -> dict[str, str]:
        headers = dict(entry.spec.headers or {})
        for secure in entry.spec.secure_headers or ():
            ref = secure.value_from.secret_key_ref
            try:
                headers[secure.name] = self.secrets.get(ref.name, ref.key)
            except SensoriumError:
                raise PollError(f"secret {ref.name}/{ref.key} for header {secure.name} not found") from None
        if seen.etag is not None:
            headers["If-None-Match"] = seen.etag
        if seen.last_modified is not None:
            headers["If-Modified-Since"] = seen.last_modified
        return headers

    async def _fetch(self, entry: _Entry, seen: SeenKeys) -> tuple[Any, str | None, str | None] | None:
        """The parsed body and its validators; None on 304. PollError on any failure."""
        assert self._session is not None
        limit = entry.spec.max_response_size
        try:
            async with self._session.request(entry.spec.method, entry.spec.url, headers=self._headers(entry, seen),
                                             timeout=aiohttp.ClientTimeout(total=entry.spec.timeout),
                                             allow_redirects=False) as resp:
                if resp.status == 304:
                    return None
                if not 200 <= resp.status < 300:
                    raise PollError(f"HTTP {resp.status}")
                if resp.content_length is not None and resp.content_length > limit:
                    raise PollError(f"response of {resp.content_length} bytes is over the {limit}-byte limit")
                chunks: list[bytes] = []
                size = 0
                async for chunk in resp.content.iter_chunked(65536):
                    size += len(chunk)
                    if size > limit:
                        raise PollError(f"response is over the {limit}-byte limit")
                    chunks.append(chunk)
                body = b"".join(chunks)
                etag, last_modified = resp.headers.get("ETag"), resp.headers.get("Last-Modified")
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise PollError(f"{type(exc).__name__}: {str(exc)[:200]}".rstrip(": ")) from None
        try:
            doc = json.loads(body)
        except (ValueError, RecursionError):
            raise PollError(f"response is not JSON ({len(body)} bytes)") from None
        return doc, etag, last_modified

    async def _poll(self, entry: _Entry, store: KeyStore | None, seen: SeenKeys, response_path: JSONPath | None,
                    key_path: JSONPath | None) -> int:
        """One poll: publish each unseen item, then save the keys and validators. The number published."""
        fetched = await self._fetch(entry, seen)
        if fetched is None:
            return 0
        doc, etag, last_modified = fetched
        try:
            items = select_items(doc, response_path)
        except Exception as exc:  # jsonpath-ng raises what the document makes it raise
            raise PollError(f"responsePath failed: {str(exc)[:200]}") from None
        published = 0
        for item in items:
            key = item_key(item, key_path)
            if key in seen:
                continue
            await self._publish(entry, key, item)
            seen.add(key)
            published += 1
        changed = published > 0 or (etag, last_modified) != (seen.etag, seen.last_modified)
        seen.etag, seen.last_modified = etag, last_modified
        if store is not None and changed:
            try:
                await store.save(seen.dump())
            except SensoriumError as exc:
                log.error("httpPoll %s: %d item(s) published but their keys not saved (a restart may publish "
                          "them again): %s", entry.key, published, exc)
        return published

    async def _publish(self, entry: _Entry, key: str, item: Any) -> None:
        """Store one item's event on the bus, retrying while the bus refuses it (an item is not dropped)."""
        event = CloudEvent(id=str(uuid.uuid5(_NAMESPACE, f"{entry.key}@{key}")), source=entry.event_source,
                           type="httpPoll", subject=entry.event_name, datacontenttype="application/json",
                           time=datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z"),
                           data=json.dumps(item, separators=(",", ":"), ensure_ascii=False).encode())
        event = dress(event, entry.spec.cloud_event, entry.spec.variables or ())
        delay = 0.1
        while True:
            try:
                await self.publish(event)
                return
            except SensoriumError as exc:
                log.error("httpPoll %s: item not stored, retrying in %gs: %s", entry.key, delay, exc)
                await asyncio.sleep(delay)
                delay = min(MAX_BACKOFF, delay * 2)

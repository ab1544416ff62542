"""Building the HTTP request of one firing (pure: spec + events + secrets -> HttpRequest). No I/O but secret
reads.

Order, as in Argo (L:413-461, H:89-211): (1) trigger `parameters` on the JSON of the template, (2) method
defaults to POST, (3) `http.parameters` on the JSON of the http object, (4) `payload` -> body, (5) headers,
dynamicHeaders, secureHeaders, basicAuth (a later source overwrites an earlier header of exactly the same
name, like Go's header map), then `host`. No Content-Type is added. Secret values live only in `headers`;
everything that describes the request (`redacted_headers()`, `summary()`, `repr()`) shows them as "***".
"""

from __future__ import annotations

import base64
import functools
import json
from collections.abc import Mapping, Sequence, Set
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

from pydantic import BaseModel, ValidationError

from sensorium.engine.core.cloudevent import CloudEvent
from sensorium.engine.core.errors import ConfigError, TriggerError
from sensorium.engine.core.preview import is_credential_name
from sensorium.engine.core.secrets import SecretNotFound, Secrets
from sensorium.triggers import cloudevent_body
from sensorium.triggers.outcome import RequestSummary
from sensorium.triggers.params import (
    ParamError,
    PayloadPlan,
    ResolvedParam,
    apply_params,
    check_supported,
    marshal_ordered,
    resolve_param_value,
    spec_json,
)
from sensorium.triggers.spec import HTTPTrigger, TriggerParameter, TriggerTemplate

REDACTED = "***"
DEFAULT_TIMEOUT = 60.0
PREVIEW_BYTES = 200  # of the body, in the redacted summary (for traces)
M = TypeVar("M", bound=BaseModel)


class SecretError(TriggerError):
    """A secret could not be read; retryable (it may be mounted or rotated meanwhile). Holds no value."""

    def __init__(self, message: str) -> None:
        super().__init__(message, retryable=True)


@functools.lru_cache(maxsize=1024)  # a trigger's URL is mostly the same at every firing (its summary, errors)
def safe_url(url: str) -> str:
    """The URL with any userinfo password masked (Go's url.Error does the same)."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return url
    if password is None:
        return url
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit(parts._replace(netloc=f"{parts.username}:***@{host}"))


def redact_headers(headers: Sequence[tuple[str, str]], secret_names: Set[str] = frozenset()) -> list[tuple[str, str]]:
    """`headers` with the values of `secret_names` and of any header whose name says credential (`Authorization`,
    `X-API-Key`, ...: engine.core.preview's words) replaced by "***"."""
    return [(k, REDACTED if k in secret_names or is_credential_name(k) else v) for k, v in headers]


@dataclass(frozen=True, repr=False)
class HttpRequest:
    method: str
    url: str
    headers: tuple[tuple[str, str], ...]
    body: bytes
    secret_header_names: frozenset[str] = frozenset()
    timeout: float = DEFAULT_TIMEOUT
    secret_values: tuple[str, ...] = field(default=(), compare=False)

    def redacted_headers(self) -> list[tuple[str, str]]:
        """Headers with secure-header and basic-auth values replaced by "***", and so the value of any header whose
        name says credential (`Authorization`, `X-API-Key`, ...: engine.core.preview's words), even when written in
        plain `headers` (an HNS subscription's `Bearer ${SECRET}`)."""
        return redact_headers(self.headers, self.secret_header_names)

    def scrub(self, text: str) -> str:
        """`text` with every secret value replaced by "***" (for error texts from lower layers)."""
        for secret in sorted(self.secret_values, key=len, reverse=True):
            if secret:
                text = text.replace(secret, REDACTED)
        return text

    def summary(self, redacted: tuple[tuple[str, str], ...] | None = None) -> RequestSummary:
        """What a trace shows of the request; `redacted`: its `redacted_headers()`, when the caller has them
        already (a trigger whose headers are the same every firing works them out once)."""
        head = self.body[:PREVIEW_BYTES].decode("utf-8", "replace")
        if len(self.body) > PREVIEW_BYTES:
            head += "…"
        return RequestSummary(self.method, safe_url(self.url),
                              tuple(self.redacted_headers()) if redacted is None else redacted, len(self.body), head)

    def __repr__(self) -> str:
        return (f"HttpRequest(method={self.method!r}, url={safe_url(self.url)!r}, "
                f"headers={self.redacted_headers()!r}, "
                f"body={len(self.body)} bytes, timeout={self.timeout!r})")


def check_http_spec(template: TriggerTemplate, trigger_params: Sequence[TriggerParameter] | None) -> None:
    """Construction-time check of everything a firing would evaluate; raises ConfigError."""
    check_supported(trigger_params, "parameters")
    http = template.http
    if http is None:
        raise ConfigError(f"trigger {template.name} has no http trigger", field=f"trigger {template.name}")
    check_supported(http.parameters, "http.parameters")
    check_supported(http.payload, "http.payload")
    check_supported(http.dynamic_headers, "http.dynamicHeaders")


def _drop(obj: Any, loc: tuple[int | str, ...]) -> bool:
    for step in loc[:-1]:
        try:
            obj = obj[step]
        except (KeyError, IndexError, TypeError):
            return False
    if isinstance(obj, dict) and loc and loc[-1] in obj:
        del obj[loc[-1]]
        return True
    return False


def reparse(model: type[M], doc: bytes, what: str) -> M:
    """Go `json.Unmarshal` of the edited document: strict types, unknown keys silently ignored."""
    try:
        obj = json.loads(doc)
    except ValueError as exc:
        raise ParamError(f"failed to unmarshal the updated {what} after applying parameters, {exc}") from None
    for _ in range(64):
        try:
            return model.model_validate(obj, strict=True, context={"runtime": True})
        except ValidationError as exc:
            errors = exc.errors(include_url=False, include_input=False)
            extra = [e["loc"] for e in errors if e["type"] == "extra_forbidden"]
            if not extra or not all(_drop(obj, tuple(loc)) for loc in extra):
                reason = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in errors)
                raise ParamError(f"failed to unmarshal the updated {what} after applying parameters, "
                                 f"{reason}") from None
    raise ParamError(f"failed to unmarshal the updated {what} after applying parameters")


def _put(headers: list[tuple[str, str]], name: str, value: str) -> None:
    for i, (key, _) in enumerate(headers):
        if key == name:
            headers[i] = (name, value)
            return
    headers.append((name, value))


def secret_value(secrets: Secrets, name: str, key: str, what: str) -> str:
    """A secret's value, or SecretError (retryable) naming it, never its value."""
    try:
        return secrets.get(name, key)
    except SecretNotFound as exc:
        raise SecretError(f"failed to retrieve the {what}, {exc}") from None


def resolve_http(template: TriggerTemplate, trigger_params: Sequence[TriggerParameter] | None,
                 events: Mapping[str, CloudEvent], used: list[ResolvedParam] | None = None) -> HTTPTrigger:
    """Steps (1)-(3): the http object this firing uses, parameters applied. Raises ParamError."""
    if trigger_params:
        template = reparse(TriggerTemplate, apply_params(spec_json(template), trigger_params, events, used),
                            "trigger template")
    http = template.http
    if http is None:
        raise ParamError(f"trigger {template.name} has no http trigger after applying parameters")
    if not http.parameters:
        return http
    obj = http.model_dump(mode="json", by_alias=True, exclude_unset=True)
    if not obj.get("method"):
        obj["method"] = "POST"
    edited = apply_params(marshal_ordered(obj), http.parameters, events, used)
    http = reparse(HTTPTrigger, edited, "http trigger resource")
    try:
        check_supported(http.payload, "http.payload")
        check_supported(http.dynamic_headers, "http.dynamicHeaders")
    except ConfigError as exc:
        raise ParamError(str(exc)) from None
    return http


def build_request(template: TriggerTemplate, trigger_params: Sequence[TriggerParameter] | None,
                  events: Mapping[str, CloudEvent], secrets: Secrets,
                  used: list[ResolvedParam] | None = None) -> HttpRequest:
    """The request one firing sends. Raises ParamError (terminal) or SecretError (retryable). Every parameter
    resolved on the way (trigger parameters, http.parameters, payload, dynamicHeaders) is appended to `used`
    with the value it got, also when building fails later."""
    return RequestPlan(template, trigger_params).build(events, secrets, used)


class RequestPlan:
    """`build_request` for one trigger, with what does not depend on the events decided once (a trigger builds
    it when it is constructed): without trigger `parameters` and `http.parameters` (which edit the spec per
    firing), the method, URL, timeout, static headers and the payload's plan (`params.PayloadPlan`) are fixed,
    and a firing only resolves its parameters and reads its secrets. With them, every firing resolves the http
    object first, as Argo does."""

    def __init__(self, template: TriggerTemplate, trigger_params: Sequence[TriggerParameter] | None) -> None:
        self.template, self.trigger_params = template, trigger_params
        http = template.http
        self._fixed = http if not trigger_params and http is not None and not http.parameters else None
        self._payload = PayloadPlan(http.payload) if self._fixed is not None and http is not None else None
        self._headers: list[tuple[str, str]] = []
        for name, value in ((http.headers or {}).items() if http is not None else ()):
            _put(self._headers, name, value)
        # A fixed request with nothing but its payload to work out per firing (no dynamic or secure headers, no
        # basic auth, no CloudEvent body, no Host): its method, URL, headers and timeout, decided once.
        fixed = self._fixed
        self._static: tuple[str, str, tuple[tuple[str, str], ...], float, PayloadPlan | None] | None = None
        if fixed is not None and not (fixed.dynamic_headers or fixed.secure_headers or fixed.basic_auth is not None
                                      or fixed.cloud_event is not None or fixed.host):
            self._static = (fixed.method or "POST", fixed.url, tuple(self._headers),
                            float(fixed.timeout) if fixed.timeout > 0 else DEFAULT_TIMEOUT,
                            self._payload if fixed.payload is not None else None)

    @property
    def static_headers(self) -> tuple[tuple[str, str], ...] | None:
        """The headers (the same tuple) of every request when only the payload changes per firing, else None."""
        return self._static[2] if self._static is not None else None

    def build(self, events: Mapping[str, CloudEvent], secrets: Secrets,
              used: list[ResolvedParam] | None = None) -> HttpRequest:
        """The request of one firing (see `build_request`)."""
        static = self._static
        if static is not None:  # the same request as below, with what it fixes taken as decided
            method, url, fixed_headers, timeout, payload_plan = static
            return HttpRequest(method, url, fixed_headers,
                               payload_plan.build(events, used) if payload_plan is not None else b"",
                               timeout=timeout)
        http = self._fixed
        if http is None:
            http = resolve_http(self.template, self.trigger_params, events, used)
            payload = PayloadPlan(http.payload) if http.payload is not None else None
            headers: list[tuple[str, str]] = []
            for name, value in (http.headers or {}).items():
                _put(headers, name, value)
        else:
            payload = self._payload if http.payload is not None else None
            headers = list(self._headers)
        body = payload.build(events, used) if payload is not None else b""
        for dynamic in http.dynamic_headers or ():
            try:
                resolved = resolve_param_value(dynamic.src, events)
            except TriggerError as exc:
                raise ParamError(f"failed to resolve the value for dynamicHeader {dynamic.dest}, {exc}") from None
            if used is not None:
                used.append((dynamic, resolved))
            if resolved.value is not None:  # absent dependency without value: skipped (Argo dereferences nil)
                _put(headers, dynamic.dest, resolved.value)
        names: set[str] = set()
        values: list[str] = []
        for secure in http.secure_headers or ():
            ref = secure.value_from.secret_key_ref or secure.value_from.config_map_key_ref
            assert ref is not None
            value = secret_value(secrets, ref.name, ref.key, "value for secureHeader")
            _put(headers, secure.name, value)
            names.add(secure.name)
            values.append(value)
        if http.basic_auth is not None:
            auth = http.basic_auth
            user = password = ""
            if auth.username is not None:
                user = secret_value(secrets, auth.username.name, auth.username.key, "username")
            if auth.password is not None:
                password = secret_value(secrets, auth.password.name, auth.password.key, "password")
            token = base64.b64encode(f"{user}:{password}".encode()).decode()
            _put(headers, "Authorization", "Basic " + token)
            names.add("Authorization")
            values.extend((token, password))
        if http.cloud_event is not None:  # Sensorium: the event as a CloudEvent (triggers.cloudevent_body)
            event = cloudevent_body.choose(events, http.cloud_event.dependency_name)
            headers, body = cloudevent_body.apply(http.cloud_event.mode, event, headers)
        if http.host:
            headers = [(k, v) for k, v in headers if k.lower() != "host"]
            headers.append(("Host", http.host))
        return HttpRequest(
            method=http.method or "POST",
            url=http.url,
            headers=tuple(headers),
            body=body,
            secret_header_names=frozenset(names),
            timeout=float(http.timeout) if http.timeout > 0 else DEFAULT_TIMEOUT,
            secret_values=tuple(values),
        )

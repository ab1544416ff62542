"""Pydantic base for Argo documents and the small selector types several kinds share (YAML boundary only)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Literal
from urllib.parse import SplitResult, urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic_core import InitErrorDetails, PydanticCustomError

from sensorium.engine.core.errors import ConfigError
from sensorium.engine.goport.duration import parse_duration

Loc = tuple[str | int, ...]
# RFC 7230 section 3.2.6: a header field name is a `token`.
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_WORD = re.compile(r"_([a-z0-9])")


def argo_name(name: str) -> str:
    """A Python field name as Argo's JSON tag: `event_source_name` -> `eventSourceName`, `k8s` -> `k8s` (only an
    underscore starts a new word; pydantic's `to_camel` would also capitalise after a digit: `k8S`)."""
    return _WORD.sub(lambda m: m.group(1).upper(), name)


class ArgoModel(BaseModel):
    """Argo field names (camelCase) in YAML, snake_case in Python; unknown fields are errors."""

    model_config = ConfigDict(extra="forbid", alias_generator=argo_name, populate_by_name=True, frozen=True)


class KeySelector(ArgoModel):
    """A Kubernetes-style `{name, key}` reference, resolved from the secrets directory or the environment."""

    name: str = Field(description="Secret (or ConfigMap) name: the folder under the secrets directory.")
    key: str = Field(description="Key inside the secret: the file name inside that folder.")
    optional: bool | None = Field(default=None, description="Accepted for Argo compatibility; ignored.")


class TLSConfig(ArgoModel):
    ca_cert_secret: KeySelector | None = Field(default=None, description="CA certificate (PEM) to trust.")
    client_cert_secret: KeySelector | None = Field(default=None, description="Client certificate (PEM).")
    client_key_secret: KeySelector | None = Field(default=None, description="Client private key (PEM).")
    insecure_skip_verify: bool = Field(default=False, description="Do not verify the server certificate.")
    enabled: bool = Field(default=False, description="Use TLS with the system trust store.")


def raise_located(problems: Iterable[tuple[Loc, str]]) -> None:
    """Raise every `(loc, message)` at once, each located at `loc` below the model (or field) being validated.

    A plain ValueError from a model validator points at the model's own line; raising this instead points each
    message at the line of the culprit field (`loc` holds YAML names: camelCase keys and list indexes). Does
    nothing when there is no problem. The message is rendered like a ValueError's (engine.config strips the
    "Value error, " prefix); the input is not kept, so no value (a secret) can leak into a message.
    """
    details = [InitErrorDetails(type=PydanticCustomError("value_error", "Value error, {message}", {"message": m}),
                                loc=loc, input=None) for loc, m in problems]
    if details:
        raise ValidationError.from_exception_data("semantic checks", details, hide_input=True)


def check_port(port: int) -> int:
    """A TCP port: 1-65535 (raises ValueError)."""
    if not 1 <= port <= 65535:
        raise ValueError(f"port {port} is out of range (1-65535)")
    return port


def check_url(url: str, schemes: tuple[str, ...]) -> SplitResult:
    """An absolute URL with one of `schemes`, a host and a valid port (raises ValueError). The message never
    repeats the URL, which may carry credentials."""
    if _CONTROL.search(url):
        raise ValueError("URL contains a control character")
    parts = urlsplit(url)
    want = " or ".join(f"{scheme}://" for scheme in schemes)
    if not parts.scheme:
        raise ValueError(f"not an absolute URL (want {want})")
    if parts.scheme.lower() not in schemes:
        raise ValueError(f"URL scheme '{parts.scheme}' is not supported (want {want})")
    if not parts.hostname:
        raise ValueError(f"URL has no host (want {parts.scheme}://HOST[:PORT]/...)")
    try:
        port = parts.port
    except ValueError:  # urlsplit refuses ports outside 0-65535 and non-digits
        text = parts.netloc.rpartition(":")[2]
        raise ValueError(f"port {text} is out of range (1-65535)" if text.isdigit()
                         else "URL port is not a number") from None
    if port is not None:
        check_port(port)
    return parts


def check_header_name(name: str) -> None:
    """An HTTP header name must be an RFC 7230 token (no space, colon or control character)."""
    if not _TOKEN.fullmatch(name):
        raise ValueError(f"header name {name!r} is not a valid HTTP header name (RFC 7230 token)")


def check_header_value(value: str) -> None:
    """An HTTP header value must not contain CR, LF or NUL (header injection). The value is not repeated."""
    if any(c in value for c in "\r\n\0"):
        raise ValueError("header value contains CR, LF or NUL")


def positive_duration(value: str, what: str) -> str:
    """`value` if it is a Go duration (`2s`, `500ms`, `1m30s`) above zero; ValueError naming `what` otherwise."""
    try:
        ns = parse_duration(value)
    except ValueError as exc:
        raise ValueError(f"{what} {value!r} is not a duration (e.g. 2s, 500ms, 1m30s): {exc}") from None
    if ns <= 0:
        raise ValueError(f"{what} must be positive, got {value!r}")
    return value


KAFKA_DEFAULT_PORT = 9092
# Kafka's own rule for topic names (org.apache.kafka.common.internals.Topic): at most 249 of these characters.
_KAFKA_TOPIC = re.compile(r"[a-zA-Z0-9._-]{1,249}")


def check_topic(value: str) -> str:
    """A Kafka topic name (raises ValueError)."""
    if not _KAFKA_TOPIC.fullmatch(value) or value in (".", ".."):
        raise ValueError(f"topic {value!r} is not a valid Kafka topic name "
                         "(1-249 of a-z, A-Z, 0-9, '.', '_', '-'; not '.' or '..')")
    return value


def parse_brokers(text: str) -> list[str]:
    """`host:port[,host:port]` (port 9092 when absent) as a list; ConfigError when an entry is not host:port
    or its port is outside 1-65535."""
    brokers = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        host, sep, port = item.rpartition(":")
        if not sep:
            host, port = item, str(KAFKA_DEFAULT_PORT)
        if not host or not port.isdigit():
            raise ConfigError(f"kafka broker address '{item}' is not host:port")
        try:
            check_port(int(port))
        except ValueError as exc:
            raise ConfigError(f"kafka broker address '{item}': {exc}") from None
        brokers.append(f"{host}:{port}")
    if not brokers:
        raise ConfigError("kafka broker list is empty")
    return brokers


def check_brokers(value: str, empty: str = "url must be specified") -> str:
    """A broker list `parse_brokers` reads, for a field validator (raises ValueError; `empty` when it is "")."""
    if not value:
        raise ValueError(empty)
    try:
        parse_brokers(value)
    except ConfigError as exc:
        raise ValueError(exc.message) from None
    return value


class KafkaSASL(ArgoModel):
    mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = Field(
        default="PLAIN", description="SASL mechanism.")
    user_secret: KeySelector = Field(description="Secret holding the user name.")
    password_secret: KeySelector = Field(description="Secret holding the password.")


class BasicAuth(ArgoModel):
    username: KeySelector | None = Field(default=None, description="Secret holding the user name.")
    password: KeySelector | None = Field(default=None, description="Secret holding the password.")


class NATSAuth(ArgoModel):
    """Argo uses the first one set, in this order."""

    basic: BasicAuth | None = Field(default=None, description="User name and password from secrets.")
    token: KeySelector | None = Field(default=None, description="Secret holding the token.")
    nkey: KeySelector | None = Field(default=None, description="Secret holding an NKey seed (`SU...`).")
    credential: KeySelector | None = Field(
        default=None, description="Secret holding a credentials file (a user JWT and its seed, as nsc writes it).")

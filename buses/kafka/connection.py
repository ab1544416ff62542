"""What every Kafka client of the bus shares: security (TLS and SASL from the EventBus), sarama's hash
partitioner, the probe timeout and one-line causes of connection problems. No client is created here."""

from __future__ import annotations

import asyncio
import logging
import random
import socket
import ssl
from dataclasses import dataclass, field
from typing import Any

from aiokafka.errors import (
    IllegalSaslStateError,
    SaslAuthenticationFailed,
    UnsupportedSaslMechanismError,
)

from sensorium.buses.spec import KafkaBus as KafkaBusSpec
from sensorium.engine.core.errors import BusError
from sensorium.engine.core.secrets import Secrets
from sensorium.engine.core.tls import client_context
from sensorium.engine.goport.fnv import fnv32a

PROBE_TIMEOUT = 5.0


def sarama_hash(key: bytes, partitions: int) -> int:
    """Partition of `key` under sarama's `NewHashPartitioner`: FNV-1a 32, as int32, modulo, sign dropped."""
    h = fnv32a(key)
    signed = h - (1 << 32) if h >= (1 << 31) else h
    return abs(signed) % partitions


class SaramaHashPartitioner:
    def __call__(self, key: bytes | None, all_partitions: list[int], available: list[int]) -> int:
        if key is None:
            return int(random.choice(available or all_partitions))
        return sorted(all_partitions)[sarama_hash(key, len(all_partitions))]


@dataclass(frozen=True)
class KafkaSecurity:
    """TLS and SASL settings for every connection. The password is never printed."""

    ssl_context: ssl.SSLContext | None = None
    sasl_mechanism: str | None = None  # PLAIN | SCRAM-SHA-256 | SCRAM-SHA-512
    username: str = ""
    password: str = field(default="", repr=False)

    @property
    def protocol(self) -> str:
        if self.sasl_mechanism:
            return "SASL_SSL" if self.ssl_context else "SASL_PLAINTEXT"
        return "SSL" if self.ssl_context else "PLAINTEXT"

    def client_kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"security_protocol": self.protocol, "ssl_context": self.ssl_context}
        if self.sasl_mechanism:
            kwargs.update(sasl_mechanism=self.sasl_mechanism, sasl_plain_username=self.username,
                          sasl_plain_password=self.password)
        return kwargs


def security_from_spec(spec: KafkaBusSpec, secrets: Secrets) -> KafkaSecurity:
    try:
        context = client_context(spec.tls, secrets) if spec.tls is not None else None
        if spec.sasl is None:
            return KafkaSecurity(ssl_context=context)
        user = secrets.get(spec.sasl.user_secret.name, spec.sasl.user_secret.key)
        password = secrets.get(spec.sasl.password_secret.name, spec.sasl.password_secret.key)
    except (ssl.SSLError, ValueError) as exc:
        raise BusError(f"kafka {spec.url}: TLS settings unusable: {exc}") from None
    except Exception as exc:  # SecretNotFound names the secret, never its value
        raise BusError(f"kafka {spec.url}: {exc}") from None
    return KafkaSecurity(ssl_context=context, sasl_mechanism=spec.sasl.mechanism, username=user,
                         password=password)


def quiet_client_log() -> None:
    """aiokafka logs every failed reconnect at ERROR (dozens a second while a broker is away); the bus reports
    the connection state itself, one line per change. An `aiokafka` logger configured by the user is kept."""
    client_log = logging.getLogger("aiokafka")
    if client_log.level == logging.NOTSET:
        client_log.setLevel(logging.CRITICAL)


def describe(exc: BaseException) -> str:
    """One-line cause of a connection problem, for people."""
    if isinstance(exc, SaslAuthenticationFailed):
        return f"SASL authentication failed: {exc.args[0] if exc.args else 'bad credentials'}"
    if isinstance(exc, (IllegalSaslStateError, UnsupportedSaslMechanismError)):
        return "SASL handshake rejected (the listener does not use SASL or not this mechanism)"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, socket.gaierror):
        return f"cannot resolve host ({exc.strerror})"
    if isinstance(exc, ConnectionResetError):
        return "connection reset by the broker (do its TLS/SASL settings match this listener?)"
    if isinstance(exc, ssl.SSLError):
        return f"TLS handshake failed: {exc.reason or exc}"
    if isinstance(exc, (TimeoutError, asyncio.TimeoutError)):
        return f"no answer within {PROBE_TIMEOUT:.0f}s"
    if isinstance(exc, OSError):
        return exc.strerror or str(exc) or type(exc).__name__
    return str(exc) or type(exc).__name__

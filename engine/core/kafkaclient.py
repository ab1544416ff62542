"""What every Kafka client shares, the bus's and the Kafka trigger's: TLS and SASL settings, the probe timeout,
and one-line causes of connection problems. No client is created here."""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

PROBE_TIMEOUT = 5.0
# aiokafka (about 40-80 ms to import) is imported where it is used: every CLI command loads this module through
# the registry, and most never talk to Kafka.


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


def quiet_client_log() -> None:
    """aiokafka logs every failed reconnect at ERROR (dozens a second while a broker is away); the bus reports
    the connection state itself, one line per change. An `aiokafka` logger configured by the user is kept."""
    client_log = logging.getLogger("aiokafka")
    if client_log.level == logging.NOTSET:
        client_log.setLevel(logging.CRITICAL)


def describe(exc: BaseException) -> str:
    """One-line cause of a connection problem, for people."""
    from aiokafka.errors import IllegalSaslStateError, SaslAuthenticationFailed, UnsupportedSaslMechanismError

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


async def probe(brokers: Sequence[str], security: KafkaSecurity, client_id: str) -> str | None:
    """None if one broker accepts a connection (TLS and SASL included), else every broker's cause: what a client
    that cannot bootstrap (`Unable to bootstrap from [...]`) does not say."""
    from aiokafka.conn import create_conn
    from aiokafka.errors import KafkaError

    causes = []
    for broker in brokers:
        host, _, port = broker.rpartition(":")
        try:
            conn = await asyncio.wait_for(create_conn(
                host, int(port), client_id=client_id, request_timeout_ms=int(PROBE_TIMEOUT * 1000),
                **security.client_kwargs()), PROBE_TIMEOUT)
        except (TimeoutError, KafkaError, OSError) as exc:
            causes.append(f"{broker}: {describe(exc)}")
            continue
        conn.close()
        return None
    return "; ".join(causes)

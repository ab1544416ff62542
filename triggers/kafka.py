"""Kafka trigger (Argo pkg/sensors/triggers/kafka): produce one record, its value built from the `payload`
parameters, to `topic` on the brokers at `url`, keyed by `partitioningKey` (sarama's hash partitioner, so a key
lands on the partition Argo would choose), with `headers` and `secureHeaders` as record headers. `fire()` never
raises and never puts a secret into its outcome or logs.

Where Sensorium differs from Argo, on purpose:
* **A firing succeeds once the brokers acknowledged the record** (`send_and_wait`, `requiredAcks` as written:
  1 the leader, -1 every in-sync replica; unset or 0 means -1, as in Argo). Argo hands the record to sarama's
  asynchronous producer and counts the firing done at once; a broker that refuses it or is gone only makes a log
  line, and the record is lost. Here the attempt fails and `retryStrategy` and the dead-letter trigger take
  over. A retried attempt may produce the record twice (its acknowledgement was lost): at least once.
* **TLS is verified.** Argo's Kafka trigger sets `InsecureSkipVerify` whatever `tls` says; Sensorium honours
  `tls.insecureSkipVerify` (false by default), as its http and nats triggers do.
* **`flushFrequency` does not delay a record.** Argo passes it to sarama as a `time.Duration`, that is in
  nanoseconds (500 ns by default), so its batches do not wait either; Sensorium's producer sends at once
  (linger 0) and reads the field only to accept Argo's files.
* `version` (sarama's protocol version) and the deprecated `partition` are accepted and not used: the client
  negotiates the version, and the key picks the partition. `schemaRegistry` (Avro) is refused at load.
* A record larger than the producer's 1 MiB request limit fails at once, naming both sizes.
* The producer is made by the first firing and shared by the Kafka triggers with the same brokers, TLS, SASL,
  `requiredAcks` and `compress` (Argo: one per trigger name), and closed with the engine (`KafkaProducers`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any
from urllib.parse import quote

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError, MessageSizeTooLargeError, RecordTooLargeError

from sensorium.engine.core.cloudevent import CloudEvent
from sensorium.engine.core.errors import ConfigError, TriggerError
from sensorium.engine.core.kafkaclient import KafkaSecurity, describe, probe, quiet_client_log
from sensorium.engine.core.secrets import Secrets
from sensorium.engine.core.specbase import check_topic, parse_brokers
from sensorium.engine.goport.sarama import SaramaHashPartitioner
from sensorium.triggers.http import tls_context
from sensorium.triggers.httprequest import HttpRequest, secret_value
from sensorium.triggers.message import MessageTrigger, check_spec
from sensorium.triggers.params import (
    PayloadPlan,
    ResolvedParam,
    marshal_ordered,
)
from sensorium.triggers.pool import LIMIT, Pool
from sensorium.triggers.spec import KafkaTrigger as KafkaSpec
from sensorium.triggers.spec import Trigger, TriggerParameter, TriggerTemplate

__all__ = ["KafkaProducers", "KafkaTrigger", "as_request", "build_record", "check_kafka_spec"]

log = logging.getLogger("sensorium.triggers.kafka")

TIMEOUT = 10.0
"""Seconds one attempt may take: starting the producer (when there is none yet), producing, the acknowledgement."""
MAX_REQUEST = 1024 * 1024  # the producer's max_request_size (aiokafka's default, Kafka's message.max.bytes)


def check_kafka_spec(template: TriggerTemplate, trigger_params: Sequence[TriggerParameter] | None) -> None:
    """Construction-time check of what a firing evaluates; raises ConfigError."""
    check_spec(template, trigger_params, "kafka")


def _address(kafka: KafkaSpec) -> str:
    """`kafka://<brokers>/<topic>[?key=<key>]`: where a record goes, as messages and traces show it."""
    try:
        brokers = ",".join(parse_brokers(kafka.url))
    except ConfigError:
        brokers = "(unreadable brokers)"
    key = f"?key={quote(kafka.partitioning_key, safe='')}" if kafka.partitioning_key is not None else ""
    return f"kafka://{brokers}/{kafka.topic}{key}"


def _headers(kafka: KafkaSpec, secrets: Secrets | None) -> tuple[list[tuple[str, str]], set[str], list[str]]:
    """The record headers (static, then secure), the secure ones' names and values (None secrets: the secure
    values are left as "" (what a dry run without secrets shows masked anyway)."""
    headers = list((kafka.headers or {}).items())
    names: set[str] = set()
    values: list[str] = []
    for secure in kafka.secure_headers or ():
        ref = secure.value_from.secret_key_ref or secure.value_from.config_map_key_ref
        assert ref is not None
        value = secret_value(secrets, ref.name, ref.key, "value for secureHeader") if secrets is not None else ""
        headers.append((secure.name, value))
        names.add(secure.name)
        values.append(value)
    return headers, names, values


def as_request(kafka: KafkaSpec, body: bytes, secrets: Secrets | None = None) -> HttpRequest:
    """The record in the form traces and dry runs show a trigger's output: method `PRODUCE`, the address
    `kafka://<brokers>/<topic>[?key=...]`, the record headers (secure ones masked), the value as the body."""
    headers, names, values = _headers(kafka, secrets)
    return HttpRequest("PRODUCE", _address(kafka), tuple(headers), body, secret_header_names=frozenset(names),
                       secret_values=tuple(values))


def build_record(template: TriggerTemplate, trigger_params: Sequence[TriggerParameter] | None,
                 events: Mapping[str, CloudEvent], secrets: Secrets,
                 used: list[ResolvedParam] | None = None) -> HttpRequest:
    """The record one firing produces (`as_request`), for `sensorium test`. Raises ParamError or SecretError."""
    kafka = KafkaTrigger.resolve(template, trigger_params, events, used)
    return as_request(kafka, PayloadPlan(kafka.payload).build(events, used), secrets)


async def _stop(producer: AIOKafkaProducer) -> None:
    """Stop a producer, waiting 5 s at most (brokers that are gone must not hold up the engine's end)."""
    try:
        async with asyncio.timeout(5):
            await producer.stop()
    except (KafkaError, OSError, TimeoutError):
        pass


class KafkaProducers(Pool[AIOKafkaProducer]):
    """The producers of the engine's Kafka triggers (`triggers.pool`): one per brokers, TLS, SASL (the spec's
    references, not their values), required acks and compression. `headers` go with every record (a replay's
    mark)."""

    def __init__(self, headers: Mapping[str, str] | None = None, limit: int = LIMIT) -> None:
        super().__init__(_stop, limit=limit)
        self.headers = [(k, v.encode()) for k, v in (headers or {}).items()]

    async def producer(self, key: str, options: Callable[[], dict[str, Any]]) -> AIOKafkaProducer:
        """The producer for `key`, started with `options()` (read only then: secrets, TLS; its `security` a
        KafkaSecurity) when there is none. Raises KafkaError or OSError when the brokers cannot be reached."""

        async def open_one() -> AIOKafkaProducer:
            quiet_client_log()
            settings = options()
            security: KafkaSecurity = settings.pop("security")
            made = AIOKafkaProducer(partitioner=SaramaHashPartitioner(), linger_ms=0, max_request_size=MAX_REQUEST,
                                    request_timeout_ms=int(TIMEOUT * 1000), client_id="sensorium-trigger",
                                    **settings, **security.client_kwargs())
            try:
                await made.start()
            except BaseException:
                await _stop(made)
                raise
            return made

        return await self.get(key, open_one)


class KafkaTrigger(MessageTrigger[KafkaSpec]):
    """The `kafka` kind (see the module); `options` as for `MessageTrigger`."""

    kind, model = "kafka", KafkaSpec

    def __init__(self, trigger: Trigger, producers: KafkaProducers, secrets: Secrets, **options: Any) -> None:
        super().__init__(trigger, secrets, **{"timeout": TIMEOUT, **options})
        self.producers = producers

    @classmethod
    def check(cls, spec: KafkaSpec) -> object:
        return check_topic(spec.topic), parse_brokers(spec.url)

    @classmethod
    def pool_key(cls, spec: KafkaSpec) -> str:
        return marshal_ordered([spec.url, spec.required_acks in (0, -1), spec.compress,
                                spec.model_dump(mode="json", by_alias=True, include={"tls", "sasl"})])

    def target(self, spec: KafkaSpec) -> str:
        return f"produce to {_address(spec)}"

    def request(self, spec: KafkaSpec, body: bytes) -> HttpRequest:
        return as_request(spec, body)

    def note(self, spec: KafkaSpec, body: bytes) -> str:
        return f"produced {len(body)} bytes to {spec.topic}"

    def _options(self, kafka: KafkaSpec, secrets: list[str]) -> dict[str, Any]:
        """The producer's settings; the secret values it reads go to `secrets`. Raises TriggerError."""
        try:
            context = tls_context(kafka.tls, self.secrets)
        except ConfigError as exc:
            raise TriggerError(exc.message) from None
        security = KafkaSecurity(ssl_context=context)
        if kafka.sasl is not None:
            user = secret_value(self.secrets, kafka.sasl.user_secret.name, kafka.sasl.user_secret.key, "SASL user")
            password = secret_value(self.secrets, kafka.sasl.password_secret.name, kafka.sasl.password_secret.key,
                                    "SASL password")
            secrets.extend((user, password))
            security = KafkaSecurity(ssl_context=context, sasl_mechanism=kafka.sasl.mechanism, username=user,
                                     password=password)
        return {"bootstrap_servers": parse_brokers(kafka.url), "acks": -1 if kafka.required_acks in (0, -1) else 1,
                "compression_type": "snappy" if kafka.compress else None, "security": security}

    async def _send(self, kafka: KafkaSpec, body: bytes, secrets: list[str]) -> None:
        headers, _, values = _headers(kafka, self.secrets)
        secrets.extend(values)
        if len(body) > MAX_REQUEST:
            raise TriggerError(f"record of {len(body)} bytes is larger than the producer's limit ({MAX_REQUEST} "
                               f"bytes) for {_address(kafka)}")
        try:
            producer = await self.producers.producer(self._key(kafka), lambda: self._options(kafka, secrets))
        except (KafkaError, OSError) as exc:
            options = self._options(kafka, secrets)  # (the failure's cause: which broker said what)
            cause = await probe(options["bootstrap_servers"], options["security"], "sensorium-trigger")
            raise TriggerError(f"cannot connect to Kafka for {_address(kafka)}: {cause or describe(exc)}",
                               retryable=True) from None
        try:
            await producer.send_and_wait(
                kafka.topic, value=body,
                key=kafka.partitioning_key.encode() if kafka.partitioning_key is not None else None,
                headers=[(k, v.encode()) for k, v in headers] + self.producers.headers)
        except (MessageSizeTooLargeError, RecordTooLargeError):
            raise TriggerError(f"record of {len(body)} bytes is larger than {_address(kafka)} accepts") from None
        except (KafkaError, OSError) as exc:
            raise TriggerError(f"produce to {_address(kafka)} not acknowledged: {describe(exc)}",
                               retryable=True) from None

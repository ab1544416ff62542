"""The `kafka` event source (Argo pkg/eventsources/sources/kafka): records of a Kafka topic in, CloudEvents on the
bus out. Written as `spec.kafka.<eventName>` with Argo's fields: `url`, `topic`, and either `consumerGroup`
(`groupName`, `oldest`, `rebalanceStrategy`) or `partition`; `jsonBody`, `metadata`, `tls`, `sasl`,
`limitEventsPerSecond`; `version` and `connectionBackoff` are accepted and not needed.

The event is Argo's: type `kafka`, source the EventSource, subject the event name, id
`<eventSource>:<eventName>:<first broker>:<topic>:<partition>:<offset>` (so a record read twice is one event: the
JetStream bus drops the second copy within its duplicate window), and as data `{"topic", "key", "partition",
"timestamp", "headers", "body", "metadata"}`: `timestamp` as Go prints a time (`2026-12-07 14:27:11.123 +0000
UTC`), `headers` the record's (name: value), `body` the value as JSON with `jsonBody: true` (a value that is not
JSON is then a JSON string, not dropped) and base64 otherwise, `metadata` only when written.

At least once, where Argo's partition mode is not:
* With `consumerGroup`, offsets are committed only after the bus stored the events of the records before them
  (Argo marks each record after dispatching it, as here). A new group starts at the newest record, or the oldest
  with `oldest: true`; the group's members share the partitions (`rebalanceStrategy` range or roundrobin;
  sticky, which aiokafka does not have, is read as range, with a log line).
* With `partition` (no group), Argo starts at the newest record at every start, so what was produced while it
  was down is never read. Sensorium keeps the next offset in the bus's state store (`kafka-<source>-<event>`)
  after each batch is stored, and a restart continues there; the first start begins at the newest record.
A record whose event the bus refuses is retried (one log line per failure) and holds its partition until
stored; nothing behind it is committed meanwhile.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from pydantic import Field, field_validator, model_validator

from sensorium.engine.core.cloudevent import CloudEvent, is_json
from sensorium.engine.core.errors import SensoriumError
from sensorium.engine.core.kafkaclient import KafkaSecurity, describe, probe, quiet_client_log
from sensorium.engine.core.secrets import SecretNotFound, Secrets
from sensorium.engine.core.specbase import (
    ArgoModel,
    KafkaSASL,
    TLSConfig,
    check_brokers,
    check_topic,
    parse_brokers,
)
from sensorium.engine.core.tls import client_context
from sensorium.engine.goport.template.time import time_string
from sensorium.sources.base import (
    Entry,
    EntryProblems,
    EntryTasks,
    Publish,
    Report,
    SnapshotStore,
    no_report,
    publish_retrying,
)

if TYPE_CHECKING:  # aiokafka is imported where it is used: the registry loads this module for every CLI command
    from aiokafka import AIOKafkaConsumer, ConsumerRecord

__all__ = ["KafkaSource", "KafkaSourceContext", "event_of"]

log = logging.getLogger("sensorium.sources.kafka")

BATCH = 256  # records fetched at once per entry (published together, then committed)
RETRY = 2.0  # seconds between connection attempts of an entry whose brokers cannot be reached


class KafkaConsumerGroupSpec(ArgoModel):
    group_name: str = Field(description="Consumer group (required with consumerGroup).")
    oldest: bool = Field(default=False, description="A new group starts at the oldest record, not the newest.")
    rebalance_strategy: str = Field(default="range", description="range, roundrobin or sticky (read as range).")


class KafkaSourceContext(ArgoModel):
    """One `spec.kafka.<eventName>` entry (Argo's KafkaEventSource)."""

    url: str = Field(description="Brokers (required): host:port, several separated by commas.")
    topic: str = Field(description="Topic to read (required).")
    partition: str | None = Field(default=None, description="Without consumerGroup: the partition to read.")
    consumer_group: KafkaConsumerGroupSpec | None = Field(default=None, description="Read as a consumer group.")
    json_body: bool = Field(default=False, description="The value is JSON: the event's `body` holds it as JSON "
                                                       "(else base64).")
    metadata: dict[str, str] | None = Field(default=None, description="Copied into the event data as `metadata`.")
    tls: TLSConfig | None = Field(default=None, description="TLS client settings.")
    sasl: KafkaSASL | None = Field(default=None, description="SASL authentication.")
    limit_events_per_second: int = Field(default=0, ge=0, description="At most this many events a second (0: "
                                                                         "no limit).")
    version: str | None = Field(default=None, description="Kafka protocol version hint (sarama); not used.")
    connection_backoff: dict[str, Any] | None = Field(
        default=None, description="Accepted for Argo's files: a connection is retried every 2 s.")
    config: str | None = Field(default=None, description="Sarama's YAML configuration (not supported).")
    schema_registry: dict[str, Any] | None = Field(default=None, description="Avro through a schema registry "
                                                                             "(not supported).")
    filter: dict[str, Any] | None = Field(default=None, description="Event source filter: not supported yet.")

    @field_validator("url")
    @classmethod
    def _brokers(cls, value: str) -> str:
        return check_brokers(value)

    @field_validator("topic")
    @classmethod
    def _topic(cls, value: str) -> str:
        if not value:
            raise ValueError("topic must be specified")
        return check_topic(value)

    @field_validator("partition")
    @classmethod
    def _partition(cls, value: str | None) -> str | None:
        if value is not None and not (value.isdigit() and int(value) < 2**31):
            raise ValueError(f"partition must be a partition number, got {value!r}")
        return value

    @field_validator("config", "schema_registry", "filter")
    @classmethod
    def _unsupported(cls, value: Any) -> Any:
        if value is not None:
            raise ValueError("not supported by Sensorium's kafka source (filter in the sensor; the value is read "
                             "as JSON or bytes)")
        return value

    @model_validator(mode="after")
    def _one_mode(self) -> KafkaSourceContext:
        if self.consumer_group is None and self.partition is None:
            raise ValueError("either consumerGroup or partition must be specified")
        return self


def event_of(record: ConsumerRecord[bytes, bytes], source: str, name: str, spec: KafkaSourceContext) -> CloudEvent:
    """Argo's event for one record (see the module)."""
    value = record.value or b""
    if spec.json_body:
        body: Any = json.loads(value) if is_json(value) else value.decode("utf-8", "replace")
    else:
        body = base64.b64encode(value).decode()
    stamp = datetime.fromtimestamp(record.timestamp / 1000, UTC)
    data: dict[str, Any] = {"topic": record.topic, "key": (record.key or b"").decode("utf-8", "replace"),
                            "partition": record.partition, "timestamp": time_string(stamp),
                            "headers": {k: (v or b"").decode("utf-8", "replace") for k, v in record.headers},
                            "body": body}
    if spec.metadata:
        data["metadata"] = spec.metadata
    first = spec.url.split(",")[0]  # (Argo's: the URL's first entry as written)
    return CloudEvent(id=f"{source}:{name}:{first}:{record.topic}:{record.partition}:{record.offset}",
                      source=source, type="kafka", subject=name, time=stamp.isoformat().replace("+00:00", "Z"),
                      datacontenttype="application/json", data=json.dumps(data).encode())


KafkaEntry = Entry[KafkaSourceContext]


class KafkaSource:
    """Every `kafka` entry: a consumer each (see the module)."""

    def __init__(self, entries: Sequence[tuple[str, str, KafkaSourceContext]], publish: Publish, secrets: Secrets,
                 state: Callable[[str], Awaitable[SnapshotStore]] | None = None,
                 report: Report = no_report) -> None:
        self.entries = [Entry("kafka", source, name, spec) for source, name, spec in entries]
        self.publish, self.secrets, self.state, self.report = publish, secrets, state, report
        self._tasks: EntryTasks[SnapshotStore] = EntryTasks()
        self._problems = EntryProblems(log, report)
        self.reading: set[str] = set()  # the entries whose consumer has its partitions (`where`)

    def problems(self) -> list[str]:
        return self._problems.lines()

    async def start(self) -> None:
        for entry in self.entries:
            self._problems.waiting(entry, f"connecting to {','.join(parse_brokers(entry.spec.url))}")
            state = self.state if entry.spec.consumer_group is None else None  # (a group keeps its own offsets)
            await self._tasks.spawn(f"kafka-{entry.source}-{entry.name}", state, self._runner(entry))

    async def stop(self) -> None:
        await self._tasks.stop()

    def _runner(self, entry: KafkaEntry) -> Callable[[SnapshotStore | None], Coroutine[Any, Any, None]]:
        def run(store: SnapshotStore | None) -> Coroutine[Any, Any, None]:
            return self._serve(entry, store)
        return run

    def _security(self, entry: KafkaEntry) -> KafkaSecurity:
        spec = entry.spec
        try:
            context = client_context(spec.tls, self.secrets) if spec.tls is not None else None
            if spec.sasl is None:
                return KafkaSecurity(ssl_context=context)
            user = self.secrets.get(spec.sasl.user_secret.name, spec.sasl.user_secret.key)
            password = self.secrets.get(spec.sasl.password_secret.name, spec.sasl.password_secret.key)
        except SecretNotFound as exc:
            raise SensoriumError(str(exc)) from None
        except ValueError as exc:
            raise SensoriumError(f"TLS settings unusable: {type(exc).__name__}") from None
        return KafkaSecurity(ssl_context=context, sasl_mechanism=spec.sasl.mechanism, username=user,
                             password=password)

    def _consumer(self, entry: KafkaEntry, security: KafkaSecurity) -> AIOKafkaConsumer:
        from aiokafka import AIOKafkaConsumer
        from aiokafka.coordinator.assignors.range import RangePartitionAssignor
        from aiokafka.coordinator.assignors.roundrobin import RoundRobinPartitionAssignor

        spec, group = entry.spec, entry.spec.consumer_group
        options: dict[str, Any] = {"bootstrap_servers": parse_brokers(spec.url), "enable_auto_commit": False,
                                   "client_id": f"sensorium-{entry.source}-{entry.name}",
                                   **security.client_kwargs()}
        if group is None:
            return AIOKafkaConsumer(**options)
        strategy = group.rebalance_strategy
        if strategy not in ("range", "roundrobin"):
            log.info("%s: rebalanceStrategy %r read as range", entry.where, strategy)
        assignor = RoundRobinPartitionAssignor if strategy == "roundrobin" else RangePartitionAssignor
        return AIOKafkaConsumer(spec.topic, group_id=group.group_name, partition_assignment_strategy=(assignor,),
                                auto_offset_reset="earliest" if group.oldest else "latest", **options)

    async def _serve(self, entry: KafkaEntry, store: SnapshotStore | None) -> None:
        """Connect, read, publish and commit, batch by batch; on any failure (brokers gone, a commit refused
        after a rebalance, the state store unavailable) report it, wait, and start again from what was
        committed: at least once, the event ids the same."""
        from aiokafka.errors import KafkaError

        brokers = ",".join(parse_brokers(entry.spec.url))
        while True:
            consumer: AIOKafkaConsumer | None = None
            security: KafkaSecurity | None = None
            try:
                security = self._security(entry)
                consumer = self._consumer(entry, security)
                quiet_client_log()
                await consumer.start()
                if entry.spec.consumer_group is None:
                    await self._assign(consumer, entry, store, security)
                self._problems.clear(entry)
                self.reading.add(entry.where)
                log.info("%s: reading %s from %s", entry.where, entry.spec.topic, brokers)
                await self._read(consumer, entry, store)
            except (KafkaError, OSError, TimeoutError, SensoriumError) as exc:
                probed = (await probe(parse_brokers(entry.spec.url), security, "sensorium-source")
                          if security is not None and not isinstance(exc, SensoriumError) else None)
                self._problems.set(entry, f"cannot read {entry.spec.topic} from {brokers}: "
                                     f"{probed or (str(exc) if isinstance(exc, SensoriumError) else describe(exc))}")
            finally:
                self.reading.discard(entry.where)
                if consumer is not None:
                    with contextlib.suppress(KafkaError, OSError, TimeoutError):
                        await consumer.stop()
            await asyncio.sleep(RETRY)

    async def _assign(self, consumer: AIOKafkaConsumer, entry: KafkaEntry, store: SnapshotStore | None,
                      security: KafkaSecurity) -> None:
        """Partition mode: the partition, at the offset the state store kept, else at the newest record."""
        from aiokafka import TopicPartition
        from aiokafka.admin import AIOKafkaAdminClient

        partition = TopicPartition(entry.spec.topic, int(entry.spec.partition or 0))
        admin = AIOKafkaAdminClient(bootstrap_servers=parse_brokers(entry.spec.url), **security.client_kwargs())
        await admin.start()
        try:
            (described,) = await admin.describe_topics([entry.spec.topic])
        finally:
            await admin.close()
        known = {p["partition"] for p in described.get("partitions", ())}
        if partition.partition not in known:
            raise SensoriumError(f"partition {partition.partition} of {entry.spec.topic} is not available "
                                 f"(partitions: {sorted(known or ())})")
        consumer.assign([partition])
        saved = await store.load() if store is not None else None
        if saved:
            consumer.seek(partition, int(json.loads(saved)["offset"]))
        else:  # the first start: the newest record, kept at once (a restart before the first batch starts here)
            await consumer.seek_to_end(partition)
            if store is not None:
                await store.save(json.dumps({"offset": await consumer.position(partition)}).encode())

    async def _read(self, consumer: AIOKafkaConsumer, entry: KafkaEntry, store: SnapshotStore | None) -> None:
        limit = entry.spec.limit_events_per_second
        while True:
            batches = await consumer.getmany(timeout_ms=1000, max_records=BATCH)
            for partition, records in batches.items():
                for record in records:
                    event = event_of(record, entry.source, entry.name, entry.spec)
                    await publish_retrying(self.publish, event, f"{entry.where}: event {event.id}", log)
                    if limit:
                        await asyncio.sleep(1 / limit)
                if not records:
                    continue
                following = records[-1].offset + 1
                if entry.spec.consumer_group is not None:
                    await consumer.commit({partition: following})
                elif store is not None:
                    await store.save(json.dumps({"offset": following}).encode())

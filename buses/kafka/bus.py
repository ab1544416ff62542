"""Kafka event bus (transport only): Argo Events' wire format on one topic, one consumer group per sensor.

A record's key is `<eventSourceName>.<eventName>` and its value the structured-mode CloudEvent JSON, on the
topic the EventBus names or `argo-events` (also for `--bus kafka://HOST:PORT[,HOST:PORT]`). Records are placed
by sarama's FNV-1a hash of the key (Argo's `partitioner: hash`) so the events of one key keep their order.
Acknowledgements become manual offset commits (buses/kafka/consumer.py); the bus never decides when to ack.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.coordinator.assignors.range import RangePartitionAssignor
from aiokafka.coordinator.assignors.roundrobin import RoundRobinPartitionAssignor
from aiokafka.coordinator.assignors.sticky.sticky_assignor import StickyPartitionAssignor
from aiokafka.errors import (
    KafkaError,
    MessageSizeTooLargeError,
    for_code,
)

from sensorium.buses.base import (
    DEAD_LETTERS,
    Bus,
    ConsumerSpec,
    EventKey,
    Health,
    Mark,
    ReplayRange,
    ReplayReader,
    StateStore,
    TraceChannel,
    fit_dead_letter,
)
from sensorium.buses.kafka.assignor import keyed
from sensorium.buses.kafka.connection import security_from_spec
from sensorium.buses.kafka.consumer import KafkaGroupConsumer, quietly
from sensorium.buses.kafka.replay import KafkaReplay
from sensorium.buses.kafka.state import KafkaStateTopic
from sensorium.buses.kafka.stored import KafkaStoredEvents
from sensorium.buses.kafka.trace import KafkaTraceChannel, read_trace
from sensorium.buses.spec import KafkaBus as KafkaBusSpec
from sensorium.engine.core.errors import BusError, ConfigError, EventTooLarge
from sensorium.engine.core.kafkaclient import PROBE_TIMEOUT, KafkaSecurity, describe, probe, quiet_client_log
from sensorium.engine.core.secrets import Secrets
from sensorium.engine.core.specbase import parse_brokers
from sensorium.engine.goport.sarama import SaramaHashPartitioner

log = logging.getLogger("buses.kafka.bus")

DEFAULT_TOPIC = "argo-events"
DEFAULT_PARTITIONS = 12
"""Partitions of a topic the bus creates: divisible by 1, 2, 3, 4 and 6, so that `sensorium run --workers N`
(a consumer group of N members) gets an even share per process for those N (with 3, two workers split the work
2:1 and the busier one bounded the pair at 1.35x one process, bench.workers). An existing topic keeps its
partitions."""
HEALTH_INTERVAL = 2.0
MAX_BACKOFF = 4.0
ASSIGNORS: dict[str, Any] = {"range": RangePartitionAssignor, "roundrobin": RoundRobinPartitionAssignor,
                             "sticky": StickyPartitionAssignor}
_UNKNOWN_TOPIC, _TOPIC_EXISTS = 3, 36
DLQ_RETENTION_MS = 7 * 24 * 3600 * 1000
DLQ_MAX_MESSAGE = 1_000_000  # under the producer's max_request_size and the broker's message.max.bytes (1 MiB)


class KafkaBus(Bus):
    """The bus on Apache Kafka. `start()` checks the brokers, creates the topic if it is missing
    (`partitions`, replication min(3, brokers)) and starts an idempotent producer (acks=all). Each
    `consumer()` is a member of the group named `spec.name` (the engine's `sensorium-<sensor>`) unless the
    EventBus sets `consumerGroup.groupName`, reading with read_committed isolation."""

    def __init__(self, brokers: str | Sequence[str], topic: str = DEFAULT_TOPIC, *,
                 partitions: int = DEFAULT_PARTITIONS, group_name: str | None = None, oldest: bool = False,
                 rebalance_strategy: str = "range", partitioner: str | None = None,
                 security: KafkaSecurity | None = None, session_timeout: float = 10.0,
                 request_timeout: float = 30.0, client_id: str = "sensorium") -> None:
        self.brokers = parse_brokers(brokers) if isinstance(brokers, str) else list(brokers)
        self.where = ",".join(self.brokers)
        self.url = f"kafka://{self.where}"
        self.topic, self.partitions, self.group_name, self.oldest = topic, partitions, group_name, oldest
        if rebalance_strategy not in ASSIGNORS:
            raise ConfigError(f"kafka rebalanceStrategy '{rebalance_strategy}' is not one of "
                              f"{sorted(ASSIGNORS)}")
        self.rebalance_strategy, self.partitioner = rebalance_strategy, partitioner
        self.security = security or KafkaSecurity()
        self.session_timeout, self.request_timeout = session_timeout, request_timeout
        self.client_id = client_id
        self.health = Health.CONNECTING
        self.cause = ""  # why the bus is not connected, for health reports
        self._producer: Any = None
        self._admin: Any = None
        self._watcher: asyncio.Task[None] | None = None
        self._consumers: list[KafkaGroupConsumer] = []
        self._group_owner: str | None = None
        self._state: KafkaStateTopic | None = None
        self._dlq_ready = False
        self._dlq_lock = asyncio.Lock()
        quiet_client_log()

    @classmethod
    def from_spec(cls, spec: KafkaBusSpec, secrets: Secrets | None = None, **options: Any) -> KafkaBus:
        group = spec.consumer_group
        return cls(spec.url, spec.topic or DEFAULT_TOPIC,
                   group_name=(group.group_name or None) if group else None,
                   oldest=group.oldest if group else False,
                   rebalance_strategy=group.rebalance_strategy if group else "range",
                   partitioner=spec.partitioner, security=security_from_spec(spec, secrets or Secrets()),
                   **options)

    @classmethod
    def from_url(cls, url: str, **options: Any) -> KafkaBus:
        """`kafka://HOST:PORT[,HOST:PORT]` (or the bare broker list) with the default topic."""
        scheme, sep, rest = url.rpartition("://")
        if sep and scheme != "kafka":
            raise ConfigError(f"bus URL '{url}' must look like kafka://HOST:PORT[,HOST:PORT]")
        return cls(parse_brokers(rest.rstrip("/")), **options)

    def _kwargs(self) -> dict[str, Any]:
        return {"bootstrap_servers": self.brokers, "client_id": self.client_id, "retry_backoff_ms": 500,
                "request_timeout_ms": int(self.request_timeout * 1000), **self.security.client_kwargs()}

    def client_options(self) -> dict[str, Any]:
        """Connection settings (brokers, TLS, SASL) for another aiokafka client on this cluster (traces)."""
        return self._kwargs()

    # -- connection ------------------------------------------------------------------------------------------
    async def start(self) -> None:
        cause = await self._probe()
        if cause:  # raised, not logged: the caller reports it (once) and decides when to try again
            self.health, self.cause = Health.DISCONNECTED, cause
            raise BusError(f"kafka {cause}")
        if self.partitioner not in (None, "hash"):
            log.info("kafka %s: partitioner '%s' read as 'hash': records of one key must stay in order",
                     self.where, self.partitioner)
        self._admin = AIOKafkaAdminClient(**self._kwargs())
        self._producer = AIOKafkaProducer(acks="all", enable_idempotence=True,
                                          partitioner=SaramaHashPartitioner(), **self._kwargs())
        try:
            await self._admin.start()
            await self._ensure_topic()
            await self._producer.start()
        except BusError as exc:
            await self.close()
            self.health, self.cause = Health.DISCONNECTED, str(exc).removeprefix("kafka ")
            raise
        except (TimeoutError, KafkaError, OSError) as exc:
            await self.close()
            self.health, self.cause = Health.DISCONNECTED, f"{self.where}: {describe(exc)}"
            raise BusError(f"kafka {self.cause}") from None
        self._set_health(Health.CONNECTED, "")
        self._watcher = asyncio.create_task(self._watch())

    async def _probe(self) -> str | None:
        """None if one broker accepts a connection (TLS and SASL included), else every broker's cause."""
        return await probe(self.brokers, self.security, self.client_id)

    async def _ensure_topic(self) -> None:
        (meta,) = await self._admin.describe_topics([self.topic])
        code = meta["error_code"]
        if code == 0:
            return
        if code != _UNKNOWN_TOPIC:
            raise BusError(f"kafka {self.where}: topic '{self.topic}': {for_code(code).__name__}")
        replicas = min(3, len((await self._admin.describe_cluster())["brokers"]))
        response = await self._admin.create_topics([NewTopic(self.topic, self.partitions, max(1, replicas))])
        _, code, message = response.topic_errors[0]
        if code not in (0, _TOPIC_EXISTS):
            raise BusError(f"kafka {self.where}: topic '{self.topic}' does not exist and could not be "
                           f"created: {for_code(code).__name__}: {message}")
        for _ in range(100):  # the topic is usable once every partition has a leader
            (meta,) = await self._admin.describe_topics([self.topic])
            parts = meta["partitions"]
            if meta["error_code"] == 0 and parts and all(p["leader"] >= 0 for p in parts):
                break
            await asyncio.sleep(0.1)
        log.info("kafka %s: created topic '%s' with %d partitions", self.where, self.topic, self.partitions)

    def traffic(self) -> None:
        """Records moved: the brokers are reachable whatever the last health check said."""
        if self.health is Health.DISCONNECTED:
            self._set_health(Health.CONNECTED, "")

    def _set_health(self, health: Health, cause: str) -> None:
        if health is Health.DISCONNECTED and (self.health is not Health.DISCONNECTED or cause != self.cause):
            log.error("kafka %s", cause)
        elif health is Health.CONNECTED and self.health is Health.DISCONNECTED:
            log.warning("kafka %s: connected again", self.where)
        self.health, self.cause = health, cause

    async def _watch(self) -> None:
        """Health: a metadata request every few seconds; while the brokers are away, checks back off."""
        delay = HEALTH_INTERVAL
        while True:
            await asyncio.sleep(delay)
            try:
                await asyncio.wait_for(self._ensure_topic(), PROBE_TIMEOUT)
            except (TimeoutError, KafkaError, OSError, BusError) as exc:
                cause = await self._probe() or (str(exc) if isinstance(exc, BusError) else
                                                f"{self.where}: {describe(exc)}")
                self._set_health(Health.DISCONNECTED, cause.removeprefix("kafka "))
                delay = min(MAX_BACKOFF, delay * 2)
            else:
                self._set_health(Health.CONNECTED, "")
                delay = HEALTH_INTERVAL

    # -- publishing ------------------------------------------------------------------------------------------
    async def publish(self, key: EventKey, event_id: str, body: bytes) -> None:
        await (await self._send(key, body))
        self.traffic()

    async def publish_many(self, items: Sequence[tuple[EventKey, str, bytes]]) -> None:
        futures = [await self._send(key, body) for key, _, body in items]
        results = await asyncio.gather(*futures, return_exceptions=True)
        failed = [r for r in results if isinstance(r, BaseException)]
        if failed:
            raise BusError(f"kafka {self.where}: {len(failed)} of {len(items)} events not stored: "
                           f"{describe(failed[0])}")
        self.traffic()

    async def _send(self, key: EventKey, body: bytes) -> asyncio.Future[Any]:
        if self._producer is None:
            raise BusError(f"kafka {self.where}: bus not started")
        try:
            future: asyncio.Future[Any] = await self._producer.send(self.topic, value=body,
                                                                    key=key.dotted().encode())
        except MessageSizeTooLargeError:
            raise EventTooLarge(f"kafka {self.where}: an event of {len(body)} bytes for {key.dotted()} is larger "
                                "than the producer's request limit") from None
        except (TimeoutError, KafkaError) as exc:
            raise BusError(f"kafka {self.where}: publishing {key.dotted()} to '{self.topic}' failed: "
                           f"{describe(exc)}{self._while_down()}") from None
        return asyncio.ensure_future(self._stored(key, future))

    def _while_down(self) -> str:
        return f" (while {self.cause})" if self.health is Health.DISCONNECTED else ""

    async def _stored(self, key: EventKey, future: asyncio.Future[Any]) -> None:
        """The idempotent producer retries until the broker takes the record; the caller waits at most
        `request_timeout` for that. After a timeout the record may still be stored later (at least once)."""
        try:
            await asyncio.wait_for(asyncio.shield(future), self.request_timeout)
        except TimeoutError:
            raise BusError(f"kafka {self.where}: publishing {key.dotted()} to '{self.topic}' not confirmed "
                           f"within {self.request_timeout:.0f}s{self._while_down()}") from None
        except KafkaError as exc:
            raise BusError(f"kafka {self.where}: publishing {key.dotted()} to '{self.topic}' failed: "
                           f"{describe(exc)}{self._while_down()}") from None

    # -- dead letters ----------------------------------------------------------------------------------------
    async def publish_dead_letter(self, sensor: str, attributes: Mapping[str, str], body: bytes) -> None:
        """Topic `sensorium-dlq` (one partition, kept DLQ_RETENTION_MS, created on first use), record key
        `sensor`, headers `ce_<attribute>` (CloudEvents Kafka binary mode) and `content-type`."""
        if self._producer is None:
            raise BusError(f"kafka {self.where}: bus not started")
        attrs, data = fit_dead_letter(attributes, body, DLQ_MAX_MESSAGE)
        headers = [(f"ce_{name}", value.encode()) for name, value in attrs.items() if name != "datacontenttype"]
        if "datacontenttype" in attrs:
            headers.append(("content-type", attrs["datacontenttype"].encode()))
        try:
            if not self._dlq_ready:
                async with self._dlq_lock:
                    if not self._dlq_ready:
                        await asyncio.wait_for(self._ensure_dead_letter_topic(), self.request_timeout)
                        self._dlq_ready = True
            future = await self._producer.send(DEAD_LETTERS, value=data, key=sensor.encode(), headers=headers)
            await asyncio.wait_for(asyncio.shield(future), self.request_timeout)
        except (TimeoutError, KafkaError, OSError) as exc:
            raise BusError(f"kafka {self.where}: dead letter to '{DEAD_LETTERS}' not stored: "
                           f"{describe(exc)}{self._while_down()}") from None
        self.traffic()

    async def _ensure_dead_letter_topic(self) -> None:
        (meta,) = await self._admin.describe_topics([DEAD_LETTERS])
        if meta["error_code"] == 0:
            return
        replicas = min(3, len((await self._admin.describe_cluster())["brokers"]))
        response = await self._admin.create_topics([NewTopic(DEAD_LETTERS, 1, max(1, replicas), topic_configs={
            "retention.ms": str(DLQ_RETENTION_MS), "cleanup.policy": "delete"})])
        _, code, message = response.topic_errors[0]
        if code not in (0, _TOPIC_EXISTS):
            raise BusError(f"kafka {self.where}: topic '{DEAD_LETTERS}' could not be created: "
                           f"{for_code(code).__name__}: {message}")
        for _ in range(100):
            (meta,) = await self._admin.describe_topics([DEAD_LETTERS])
            if meta["error_code"] == 0 and meta["partitions"] and all(p["leader"] >= 0 for p in meta["partitions"]):
                break
            await asyncio.sleep(0.1)
        log.info("kafka %s: created topic '%s' (dead letters)", self.where, DEAD_LETTERS)

    # -- consuming -------------------------------------------------------------------------------------------
    def group_for(self, spec: ConsumerSpec) -> str:
        if not self.group_name:
            return spec.name
        if self._group_owner not in (None, spec.name):
            raise BusError(f"kafka {self.where}: consumerGroup.groupName '{self.group_name}' would be shared "
                           f"by '{self._group_owner}' and '{spec.name}', each seeing only part of the events")
        self._group_owner = spec.name
        return self.group_name

    async def consumer(self, spec: ConsumerSpec) -> KafkaGroupConsumer:
        if self._producer is None:
            raise BusError(f"kafka {self.where}: bus not started")
        group = self.group_for(spec)
        session_ms = int(self.session_timeout * 1000)
        where = f"{self.where} group '{group}'"
        # the member's keys, read when the consumer joins the group (in start(), after `member` exists below)
        assignor = keyed(ASSIGNORS[self.rebalance_strategy], lambda: member.keys, where)
        consumer = AIOKafkaConsumer(
            group_id=group, enable_auto_commit=False,
            auto_offset_reset="earliest" if self.oldest else "latest", isolation_level="read_committed",
            partition_assignment_strategy=(assignor,),
            session_timeout_ms=session_ms, heartbeat_interval_ms=min(1000, session_ms // 3),
            # heartbeats run in the background; a runner busy with slow firings may fetch rarely
            max_poll_interval_ms=3_600_000, rebalance_timeout_ms=60_000, **self._kwargs())
        member = KafkaGroupConsumer(consumer, spec, where, self.traffic)
        consumer.subscribe([self.topic], listener=member.listener)
        limit = self.session_timeout + self.request_timeout
        try:  # start() returns once the group has assigned this member its partitions
            await asyncio.wait_for(consumer.start(), limit)
            await member.pin_positions(limit, spec.start_after)
        except (TimeoutError, KafkaError, OSError) as exc:
            await quietly(consumer.stop(), PROBE_TIMEOUT)
            cause = "no partition assignment in time" if isinstance(exc, TimeoutError) else describe(exc)
            raise BusError(f"kafka {self.where}: consumer group '{group}': {cause}") from None
        self._consumers.append(member)
        return member

    async def consumer_positions(self, names: Sequence[str]) -> dict[str, Mark]:
        """The groups among `names` with offsets committed on the topic (none with `consumerGroup.groupName`,
        which every consumer shares), each with its committed offset of each partition (`Mark`): its records
        from there on are what it has not consumed."""
        if self._admin is None:
            raise BusError(f"kafka {self.where}: bus not started")
        if self.group_name:
            return {}
        try:
            existing = {str(g[0]) for g in await self._admin.list_consumer_groups()}
            committed: dict[str, Mark] = {}
            for name in names:
                if name in existing:
                    offsets = await self._admin.list_consumer_group_offsets(name)
                    mine = {str(tp.partition): int(o.offset) for tp, o in offsets.items()
                            if tp.topic == self.topic and o.offset >= 0}
                    if mine:
                        committed[name] = mine
        except (KafkaError, OSError, TimeoutError) as exc:
            raise BusError(f"kafka {self.where}: cannot read consumer groups: {describe(exc)}") from exc
        return committed

    async def state_store(self, sensor: str) -> StateStore:
        """Key `sensor` of the compacted topic `sensorium-state`, created if missing (buses/kafka/state.py)."""
        if self._producer is None:
            raise BusError(f"kafka {self.where}: bus not started")
        self._state = self._state or KafkaStateTopic(self._kwargs(), self.where, request_timeout=self.request_timeout)
        return await self._state.store(sensor)

    async def replay_reader(self, keys: Sequence[EventKey], span: ReplayRange, label: str = "") -> ReplayReader:
        """A consumer without a group on the bus topic, committing nothing (buses/kafka/replay.py)."""
        if self._admin is None:
            raise BusError(f"kafka {self.where}: bus not started")
        try:
            (meta,) = await self._admin.describe_topics([self.topic])
        except (KafkaError, OSError) as exc:
            raise BusError(f"kafka {self.where}: cannot describe topic '{self.topic}': {describe(exc)}") from None
        partitions = [p["partition"] for p in meta.get("partitions", [])] if meta["error_code"] == 0 else []
        if not partitions:
            raise BusError(f"kafka {self.where}: topic '{self.topic}' has no partitions to replay")
        reader = KafkaReplay(self._kwargs(), self.where, self.topic, partitions, keys, span)
        await reader.open()
        return reader

    def trace_channel(self) -> TraceChannel:
        """Topic `sensorium-trace`, on a producer of its own (buses/kafka/trace.py)."""
        return KafkaTraceChannel(self.client_options())

    keeps_delivered = True  # (a topic keeps records for its retention, whatever was committed)

    def stored_events(self) -> KafkaStoredEvents:
        """Read by partition and offset on a consumer without a group (buses/kafka/stored.py)."""
        return KafkaStoredEvents(self.client_options(), self.url)

    def read_trace(self, sensor: str | None, start: float | None, follow: bool,
                   idle: float) -> AsyncIterator[bytes]:
        return read_trace(self.client_options(), self.url, sensor, start, follow, idle)

    async def close(self) -> None:
        if self._state is not None:
            await self._state.close()
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
            self._watcher = None
        for member in self._consumers:
            await member.close()
        self._consumers.clear()
        producer, admin, self._producer, self._admin = self._producer, self._admin, None, None
        if producer is not None:
            await quietly(producer.stop(), min(self.request_timeout, 10.0))
        if admin is not None:
            await quietly(admin.close(), PROBE_TIMEOUT)
        self.health = Health.CLOSED

"""Replaying stored events from the Kafka topic: a consumer without a group (partitions assigned by hand, seeked
to offsets found with offsets_for_times or given), which never commits anything, so no consumer group's
position moves. It reads up to the end offsets of when it was opened; records of other keys are skipped."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator, Sequence
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from sensorium.buses.base import ALL_PARTITIONS, EventKey, ReplayedDelivery, ReplayRange, ReplayReader
from sensorium.buses.kafka.consumer import quietly, record_headers, record_keys, structured_body
from sensorium.engine.core.errors import BusError, ConfigError
from sensorium.engine.core.kafkaclient import describe

FETCH = 500
FETCH_MS = 1000
STOP_TIMEOUT = 5.0


def when(ms: int | float) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class KafkaReplay(ReplayReader):
    """`open()` assigns and seeks (refusing a start past retention), iterate, `close()` stops the client."""

    def __init__(self, options: dict[str, Any], where: str, topic: str, partitions: Sequence[int],
                 keys: Sequence[EventKey], span: ReplayRange) -> None:
        self._options, self._where, self._topic = options, where, topic
        self._partitions, self._span = sorted(partitions), span
        self._keys = {k.dotted() for k in keys}
        self._consumer: AIOKafkaConsumer | None = None
        self._ends: dict[TopicPartition, int] = {}
        self._next: dict[int, int] = {}  # partition -> offset after the last record handed out

    async def open(self) -> None:
        if self._span.sequence is not None:
            raise ConfigError("--from-sequence is for a JetStream bus; on Kafka start with --from-offset "
                              "OFFSET or PARTITION:OFFSET[,PARTITION:OFFSET] or a time")
        wanted = self._partitions
        offsets = self._span.offsets
        if offsets is not None and ALL_PARTITIONS not in offsets:
            unknown = sorted(set(offsets) - set(wanted))
            if unknown:
                raise ConfigError(f"--from-offset: topic '{self._topic}' has no partition {unknown[0]} (it has "
                                  f"{', '.join(map(str, wanted))})")
            wanted = sorted(offsets)
        consumer = AIOKafkaConsumer(group_id=None, enable_auto_commit=False, isolation_level="read_committed",
                                    auto_offset_reset="none", **self._options)
        self._consumer = consumer
        try:
            await consumer.start()
            tps = [TopicPartition(self._topic, p) for p in wanted]
            consumer.assign(tps)
            begins = await consumer.beginning_offsets(tps)
            self._ends = await consumer.end_offsets(tps)
            starts = {tp: await self._start(consumer, tp, begins[tp]) for tp in tps}
        except KafkaError as exc:
            await self.close()
            raise BusError(f"kafka {self._where}: cannot open a replay reader: {describe(exc)}") from None
        except ConfigError:
            await self.close()
            raise
        for tp, start in starts.items():
            consumer.seek(tp, start)
            self._next[tp.partition] = start
        self._ends = {tp: end for tp, end in self._ends.items() if starts[tp] < end}
        self.total = sum(end - starts[tp] for tp, end in self._ends.items())

    async def _start(self, consumer: AIOKafkaConsumer, tp: TopicPartition, begin: int) -> int:
        """The first offset to read in `tp`; ConfigError for a start past retention (records before `begin`
        were deleted)."""
        span, end = self._span, self._ends[tp]
        if span.offsets is not None:
            offset = span.offsets.get(tp.partition, span.offsets.get(ALL_PARTITIONS, 0))
            if offset < begin:
                raise ConfigError(f"--from-offset {offset} is past the retention of partition {tp.partition} of "
                                  f"topic '{self._topic}': its oldest retained record is offset {begin}")
            return min(offset, end)
        if span.since is None:
            return begin
        if begin > 0 and begin < end:
            oldest = (await consumer.offsets_for_times({tp: 0})).get(tp)
            if oldest is not None and span.since * 1000 < oldest.timestamp:
                raise ConfigError(f"the range starts at {when(span.since * 1000)}, past the retention of topic "
                                  f"'{self._topic}': the oldest record retained in partition {tp.partition} is "
                                  f"offset {oldest.offset} (stored {when(oldest.timestamp)})")
        found = (await consumer.offsets_for_times({tp: int(span.since * 1000)})).get(tp)
        return found.offset if found is not None else end

    async def __aiter__(self) -> AsyncGenerator[ReplayedDelivery, None]:
        consumer = self._consumer
        if consumer is None:
            return
        open_parts = dict(self._ends)
        until_ms = self._span.until * 1000 if self._span.until is not None else None
        while open_parts:
            try:
                batches = await consumer.getmany(*open_parts, timeout_ms=FETCH_MS, max_records=FETCH)
            except KafkaError as exc:
                raise BusError(f"kafka {self._where}: replay read failed: {describe(exc)}") from None
            for tp, records in batches.items():
                for record in records:
                    if tp not in open_parts:
                        break
                    if record.offset >= open_parts[tp] or (until_ms is not None and record.timestamp > until_ms):
                        del open_parts[tp]
                        break
                    self._next[tp.partition] = record.offset + 1
                    self.scanned += 1
                    headers = record_headers(record)
                    if record.offset + 1 >= open_parts[tp]:
                        del open_parts[tp]
                    if not any(key in self._keys for key in record_keys(record, headers)):
                        continue
                    key = "" if record.key is None else bytes(record.key).decode("utf-8", "replace")
                    yield ReplayedDelivery(structured_body(record, headers), headers,
                                           f"{record.topic}[{record.partition}]@{record.offset}",
                                           {"key": key, "topic": record.topic, "partition": str(record.partition),
                                            "offset": str(record.offset)}, record.timestamp / 1000)
            for tp in list(open_parts):  # a partition whose remaining records were all aborted transactions
                with contextlib.suppress(KafkaError):
                    if await consumer.position(tp) >= open_parts[tp]:
                        del open_parts[tp]

    def resume(self) -> str | None:
        if not self._next:
            return None
        return "--from-offset " + ",".join(f"{p}:{o}" for p, o in sorted(self._next.items()))

    async def close(self) -> None:
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            await quietly(consumer.stop(), STOP_TIMEOUT)

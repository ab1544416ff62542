"""Events stored on Kafka, looked up by a delivery's position (`<topic>[<partition>]@<offset>`):
`Bus.stored_events`.

One consumer without a group (it commits nothing) is assigned the partitions asked for, seeks each to the
lowest offset wanted and reads forward to the highest: the positions a trace batch names are a sensor's events of
a fraction of a second, so they lie close together. Offsets before a partition's start (past retention) or at or
after its end are not read. The body is what the engine's consumer hands a sensor (`structured_body`: a binary
-mode CloudEvent as structured JSON), with the record's headers.
"""

from __future__ import annotations

import re
import time
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from sensorium.buses.base import StoredEvents
from sensorium.buses.kafka.consumer import record_headers, structured_body
from sensorium.engine.core.errors import BusError

_POSITION = re.compile(r"(.+)\[(\d{1,9})\]@(\d{1,19})")
READ_TIMEOUT = 10.0  # seconds reading one batch of positions may take at most (a broker that stops answering)


def parse_position(position: str) -> tuple[TopicPartition, int] | None:
    """(partition, offset) of a Kafka position; None for anything else."""
    found = _POSITION.fullmatch(position)
    if found is None:
        return None
    return TopicPartition(found[1], int(found[2])), int(found[3])


class KafkaStoredEvents(StoredEvents):
    """`StoredEvents` on the brokers of `options` (`where` names them in errors)."""

    def __init__(self, options: dict[str, Any], where: str) -> None:
        self.options, self.where = options, where
        self._consumer: AIOKafkaConsumer | None = None
        self._topics: set[str] = set()  # topics known to exist (asked of the brokers again for one not among them)

    async def _started(self) -> AIOKafkaConsumer:
        if self._consumer is None:
            consumer = AIOKafkaConsumer(enable_auto_commit=False, auto_offset_reset="earliest", **self.options)
            try:
                await consumer.start()
            except (KafkaError, OSError) as exc:
                await consumer.stop()
                raise BusError(f"kafka {self.where}: {exc or type(exc).__name__}") from None
            self._consumer = consumer
        return self._consumer

    async def get(self, positions: Sequence[str]) -> dict[str, tuple[bytes, dict[str, str]]]:
        wanted: dict[TopicPartition, dict[int, str]] = defaultdict(dict)
        for position in positions:
            parsed = parse_position(position)
            if parsed is not None:
                wanted[parsed[0]][parsed[1]] = position
        out: dict[str, tuple[bytes, dict[str, str]]] = {}
        if not wanted:
            return out
        consumer = await self._started()
        try:
            if not {tp.topic for tp in wanted} <= self._topics:
                self._topics = set(await consumer.topics())
            tps = [tp for tp in wanted if tp.topic in self._topics]
            if not tps:
                return out
            consumer.assign(tps)
            first, ends = await consumer.beginning_offsets(tps), await consumer.end_offsets(tps)
            left: dict[TopicPartition, dict[int, str]] = {}
            for tp in tps:
                offsets = {o: p for o, p in wanted[tp].items() if first[tp] <= o < ends[tp]}
                if offsets:
                    consumer.seek(tp, min(offsets))
                    left[tp] = offsets
                else:
                    consumer.pause(tp)
            deadline = time.monotonic() + READ_TIMEOUT
            while left and time.monotonic() < deadline:
                batches = await consumer.getmany(*left, timeout_ms=500, max_records=1000)
                for tp, records in batches.items():
                    offsets = left.get(tp, {})
                    for record in records:
                        position = offsets.pop(record.offset, "")
                        if position:
                            headers = record_headers(record)
                            out[position] = (structured_body(record, headers), headers)
                    if tp in left and (not offsets or (records and records[-1].offset >= max(offsets))):
                        del left[tp]  # (an offset passed over is not in the log: a transaction marker, compaction)
                        consumer.pause(tp)
        except KafkaError as exc:
            raise BusError(f"kafka {self.where}: stored events could not be read: {exc}") from None
        return out

    async def close(self) -> None:
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            try:
                await consumer.stop()
            except (KafkaError, OSError):  # (stopping a consumer whose brokers went away)
                pass

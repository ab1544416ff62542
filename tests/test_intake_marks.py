"""Where a new sensor starts (`buses.base.Mark`), unit level: which deliveries count as published before a mark,
and which stored marks the intake takes back (tests/test_intake.py runs them on real buses)."""

from __future__ import annotations

import json
import logging
from types import SimpleNamespace
from typing import Any

import pytest
from aiokafka import TopicPartition

from sensorium.buses.base import Delivery
from sensorium.buses.kafka.consumer import KafkaDelivery, PartitionOffsets
from sensorium.buses.memory import MemoryBus
from sensorium.engine.intake import Intake, IntakeSettings, earliest


class Plain(Delivery):
    def __init__(self, order: int) -> None:
        super().__init__(b"", {}, f"s seq {order}")
        self.order = order

    async def _ack(self) -> None:
        return None

    async def _nak(self, delay: float) -> None:
        return None


def kafka(partition: int, offset: int, timestamp: int) -> KafkaDelivery:
    record = SimpleNamespace(key=b"src.e", topic="argo-events", partition=partition, offset=offset,
                             timestamp=timestamp)
    return KafkaDelivery(Any, PartitionOffsets(TopicPartition("argo-events", partition)), record, b"", {})  # type: ignore[arg-type]


def test_an_order_is_before_a_mark_up_to_and_including_it() -> None:
    assert Plain(5).published_before(5) and Plain(4).published_before(5)
    assert not Plain(6).published_before(5)
    assert not Plain(0).published_before(5)  # the bus does not say: delivered (at least once)
    assert not Plain(3).published_before({"0": 10})  # a mark this bus does not read: delivered


def test_a_kafka_record_is_before_a_mark_by_its_partitions_offset_not_its_time() -> None:
    mark = {"0": 100, "1": 7}
    assert kafka(0, 99, timestamp=10**13).published_before(mark)  # a clock far ahead changes nothing
    assert not kafka(0, 100, timestamp=1).published_before(mark)  # nor one far behind
    assert kafka(1, 6, timestamp=1).published_before(mark) and not kafka(1, 7, timestamp=1).published_before(mark)
    assert not kafka(2, 0, timestamp=1).published_before(mark)  # a partition added after the mark: all new


def test_a_kafka_mark_stored_by_an_earlier_version_is_a_time() -> None:
    assert kafka(0, 5, timestamp=1_000).published_before(1_000)
    assert not kafka(0, 5, timestamp=1_001).published_before(1_000)


def test_the_earliest_of_marks_is_the_lowest_order_or_each_partitions_lowest_offset() -> None:
    assert earliest([7, 3, 9]) == 3
    assert earliest([{"0": 5, "1": 9}, {"0": 7, "1": 2, "2": 4}]) == {"0": 5, "1": 2, "2": 4}


@pytest.mark.parametrize("stored, kept", [
    ({"a": 12, "b": {"0": 3, "1": 0}}, {"a": 12, "b": {"0": 3, "1": 0}}),
    ({"a": 12, "bad": "12", "worse": [1], "worst": {"0": "x"}, "flag": True}, {"a": 12}),
    ("not an object", {}),
])
async def test_stored_marks_that_are_not_bus_positions_are_dropped_with_one_error(
        stored: Any, kept: dict[str, Any], caplog: pytest.LogCaptureFixture) -> None:
    bus = MemoryBus()
    await bus.start()
    store = await bus.state_store("intake.g")
    await store.save(json.dumps({"marks": stored}).encode())
    intake = Intake(bus, IntakeSettings(group="g"))
    with caplog.at_level(logging.ERROR):
        await intake._load_marks()
    assert intake._marks == kept
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    if kept == stored:
        assert errors == []
    else:
        assert len(errors) == 1 and "intake g: stored start positions" in errors[0]
        if isinstance(stored, dict):
            assert "bad, flag, worse, worst" in errors[0]
    await bus.close()

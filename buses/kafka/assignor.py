"""Partition assignors that tell the group leader when the members of one consumer group listen to different
events: two deployments that share a group name (`sensorium run --group`) each take the other's records (and
settle the ones they have no sensor for), so one of them says so. Each member's subscription metadata carries
a fingerprint of its event keys (`user_data`, which the range and round-robin assignors leave empty); the leader
compares them when it assigns. The sticky assignor keeps its own `user_data` and is not wrapped. Members of an
older version send no fingerprint and are not compared."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from aiokafka.coordinator.assignors.sticky.sticky_assignor import StickyPartitionAssignor
from aiokafka.coordinator.protocol import ConsumerProtocolMemberMetadata

log = logging.getLogger("buses.kafka.bus")


def fingerprint(keys: Iterable[str]) -> bytes:
    """16 bytes naming a set of event keys (`<eventSourceName>.<eventName>`)."""
    return hashlib.sha256("\n".join(sorted(keys)).encode()).digest()[:16]


def keyed(base: Any, keys: Callable[[], Iterable[str]], where: str) -> Any:
    """`base` (an aiokafka assignor class) whose metadata carries `fingerprint(keys())` and whose `assign` logs an
    ERROR when members carry different fingerprints (then assigns as `base` does)."""
    if issubclass(base, StickyPartitionAssignor):
        return base

    def metadata(cls: Any, topics: Iterable[str]) -> ConsumerProtocolMemberMetadata:
        return ConsumerProtocolMemberMetadata(base.version, list(topics), fingerprint(keys()))

    def assign(cls: Any, cluster: Any, members: Mapping[str, Any]) -> Any:
        prints = {bytes(m.user_data or b"") for m in members.values()} - {b""}
        if len(prints) > 1:
            log.error("kafka %s: the %d members of this consumer group listen to %d different sets of events; "
                      "every engine sharing a group must load the same sensors, so give each deployment on this "
                      "bus its own name (sensorium run --group NAME)", where, len(members), len(prints))
        return base.assign.__func__(cls, cluster, members)

    return type(f"Keyed{base.__name__}", (base,), {"name": base.name, "version": base.version,
                                                    "metadata": classmethod(metadata),
                                                    "assign": classmethod(assign)})

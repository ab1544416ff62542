"""sarama's hash partitioner (Go, `sarama.NewHashPartitioner`), which Argo Events' Kafka bus and Kafka trigger
use: a record with a key goes to the same partition as Argo would send it."""

from __future__ import annotations

import random

from sensorium.engine.goport.fnv import fnv32a


def sarama_hash(key: bytes, partitions: int) -> int:
    """Partition of `key` under sarama's `NewHashPartitioner`: FNV-1a 32, as int32, modulo, sign dropped."""
    h = fnv32a(key)
    signed = h - (1 << 32) if h >= (1 << 31) else h
    return abs(signed) % partitions


class SaramaHashPartitioner:
    """aiokafka's partitioner interface; a record without a key goes to a random partition (sarama's too)."""

    def __call__(self, key: bytes | None, all_partitions: list[int], available: list[int]) -> int:
        if key is None:
            return int(random.choice(available or all_partitions))
        return sorted(all_partitions)[sarama_hash(key, len(all_partitions))]

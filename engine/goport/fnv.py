"""Go's `hash/fnv` New32a (FNV-1a, 32 bits): Argo's durable names, sarama's hash partitioner, state keys.

Pinned by tests/goport/test_strconv.py against Go's own output. Imports nothing from the project.
"""

from __future__ import annotations


def fnv32a(data: bytes | str) -> int:
    """The FNV-1a 32-bit hash of `data` (a str is hashed as its UTF-8 bytes)."""
    h = 0x811C9DC5
    for byte in data.encode() if isinstance(data, str) else data:
        h = ((h ^ byte) * 0x01000193) & 0xFFFFFFFF
    return h

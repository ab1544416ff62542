"""Fuzzed bus messages for the poison-message tests (issue 11), generated from a fixed seed.

`fuzzed(n, seed)` returns `n` messages, each `(kind, body, headers)`: none of them is a CloudEvent (the
generator checks it with the engine's own decoder), so a sensor must dead-letter every one. Kinds: random bytes,
invalid UTF-8, truncated JSON, deep JSON, wrong attribute types, huge data (900 KB), huge numbers, NaN/Infinity,
bad base64, lone surrogates and, when `binary_headers` is set (Kafka), garbage `ce_*` headers.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable

from sensorium.engine.core.cloudevent import DecodeError, decode_delivery

Message = tuple[str, bytes, dict[str, bytes]]


def _envelope(rng: random.Random, **override: object) -> dict[str, object]:
    obj: dict[str, object] = {"specversion": "1.0", "id": f"f{rng.getrandbits(40):x}", "source": "fuzz",
                              "type": "t", "subject": "e", "datacontenttype": "application/json",
                              "data": {"k": rng.random(), "s": "x" * rng.randrange(20)}}
    obj.update(override)
    return obj


def _dump(obj: dict[str, object]) -> bytes:
    return json.dumps(obj).encode()


def random_bytes(rng: random.Random) -> bytes:
    return rng.randbytes(rng.randrange(1, 300))


def invalid_utf8(rng: random.Random) -> bytes:
    raw = _dump(_envelope(rng, data={"s": "PLACEHOLDER"}))
    return raw.replace(b"PLACEHOLDER", rng.choice([b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\xf8\x88\x80\x80"]))


def truncated(rng: random.Random) -> bytes:
    raw = _dump(_envelope(rng))
    return raw[: rng.randrange(1, len(raw) - 1)]


def deep(rng: random.Random) -> bytes:
    levels = rng.choice([600, 1000, 5000, 10_000])
    opener, closer = rng.choice([(b"[", b"]"), (b'{"a":', b"}")])
    inner = opener * levels + b"1" + closer * levels if opener != b"[" else b"[" * levels + b"]" * levels
    raw = _dump(_envelope(rng, data="PLACEHOLDER"))
    return raw.replace(b'"PLACEHOLDER"', inner)


def wrong_types(rng: random.Random) -> bytes:
    field = rng.choice(["id", "source", "type", "specversion", "subject", "time", "datacontenttype", "ext"])
    value = rng.choice([7, 1.5, [], {}, True, None] if field != "ext" else [1.5, [], {}, None])
    if field in ("subject", "time", "datacontenttype") and value is None:
        value = 3
    if field in ("id", "source", "type", "specversion") and value is None:
        value = ""
    return _dump(_envelope(rng, **{field: value}))


def huge_data(rng: random.Random) -> bytes:
    obj = _envelope(rng, data="x" * 900_000)
    del obj["id"]
    return _dump(obj)


def huge_number(rng: random.Random) -> bytes:
    field = rng.choice(["id", "ext", "time", "source"])  # an extension integer may have up to 4,300 digits
    digits = "9" * (5000 if field == "ext" else rng.choice([30, 400, 5000]))
    raw = _dump(_envelope(rng, **{field: "PLACEHOLDER"}))
    return raw.replace(b'"PLACEHOLDER"', digits.encode())


def nan(rng: random.Random) -> bytes:
    raw = _dump(_envelope(rng, data={"v": "PLACEHOLDER"}))
    return raw.replace(b'"PLACEHOLDER"', rng.choice([b"NaN", b"Infinity", b"-Infinity"]))


def bad_base64(rng: random.Random) -> bytes:
    obj = _envelope(rng, data_base64=rng.choice(["@@@@", "abc", "é", "YQ=\n=", "!" * 1000]))
    del obj["data"]
    return _dump(obj)


def lone_surrogate(rng: random.Random) -> bytes:
    raw = _dump(_envelope(rng, data={"s": "PLACEHOLDER"}))
    return raw.replace(b"PLACEHOLDER", rng.choice([b"\\ud800", b"\\udfff", b"a\\udbff b"]))


KINDS: dict[str, Callable[[random.Random], bytes]] = {
    "random bytes": random_bytes, "invalid UTF-8": invalid_utf8, "truncated JSON": truncated, "deep JSON": deep,
    "wrong types": wrong_types, "huge numbers": huge_number, "NaN": nan, "bad base64": bad_base64,
    "lone surrogate": lone_surrogate,
}


def garbage_headers(rng: random.Random) -> tuple[bytes, dict[str, bytes]]:
    """A binary-mode record (Kafka) whose `ce_*` headers are garbage; its value is no structured CloudEvent."""
    headers = {"ce_specversion": rng.choice([b"1.0", b"\xff\xfe", b"2.0", b""]), "ce_source": b"fuzz",
               "ce_subject": b"e"}
    for name in rng.sample(["ce_id", "ce_type", "ce_time", "content-type", "ce_" + "x" * 200], 3):
        headers[name] = rng.choice([b"", b"\x00\x01", b"\xff" * 10, b"v" * 10_000, b"ok"])
    headers["ce_id"] = headers.get("ce_id", b"") if headers["ce_specversion"] == b"1.0" else b"i"
    if headers["ce_specversion"] == b"1.0" and headers["ce_id"] not in (b"",):
        headers["ce_type"] = b""  # an empty required attribute: never a valid event
    return rng.choice([b'{"a":1}', b"", b"[" * 5000, random_bytes(rng)]), headers


def fuzzed(n: int, seed: int = 11, *, binary_headers: bool = False, huge_every: int = 500) -> list[Message]:
    """`n` messages that are not CloudEvents, the kinds in turn (huge data every `huge_every` messages)."""
    rng = random.Random(seed)
    kinds = list(KINDS) + (["garbage ce_* headers"] if binary_headers else [])
    out: list[Message] = []
    for i in range(n):
        headers: dict[str, bytes] = {}
        if i % huge_every == huge_every - 1:
            kind, body = "huge data", huge_data(rng)
        else:
            kind = kinds[i % len(kinds)]
            if kind == "garbage ce_* headers":
                body, headers = garbage_headers(rng)
            else:
                body = KINDS[kind](rng)
        text_headers = {k: v.decode("utf-8", "replace") for k, v in headers.items()}
        try:
            decode_delivery(body, text_headers)
        except DecodeError:
            out.append((kind, body, headers))
        else:
            raise AssertionError(f"fuzzed message {i} ({kind}) is a valid CloudEvent: {body[:200]!r}")
    return out

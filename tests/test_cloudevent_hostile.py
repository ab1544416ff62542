"""The CloudEvent decoder against hostile bus messages: a CloudEvent or a one-line DecodeError, never anything
else, and quickly (issue 11: no poison message)."""

from __future__ import annotations

import base64
import json
import time

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from sensorium.engine.core.cloudevent import (
    MAX_DEPTH,
    CloudEvent,
    DecodeError,
    decode_binary,
    decode_delivery,
    decode_structured,
    encode_structured,
)

HEAD = b'{"specversion":"1.0","id":"1","source":"s","type":"t","subject":"e"'


def envelope(data: bytes) -> bytes:
    return HEAD + b',"data":' + data + b"}"


def deep(levels: int) -> bytes:
    return b"[" * levels + b"]" * levels


HOSTILE: list[tuple[str, bytes, str]] = [
    ("random bytes", bytes(range(256)) * 4, "not UTF-8"),
    ("invalid UTF-8 in data", envelope(b'"caf\xe9"'), "not UTF-8"),
    ("invalid UTF-8 in a key", b'{"\xff":1}', "not UTF-8"),
    ("empty", b"", "not JSON"),
    ("truncated", envelope(b'{"a":[1,2')[:-1], "not JSON"),
    ("truncated string", b'{"specversion":"1.', "not JSON"),
    ("deep data 10,000", envelope(deep(10_000)), f"nested deeper than {MAX_DEPTH}"),
    ("deep data 100,000", envelope(deep(100_000)), f"nested deeper than {MAX_DEPTH}"),
    ("deep just over the limit", envelope(deep(MAX_DEPTH)), f"nested deeper than {MAX_DEPTH}"),
    ("deep objects", envelope(b'{"a":' * 5000 + b"1" + b"}" * 5000), f"nested deeper than {MAX_DEPTH}"),
    ("deep top level", deep(3000), "must be a JSON object"),
    ("array top level", b"[1,2]", "must be a JSON object"),
    ("string top level", b'"x"', "must be a JSON object"),
    ("NaN in data", envelope(b'{"x":NaN}'), "not JSON"),
    ("Infinity in data", envelope(b"-Infinity"), "not JSON"),
    ("NaN attribute", b'{"specversion":"1.0","id":NaN}', "not JSON"),
    ("lone surrogate in data", envelope(b'"\\ud800"'), "lone UTF-16 surrogate"),
    ("lone surrogate in id", b'{"specversion":"1.0","id":"\\udfff","source":"s","type":"t"}', "surrogate"),
    ("id is a number", b'{"specversion":"1.0","id":7,"source":"s","type":"t"}', "'id' must be a string"),
    ("source is an object", b'{"specversion":"1.0","id":"1","source":{},"type":"t"}', "'source' must be"),
    ("specversion is a list", b'{"specversion":["1.0"],"id":"1","source":"s","type":"t"}', "'specversion'"),
    ("specversion 0.3", b'{"specversion":"0.3","id":"1","source":"s","type":"t"}', "unsupported specversion"),
    ("missing id", b'{"specversion":"1.0","source":"s","type":"t"}', "missing required attribute 'id'"),
    ("empty type", b'{"specversion":"1.0","id":"1","source":"s","type":""}', "'type' must not be empty"),
    ("5,000-digit extension", HEAD + b',"n":' + b"9" * 5000 + b"}", "attribute 'n' must be"),
    ("5,000-digit id", b'{"specversion":"1.0","id":' + b"1" * 5000 + b',"source":"s","type":"t"}', "'id'"),
    ("float extension", HEAD + b',"x":1.5}', "attribute 'x' must be"),
    ("null extension", HEAD + b',"x":null}', "extension attribute 'x'"),
    ("long garbage key", HEAD + b',"' + b"\\u0001" * 5000 + b'":[]}', "must be a string"),
    ("bad base64", HEAD + b',"data_base64":"@@@"}', "not valid base64"),
    ("non-ASCII base64", HEAD + b',"data_base64":"\xc3\xa9"}', "not valid base64"),
    ("base64 not a string", HEAD + b',"data_base64":[1]}', "data_base64 must be a string"),
    ("trailing garbage", HEAD + b"} x", "not JSON"),
    ("900 KB data, no id", b'{"specversion":"1.0","source":"s","type":"t","data":"' + b"x" * 900_000 + b'"}',
     "missing required attribute 'id'"),
]


@pytest.mark.parametrize("raw,reason", [(raw, reason) for _, raw, reason in HOSTILE],
                         ids=[name for name, _, _ in HOSTILE])
def test_hostile_message_is_one_decode_error(raw: bytes, reason: str) -> None:
    started = time.perf_counter()
    with pytest.raises(DecodeError) as info:
        decode_structured(raw)
    assert time.perf_counter() - started < 0.5
    message = str(info.value)
    assert reason in message
    assert "\n" not in message and len(message) < 300


def test_lone_surrogate_in_a_text_argument() -> None:
    with pytest.raises(DecodeError, match="not UTF-8"):
        decode_structured('{"specversion":"1.0","id":"\ud800"}')


@pytest.mark.parametrize("data", [
    deep(MAX_DEPTH - 1),  # the envelope is one level: the deepest data that passes
    b"1" + b"0" * 5000,
    b'{"n":-' + b"9" * 5000 + b"e-99999}",
    b'"' + b"\\u00e9" * 1000 + b'"',
    b'"\\ud83d\\ude00 \xf0\x9f\x98\x80"',
    b'{"s":"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["}',
])
def test_odd_but_valid_data_is_kept_exactly(data: bytes) -> None:
    event = decode_structured(envelope(data))
    assert event.data == data


def test_brackets_inside_strings_do_not_count_as_nesting() -> None:
    data = b'["' + b"[" * 2000 + b'\\"' + b"{" * 2000 + b'"]'
    assert decode_structured(envelope(data)).data == data


def test_900_kb_data_is_decoded_fast() -> None:
    data = b'{"blob":"' + b"x" * 900_000 + b'","list":[' + b"1," * 20_000 + b"1]}"
    started = time.perf_counter()
    event = decode_structured(envelope(data))
    assert time.perf_counter() - started < 0.5
    assert event.data == data


def test_data_base64_and_string_data() -> None:
    raw = HEAD + b',"datacontenttype":"text/plain","data_base64":"' + base64.b64encode(b"\x00\xff") + b'"}'
    assert decode_structured(raw).data == b"\x00\xff"
    text = HEAD + b',"datacontenttype":"text/plain","data":"caf\\u00e9 \\"q\\""}'
    assert decode_structured(text).data == 'café "q"'.encode()


def test_deep_data_is_sent_as_base64_not_crashed_on() -> None:
    event = CloudEvent(id="1", source="s", type="t", datacontenttype="application/json", data=deep(10_000))
    raw = encode_structured(event)
    assert b'"data_base64"' in raw
    assert decode_structured(raw).data == deep(10_000)


@pytest.mark.parametrize("headers,reason", [
    ({"ce_specversion": "1.0", "ce_id": "1", "ce_type": "t"}, "missing required attribute 'source'"),
    ({"ce_specversion": "\ufffd\ufffd", "ce_id": "1", "ce_source": "s", "ce_type": "t"}, "unsupported specversion"),
    ({"ce_specversion": "1.0", "ce_id": "", "ce_source": "s", "ce_type": "t"}, "'id' must not be empty"),
    ({"CE_SPECVERSION": "2", "ce_data_base64": "@@"}, "unsupported specversion"),
])
def test_garbage_binary_headers(headers: dict[str, str], reason: str) -> None:
    with pytest.raises(DecodeError, match=reason):
        decode_delivery(b"[[[", headers)


def test_binary_mode_body_is_data_as_is() -> None:
    headers = {"ce_specversion": "1.0", "ce_id": "1", "ce_source": "s", "ce_type": "t", "ce_data": "x"}
    assert decode_delivery(deep(20_000), headers).data == deep(20_000)
    assert decode_binary(headers, b"").data is None


def _valid_envelope() -> st.SearchStrategy[bytes]:
    scalar = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False, allow_infinity=False),
                       st.text(max_size=20))
    data = st.recursive(scalar, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
        st.text(max_size=8), inner, max_size=4), max_leaves=20)
    return st.builds(lambda d, ext: json.dumps({"specversion": "1.0", "id": "i", "source": "s", "type": "t",
                                                **ext, "data": d}).encode(),
                     data, st.dictionaries(st.sampled_from(["x", "y", "id", "time"]), scalar, max_size=2))


def _mutated(raw: bytes, cuts: list[tuple[int, bytes]]) -> bytes:
    out = bytearray(raw)
    for position, piece in cuts:
        at = position % (len(out) + 1)
        out[at:at + len(piece) % 3] = piece
    return bytes(out)


HOSTILE_BYTES = st.one_of(
    st.binary(max_size=300),
    _valid_envelope(),
    st.builds(_mutated, _valid_envelope(), st.lists(st.tuples(st.integers(0, 400), st.binary(max_size=4)),
                                                    min_size=1, max_size=4)),
    st.builds(lambda n, d: envelope(b"[" * n + d), st.integers(0, 3000), st.binary(max_size=8)),
)


@pytest.mark.slow  # fuzz (hypothesis)
@settings(max_examples=600, deadline=1000, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(HOSTILE_BYTES)
@example(envelope(deep(10_000)))
@example(b'{"specversion":"1.0","id":"\\ud800","source":"s","type":"t"}')
@example(HEAD + b',"n":' + b"9" * 5000 + b"}")
@example(b'{"\xff":1}')
@example(b'{"data_base64":{}}')
def test_any_bytes_give_an_event_or_a_decode_error(raw: bytes) -> None:
    started = time.perf_counter()
    try:
        event = decode_structured(raw)
    except DecodeError as exc:
        assert "\n" not in str(exc)
    else:
        assert isinstance(event, CloudEvent) and event.id and event.source and event.type
        assert decode_structured(encode_structured(event)) == event  # what it decoded, it can re-encode
    try:
        decode_delivery(raw, {"ce_specversion": "1.0", "ce_source": "s"})
    except DecodeError:
        pass
    assert time.perf_counter() - started < 0.5


@pytest.mark.parametrize("value,keys", [
    (b"[" * 100_000, []),  # was json.loads: RecursionError in the Kafka consumer's fetch
    (b'{"source":"s","subject":"e","data":' + b"[" * 5000 + b"]" * 5000 + b"}", []),
    (b'{"source":7}', []),
    (b"\xff", []),
    (b'{"source":"s","subject":"e","data":{}}', ["s.e"]),
])
def test_keyless_kafka_record_routing_never_raises(value: bytes, keys: list[str]) -> None:
    from aiokafka.structs import ConsumerRecord

    from sensorium.buses.kafka.consumer import record_keys, structured_body

    record = ConsumerRecord("argo-events", 0, 1, 0, 0, None, value, None, 0, len(value), [])
    assert record_keys(record, {}) == keys
    binary = {"ce_specversion": "1.0", "ce_id": "1", "ce_source": "s", "ce_type": "t"}
    assert decode_delivery(structured_body(record, binary), binary).data == value  # deep data: base64 inside

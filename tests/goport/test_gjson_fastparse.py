"""The C-speed parse of event data (gjson.parse_json via msgspec) answers every path exactly as the pure-Python
scanner does: same raw text, kind, String() and number literals, for compact documents (the fast path) and for
those it hands to the scanner (whitespace, escapes, duplicate keys, invalid JSON)."""

from __future__ import annotations

import pytest

from sensorium.engine.goport.gjson import MISSING, PathResult, _Decoder, _parse_fast, gjson_get_value, parse_json

COMPACT = [
    b'{"a":{"b":[1,2.50,-0.0,1e3,1E-7,{"c":"d"}],"n":null,"t":true,"f":false},"s":"caf\xc3\xa9 \\"q\\" \\\\ \\n"}',
    b'{"big":123456789012345678901234567890,"neg":-42,"arr":[[],{},[{}]],"ctl":"\\u001f","u":"\xe2\x80\xa8<>&"}',
    b'[1.0,"x",[2.000,{"k":0.1}]]',
    b'"just a string"',
    b"12.500",
]
NOT_COMPACT = [
    b'{ "a" : {"b": [1, 2.50]} }',  # whitespace kept in raw
    b'{"a":"\\u00e9\\/"}',  # escapes msgspec would write differently
    b'{"a":1,"a":2}',  # duplicate keys: gjson takes the first
    b'{"a":-0}',  # -0 is the integer 0, written "0"
    b'{"a":"\xff"}',  # invalid UTF-8
    b'{"a":NaN}',
    b'{"a":',
    b"[" * 101 + b"]" * 101,  # deep nesting: the scanner's limit and error stay the only ones
]
PATHS = ["a", "a.b", "a.b.1", "a.b.2", "a.b.3", "a.b.4", "a.b.5", "a.b.5.c", "a.b.#", "a.n", "a.t", "s", "big",
         "neg", "arr", "arr.2", "ctl", "u", "0", "2", "2.1", "2.1.k", "@this", "a|@pretty", "a.b|@reverse",
         "a.b.#(c==\"d\")", "{a.t,s}", "@ugly", "a.@keys", "missing", "a.b.9"]


def _slow(doc: bytes) -> object:
    try:
        return _Decoder().decode(doc.decode("utf-8", errors="replace"))
    except ValueError as exc:
        return exc


def _answers(parsed: object) -> list[tuple[bool, str, str, str]]:
    out: list[tuple[bool, str, str, str]] = []
    for path in PATHS:
        r = PathResult.of(gjson_get_value(parsed, path))
        out.append((r.exists, r.kind, r.raw, r.string()))
    return out


@pytest.mark.parametrize("doc", COMPACT)
def test_compact_documents_take_the_fast_path_and_answer_like_the_scanner(doc: bytes) -> None:
    fast = _parse_fast(doc)
    assert fast is not MISSING
    assert _answers(fast) == _answers(_slow(doc))
    assert _answers(parse_json(doc)) == _answers(parse_json(doc.decode()))


@pytest.mark.parametrize("doc", NOT_COMPACT)
def test_other_documents_go_to_the_scanner_with_its_answers_and_errors(doc: bytes) -> None:
    assert _parse_fast(doc) is MISSING
    slow = _slow(doc)
    if isinstance(slow, ValueError):
        with pytest.raises(ValueError, match=str(slow).split(":")[0]):
            parse_json(doc)
    else:
        assert _answers(parse_json(doc)) == _answers(slow)

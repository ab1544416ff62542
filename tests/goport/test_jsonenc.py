"""Go's encoding/json output (engine.goport.jsonenc) against a table printed by Go itself (go_outputs.go).

Strings are given as the bytes of a Go string (hex), held here the way the template holds Go strings
(surrogate escapes for bytes that are not UTF-8); values are JSON texts decoded as Go decodes them into
interface{} (every number a float64).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from sensorium.engine.goport.jsonenc import MarshalError, marshal, marshal_string

GO: dict[str, Any] = json.loads((Path(__file__).parent / "go_outputs.json").read_text())


@pytest.mark.parametrize("row", GO["marshal_string"], ids=lambda row: row["hex"] or "empty")
def test_string_matches_go(row: dict[str, str]) -> None:
    s = bytes.fromhex(row["hex"]).decode("utf-8", "surrogateescape")
    assert marshal_string(s) == row["json"]
    assert marshal_string(s, escape_html=False) == row["json_no_html"]
    assert marshal(s) == row["json"]


@pytest.mark.parametrize("row", GO["marshal_value"], ids=lambda row: row["input"][:40])
def test_value_matches_go(row: dict[str, str]) -> None:
    value = json.loads(row["input"], parse_int=float)
    assert marshal(value) == row["json"]
    assert marshal(value, indent="  ") == row["indent"]
    assert marshal(value, escape_html=False) == row["json_no_html"]


def test_bytes_split_from_one_character_join_again() -> None:
    """Bytes of one character cut apart (byte slicing) and put back together are that character again."""
    s = "é".encode()
    joined = s[:1].decode("utf-8", "surrogateescape") + s[1:].decode("utf-8", "surrogateescape")
    assert marshal_string(joined) == '"é"'


def test_unsupported_values_are_go_errors() -> None:
    with pytest.raises(MarshalError, match=r"^json: unsupported value: NaN$"):
        marshal([math.nan])
    with pytest.raises(MarshalError, match=r"^json: unsupported value: \+Inf$"):
        marshal({"a": math.inf})
    with pytest.raises(MarshalError, match=r"^json: unsupported type: object$"):
        marshal(object())


def test_default_stands_in_for_go_marshalers_and_depth_is_bounded() -> None:
    assert marshal({"t": complex(1, 2)}, default=lambda v: f"{v.real}+{v.imag}i") == '{"t":"1.0+2.0i"}'
    deep: list[Any] = []
    for _ in range(10):
        deep = [deep]
    assert marshal(deep, max_depth=10) == "[" * 10 + "[]" + "]" * 10
    with pytest.raises(MarshalError, match="nested too deeply"):
        marshal(deep, max_depth=9)


def test_struct_order_is_kept_when_asked() -> None:
    assert marshal({"b": 1, "a": {"d": 2, "c": 3}}, sort_keys=False) == '{"b":1,"a":{"d":2,"c":3}}'

"""Go's number, duration and hash rules (engine.goport.strconv, .duration, .fnv, .jsonenc) against Go's own output.

`go_outputs.json` was printed by Go 1.26 running `go_outputs.go` (its first key names the command); the hand
tables below were collected from the tests of the modules that once had their own copy of each rule.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from sensorium.engine.goport import jsonenc, strconv
from sensorium.engine.goport.duration import cast_to_duration, parse_duration
from sensorium.engine.goport.fnv import fnv32a

GO: dict[str, Any] = json.loads((Path(__file__).parent / "go_outputs.json").read_text())


@pytest.mark.parametrize("row", GO["format_float"], ids=lambda row: row["value"])
def test_format_float_matches_go(row: dict[str, str]) -> None:
    value = float(row["value"])
    assert strconv.format_float(value, "f", -1) == row["f"]
    assert strconv.format_float(value, "g", -1) == row["g"]
    assert strconv.format_float(value, "e", -1) == row["e"]


@pytest.mark.parametrize("row", GO["format_float"], ids=lambda row: row["value"])
def test_json_float_matches_go(row: dict[str, str]) -> None:
    value = float(row["value"])
    if row["json"].startswith("error: "):
        with pytest.raises(ValueError) as info:
            jsonenc.format_float(value)
        assert str(info.value) == row["json"].removeprefix("error: ")
    else:
        assert jsonenc.format_float(value) == row["json"]


@pytest.mark.parametrize("row", GO["parse_int"], ids=lambda row: repr(row["text"]))
def test_parse_int_matches_go(row: dict[str, str]) -> None:
    assert strconv.parse_int(row["text"]) == (None if row["parse_int"] == "error" else int(row["parse_int"]))
    assert strconv.parse_uint(row["text"]) == (None if row["parse_uint"] == "error" else int(row["parse_uint"]))


@pytest.mark.parametrize("row", GO["parse_duration"], ids=lambda row: repr(row["text"]))
def test_parse_duration_matches_go(row: dict[str, Any]) -> None:
    if row["nanoseconds"] is None:
        with pytest.raises(ValueError) as info:
            parse_duration(row["text"])
        assert str(info.value) == row["error"]
    else:
        assert parse_duration(row["text"]) == row["nanoseconds"]


@pytest.mark.parametrize("row", GO["fnv32a"], ids=lambda row: repr(row["text"]))
def test_fnv32a_matches_go(row: dict[str, Any]) -> None:
    assert fnv32a(row["text"]) == row["fnv32a"]
    assert fnv32a(row["text"].encode()) == row["fnv32a"]


def test_cast_to_duration_reads_like_viper() -> None:
    """spf13/cast: numbers and unit-less strings are nanoseconds, the rest is time.ParseDuration."""
    assert cast_to_duration(300) == 300
    assert cast_to_duration("300") == 300
    assert cast_to_duration("1h30m") == 5400 * 10**9
    for bad in ("abc", "1d", "", "5 m", True):
        with pytest.raises(ValueError):
            cast_to_duration(bad)


@pytest.mark.parametrize("text,ns", [
    ("0", 0), ("1s", 1_000_000_000), ("10ms", 10_000_000), ("1.5s", 1_500_000_000), ("300us", 300_000),
    ("300µs", 300_000), ("300μs", 300_000), ("7ns", 7), ("1h2m", 3_720_000_000_000), ("-1s", -1_000_000_000),
    ("+2m", 120_000_000_000), (".5s", 500_000_000), ("1.s", 1_000_000_000), ("1m30.5s", 90_500_000_000),
])
def test_parse_duration(text: str, ns: int) -> None:
    assert parse_duration(text) == ns


@pytest.mark.parametrize("text,message", [
    ("", 'time: invalid duration ""'), ("10", 'time: missing unit in duration "10"'),
    ("1x", 'time: unknown unit "x" in duration "1x"'), (".s", 'time: invalid duration ".s"'),
    ("s", 'time: invalid duration "s"'), ("1s 2s", 'time: unknown unit "s " in duration "1s 2s"'),
])
def test_parse_duration_errors(text: str, message: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_duration(text)
    assert str(info.value) == message


@pytest.mark.parametrize(("value", "text"), [
    (1e6, "1e+06"), (123456.0, "123456"), (1234567.0, "1.234567e+06"), (0.0001, "0.0001"), (0.00001, "1e-05"),
    (1.5, "1.5"), (100.0, "100"), (-2.5e-7, "-2.5e-07"), (1e21, "1e+21"), (0.0, "0"), (math.nan, "NaN"),
    (math.inf, "+Inf"),
])
def test_format_float_g_shortest(value: float, text: str) -> None:
    assert strconv.format_float(value, "g", -1) == text


@pytest.mark.parametrize(("value", "text"), [
    (1.0, "1"), (1.5, "1.5"), (1e21, "1000000000000000000000"), (1.5e-7, "0.00000015"), (-0.0, "-0"),
    (math.inf, "+Inf"), (-math.inf, "-Inf"), (math.nan, "NaN"), (0.1 + 0.2, "0.30000000000000004"),
])
def test_format_float_f_shortest(value: float, text: str) -> None:
    assert strconv.format_float(value, "f", -1) == text


@pytest.mark.parametrize("row", GO["parse_float"], ids=lambda row: repr(row["text"]))
def test_parse_float_matches_go(row: dict[str, str]) -> None:
    if "error" in row:
        with pytest.raises(strconv.NumError) as info:
            strconv.parse_float(row["text"])
        assert str(info.value) == row["error"]
        assert strconv.format_float(info.value.value, "g", -1) == row["value"]
    else:
        assert strconv.format_float(strconv.parse_float(row["text"]), "g", -1) == row["value"]


@pytest.mark.parametrize("row", GO["format_float32"], ids=lambda row: row["value"])
def test_format_float32_matches_go(row: dict[str, str]) -> None:
    """FormatFloat(f, verb, prec, 32): the shortest digits that read back as the float32, pinned for every power
    of two (where the gap below is half the gap above) and 300 arbitrary float32 bit patterns."""
    value = float(row["value"])
    assert strconv.format_float(value, "g", -1, 32) == row["g"]
    assert strconv.format_float(value, "e", -1, 32) == row["e"]
    assert strconv.format_float(value, "f", -1, 32) == row["f"]
    assert strconv.format_float(value, "e", 3, 32) == row["e3"]


def test_format_float32_shortest_differs_from_float64() -> None:
    assert strconv.format_float(0.1, "g", -1, 32) == "0.1"
    assert strconv.format_float(strconv.to_float32(0.1), "g", -1, 64) == "0.10000000149011612"
    assert strconv.format_float(1e39, "g", -1, 32) == "+Inf"  # float32(1e39) overflows
    with pytest.raises(ValueError, match="illegal bit size 16"):
        strconv.format_float(1.0, "g", -1, 16)


@pytest.mark.parametrize("row", GO["unmarshal"], ids=lambda row: repr(row["text"]))
def test_unmarshal_matches_go(row: dict[str, str]) -> None:
    """json.Unmarshal into interface{}: value and first type error as Go returns them; syntax errors raise
    (their text is Python's, so only the Go text of NaN/Infinity constants is compared)."""
    if "error" in row and "cannot unmarshal" not in row["error"]:
        with pytest.raises(ValueError) as info:
            jsonenc.unmarshal(row["text"])
        if "looking for beginning of value" in row["error"] and row["error"][19] in "NI":
            assert str(info.value) == row["error"]
        return
    value, error = jsonenc.unmarshal(row["text"])
    assert jsonenc.marshal(value) == row["json"]
    assert (str(error) if error else None) == row.get("error")

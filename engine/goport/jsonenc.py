"""Go `encoding/json` output rules, so bytes built here equal the bytes Argo Events builds.

Compact output; strings escape `<`, `>`, `&`, U+2028 and U+2029 (Go's HTML-safe default), keep other non-ASCII
as UTF-8; map keys sorted; float64 rendered like Go (`1e+21`, `1e-7`, `100`, never `1.0`).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

_HTML = str.maketrans({
    "<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029",
})
_SURROGATE = re.compile("[\ud800-\udfff]")


def marshal_string(s: str) -> str:
    """Go `json.Marshal(string)` (Go >= 1.22: `\\b` and `\\f` short escapes, as Python writes them)."""
    if _SURROGATE.search(s):
        s = _SURROGATE.sub("\ufffd", s)
    return json.dumps(s, ensure_ascii=False).translate(_HTML)


def format_float(f: float) -> str:
    """Go `encoding/json` float64 text: shortest round-trip digits; exponent form below 1e-6 or from 1e21."""
    if math.isnan(f) or math.isinf(f):
        name = "NaN" if math.isnan(f) else ("+Inf" if f > 0 else "-Inf")
        raise ValueError(f"json: unsupported value: {name}")
    if f == 0:
        return "-0" if math.copysign(1.0, f) < 0 else "0"
    sign, digits_t, exp = Decimal(repr(f)).as_tuple()
    assert isinstance(exp, int)
    digits = list(digits_t)
    while len(digits) > 1 and digits[-1] == 0:
        digits.pop()
        exp += 1
    neg = "-" if sign else ""
    if 1e-6 <= abs(f) < 1e21:
        return neg + format(Decimal((0, tuple(digits), exp)), "f")
    exponent = exp + len(digits) - 1
    mantissa = str(digits[0]) + ("." + "".join(map(str, digits[1:])) if len(digits) > 1 else "")
    text = f"{mantissa}e{'-' if exponent < 0 else '+'}{abs(exponent):02d}"
    if text[-4:-1] == "e-0":  # Go cleans e-07 up to e-7
        text = text[:-2] + text[-1]
    return neg + text


def _key(key: Any) -> str:
    if isinstance(key, bool):
        return "true" if key else "false"
    if isinstance(key, float):
        return format_float(key)
    return "null" if key is None else str(key)


def marshal(value: Any) -> str:
    """Go `json.Marshal` of decoded values (maps as `map[string]interface{}`: keys sorted)."""
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return format_float(value)
    if isinstance(value, str):
        return marshal_string(value)
    if isinstance(value, (bytes, bytearray)):
        return marshal_string(bytes(value).decode("utf-8", "replace"))
    if isinstance(value, Mapping):
        items = sorted((_key(k), v) for k, v in value.items())
        return "{" + ",".join(marshal_string(k) + ":" + marshal(v) for k, v in items) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(marshal(v) for v in value) + "]"
    return marshal_string(str(value))


def is_valid_json(text: str) -> bool:
    """Go `json.Unmarshal` into `json.RawMessage` succeeds (no NaN/Infinity, one value). Numbers are checked as
    syntax only, as Go does: no conversion, so a 5,000-digit integer (over Python's int-string limit) is valid.
    Recursive: callers bound the nesting first (sources.webhook.json_depth_exceeds)."""
    def reject(name: str) -> Any:
        raise ValueError(name)

    try:
        json.loads(text, parse_constant=reject, parse_int=str, parse_float=str)
    except ValueError:
        return False
    return True


_INSIGNIFICANT = re.compile(r'("(?:[^"\\]|\\.)*")|[ \t\n\r]+', re.DOTALL)


def compact(text: str) -> str:
    """What Go's `json.Marshal` writes for a `json.RawMessage` holding valid JSON `text`: insignificant whitespace
    removed (number literals and escapes kept as written) and `<`, `>`, `&`, U+2028, U+2029 escaped inside strings.
    Argo's webhook event data is built this way, so paths like `dataKey: body` see the same bytes here."""
    return _INSIGNIFICANT.sub(lambda m: m.group(1).translate(_HTML) if m.group(1) else "", text)

"""Go `encoding/json` output rules, so bytes built here equal the bytes Argo Events builds.

Compact output; strings escape `<`, `>`, `&`, U+2028 and U+2029 (Go's HTML-safe default), keep other non-ASCII
as UTF-8; map keys sorted; float64 rendered like Go (`1e+21`, `1e-7`, `100`, never `1.0`).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any

from sensorium.engine.goport import strconv

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
    """Go `encoding/json` float64 text (floatEncoder): strconv's shortest 'f' form, or 'e' below 1e-6 or from
    1e21 with the exponent cleaned up (`e-07` -> `e-7`). NaN and infinities are a ValueError as in Go."""
    if math.isnan(f) or math.isinf(f):
        raise ValueError(f"json: unsupported value: {strconv.format_float(f, 'g', -1)}")
    a = abs(f)
    if a != 0 and (a < 1e-6 or a >= 1e21):
        text = strconv.format_float(f, "e", -1)
        if len(text) >= 4 and text[-4] == "e" and text[-3] == "-" and text[-2] == "0":
            text = text[:-2] + text[-1]
        return text
    return strconv.format_float(f, "f", -1)


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

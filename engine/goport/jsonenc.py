"""Go `encoding/json` output rules, so bytes built here equal the bytes Argo Events builds: the one encoder of
the project (webhook event data, trigger payloads, transforms, go-yaml's JSON, sjson, the template's toJson).

Compact or indented output; strings escape `<`, `>`, `&` (Go's HTML-safe default, optional), U+2028 and U+2029,
keep other non-ASCII as UTF-8, write each byte that is not UTF-8 as `\\ufffd`; map keys sorted by their bytes;
float64 rendered like Go (`1e+21`, `1e-7`, `100`, never `1.0`). Pinned by tests/goport/test_jsonenc.py against
Go's own output.
"""

from __future__ import annotations

import codecs
import json
import math
import re
from collections.abc import Callable, Mapping
from typing import Any

from sensorium.engine.goport import strconv

_HTML = str.maketrans({
    "<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029",
})
_LINE_SEPS = str.maketrans({"\u2028": "\\u2028", "\u2029": "\\u2029"})
_SURROGATE = re.compile("[\ud800-\udfff]")
_NOT_ESCAPE = re.compile("[\ud800-\udc7f\udd00-\udfff]")
_BAD_BYTE = "\ud800"  # stands for one byte that is not UTF-8 between decoding and escaping


class MarshalError(ValueError):
    """Go's json.Marshal error, with Go's text (`json: unsupported value: NaN`, `json: unsupported type: ...`)."""


def _one_bad_byte(exc: UnicodeError) -> tuple[str, int]:
    assert isinstance(exc, UnicodeDecodeError)
    return _BAD_BYTE, exc.start + 1  # Go replaces each invalid byte on its own (utf8.DecodeRune's width 1)


codecs.register_error("sensorium-go-json", _one_bad_byte)


def marshal_string(s: str, escape_html: bool = True) -> str:
    """Go's encoding/json string encoder (`appendString`): `\\"`, `\\\\`, `\\b \\f \\n \\r \\t`, other controls
    as `\\u00XX`, U+2028/U+2029 as escapes, `<`, `>`, `&` as `\\u003c`... unless `escape_html` is False
    (Encoder.SetEscapeHTML(false)),
    other text (and DEL) as UTF-8.

    `s` is a Go string: U+DC80..U+DCFF are surrogate escapes of bytes that are not UTF-8 (how the template holds
    Go strings); each such byte that does not form UTF-8 with its neighbours is written `\\ufffd` as Go does.
    Any other lone surrogate (decoded from a JSON `\\ud800`) is the U+FFFD Go's decoder would have made of it."""
    if _SURROGATE.search(s):
        s = _NOT_ESCAPE.sub("\ufffd", s)
        if _SURROGATE.search(s):
            s = s.encode("utf-8", "surrogateescape").decode("utf-8", "sensorium-go-json")
    text = json.dumps(s, ensure_ascii=False).translate(_HTML if escape_html else _LINE_SEPS)
    return text.replace(_BAD_BYTE, "\\ufffd") if _BAD_BYTE in text else text


def format_float(f: float) -> str:
    """Go `encoding/json` float64 text (floatEncoder): strconv's shortest 'f' form, or 'e' below 1e-6 or from
    1e21 with the exponent cleaned up (`e-07` -> `e-7`). NaN and infinities are a MarshalError as in Go."""
    if math.isnan(f) or math.isinf(f):
        raise MarshalError(f"json: unsupported value: {strconv.format_float(f, 'g', -1)}")
    a = abs(f)
    if a != 0 and (a < 1e-6 or a >= 1e21):
        text = strconv.format_float(f, "e", -1)
        if len(text) >= 4 and text[-4] == "e" and text[-3] == "-" and text[-2] == "0":
            text = text[:-2] + text[-1]
        return text
    return strconv.format_float(f, "f", -1)


def _key(key: Any) -> str:
    """A map key as text: strings as they are; Go's text of bool, float and nil keys (decoded YAML, Lua tables)."""
    if isinstance(key, str):
        return key
    if isinstance(key, bool):
        return "true" if key else "false"
    if isinstance(key, float):
        return format_float(key)
    return "null" if key is None else str(key)


def _go_order(key: str) -> bytes:
    return key.encode("utf-8", "surrogateescape") if not _NOT_ESCAPE.search(key) else key.encode("utf-8", "replace")


def marshal(value: Any, *, escape_html: bool = True, indent: str | None = None, sort_keys: bool = True,
            default: Callable[[Any], Any] | None = None, max_depth: int | None = None) -> str:
    """Go `json.Marshal` of decoded values, or `json.MarshalIndent(v, "", indent)` with `indent`.

    Maps are `map[string]interface{}`: keys sorted by their bytes as Go does (`sort_keys=False` keeps the mapping's
    order, for Go structs whose fields marshal in declaration order); `escape_html=False` is
    Encoder.SetEscapeHTML(false). Ints (and int subclasses) print as integers, floats by `format_float`, bytes as the
    Go string they hold. Any other value goes to `default` (Go's Marshaler: it returns a value to encode in its
    place, or raises) and is a MarshalError without one. Deeper than `max_depth` is a MarshalError (Go has no bound;
    callers that take hostile input set one or bound the input first)."""
    return _Encoder(escape_html, indent, sort_keys, default, max_depth).encode(value, 0)


class _Encoder:
    def __init__(self, escape_html: bool, indent: str | None, sort_keys: bool,
                 default: Callable[[Any], Any] | None, max_depth: int | None) -> None:
        self.escape_html = escape_html
        self.indent = indent
        self.sort_keys = sort_keys
        self.default = default
        self.max_depth = max_depth

    def encode(self, value: Any, depth: int) -> str:
        if self.max_depth is not None and depth > self.max_depth:
            raise MarshalError("json: unsupported value: encountered a cycle or a value nested too deeply")
        if value is None:
            return "null"
        if value is True:
            return "true"
        if value is False:
            return "false"
        if isinstance(value, str):
            return marshal_string(value, self.escape_html)
        if isinstance(value, int):
            return str(int(value))
        if isinstance(value, float):
            return format_float(value)
        if isinstance(value, Mapping):
            if not value:
                return "{}"
            keyed = [(_key(k), v) for k, v in value.items()]
            if self.sort_keys:
                if all(k.isascii() for k, _ in keyed):
                    keyed.sort(key=lambda kv: kv[0])
                else:
                    keyed.sort(key=lambda kv: _go_order(kv[0]))
            colon = ":" if self.indent is None else ": "
            return self._wrap("{", [marshal_string(k, self.escape_html) + colon + self.encode(v, depth + 1)
                                    for k, v in keyed], "}", depth)
        if isinstance(value, (list, tuple)):
            if not value:
                return "[]"
            return self._wrap("[", [self.encode(v, depth + 1) for v in value], "]", depth)
        if isinstance(value, (bytes, bytearray)):
            return marshal_string(bytes(value).decode("utf-8", "surrogateescape"), self.escape_html)
        if self.default is None:
            raise MarshalError(f"json: unsupported type: {type(value).__name__}")
        return self.encode(self.default(value), depth)

    def _wrap(self, open_: str, items: list[str], close: str, depth: int) -> str:
        if self.indent is None:
            return open_ + ",".join(items) + close
        inner = "\n" + self.indent * (depth + 1)
        return open_ + inner + ("," + inner).join(items) + "\n" + self.indent * depth + close


class UnmarshalTypeError(ValueError):
    """Go's *json.UnmarshalTypeError: `json: cannot unmarshal number 1e400 into Go value of type float64`."""

    @classmethod
    def number(cls, literal: str) -> UnmarshalTypeError:
        """The error for a JSON number out of float64's range."""
        return cls(f"json: cannot unmarshal number {literal} into Go value of type float64")


def _reject_constant(name: str) -> Any:
    raise ValueError(f"invalid character '{name[0]}' looking for beginning of value")


def unmarshal(text: str) -> tuple[Any, UnmarshalTypeError | None]:
    """Go `json.Unmarshal([]byte(text), &v)` with `v interface{}`: every number is a float64 read by
    strconv.parse_float; the result and the first type error, as Go returns them.

    A syntax error raises ValueError (json.JSONDecodeError, or Go's `invalid character 'N' looking for beginning
    of value` for NaN/Infinity), before any type error, since Go checks the whole text first. A number out of
    float64's range is a type error, not a failure: decoding goes on, the number's place holds nil (Go leaves
    the interface unset) and the error is returned with the value (sprig's fromJson ignores it, mustFromJson and
    transforms report it). Recursive: RecursionError past Python's limit (callers catch it or bound the nesting)."""
    errors: list[UnmarshalTypeError] = []

    def number(literal: str) -> float | None:
        try:
            return strconv.parse_float(literal)
        except strconv.NumError:  # only out of range: JSON's grammar is within ParseFloat's
            errors.append(UnmarshalTypeError.number(literal))
            return None

    value = json.loads(text, parse_float=number, parse_int=number, parse_constant=_reject_constant)
    return value, (errors[0] if errors else None)


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

"""Go value model behind engine.goport.template (Go library): errors, Go types, truth, strings as bytes, encoding/json.

Python stands in for Go values as follows (only JSON-like data ever reaches a template):

| Go                         | Python                     |
|----------------------------|----------------------------|
| invalid `reflect.Value`    | `MISSING`                  |
| nil `interface{}`          | `None`                     |
| `bool` / `string`          | `bool` / `str`             |
| `int` / `int64` / `uint8`  | `int` / `Int64` / `Uint8`  |
| `float64`                  | `float` (all JSON numbers) |
| `map[string]interface {}`  | `dict`                     |
| `map[string]string`        | `StrMap`                   |
| `[]interface {}`           | `list`                     |
| `[]string`                 | `StrList`                  |
| `time.Time`                | aware `datetime`           |

Go strings are byte strings: byte-indexed operations go through `to_bytes`/`from_bytes`, which keep bytes that
are not UTF-8 as surrogate escapes so that `b64enc (b64dec x)` round-trips like Go.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any, Final

from sensorium.engine.goport import jsonenc


class TemplateError(ValueError):
    """Any template failure; the message follows Go's `template: <name>:<line>: ...` form."""


class TemplateParseError(TemplateError):
    """Go's parser rejects the template too (Argo Events would fail at run time and fall back)."""


class TemplateUnsupportedError(TemplateError):
    """Valid Go template outside Sensorium's documented subset: reported when the sensor is loaded."""


class TemplateExecError(TemplateError):
    """Execution failed; Go's exec error text (`template: param:1:3: executing "param" at <...>: ...`)."""


class TemplateLimitError(TemplateExecError):
    """A sandbox limit (steps, output size, value size, time, nesting) stopped execution."""


class FuncError(Exception):
    """Raised by a function: Go's returned error or recovered panic text (becomes `error calling f: ...`)."""


class _Missing:
    __slots__ = ()

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Final[Any] = _Missing()
"""Go's invalid reflect.Value: a missing map key, or a nil interface once a pipeline command returned it."""

MAX_DEPTH: Final = 200
"""Nesting bound for walking values (printing, JSON, copying); a deeper (or cyclic) value is an error."""


class Int64(int):
    """Go int64 (sprig arithmetic results)."""


class Uint8(int):
    """Go uint8 (a byte from `index` on a string)."""


class StrList(list[str]):
    """Go []string (splitList, keys, sortAlpha, regexFindAll ...)."""


class StrMap(dict[str, str]):
    """Go map[string]string (sprig `split`)."""


def type_name(v: Any) -> str:
    """Go's reflect.Type String() of the value (`%T`)."""
    if v is None or v is MISSING:
        return "<nil>"
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, Int64):
        return "int64"
    if isinstance(v, Uint8):
        return "uint8"
    if isinstance(v, int):
        return "int"
    if isinstance(v, float):
        return "float64"
    if isinstance(v, str):
        return "string"
    if isinstance(v, StrMap):
        return "map[string]string"
    if isinstance(v, dict):
        return "map[string]interface {}"
    if isinstance(v, StrList):
        return "[]string"
    if isinstance(v, list):
        return "[]interface {}"
    if isinstance(v, datetime):
        return "time.Time"
    raise TypeError(f"not a Go template value: {type(v).__name__}")


def basic_kind(v: Any) -> str | None:
    """text/template's basicKind: bool, int, uint, float, string; None for everything else."""
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, Uint8):
        return "uint"
    if isinstance(v, int):
        return "int"
    if isinstance(v, float):
        return "float"
    if isinstance(v, str):
        return "string"
    return None


def reflect_kind(v: Any) -> str:
    """reflect.Kind name as sprig prints it (`Cannot find first on type string`)."""
    if v is None or v is MISSING:
        return "invalid"
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, Int64):
        return "int64"
    if isinstance(v, Uint8):
        return "uint8"
    if isinstance(v, int):
        return "int"
    if isinstance(v, float):
        return "float64"
    if isinstance(v, str):
        return "string"
    if isinstance(v, dict):
        return "map"
    if isinstance(v, list):
        return "slice"
    return "struct"


def is_true(v: Any) -> bool:
    """text/template's isTrue (missing and nil are false, empty collections and zero numbers too)."""
    if v is None or v is MISSING:
        return False
    if isinstance(v, (bool, int, float)):
        return v != 0
    if isinstance(v, (str, dict, list)):
        return len(v) > 0
    return True  # time.Time: a struct


def to_bytes(s: str) -> bytes:
    """The Go string's bytes (surrogate escapes become the original bytes again)."""
    try:
        return s.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return s.encode("utf-8", "replace")


def from_bytes(b: bytes) -> str:
    """A Go string from bytes; bytes that are not UTF-8 are kept as surrogate escapes."""
    return b.decode("utf-8", "surrogateescape")


def go_len(s: str) -> int:
    """Go len(string): bytes, not characters."""
    return len(s) if s.isascii() else len(to_bytes(s))


def finish_output(s: str) -> str:
    """Output bytes as text: invalid UTF-8 (from byte slicing or b64dec) becomes U+FFFD."""
    return s if s.isascii() else to_bytes(s).decode("utf-8", "replace")


def _scalar(v: Any) -> Any:
    if v is None or isinstance(v, (bool, str, float)):
        return v
    if isinstance(v, int):
        try:
            return float(v)
        except OverflowError:
            raise TemplateExecError(str(jsonenc.UnmarshalTypeError.number(str(v)))) from None
    if isinstance(v, datetime) and v.tzinfo is not None:
        return v
    raise TemplateExecError(f"template data of type {type(v).__name__} is not JSON-like")


def from_json_value(v: Any) -> Any:
    """Copy JSON-like Python data into Go values: every number becomes float64 like encoding/json's interface{}.

    Iterative (any depth, as Go accepts); shared or cyclic containers are copied once and stay shared."""
    copies: dict[int, Any] = {}
    stack: list[tuple[Any, Any]] = []

    def child(x: Any) -> Any:
        t = type(x)
        if t is str or t is float or t is bool or x is None:
            return x
        if t is int:
            return _scalar(x)
        if t is dict or t is list or t is tuple or isinstance(x, (dict, list, tuple)):
            done = copies.get(id(x))
            if done is not None:
                return done
            new: Any = {} if isinstance(x, dict) else [None] * len(x)
            copies[id(x)] = new
            stack.append((x, new))
            return new
        return _scalar(x)

    root = child(v)
    while stack:
        src, dst = stack.pop()
        if isinstance(dst, dict):
            for k, x in src.items():
                if type(k) is not str:
                    raise TemplateExecError(f"template data has a non-string map key {k!r}")
                dst[k] = child(x)
        else:
            for i, x in enumerate(src):
                dst[i] = child(x)
    return root


def deep_equal(a: Any, b: Any, depth: int = 0, max_depth: int = MAX_DEPTH) -> bool:
    """reflect.DeepEqual on template values (types must match: float64 1 differs from int 1; NaN is equal to
    nothing). The project's one DeepEqual (govaluate's deep_equal adapts it); nesting past `max_depth` is a
    FuncError."""
    if depth > max_depth:
        raise FuncError("value nested too deeply")
    if a is None or b is None:
        return a is None and b is None
    if type_name(a) != type_name(b):
        return False
    if isinstance(a, dict):
        return len(a) == len(b) and all(k in b and deep_equal(v, b[k], depth + 1, max_depth) for k, v in a.items())
    if isinstance(a, list):
        return len(a) == len(b) and all(deep_equal(x, y, depth + 1, max_depth) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def hash_key(v: Any, depth: int = 0) -> Any:
    """A hashable key that is equal for exactly the DeepEqual values (used by uniq)."""
    if depth > MAX_DEPTH:
        raise FuncError("value nested too deeply")
    tag = type_name(v)
    if isinstance(v, dict):
        return (tag, tuple(sorted((k, hash_key(x, depth + 1)) for k, x in v.items())))
    if isinstance(v, list):
        return (tag, tuple(hash_key(x, depth + 1) for x in v))
    if isinstance(v, float) and math.isnan(v):
        return (tag, "NaN", id(v))  # NaN is never DeepEqual to anything
    return (tag, v)


# ---------------------------------------------------------------------------------------------------------------
# encoding/json (json.Marshal, MarshalIndent, Encoder with SetEscapeHTML(false)): engine.goport.jsonenc

def _json_default(v: Any) -> Any:
    """What Go's encoder does with the template's other values: MISSING is nil, time.Time its RFC 3339 text."""
    if v is MISSING:
        return None
    if isinstance(v, datetime):
        from sensorium.engine.goport.template.time import RFC3339_NANO, format_time

        return format_time(v, RFC3339_NANO)
    raise jsonenc.MarshalError(f"json: unsupported type: {type_name(v)}")


def json_marshal(v: Any, escape_html: bool = True, indent: str | None = None) -> str:
    """json.Marshal (compact) or json.MarshalIndent(v, "", indent); raises FuncError with Go's error text."""
    try:
        return jsonenc.marshal(v, escape_html=escape_html, indent=indent, default=_json_default, max_depth=MAX_DEPTH)
    except jsonenc.MarshalError as exc:
        raise FuncError(str(exc)) from None

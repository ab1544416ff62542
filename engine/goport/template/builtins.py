"""Function registry and Go's text/template builtins for engine.goport.template (Go library).

Each function declares Go parameter types; the executor converts arguments the way text/template does (literal
constants to the parameter type, other values must be assignable: a float64 is never an int) and reports
`wrong type for value; expected int; got float64` otherwise. `and`/`or` short-circuit inside the executor.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol
from urllib.parse import quote_plus

from sensorium.engine.goport.re2 import GoRegexp
from sensorium.engine.goport.strconv import is_print
from sensorium.engine.goport.template.fmt import Printer, sprint, sprintf, sprintln
from sensorium.engine.goport.template.values import (
    MISSING,
    FuncError,
    StrMap,
    Uint8,
    basic_kind,
    go_len,
    is_true,
    reflect_kind,
    to_bytes,
    type_name,
)

# Go parameter types
ANY = "interface {}"
STRING = "string"
INT = "int"
FLOAT = "float64"
BOOL = "bool"
MAP = "map[string]interface {}"
VALUE = "reflect.Value"
TIME = "time.Time"


class CallContext(Protocol):
    """What a function may ask of the running template."""

    max_value: int

    def now(self) -> datetime: ...

    def regex(self, pattern: str) -> GoRegexp: ...


@dataclass(frozen=True)
class Func:
    params: tuple[str, ...]
    variadic: str | None
    impl: Callable[..., Any]  # impl(ctx, *args) -> Go value; raises FuncError


def assignable(v: Any, typ: str) -> bool:
    """reflect's AssignableTo for the value's concrete type."""
    if typ in (ANY, VALUE):
        return True
    if typ == STRING:
        return isinstance(v, str)
    if typ == INT:
        return type(v) is int
    if typ == FLOAT:
        return isinstance(v, float)
    if typ == BOOL:
        return isinstance(v, bool)
    if typ == MAP:
        return type(v) is dict
    if typ == TIME:
        return isinstance(v, datetime)
    return False


def can_be_nil(typ: str) -> bool:
    return typ in (ANY, MAP, VALUE)


def _indirect(v: Any) -> Any:
    """indirectInterface: a nil interface becomes the invalid value."""
    return MISSING if v is None else v


def _not(ctx: CallContext, arg: Any) -> bool:
    return not is_true(_indirect(arg))


def _len(ctx: CallContext, item: Any) -> int:
    if item is None:
        raise FuncError("len of nil pointer")
    if item is MISSING:
        raise FuncError("reflect: call of reflect.Value.Type on zero Value")
    if isinstance(item, str):
        return go_len(item)
    if isinstance(item, (dict, list)):
        return len(item)
    raise FuncError(f"len of type {type_name(item)}")


def _index_arg(index: Any, cap: int) -> int:
    if index is MISSING:
        raise FuncError("cannot index slice/array with nil")
    if isinstance(index, bool) or not isinstance(index, int):
        raise FuncError(f"cannot index slice/array with type {type_name(index)}")
    x = int(index)
    if x < 0 or x > cap:
        raise FuncError(f"index out of range: {x}")
    return x


def _index(ctx: CallContext, item: Any, *indexes: Any) -> Any:
    item = _indirect(item)
    if item is MISSING:
        raise FuncError("index of untyped nil")
    for raw in indexes:
        index = _indirect(raw)
        if item is None:
            raise FuncError("index of nil pointer")
        if isinstance(item, str):
            data = to_bytes(item)
            x = _index_arg(index, len(data))
            if x >= len(data):
                raise FuncError("reflect: string index out of range")
            item = Uint8(data[x])
        elif isinstance(item, list):
            x = _index_arg(index, len(item))
            if x >= len(item):
                raise FuncError("reflect: slice index out of range")
            item = item[x]
        elif isinstance(item, dict):
            if index is MISSING:
                raise FuncError("value is nil; should be of type string")
            if not isinstance(index, str):
                raise FuncError(f"value has type {type_name(index)}; should be string")
            item = item[index] if index in item else ("" if isinstance(item, StrMap) else None)
        else:
            raise FuncError(f"can't index item of type {type_name(item)}")
    return item


def _eq_other(a: Any, b: Any) -> bool:
    """eq for values that are not basic kinds (maps, lists, time, nil)."""
    ka, kb = reflect_kind(a), reflect_kind(b)
    if ka != kb and "invalid" not in (ka, kb):
        raise FuncError(f"non-comparable types {Printer().arg(a, 's')}: {type_name(a)}, {type_name(b)}: "
                        f"{Printer().arg(b, 'v')}")
    if a is MISSING or b is MISSING:
        return a is b
    if isinstance(b, (dict, list)):
        raise FuncError(f"non-comparable type {Printer().arg(b, 's')}: {type_name(b)}")
    return bool(a == b)


def _eq(ctx: CallContext, arg1: Any, *arg2: Any) -> bool:
    arg1 = _indirect(arg1)
    if not arg2:
        raise FuncError("missing argument for comparison")
    k1 = basic_kind(arg1)
    for raw in arg2:
        arg = _indirect(raw)
        k2 = basic_kind(arg)
        if k1 != k2:
            if {k1, k2} == {"int", "uint"}:
                truth = int(arg1) == int(arg)
            elif arg1 is not MISSING and arg is not MISSING:
                raise FuncError(f"incompatible types for comparison: {type_name(arg1)} and {type_name(arg)}")
            else:
                truth = False
        elif k1 is None:
            truth = _eq_other(arg1, arg)
        else:
            truth = bool(arg1 == arg)
        if truth:
            return True
    return False


def _ne(ctx: CallContext, a: Any, b: Any) -> bool:
    return not _eq(ctx, a, b)


def _lt(ctx: CallContext, a: Any, b: Any) -> bool:
    a, b = _indirect(a), _indirect(b)
    k1 = basic_kind(a)
    if k1 is None:
        raise FuncError("invalid type for comparison")
    k2 = basic_kind(b)
    if k2 is None:
        raise FuncError("invalid type for comparison")
    if k1 != k2:
        if {k1, k2} == {"int", "uint"}:
            return int(a) < int(b)
        raise FuncError(f"incompatible types for comparison: {type_name(a)} and {type_name(b)}")
    if k1 == "bool":
        raise FuncError("invalid type for comparison")
    if k1 == "string":
        return to_bytes(a) < to_bytes(b)
    return bool(a < b)


def _le(ctx: CallContext, a: Any, b: Any) -> bool:
    return _lt(ctx, a, b) or _eq(ctx, a, b)


def _gt(ctx: CallContext, a: Any, b: Any) -> bool:
    return not _le(ctx, a, b)


def _ge(ctx: CallContext, a: Any, b: Any) -> bool:
    return not _lt(ctx, a, b)


def _eval_args(args: tuple[Any, ...]) -> str:
    if len(args) == 1 and isinstance(args[0], str):
        return args[0]
    return sprint(list(args))


_HTML = {"<": "&lt;", ">": "&gt;", "&": "&amp;", "'": "&#39;", '"': "&#34;", "\x00": "\ufffd"}
_JS = {"\\": "\\\\", "'": "\\'", '"': '\\"', "<": "\\u003C", ">": "\\u003E", "&": "\\u0026", "=": "\\u003D"}


def html_escape(s: str) -> str:
    """template.HTMLEscapeString."""
    return "".join(_HTML.get(ch, ch) for ch in s)


def js_escape(s: str) -> str:
    """template.JSEscapeString."""
    out = []
    for ch in s:
        if ch in _JS:
            out.append(_JS[ch])
        elif ch < " ":
            out.append(f"\\u00{ord(ch):02X}")
        elif ord(ch) >= 0x80 and not is_print(ch):
            out.append(f"\\u{ord(ch):04X}")
        else:
            out.append(ch)
    return "".join(out)


def _printf(ctx: CallContext, fmt_: str, *args: Any) -> str:
    return sprintf(fmt_, list(args), ctx.max_value)


BUILTINS: dict[str, Func] = {
    "and": Func((VALUE,), VALUE, lambda ctx, *a: a[-1]),  # short-circuit evaluation lives in the executor
    "or": Func((VALUE,), VALUE, lambda ctx, *a: a[-1]),
    "not": Func((VALUE,), None, _not),
    "len": Func((VALUE,), None, _len),
    "index": Func((VALUE,), VALUE, _index),
    "eq": Func((VALUE,), VALUE, _eq),
    "ne": Func((VALUE, VALUE), None, _ne),
    "lt": Func((VALUE, VALUE), None, _lt),
    "le": Func((VALUE, VALUE), None, _le),
    "gt": Func((VALUE, VALUE), None, _gt),
    "ge": Func((VALUE, VALUE), None, _ge),
    "print": Func((), ANY, lambda ctx, *a: sprint(list(a))),
    "println": Func((), ANY, lambda ctx, *a: sprintln(list(a))),
    "printf": Func((STRING,), ANY, _printf),
    "html": Func((), ANY, lambda ctx, *a: html_escape(_eval_args(a))),
    "js": Func((), ANY, lambda ctx, *a: js_escape(_eval_args(a))),
    "urlquery": Func((), ANY, lambda ctx, *a: quote_plus(to_bytes(_eval_args(a)), safe="")),
}
"""Go's builtins (`slice` is sprig's, which replaces Go's; `call` is unsupported: data holds no functions)."""

"""Sprig's string, conversion and integer functions for engine.goport.template (Go library).

Strings are Go byte strings: `substr`, `trunc`, `abbrev` count bytes and panic like Go on bad bounds; `b64dec`
returns Go's error text instead of failing; `title` is Go's strings.Title; `upper`/`lower` use simple case
mapping; arithmetic is int64 through spf13/cast (`"12.0"` -> 12, `"x"` -> 0, 3.9 -> 3) with int64 wrap-around.
"""

from __future__ import annotations

import base64
import hashlib
import math
import re
import uuid
from datetime import datetime
from typing import Any

from sensorium.engine.goport import strconv
from sensorium.engine.goport.strconv import quote
from sensorium.engine.goport.template.builtins import ANY, FLOAT, INT, STRING, CallContext, Func
from sensorium.engine.goport.template.fmt import sprint_v
from sensorium.engine.goport.template.time import time_string
from sensorium.engine.goport.template.values import (
    MISSING,
    FuncError,
    Int64,
    StrList,
    StrMap,
    from_bytes,
    go_len,
    is_true,
    to_bytes,
)

GO_SPACE = "\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a" \
           "\u2028\u2029\u202f\u205f\u3000"


# -- conversions ------------------------------------------------------------------------------------------------
def strval(v: Any) -> str:
    """sprig strval: strings as they are, time via String(), everything else `%v`."""
    if isinstance(v, str):
        return v
    if isinstance(v, datetime):
        return time_string(v)
    return sprint_v(None if v is MISSING else v)


def strslice(v: Any) -> list[str]:
    """sprig strslice: lists become their non-nil elements as strings; other values a one-element list."""
    if isinstance(v, list):
        return [x if isinstance(x, str) else strval(x) for x in v if x is not None]
    return [] if v is None or v is MISSING else [strval(v)]


def _wrap64(n: int) -> int:
    return (n + (1 << 63)) % (1 << 64) - (1 << 63)


def _float_to_int(f: float) -> int:
    """Go's int64(f) on amd64: out of range (and NaN) gives the minimum int64."""
    if math.isnan(f) or not -9.223372036854775808e18 <= f < 9.223372036854775808e18:
        return -(1 << 63)
    return int(f)


def _trim_zero_decimal(s: str) -> str:
    found_zero = False
    for i in range(len(s), 0, -1):
        c = s[i - 1]
        if c == ".":
            if found_zero:
                return s[:i - 1]
        elif c == "0":
            found_zero = True
        else:
            return s
    return s


def parse_go_float(s: str) -> float | None:
    """strconv.ParseFloat(s, 64) with the error dropped (None), as spf13/cast uses it."""
    try:
        return strconv.parse_float(s)
    except strconv.NumError:
        return None


def to_int64(v: Any) -> int:
    """spf13/cast ToInt64 with errors ignored (sprig)."""
    if isinstance(v, bool):
        return int(v)
    if isinstance(v, int):
        return int(v)
    if isinstance(v, float):
        return _float_to_int(v)
    if isinstance(v, str):
        n = strconv.parse_int(_trim_zero_decimal(v))
        return 0 if n is None else n
    return 0


def to_float64(v: Any) -> float:
    """spf13/cast ToFloat64 with errors ignored (sprig)."""
    if isinstance(v, (bool, int, float)):
        return float(v)
    if isinstance(v, str):
        f = parse_go_float(v)
        return 0.0 if f is None else f
    return 0.0


def empty(v: Any) -> bool:
    """sprig empty: nil, zero numbers, false, and empty strings, maps and lists."""
    if isinstance(v, datetime):
        return False
    return not is_true(v)


def _atoi(ctx: CallContext, s: str) -> int:
    if re.fullmatch(r"[+-]?[0-9]+", s):
        n = int(s)
        if -(1 << 63) <= n < (1 << 63):
            return n
    return 0


def _div(a: Any, b: Any, op: str) -> Int64:
    x, y = to_int64(a), to_int64(b)
    if y == 0:
        raise FuncError("runtime error: integer divide by zero")
    q = abs(x) // abs(y) * (1 if (x < 0) == (y < 0) else -1)
    return Int64(_wrap64(q if op == "div" else x - y * q))


def _extreme(a: Any, rest: tuple[Any, ...], pick: Any) -> Int64:
    best = to_int64(a)
    for b in rest:
        best = pick(best, to_int64(b))
    return Int64(best)


def _round(ctx: CallContext, a: Any, places: int, *r_opt: float) -> float:
    round_on = r_opt[0] if r_opt else 0.5
    pow_ = math.pow(10, places)
    digit = pow_ * to_float64(a)
    frac = math.modf(digit)[0]
    return (math.ceil(digit) if frac >= round_on else math.floor(digit)) / pow_


# -- strings ----------------------------------------------------------------------------------------------------
def _check(ctx: CallContext, size: int) -> None:
    if size > ctx.max_value:
        raise FuncError(f"result of {size} bytes exceeds the template value limit of {ctx.max_value}")


def _case(s: str, upper: bool) -> str:
    """Go's strings.ToUpper/ToLower: simple (one rune to one rune) case mapping."""
    if s.isascii():
        return s.upper() if upper else s.lower()
    out = []
    for ch in s:
        m = ch.upper() if upper else ch.lower()
        out.append(m if len(m) == 1 else ("i" if ch == "\u0130" else ch))
    return "".join(out)


def _is_separator(ch: str) -> bool:
    if ch < "\x80":
        return not (ch.isalnum() or ch == "_")
    if ch.isalpha() or ch.isdigit():
        return False
    return ch in GO_SPACE


def _title(ctx: CallContext, s: str) -> str:
    """Go's strings.Title: the first letter of every word to title case, the rest unchanged."""
    out = []
    prev = " "
    for ch in s:
        if _is_separator(prev):
            t = ch.title() if not ch.isascii() else ch.upper()
            out.append(t if len(t) == 1 else ch)
        else:
            out.append(ch)
        prev = ch
    return "".join(out)


def _untitle(ctx: CallContext, s: str) -> str:
    """goutils.Uncapitalize: lower-case the first letter after each whitespace."""
    out = []
    nxt = True
    for ch in s:
        if ch in GO_SPACE:
            nxt = True
            out.append(ch)
        elif nxt:
            low = ch.lower()
            out.append(low if len(low) == 1 else ch)
            nxt = False
        else:
            out.append(ch)
    return "".join(out)


def _bounds(msg: str) -> FuncError:
    return FuncError("runtime error: slice bounds out of range " + msg)


def _substr(ctx: CallContext, start: int, end: int, s: str) -> str:
    b = to_bytes(s)
    n = len(b)
    if start < 0:
        if end < 0:
            raise _bounds(f"[:{end}]")
        if end > n:
            raise _bounds(f"[:{end}] with length {n}")
        return from_bytes(b[:end])
    if end < 0 or end > n:
        if start > n:
            raise _bounds(f"[{start}:{n}]")
        return from_bytes(b[start:])
    if start > end:
        raise _bounds(f"[{start}:{end}]")
    return from_bytes(b[start:end])


def _trunc(ctx: CallContext, c: int, s: str) -> str:
    b = to_bytes(s)
    if c < 0 and len(b) + c > 0:
        return from_bytes(b[len(b) + c:])
    if c >= 0 and len(b) > c:
        return from_bytes(b[:c])
    return s


def _abbrev(ctx: CallContext, width: int, s: str) -> str:
    b = to_bytes(s)
    if width < 4 or len(b) <= width:
        return s
    return from_bytes(b[:width - 3]) + "..."


def _repeat(ctx: CallContext, count: int, s: str) -> str:
    if count < 0:
        raise FuncError("strings: negative Repeat count")
    _check(ctx, count * go_len(s))
    return s * count


def _indent(ctx: CallContext, spaces: int, s: str) -> str:
    if spaces < 0:
        raise FuncError("strings: negative Repeat count")
    _check(ctx, spaces * (s.count("\n") + 1) + go_len(s))
    pad = " " * spaces
    return pad + s.replace("\n", "\n" + pad)


def _replace(ctx: CallContext, old: str, new: str, src: str) -> str:
    _check(ctx, go_len(src) + (src.count(old) if old else len(src) + 1) * go_len(new))
    return src.replace(old, new)


def _split_list(sep: str, s: str) -> StrList:
    if sep == "":
        return StrList(list(s))
    return StrList(s.split(sep))


def _b64dec(ctx: CallContext, s: str) -> str:
    """base64.StdEncoding.DecodeString; on error sprig returns Go's error text."""
    src = to_bytes(s)
    alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    out = bytearray()
    si = 0
    while si < len(src):
        dbuf = [0, 0, 0, 0]
        dlen = 4
        j = 0
        err: int | None = None
        while j < 4:
            if si == len(src):
                if j == 0:
                    return from_bytes(bytes(out))
                return f"illegal base64 data at input byte {si - j}"
            ch = src[si]
            si += 1
            k = alphabet.find(bytes([ch]))
            if k >= 0:
                dbuf[j] = k
                j += 1
                continue
            if ch in b"\r\n":
                continue
            if ch != ord("="):
                return f"illegal base64 data at input byte {si - 1}"
            if j in (0, 1):
                return f"illegal base64 data at input byte {si - 1}"
            if j == 2:
                while si < len(src) and src[si] in b"\r\n":
                    si += 1
                if si == len(src):
                    return f"illegal base64 data at input byte {len(src)}"
                if src[si] != ord("="):
                    return f"illegal base64 data at input byte {si - 1}"
                si += 1
            while si < len(src) and src[si] in b"\r\n":
                si += 1
            if si < len(src):
                err = si
            dlen = j
            break
        val = dbuf[0] << 18 | dbuf[1] << 12 | dbuf[2] << 6 | dbuf[3]
        out += bytes([val >> 16 & 0xFF, val >> 8 & 0xFF, val & 0xFF])[:dlen - 1]
        if err is not None:
            return f"illegal base64 data at input byte {err}"
    return from_bytes(bytes(out))


def _b64enc(ctx: CallContext, s: str) -> str:
    _check(ctx, go_len(s) * 4 // 3 + 4)
    return base64.b64encode(to_bytes(s)).decode()



def _sha(name: str) -> Func:
    return Func((STRING,), None, lambda ctx, s: hashlib.new(name, to_bytes(s)).hexdigest())


STRING_FUNCS: dict[str, Func] = {
    "upper": Func((STRING,), None, lambda ctx, s: _case(s, True)),
    "lower": Func((STRING,), None, lambda ctx, s: _case(s, False)),
    "title": Func((STRING,), None, _title),
    "untitle": Func((STRING,), None, _untitle),
    "trim": Func((STRING,), None, lambda ctx, s: s.strip(GO_SPACE)),
    "trimAll": Func((STRING, STRING), None, lambda ctx, cut, s: s.strip(cut) if cut else s),
    "trimall": Func((STRING, STRING), None, lambda ctx, cut, s: s.strip(cut) if cut else s),
    "trimPrefix": Func((STRING, STRING), None, lambda ctx, p, s: s[len(p):] if p and s.startswith(p) else s),
    "trimSuffix": Func((STRING, STRING), None, lambda ctx, p, s: s[:-len(p)] if p and s.endswith(p) else s),
    "nospace": Func((STRING,), None, lambda ctx, s: "".join(c for c in s if c not in GO_SPACE)),
    "replace": Func((STRING, STRING, STRING), None, _replace),
    "substr": Func((INT, INT, STRING), None, _substr),
    "trunc": Func((INT, STRING), None, _trunc),
    "abbrev": Func((INT, STRING), None, _abbrev),
    "repeat": Func((INT, STRING), None, _repeat),
    "contains": Func((STRING, STRING), None, lambda ctx, sub, s: sub in s),
    "hasPrefix": Func((STRING, STRING), None, lambda ctx, p, s: s.startswith(p)),
    "hasSuffix": Func((STRING, STRING), None, lambda ctx, p, s: s.endswith(p)),
    "split": Func((STRING, STRING), None,
                  lambda ctx, sep, s: StrMap((f"_{i}", p) for i, p in enumerate(_split_list(sep, s)))),
    "splitList": Func((STRING, STRING), None, lambda ctx, sep, s: _split_list(sep, s)),
    "join": Func((STRING, ANY), None, lambda ctx, sep, v: sep.join(strslice(v))),
    "quote": Func((), ANY, lambda ctx, *a: " ".join(quote(strval(x)) for x in a if x is not None)),
    "squote": Func((), ANY, lambda ctx, *a: " ".join(f"'{sprint_v(x)}'" for x in a if x is not None)),
    "cat": Func((), ANY, lambda ctx, *a: " ".join(sprint_v(x) for x in a if x is not None)),
    "indent": Func((INT, STRING), None, _indent),
    "nindent": Func((INT, STRING), None, lambda ctx, n, s: "\n" + _indent(ctx, n, s)),
    "plural": Func((STRING, STRING, INT), None, lambda ctx, one, many, n: one if n == 1 else many),
    "b64enc": Func((STRING,), None, _b64enc),
    "b64dec": Func((STRING,), None, _b64dec),
    "sha256sum": _sha("sha256"),
    "sha1sum": _sha("sha1"),
    "sha512sum": _sha("sha512"),
    "toString": Func((ANY,), None, lambda ctx, v: strval(v)),
    "uuidv4": Func((), None, lambda ctx: str(uuid.uuid4())),
    "hello": Func((), None, lambda ctx: "Hello!"),
    # numbers
    "atoi": Func((STRING,), None, _atoi),
    "int": Func((ANY,), None, lambda ctx, v: to_int64(v)),
    "int64": Func((ANY,), None, lambda ctx, v: Int64(to_int64(v))),
    "float64": Func((ANY,), None, lambda ctx, v: to_float64(v)),
    "add": Func((), ANY, lambda ctx, *a: Int64(_wrap64(sum(to_int64(x) for x in a)))),
    "add1": Func((ANY,), None, lambda ctx, v: Int64(_wrap64(to_int64(v) + 1))),
    "sub": Func((ANY, ANY), None, lambda ctx, a, b: Int64(_wrap64(to_int64(a) - to_int64(b)))),
    "mul": Func((ANY,), ANY, lambda ctx, a, *r: Int64(_wrap64(math.prod((to_int64(x) for x in r), start=to_int64(a))))),
    "div": Func((ANY, ANY), None, lambda ctx, a, b: _div(a, b, "div")),
    "mod": Func((ANY, ANY), None, lambda ctx, a, b: _div(a, b, "mod")),
    "max": Func((ANY,), ANY, lambda ctx, a, *r: _extreme(a, r, max)),
    "biggest": Func((ANY,), ANY, lambda ctx, a, *r: _extreme(a, r, max)),
    "min": Func((ANY,), ANY, lambda ctx, a, *r: _extreme(a, r, min)),
    "floor": Func((ANY,), None, lambda ctx, v: float(math.floor(to_float64(v))) if math.isfinite(to_float64(v))
                  else to_float64(v)),
    "ceil": Func((ANY,), None, lambda ctx, v: float(math.ceil(to_float64(v))) if math.isfinite(to_float64(v))
                 else to_float64(v)),
    "round": Func((ANY, INT), FLOAT, _round),
}

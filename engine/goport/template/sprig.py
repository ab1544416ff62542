"""Sprig v3.3 functions for engine.goport.template: the registry plus defaults, JSON, lists, dicts and dates.

Sprig's exact (sometimes odd) semantics are kept: `default`/`empty` use sprig's notion of empty, `first` of a nil
list panics, `get` of a missing key is "", `date` of a float64 (any JSON number) formats *now*. `keys`/`values`
come out sorted by key (Go's order is random). `now`/`date` read the render's clock; Go's `Local` zone is UTC.
"""

from __future__ import annotations

import json
import math
import zoneinfo
from datetime import UTC, datetime
from typing import Any

from sensorium.engine.goport import jsonenc
from sensorium.engine.goport.template.builtins import ANY, BOOL, MAP, STRING, TIME, CallContext, Func
from sensorium.engine.goport.template.regex import REGEX_FUNCS
from sensorium.engine.goport.template.strings import STRING_FUNCS, empty, strslice, strval, to_int64
from sensorium.engine.goport.template.time import format_time
from sensorium.engine.goport.template.values import (
    MISSING,
    FuncError,
    StrList,
    Uint8,
    deep_equal,
    hash_key,
    json_marshal,
    reflect_kind,
    to_bytes,
)

_NIL_DEREF = "runtime error: invalid memory address or nil pointer dereference"


# -- defaults and JSON ------------------------------------------------------------------------------------------
def _default(ctx: CallContext, d: Any, *given: Any) -> Any:
    if not given or empty(given[0]):
        return d
    return given[0]


def _to_json(v: Any, html: bool, indent: str | None, must: bool) -> str:
    try:
        return json_marshal(v, escape_html=html, indent=indent)
    except FuncError:
        if must:
            raise
        return ""


def _from_json(s: str, must: bool) -> Any:
    """sprig fromJson (errors ignored: nil) and mustFromJson (Go's error text) over jsonenc.unmarshal."""
    try:
        value, error = jsonenc.unmarshal(s)
    except json.JSONDecodeError as exc:
        if must:
            raise FuncError("unexpected end of JSON input" if not s.strip() else str(exc)) from None
        return None
    except (ValueError, RecursionError) as exc:
        if must:
            raise FuncError(str(exc)) from None
        return None
    if error is not None and must:
        raise FuncError(str(error))
    return value

# -- lists and dicts --------------------------------------------------------------------------------------------
def _need_list(v: Any, what: str) -> list[Any]:
    if v is None or v is MISSING:
        raise FuncError(_NIL_DEREF)
    if not isinstance(v, list):
        raise FuncError(f"Cannot {what} on type {reflect_kind(v)}")
    return v


def _first(ctx: CallContext, v: Any) -> Any:
    items = _need_list(v, "find first")
    return items[0] if items else None


def _last(ctx: CallContext, v: Any) -> Any:
    items = _need_list(v, "find last")
    return items[-1] if items else None


def _uniq(ctx: CallContext, v: Any) -> list[Any]:
    seen: set[Any] = set()
    out = []
    for item in _need_list(v, "find uniq"):
        key = hash_key(item)
        if key not in seen:
            seen.add(key)
            out.append(item)
    return out


def _sort_alpha(ctx: CallContext, v: Any) -> StrList:
    if isinstance(v, list):
        return StrList(sorted(strslice(v), key=to_bytes))
    return StrList([strval(v)])


def _slice(ctx: CallContext, v: Any, *indices: Any) -> Any:
    if v is None or v is MISSING:
        raise FuncError(_NIL_DEREF)
    if not isinstance(v, list):
        raise FuncError(f"list should be type of slice or array but {reflect_kind(v)}")
    if not v:
        return None
    start = to_int64(indices[0]) if indices else 0
    end = to_int64(indices[1]) if len(indices) > 1 else len(v)
    if not 0 <= start <= end <= len(v):
        raise FuncError("reflect: slice index out of range")
    return type(v)(v[start:end])


def _dict(ctx: CallContext, *kv: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for i in range(0, len(kv), 2):
        out[strval(kv[i])] = kv[i + 1] if i + 1 < len(kv) else ""
    return out


def _set(ctx: CallContext, d: dict[str, Any] | None, key: str, value: Any) -> dict[str, Any]:
    if d is None:
        raise FuncError("assignment to entry in nil map")
    d[key] = value
    return d


def _unset(ctx: CallContext, d: dict[str, Any] | None, key: str) -> dict[str, Any] | None:
    if d is not None:
        d.pop(key, None)
    return d


def _fail(ctx: CallContext, msg: str) -> str:
    raise FuncError(msg)


def _dict_keys(*dicts: dict[str, Any] | None) -> StrList:
    return StrList(k for d in dicts if d for k in sorted(d))

# -- dates --------------------------------------------------------------------------------------------------------
def _zone(name: str) -> Any:
    if name in ("", "UTC", "Local"):
        return UTC
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        return UTC


def _date_in_zone(ctx: CallContext, layout: str, date: Any, zone: str) -> str:
    if isinstance(date, datetime):
        t = date
    elif isinstance(date, int) and not isinstance(date, (bool, Uint8)):
        try:
            t = datetime.fromtimestamp(int(date), UTC)
        except (OverflowError, OSError, ValueError):
            raise FuncError(f"time {int(date)} is out of the supported range") from None
    else:
        t = ctx.now()  # sprig: any other type (a float64 from JSON too) means "now"
    return format_time(t.astimezone(_zone(zone)), layout)


SPRIG: dict[str, Func] = {
    **STRING_FUNCS,
    **REGEX_FUNCS,
    # defaults, flow and JSON
    "default": Func((ANY,), ANY, _default),
    "empty": Func((ANY,), None, lambda ctx, v: empty(v)),
    "coalesce": Func((), ANY, lambda ctx, *a: next((x for x in a if not empty(x)), None)),
    "all": Func((), ANY, lambda ctx, *a: all(not empty(x) for x in a)),
    "any": Func((), ANY, lambda ctx, *a: any(not empty(x) for x in a)),
    "ternary": Func((ANY, ANY, BOOL), None, lambda ctx, vt, vf, v: vt if v else vf),
    "fail": Func((STRING,), None, _fail),
    "toJson": Func((ANY,), None, lambda ctx, v: _to_json(v, True, None, False)),
    "mustToJson": Func((ANY,), None, lambda ctx, v: _to_json(v, True, None, True)),
    "toRawJson": Func((ANY,), None, lambda ctx, v: _to_json(v, False, None, False)),
    "mustToRawJson": Func((ANY,), None, lambda ctx, v: _to_json(v, False, None, True)),
    "toPrettyJson": Func((ANY,), None, lambda ctx, v: _to_json(v, True, "  ", False)),
    "mustToPrettyJson": Func((ANY,), None, lambda ctx, v: _to_json(v, True, "  ", True)),
    "fromJson": Func((STRING,), None, lambda ctx, s: _from_json(s, False)),
    "mustFromJson": Func((STRING,), None, lambda ctx, s: _from_json(s, True)),
    # dates
    "now": Func((), None, lambda ctx: ctx.now()),
    "date": Func((STRING, ANY), None, lambda ctx, layout, d: _date_in_zone(ctx, layout, d, "Local")),
    "dateInZone": Func((STRING, ANY, STRING), None, _date_in_zone),
    "date_in_zone": Func((STRING, ANY, STRING), None, _date_in_zone),
    "htmlDate": Func((ANY,), None, lambda ctx, d: _date_in_zone(ctx, "2006-01-02", d, "Local")),
    "unixEpoch": Func((TIME,), None, lambda ctx, t: str(math.floor(t.timestamp()))),
    # lists
    "list": Func((), ANY, lambda ctx, *a: list(a)),
    "tuple": Func((), ANY, lambda ctx, *a: list(a)),
    "first": Func((ANY,), None, _first),
    "last": Func((ANY,), None, _last),
    "rest": Func((ANY,), None, lambda ctx, v: _need_list(v, "find rest")[1:]),
    "initial": Func((ANY,), None, lambda ctx, v: _need_list(v, "find initial")[:-1]),
    "reverse": Func((ANY,), None, lambda ctx, v: list(reversed(_need_list(v, "find reverse")))),
    "uniq": Func((ANY,), None, _uniq),
    "compact": Func((ANY,), None, lambda ctx, v: [x for x in _need_list(v, "compact") if not empty(x)]),
    "append": Func((ANY, ANY), None, lambda ctx, v, x: [*_need_list(v, "push"), x]),
    "push": Func((ANY, ANY), None, lambda ctx, v, x: [*_need_list(v, "push"), x]),
    "prepend": Func((ANY, ANY), None, lambda ctx, v, x: [x, *_need_list(v, "prepend")]),
    "has": Func((ANY, ANY), None,
                lambda ctx, needle, v: any(deep_equal(needle, x) for x in _need_list(v, "find has"))),
    "without": Func((ANY,), ANY, lambda ctx, v, *omit: [x for x in _need_list(v, "find without")
                                                       if not any(deep_equal(x, o) for o in omit)]),
    "sortAlpha": Func((ANY,), None, _sort_alpha),
    "slice": Func((ANY,), ANY, _slice),
    # dicts
    "dict": Func((), ANY, _dict),
    "get": Func((MAP, STRING), None, lambda ctx, d, k: d[k] if d and k in d else ""),
    "set": Func((MAP, STRING, ANY), None, _set),
    "unset": Func((MAP, STRING), None, _unset),
    "hasKey": Func((MAP, STRING), None, lambda ctx, d, k: bool(d) and k in d),
    "keys": Func((), MAP, lambda ctx, *ds: _dict_keys(*ds)),
    "values": Func((MAP,), None, lambda ctx, d: [d[k] for k in sorted(d or {})]),
    "pick": Func((MAP,), STRING, lambda ctx, d, *ks: {k: d[k] for k in ks if d and k in d}),
    "omit": Func((MAP,), STRING, lambda ctx, d, *ks: {k: v for k, v in (d or {}).items() if k not in ks}),
    "pluck": Func((STRING,), MAP, lambda ctx, k, *ds: [d[k] for d in ds if d and k in d]),

}

SPRIG_UNSUPPORTED = frozenset("""
    ago date_modify dateModify duration durationRound must_date_modify mustDateModify mustToDate toDate
    abbrevboth initials randAlphaNum randAlpha randAscii randNumeric randSeededNumeric swapcase shuffle snakecase
    camelcase kebabcase wrap wrapWith adler32sum seq toDecimal splitn toStrings until untilStep add1f addf subf
    divf mulf maxf minf mustCompact deepCopy mustDeepCopy typeOf typeIs typeIsLike kindOf kindIs deepEqual env
    expandenv getHostByName base dir clean ext isAbs osBase osClean osDir osExt osIsAbs b32enc b32dec
    mustAppend mustPush mustPrepend mustFirst mustRest mustLast mustInitial mustReverse mustUniq mustWithout
    mustHas mustSlice concat dig chunk mustChunk mustMerge mustMergeOverwrite merge mergeOverwrite bcrypt htpasswd
    genPrivateKey derivePassword buildCustomCert genCA genCAWithKey genSelfSignedCert genSelfSignedCertWithKey
    genSignedCert genSignedCertWithKey encryptAES decryptAES randBytes semver semverCompare urlParse urlJoin
    randInt
""".split())
"""Sprig v3 names outside the subset: a load-time error naming the function, never `not defined`."""

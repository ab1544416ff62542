"""tidwall/gjson for event data: `gjson_get`, `PathResult` (Result.String()/Float()/Bool()), Go's ParseFloat and
ParseBool as gjson uses them (Go library: imports nothing else from the project; the three-syntax facade is
engine.core.paths).

The port is ~900 lines, over the ~500 rule, because gjson's path grammar (parseObject/parseArray/queries/
multipaths/modifiers) is one algorithm whose pieces call each other; split, each part would be unreadable alone.

This is a hand port of tidwall/gjson's path semantics (parseObject/parseArray/queries/multipaths/
modifiers) working on parsed JSON. PyPI `gjson` (gjson-py) was evaluated and rejected: it raises instead of
reporting "missing", compares query values with Python semantics (`1 == true`, TypeError on mixed types),
only supports one-level query keys and turns `%` patterns into unescaped regexes. Parsing records the source
text of every object and array and every float literal, so `raw` is gjson's raw text (original whitespace
kept); string members are re-escaped when gjson would compose new JSON (multipaths, `#.k`, modifiers).
"""

from __future__ import annotations

import builtins
import functools
import json
import math
import re
from collections.abc import Callable
from json.decoder import JSONArray, JSONObject  # type: ignore[attr-defined]
from json.scanner import py_make_scanner  # type: ignore[attr-defined]
from typing import Any, Literal

import msgspec

from sensorium.engine.goport import strconv

Kind = Literal["String", "Number", "True", "False", "Null", "JSON"]


class _Missing:
    __slots__ = ()

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()


class _RawFloat(float):
    """A float that remembers its JSON literal (so raw text and String() keep `1.50`, `1e3`)."""

    raw: str

    def __new__(cls, text: str) -> _RawFloat:
        obj = super().__new__(cls, text)
        obj.raw = text
        return obj


class _Spanned:
    """Mixin for parsed objects/arrays that remember where their text is, so `raw` keeps the whitespace."""

    _src: str
    _start: int
    _end: int

    def raw(self) -> str | None:
        src = getattr(self, "_src", None)
        return None if src is None else src[self._start:self._end]

    def span(self, src: str, start: int, end: int) -> None:
        self._src, self._start, self._end = src, start, end


class _RawDict(_Spanned, dict[str, Any]):
    pass


class _RawList(_Spanned, list[Any]):
    pass


def _no_constants(name: str) -> Any:
    raise ValueError(f"invalid JSON literal {name}")


def _first_wins(pairs: list[tuple[str, Any]]) -> _RawDict:
    out = _RawDict()
    for key, value in pairs:
        out.setdefault(key, value)  # gjson returns the first of duplicate keys
    return out


class _Decoder(json.JSONDecoder):
    """The pure-Python scanner with object/array parsers that record each container's text span."""

    def __init__(self) -> None:
        super().__init__(object_pairs_hook=_first_wins, parse_float=_RawFloat, parse_constant=_no_constants)

        def parse_object(s_and_end: tuple[str, int], *args: Any) -> tuple[Any, int]:
            value, end = JSONObject(s_and_end, *args)
            value.span(s_and_end[0], s_and_end[1] - 1, end)
            return value, end

        def parse_array(s_and_end: tuple[str, int], scan_once: Any) -> tuple[Any, int]:
            values, end = JSONArray(s_and_end, scan_once)
            value = _RawList(values)
            value.span(s_and_end[0], s_and_end[1] - 1, end)
            return value, end

        self.parse_object = parse_object
        self.parse_array = parse_array
        self.scan_once = py_make_scanner(self)


def parse_json(doc: bytes | str) -> Any:
    """Parse JSON text the way the path functions see it; raises ValueError when it is not valid JSON.

    Objects and arrays keep their source text (see `to_json`); treat the returned values as read-only.
    """
    return _parse_cached(doc)


def _raw_literal(value: Any) -> msgspec.Raw:
    if isinstance(value, _RawFloat):
        return msgspec.Raw(value.raw.encode())
    raise TypeError(f"unexpected {type(value).__name__} in parsed JSON")


_FAST_DECODER = msgspec.json.Decoder(float_hook=_RawFloat)
# At most this many `{` and `[` bytes (in strings too) for the fast path: msgspec parses far deeper documents than
# the scanner, whose "JSON nested too deeply" must stay the one answer to deep nesting (and the recursive path
# code after the parse must not meet a depth it cannot walk).
_FAST_MAX_CONTAINERS = 100
_FAST_ENCODER = msgspec.json.Encoder(enc_hook=_raw_literal)


def _parse_fast(doc: bytes | str) -> Any:
    """msgspec's C parser, for documents that are compact JSON as msgspec writes it (the common case for event
    data): re-encoding the parsed value (float literals as written) gives back exactly the input, so every
    object's and array's source text is its compact rendering by `to_json`, and plain dicts and lists need no
    recorded span. Anything else (whitespace, escapes msgspec writes differently, duplicate keys, invalid JSON or
    UTF-8, more than _FAST_MAX_CONTAINERS brackets) returns MISSING, for the pure-Python scanner that records
    spans and reports errors."""
    try:
        raw = doc.encode() if isinstance(doc, str) else doc
        if raw.count(b"{") + raw.count(b"[") > _FAST_MAX_CONTAINERS:
            return MISSING
        value = _FAST_DECODER.decode(raw)
        if _FAST_ENCODER.encode(value) == raw:
            return value
    except (msgspec.DecodeError, TypeError, UnicodeEncodeError):
        pass
    return MISSING


@functools.lru_cache(maxsize=64)
def _parse_cached(doc: bytes | str) -> Any:
    # One event's data is read by its filters and by every parameter of every firing: parse it once (measured
    # by bench/engine.py: parsing was ~24% of the engine's time before this cache). Results are read-only.
    value = _parse_fast(doc)
    if value is not MISSING:
        return value
    text = doc.decode("utf-8", errors="replace") if isinstance(doc, bytes) else doc
    try:
        return _Decoder().decode(text)  # one per call: the pure-Python scanner keeps per-call state
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None


_NEEDS_ESCAPE = re.compile(r'[\x00-\x1f"\\]')  # what json.dumps(ensure_ascii=False) escapes in a string


def to_json(value: Any) -> str:
    """JSON text of a parsed value: parsed objects/arrays and float literals as written in the source,
    values built here (multipaths, modifiers) compactly around their members' text, like gjson."""
    kind = type(value)
    if kind is str:  # the common case (a filter or parameter reading a string): json.dumps' output, without it
        return json.dumps(value, ensure_ascii=False) if _NEEDS_ESCAPE.search(value) else '"' + value + '"'
    if kind is int:
        return str(value)
    if isinstance(value, _RawFloat):
        return value.raw
    if isinstance(value, (_RawDict, _RawList)):
        raw = value.raw()
        if raw is not None:
            return raw
    if isinstance(value, dict):
        items = (json.dumps(k, ensure_ascii=False) + ":" + to_json(v) for k, v in value.items())
        return "{" + ",".join(items) + "}"
    if isinstance(value, list):
        return "[" + ",".join(to_json(v) for v in value) + "]"
    if isinstance(value, float) and not math.isfinite(value):
        return strconv.format_float(value, "f", -1)
    return json.dumps(value, ensure_ascii=False)


def _compact(value: Any) -> Any:
    """A copy without source text, so `to_json` renders it compactly (gjson @ugly)."""
    if isinstance(value, dict):
        return {k: _compact(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_compact(v) for v in value]
    return value


def plain(value: Any) -> Any:
    """Builtin types only (JMESPath's functions check `type(x).__name__`)."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return float(value) if isinstance(value, _RawFloat) else value


# ---- Go number and bool conversions -------------------------------------------------------------------

_INT_LITERAL = re.compile(r"-?\d+")


def go_quote(s: str) -> str:
    """strconv.Quote (engine.goport.strconv.quote)."""
    return strconv.quote(s)


def go_parse_float(s: str) -> tuple[float, str | None]:
    """strconv.ParseFloat(s, 64) as Go's (value, error text or None) pair: syntax error gives 0, overflow ±Inf
    (engine.goport.strconv.parse_float)."""
    try:
        return strconv.parse_float(s), None
    except strconv.NumError as exc:
        return exc.value, str(exc)


def go_parse_bool(s: str) -> bool | None:
    """strconv.ParseBool: True/False, or None when Go would return an error."""
    if s in ("1", "t", "T", "TRUE", "true", "True"):
        return True
    if s in ("0", "f", "F", "FALSE", "false", "False"):
        return False
    return None


def _as_float(value: Any) -> float:
    try:
        return float(value)
    except OverflowError:
        return math.inf if value > 0 else -math.inf


# ---- results ------------------------------------------------------------------------------------------

def _kind(value: Any) -> Kind:
    if value is None:
        return "Null"
    if value is True:
        return "True"
    if value is False:
        return "False"
    if isinstance(value, str):
        return "String"
    if isinstance(value, (int, float)):
        return "Number"
    return "JSON"


class PathResult(msgspec.Struct, frozen=True, gc=False):  # C-built: one per path read
    """One extracted value. `raw` is its JSON text ("" when missing); `error` explains a failed evaluation."""

    exists: bool
    kind: Kind
    raw: str
    value: Any
    error: str | None = None

    @classmethod
    def of(cls, value: Any) -> PathResult:
        if value is MISSING:
            return MISSING_RESULT
        return cls(True, _kind(value), to_json(value), value)

    def string(self) -> str:
        if self.kind == "String":
            return str(self.value)
        if self.kind == "Number":
            if _INT_LITERAL.fullmatch(self.raw):
                return self.raw
            return strconv.format_float(_as_float(self.value), "f", -1)
        if self.kind == "True":
            return "true"
        if self.kind == "False":
            return "false"
        if self.kind == "JSON":
            return self.raw
        return ""

    def float(self) -> builtins.float:
        if self.kind == "Number":
            return _as_float(self.value)
        if self.kind == "String":
            return go_parse_float(str(self.value))[0]
        return 1.0 if self.kind == "True" else 0.0

    def bool(self) -> builtins.bool:
        if self.kind == "String":
            return go_parse_bool(str(self.value).lower()) is True
        if self.kind == "Number":
            return _as_float(self.value) != 0
        return self.kind == "True"


MISSING_RESULT = PathResult(False, "Null", "", None)


# ---- gjson port ---------------------------------------------------------------------------------------
# Names follow tidwall/gjson (gjson.go): Get, parseObject, parseArray, parseObjectPath, parseArrayPath,
# parseQuery, queryMatches, splitPossiblePipe, parseSubSelectors, execModifier, execStatic.


def gjson_get(doc: bytes | str, path: str) -> PathResult:
    """gjson.Get on JSON text; text that is not valid JSON gives a missing result."""
    try:
        value = parse_json(doc)
    except ValueError:
        return MISSING_RESULT
    return PathResult.of(gjson_get_value(value, path))


_PLAIN_PART = re.compile(r"[A-Za-z0-9_-]+")


def plain_steps(path: str) -> tuple[str, ...] | None:
    """The keys of a path made only of plain keys (letters, digits, `_`, `-`) joined by single dots, which
    `gjson_get_value` reads as a walk (`walk_plain`); None for any other path (wildcards, escapes, `#`, pipes,
    modifiers, multipaths, `..`)."""
    parts = tuple(path.split("."))
    return parts if all(_PLAIN_PART.fullmatch(p) for p in parts) else None


def walk_plain(doc: Any, steps: tuple[str, ...]) -> Any:
    """`gjson_get_value(doc, ".".join(steps))` for `plain_steps` paths, without parsing the path per call: an
    object's member by key, an array's element by a decimal index (`1`, `01`), anything else missing."""
    for step in steps:
        if isinstance(doc, dict):
            doc = doc.get(step, MISSING)
            if doc is MISSING:
                return MISSING
        elif isinstance(doc, list):
            if not step.isdigit() or int(step) >= len(doc):
                return MISSING
            doc = doc[int(step)]
        else:
            return MISSING
    return doc


def gjson_get_value(doc: Any, path: str) -> Any:
    """gjson.Get on an already parsed document (MISSING for none); returns the value or MISSING."""
    if len(path) > 1:
        if path[0] in "@!":
            done = _exec_modifier(doc, path) if path[0] == "@" else _exec_static(path)
            if done is not None:
                rest, out = done
                return gjson_get_value(out, rest[1:]) if rest and rest[0] in "|." else out
        if path[0] in "[{":
            parsed = _sub_selectors(path)
            if parsed is not None and (not parsed[1] or parsed[1][0] in "|."):
                out = _multipath(doc, path[0], parsed[0])
                return gjson_get_value(out, parsed[1][1:]) if parsed[1] else out
    c = _Ctx()
    if path.startswith(".."):  # JSON lines: a single document is one line
        _parse_array(c, [] if doc is MISSING else [doc], path[2:])
    elif isinstance(doc, dict):
        _parse_object(c, doc, path)
    elif isinstance(doc, list):
        _parse_array(c, doc, path)
    return gjson_get_value(c.value, c.pipe) if c.pipe is not None else c.value


class _Ctx:
    __slots__ = ("pipe", "value")

    def __init__(self) -> None:
        self.pipe: str | None = None
        self.value: Any = MISSING


class _Path:
    __slots__ = ("alogkey", "alogok", "arrch", "more", "part", "path", "pipe", "piped", "q_all", "q_on",
                 "q_op", "q_path", "q_value", "wild")

    def __init__(self) -> None:
        self.part = self.path = self.pipe = self.alogkey = self.q_path = self.q_op = self.q_value = ""
        self.piped = self.more = self.wild = self.alogok = self.arrch = self.q_on = self.q_all = False

    def split(self, path: str, i: int, allow_pipe_dot: bool) -> _Path:
        if allow_pipe_dot and i < len(path) - 1 and _dot_piper(path[i + 1:]):
            self.pipe, self.piped = path[i + 1:], True
        else:
            self.path, self.more = path[i + 1:], True
        return self


def _trim(s: str) -> str:
    start, end = 0, len(s)
    while start < end and s[start] <= " ":
        start += 1
    while end > start and s[end - 1] <= " ":
        end -= 1
    return s[start:end]


def _squash(s: str) -> str:
    i, depth, n = (0, 0, len(s)) if s[:1] == '"' else (1, 1, len(s))
    while i < n:
        ch = s[i]
        if ch == '"':
            i += 1
            while i < n and s[i] != '"':
                i += 2 if s[i] == "\\" else 1
            if depth == 0:
                return s if i >= n else s[: i + 1]
        elif ch in "{[(":
            depth += 1
        elif ch in "}])":
            depth -= 1
            if depth == 0:
                return s[: i + 1]
        i += 1
    return s


_ESCAPES = {"\\": "\\", "/": "/", '"': '"', "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}


def _unescape(s: str) -> str:
    out: list[str] = []
    i, n = 0, len(s)
    while i < n:
        ch = s[i]
        if ch != "\\":
            if ch < " ":
                break
            out.append(ch)
            i += 1
            continue
        i += 1
        if i >= n:
            break
        if s[i] in _ESCAPES:
            out.append(_ESCAPES[s[i]])
            i += 1
        elif s[i] == "u" and i + 5 <= n:
            r = int(s[i + 1:i + 5], 16) if re.fullmatch(r"[0-9a-fA-F]{4}", s[i + 1:i + 5]) else 0
            i += 5
            if 0xD800 <= r < 0xE000 and s[i:i + 2] == "\\u" and n - i >= 6:
                r2 = int(s[i + 2:i + 6], 16) if re.fullmatch(r"[0-9a-fA-F]{4}", s[i + 2:i + 6]) else 0
                r = 0x10000 + ((r - 0xD800) << 10) + (r2 - 0xDC00) if r < 0xDC00 <= r2 < 0xE000 else 0xFFFD
                i += 6
            out.append(chr(0xFFFD if 0xD800 <= r < 0xE000 else r))
        else:
            break
    return "".join(out)


_WILD_CACHE: dict[str, re.Pattern[str]] = {}


def _wild_match(s: str, pattern: str) -> bool:
    """tidwall/match: `*` any run, `?` any one character, `\\` escapes the next pattern character."""
    rx = _WILD_CACHE.get(pattern)
    if rx is None:
        out, i = [], 0
        while i < len(pattern):
            ch = pattern[i]
            if ch == "\\" and i + 1 < len(pattern):
                i += 1
                out.append(re.escape(pattern[i]))
            else:
                out.append(".*" if ch == "*" else "." if ch == "?" else re.escape(ch))
            i += 1
        rx = _WILD_CACHE.setdefault(pattern, re.compile("".join(out), re.DOTALL))
    return rx.fullmatch(s) is not None


def _dot_piper(s: str) -> bool:
    if s[0] == "@":
        i = 1
        while i < len(s) and s[i] not in ".|:":
            i += 1
        return s[1:i] in _MODIFIERS
    return s[0] in "[{"


def _object_path(path: str) -> _Path:
    r, i, n = _Path(), 0, len(path)
    while i < n:
        ch = path[i]
        if ch == "|":
            r.part, r.pipe, r.piped = path[:i], path[i + 1:], True
            return r
        if ch == ".":
            r.part = path[:i]
            return r.split(path, i, True)
        if ch in "*?":
            r.wild = True
        elif ch == "\\":
            epart = list(path[:i])
            i += 1
            if i < n:
                epart.append(path[i])
                i += 1
                while i < n:
                    ch = path[i]
                    if ch == "\\":
                        i += 1
                        if i < n:
                            epart.append(path[i])
                    elif ch == ".":
                        r.part = "".join(epart)
                        return r.split(path, i, True)
                    elif ch == "|":
                        r.part, r.pipe, r.piped = "".join(epart), path[i + 1:], True
                        return r
                    else:
                        r.wild = r.wild or ch in "*?"
                        epart.append(ch)
                    i += 1
            r.part = "".join(epart)
            return r
        i += 1
    r.part = path
    return r


def _array_path(path: str) -> _Path:
    r, i, n = _Path(), 0, len(path)
    while i < n:
        ch = path[i]
        if ch == "|":
            r.part, r.pipe, r.piped = path[:i], path[i + 1:], True
            return r
        if ch == ".":
            r.part = path[:i]
            return r.split(path, i, not r.arrch)
        if ch == "#":
            r.arrch = True
            if i == 0 and n > 1 and path[1] == ".":
                r.alogok, r.alogkey = True, path[2:]
            elif i == 0 and n > 1 and path[1] in "[(":
                r.q_on = True
                query = _parse_query(path)
                if query is None:
                    break
                r.q_path, r.q_op, value, end, vesc = query
                if len(value) >= 2 and value[0] == '"' and value[-1] == '"':
                    value = _unescape(value[1:-1]) if vesc else value[1:-1]
                r.q_value = value
                i = end - 1
                r.q_all = i + 1 < n and path[i + 1] == "#"
        i += 1
    r.part, r.path = path, ""
    return r


def _parse_query(q: str) -> tuple[str, str, str, int, bool] | None:
    i, j, depth, vesc, n = 2, 0, 1, False, len(q)
    while i < n:
        ch = q[i]
        if depth == 1 and j == 0 and ch in "!=<>%":
            j = i
        elif ch == "\\":
            i += 1
        elif ch in "[(":
            depth += 1
        elif ch in "])":
            depth -= 1
            if depth == 0:
                break
        elif ch == '"':
            i += 1
            while i < n and q[i] != '"':
                if q[i] == "\\":
                    vesc = True
                    i += 1
                i += 1
        i += 1
    if depth > 0:
        return None
    if j == 0:
        return _trim(q[2:i]), "", "", i + 1, vesc
    value = _trim(q[j:i])
    if value.startswith("=="):
        value = value[1:]
    size = 2 if value[:2] in ("!=", "!%", "<=", ">=") else 1 if len(value) == 1 or value[0] in "<>=%" else 0
    return _trim(q[2:j]), value[:size], _trim(value[size:]), i + 1, vesc


def _truthy(v: Any) -> bool:
    if isinstance(v, str):
        return go_parse_bool(v.lower()) is True
    return v is True or (_kind(v) == "Number" and v != 0)


def _falsy(v: Any) -> bool:
    if isinstance(v, str):
        return go_parse_bool(v.lower()) is False
    return v is None or v is MISSING or v is False or (_kind(v) == "Number" and v == 0)


def _query_matches(rp: _Path, value: Any) -> bool:
    rpv, op = rp.q_value, rp.q_op
    if rpv.startswith("~"):
        ish = {"*": lambda: value is not MISSING, "null": lambda: value is None or value is MISSING,
               "true": lambda: _truthy(value), "false": lambda: _falsy(value)}.get(rpv[1:])
        rpv, value = ("true", ish()) if ish is not None else ("", MISSING)
    if value is MISSING:
        return False
    if op == "":
        return True
    if isinstance(value, str):
        if op in ("%", "!%"):
            return _wild_match(value, rpv) == (op == "%")
        return {"=": value == rpv, "!=": value != rpv, "<": value < rpv, "<=": value <= rpv,
                ">": value > rpv, ">=": value >= rpv}.get(op, False)
    if _kind(value) == "Number":
        num, want = _as_float(value), go_parse_float(rpv)[0]
        return {"=": num == want, "!=": num != want, "<": num < want, "<=": num <= want,
                ">": num > want, ">=": num >= want}.get(op, False)
    if value is True:
        return {"=": rpv == "true", "!=": rpv != "true", ">": rpv == "false", ">=": True}.get(op, False)
    if value is False:
        return {"=": rpv == "false", "!=": rpv != "false", "<": rpv == "true", "<=": True}.get(op, False)
    return False


def _parse_object(c: _Ctx, obj: dict[str, Any], path: str) -> bool:
    rp = _object_path(path)
    if not rp.more and rp.piped:
        c.pipe = rp.pipe
    for key, val in obj.items():
        if not (_wild_match(key, rp.part) if rp.wild else key == rp.part):
            continue
        if not rp.more:
            c.value = val
            return True
        if isinstance(val, dict) and _parse_object(c, val, rp.path):
            return True
        if isinstance(val, list) and _parse_array(c, val, rp.path):
            return True
    return False


def _parse_array(c: _Ctx, arr: list[Any], path: str) -> bool:
    rp = _array_path(path)
    if not rp.more and rp.piped:
        c.pipe = rp.pipe
    if rp.q_on:
        found: list[Any] = []
        for elem in arr:
            if isinstance(elem, (dict, list)):
                res = gjson_get_value(elem, rp.q_path)
            elif rp.q_path:
                continue
            else:
                res = elem
            if not _query_matches(rp, res):
                continue
            if rp.more:
                split = _split_pipe(rp.path)
                if split is not None:
                    rp.path, c.pipe = split
                res = gjson_get_value(elem, rp.path)
            else:
                res = elem
            if not rp.q_all:
                c.value = res
                return True
            if res is not MISSING:
                found.append(res)
        if c.value is MISSING and rp.q_all:
            c.value = found
        return False
    if rp.arrch:
        if rp.part != "#":
            return False
        if not rp.alogok:
            c.value = len(arr)
            return True
        key, split = rp.alogkey, _split_pipe(rp.alogkey)
        if split is not None:
            key, c.pipe = split
        c.value = [r for r in (gjson_get_value(e, key) for e in arr) if r is not MISSING]
        return True
    if not rp.part.isascii() or not rp.part.isdigit() or int(rp.part) >= len(arr):
        return False
    elem = arr[int(rp.part)]
    if not rp.more:
        c.value = elem
        return True
    if isinstance(elem, dict):
        return _parse_object(c, elem, rp.path)
    return isinstance(elem, list) and _parse_array(c, elem, rp.path)


def _split_pipe(path: str) -> tuple[str, str] | None:
    if "|" not in path:
        return None
    if path[0] == "{":
        squashed = _squash(path[1:])
        if len(squashed) < len(path) - 1:
            left = path[: len(squashed) + 1]
            if path[len(left)] == "|":
                return left, path[len(left) + 1:]
        return None
    i, n = 0, len(path)
    while i < n:
        ch = path[i]
        if ch == "\\":
            i += 1
        elif ch == ".":
            if i == n - 1:
                return None
            if path[i + 1] == "#":
                i += 2
                if i == n:
                    return None
                if path[i] in "[(":
                    start, end = path[i], "]" if path[i] == "[" else ")"
                    i, depth = i + 1, 1
                    while i < n:
                        if path[i] == "\\":
                            i += 1
                        elif path[i] == start:
                            depth += 1
                        elif path[i] == end:
                            depth -= 1
                            if depth == 0:
                                break
                        elif path[i] == '"':
                            i += 1
                            while i < n and path[i] != '"':
                                i += 2 if path[i] == "\\" else 1
                        i += 1
        elif ch == "|":
            return path[:i], path[i + 1:]
        i += 1
    return None


def _sub_selectors(path: str) -> tuple[list[tuple[str, str]], str] | None:
    sels: list[tuple[str, str]] = []
    modifier, depth, colon, start, i, n = 0, 1, 0, 1, 1, len(path)
    while i < n:
        ch = path[i]
        if ch == "\\":
            i += 1
        elif ch == "@":
            if modifier == 0 and path[i - 1] in ".|":
                modifier = i
        elif ch == ":":
            if modifier == 0 and colon == 0 and depth == 1:
                colon = i
        elif ch == '"':
            i += 1
            while i < n and path[i] != '"':
                i += 2 if path[i] == "\\" else 1
        elif ch in "[({":
            depth += 1
        elif (ch == "," and depth == 1) or (ch in "])}" and depth == 1):
            sels.append(("", path[start:i]) if colon == 0 else (path[start:colon], path[colon + 1:i]))
            colon, modifier, start = 0, 0, i + 1
            if ch != ",":
                return sels, path[i + 1:]
        elif ch in "])}":
            depth -= 1
        i += 1
    return None


def _last_name(path: str) -> str:
    for i in range(len(path) - 1, -1, -1):
        if path[i] in "|." and not (i > 0 and path[i - 1] == "\\"):
            return path[i + 1:]
    return path


def _multipath(doc: Any, kind: str, sels: list[tuple[str, str]]) -> Any:
    if kind == "[":
        return [r for r in (gjson_get_value(doc, p) for _, p in sels) if r is not MISSING]
    out: dict[str, Any] = {}
    for name, sub in sels:
        res = gjson_get_value(doc, sub)
        if res is MISSING:
            continue
        if name.startswith('"'):
            try:
                key = json.loads(name)
            except ValueError:
                key = name
        elif name:
            key = name
        else:
            last = _last_name(sub)
            simple = not any(ch < " " or ch in "[]{}()#|!" for ch in last)
            key = last if simple else "_"
        out.setdefault(str(key), res)
    return out


def _exec_static(path: str) -> tuple[str, Any] | None:
    name = path[1:]
    if name[0] in '{["':
        raw = _squash(name)
        try:
            return name[len(raw):], parse_json(raw)
        except ValueError:
            return name[len(raw):], MISSING
    if name[0] in "+-0123456789":
        literal = re.match(r"[^\s,\]}]*", name)
        text = literal.group(0) if literal else name
        return "", int(text) if _INT_LITERAL.fullmatch(text) else go_parse_float(text)[0]
    cut = re.search(r"[|.]", path[1:])
    rest, name = (path[1 + cut.start():], path[1:1 + cut.start()]) if cut else ("", name)
    if name.lower() not in ("true", "false", "null", "nan", "inf"):
        return None
    first = name[0]
    if first in "tf":
        return rest, first == "t"
    if name[:2] == "nu":
        return rest, None
    return rest, go_parse_float(name)[0] if first in "nNiI" else MISSING


def _exec_modifier(doc: Any, path: str) -> tuple[str, Any] | None:
    name, rest, has_args = path[1:], "", False
    for i in range(1, len(path)):
        if path[i] == ":":
            name, rest = path[1:i], path[i + 1:]
            has_args = rest != ""
            break
        if path[i] in "|.":
            name, rest = path[1:i], path[i:]
            break
    fn = _MODIFIERS.get(name)
    if fn is None:
        return None
    args = ""
    if has_args:
        if rest[0] in '{["':
            args = _squash(rest)
        else:
            i = 0
            while i < len(rest) and rest[i] != "|":
                if rest[i] in '{["(':
                    i += len(_squash(rest[i:])) - 1
                i += 1
            args = rest[:i]
        rest = rest[len(args):]
    return rest, fn(doc, args)


def _arg_flag(arg: str, key: str) -> bool:
    try:
        opts = parse_json(arg) if arg else {}
    except ValueError:
        return False
    return isinstance(opts, dict) and key in opts and PathResult.of(opts[key]).bool()


def _flatten(v: Any, arg: str) -> Any:
    if not isinstance(v, list):
        return v
    deep, out = _arg_flag(arg, "deep"), list[Any]()
    for e in v:
        if isinstance(e, list):
            out.extend(_flatten(e, arg) if deep else e)
        else:
            out.append(e)
    return out


def _join(v: Any, arg: str) -> Any:
    if not isinstance(v, list):
        return v
    out: dict[str, Any] = {}
    preserve = _arg_flag(arg, "preserve")
    for e in (e for e in v if isinstance(e, dict)):
        for k, val in e.items():
            if preserve:
                out.setdefault(k, val)
            else:
                out[k] = val
    return out


def _group(v: Any, _arg: str) -> Any:
    if not isinstance(v, dict):
        return MISSING
    rows: list[dict[str, Any]] = []
    for key, arr in v.items():
        for idx, item in enumerate(arr if isinstance(arr, list) else []):
            if idx == len(rows):
                rows.append({})
            rows[idx].setdefault(key, item)
    return rows


def _dig(v: Any, arg: str) -> Any:
    found: list[Any] = []

    def walk(node: Any) -> None:
        res = gjson_get_value(node, arg)
        if res is not MISSING:
            found.append(res)
        for child in node.values() if isinstance(node, dict) else node if isinstance(node, list) else ():
            walk(child)

    walk(v)
    return found


def _fromstr(v: Any, _arg: str) -> Any:
    if not isinstance(v, str):
        return v
    try:
        return parse_json(v)
    except ValueError:
        return MISSING


def _reverse(v: Any, _arg: str) -> Any:
    if isinstance(v, list):
        return v[::-1]
    return dict(reversed(list(v.items()))) if isinstance(v, dict) else v


def _keys(v: Any, _arg: str) -> Any:
    if v is MISSING:
        return []
    return list(v) if isinstance(v, dict) else [None] * (len(v) if isinstance(v, list) else 1)


def _values(v: Any, _arg: str) -> Any:
    if v is MISSING:
        return []
    return v if isinstance(v, list) else list(v.values()) if isinstance(v, dict) else [v]


def _this(v: Any, _arg: str) -> Any:
    return v  # also @valid: parsed documents are always valid


def _pretty(v: Any, _arg: str) -> Any:
    """@pretty with 2-space indentation; tidwall/pretty's line-fitting (width 80) is not reproduced."""
    if not isinstance(v, (dict, list)):
        return v
    text = json.dumps(_compact(v), indent=2, ensure_ascii=False)
    out: _RawDict | _RawList = _RawDict(v) if isinstance(v, dict) else _RawList(v)
    out.span(text, 0, len(text))
    return out


_MODIFIERS: dict[str, Callable[[Any, str], Any]] = {
    "pretty": _pretty, "ugly": lambda v, _a: _compact(v), "reverse": _reverse, "this": _this,
    "flatten": _flatten, "join": _join, "valid": _this, "keys": _keys, "values": _values, "fromstr": _fromstr,
    "group": _group, "dig": _dig,
    "tostr": lambda v, _a: "" if v is MISSING else to_json(v),
}

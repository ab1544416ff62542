"""Sprig's regular expression functions for engine.goport.template (Go library), with Go's regexp semantics for
`$1`/`${name}` expansion, empty matches next to a previous match, Split, and MustCompile panic texts.
Patterns are RE2 (engine.goport.re2, linear time); like Go, subjects are matched as UTF-8 bytes, encoded once per call,
so FindAll/ReplaceAll/Split loops stay linear in the subject."""

from __future__ import annotations

from sensorium.engine.goport.re2 import GoRegexp, utf8
from sensorium.engine.goport.strconv import can_backquote, quote
from sensorium.engine.goport.template.builtins import INT, STRING, CallContext, Func
from sensorium.engine.goport.template.values import FuncError, StrList

_Spans = list[tuple[int, int]]


def _compile(ctx: CallContext, pattern: str, must: bool) -> GoRegexp:
    """Compile like regexp.Compile (must=True: the error is returned) or MustCompile (a panic text)."""
    try:
        return ctx.regex(pattern)
    except ValueError as exc:
        text = str(exc) if str(exc).startswith("error parsing regexp") else f"error parsing regexp: {exc}"
        if must:
            raise FuncError(text) from None
        q = "`" + pattern + "`" if can_backquote(pattern) else quote(pattern)
        raise FuncError(f"regexp: Compile({q}): {text}") from None


def _text(data: bytes) -> str:
    # match boundaries are UTF-8 boundaries except after an empty-width assertion inside a character
    return data.decode("utf-8", "replace")


def _width(data: bytes, pos: int) -> int:
    """Bytes of the UTF-8 character at `pos` (utf8.DecodeRune's width; 1 for an invalid byte, 0 at the end)."""
    if pos >= len(data):
        return 0
    lead = data[pos]
    size = 1 if lead < 0xC0 else 2 if lead < 0xE0 else 3 if lead < 0xF0 else 4
    return size if pos + size <= len(data) else 1


def _find_all(rx: GoRegexp, data: bytes, n: int) -> list[_Spans]:
    """Go's allMatches: an empty match right after the previous match is skipped."""
    out: list[_Spans] = []
    pos, prev_end = 0, -1
    limit = len(data) + 1 if n < 0 else n
    while len(out) < limit and pos <= len(data):
        m = rx.search_bytes(data, pos)
        if m is None:
            break
        start, end = m[0]
        accept = True
        if end == pos:  # an empty match here
            if start == prev_end:
                accept = False
            pos += _width(data, pos) or 1
        else:
            pos = end
        prev_end = end
        if accept:
            out.append(m)
    return out


def _expand(rx: GoRegexp, data: bytes, m: _Spans, template: str) -> str:
    """Regexp.Expand: $1, ${1}, $name, ${name}, $$."""
    out: list[str] = []
    i = 0
    while True:
        j = template.find("$", i)
        if j < 0:
            out.append(template[i:])
            return "".join(out)
        out.append(template[i:j])
        i = j + 1
        if template[i:i + 1] == "$":
            out.append("$")
            i += 1
            continue
        brace = template[i:i + 1] == "{"
        k = i + brace
        start = k
        while k < len(template) and (template[k].isalnum() or template[k] == "_"):
            k += 1
        name = template[start:k]
        if not name or (brace and template[k:k + 1] != "}"):
            out.append("$")
            continue
        i = k + brace
        index = int(name) if name.isdigit() and (name == "0" or name[0] != "0") else rx.group_index.get(name, -1)
        if 0 <= index < len(m) and m[index][0] >= 0:  # no such group, or it did not match: nothing
            out.append(_text(data[m[index][0]:m[index][1]]))


def _replace_all(ctx: CallContext, rx: GoRegexp, s: str, repl: str, literal: bool) -> str:
    """Go's replaceAll: an empty match right after a match is not replaced (except at the start)."""
    data = utf8(s)
    out: list[str] = []
    size = 0
    search, last = 0, 0
    while search <= len(data):
        m = rx.search_bytes(data, search)
        if m is None:
            break
        start, end = m[0]
        piece = _text(data[last:start])
        out.append(piece)
        size += len(piece)
        if end > last or start == 0:
            piece = repl if literal else _expand(rx, data, m, repl)
            out.append(piece)
            size += len(piece)
        if size > ctx.max_value:
            raise FuncError(f"result exceeds the template value limit of {ctx.max_value}")
        last = end
        width = _width(data, search)
        if search + width > end:
            search += width
        elif search + 1 > end:
            search += 1
        else:
            search = end
    out.append(_text(data[last:]))
    return "".join(out)


def _regex_split(ctx: CallContext, pattern: str, s: str, n: int, must: bool) -> StrList:
    rx = _compile(ctx, pattern, must)
    if n == 0:
        return StrList()
    if pattern and s == "":
        return StrList([""])
    data = utf8(s)
    parts = StrList()
    beg = end = 0
    for m in _find_all(rx, data, n):
        if n > 0 and len(parts) == n - 1:
            break
        end = m[0][0]
        if m[0][1] != 0:
            parts.append(_text(data[beg:end]))
        beg = m[0][1]
    if end != len(data):
        parts.append(_text(data[beg:]))
    return parts


_META = set("\\.+*?()|[]{}^$")


def _regex_funcs() -> dict[str, Func]:
    def match(must: bool) -> Func:
        def impl(ctx: CallContext, pattern: str, s: str) -> bool:
            try:
                return ctx.regex(pattern).matches(s)
            except ValueError:
                if must:
                    _compile(ctx, pattern, True)
                return False
        return Func((STRING, STRING), None, impl)

    def find(must: bool) -> Func:
        def impl(ctx: CallContext, pattern: str, s: str) -> str:
            data = utf8(s)
            m = _compile(ctx, pattern, must).search_bytes(data)
            return _text(data[m[0][0]:m[0][1]]) if m else ""
        return Func((STRING, STRING), None, impl)

    def find_all(must: bool) -> Func:
        def impl(ctx: CallContext, pattern: str, s: str, n: int) -> StrList:
            rx, data = _compile(ctx, pattern, must), utf8(s)
            return StrList(_text(data[m[0][0]:m[0][1]]) for m in _find_all(rx, data, n))
        return Func((STRING, STRING, INT), None, impl)

    def replace(must: bool, literal: bool) -> Func:
        def impl(ctx: CallContext, pattern: str, s: str, repl: str) -> str:
            return _replace_all(ctx, _compile(ctx, pattern, must), s, repl, literal)
        return Func((STRING, STRING, STRING), None, impl)

    def split(must: bool) -> Func:
        def impl(ctx: CallContext, pattern: str, s: str, n: int) -> StrList:
            return _regex_split(ctx, pattern, s, n, must)
        return Func((STRING, STRING, INT), None, impl)

    funcs: dict[str, Func] = {}
    for must in (False, True):
        pre = "mustR" if must else "r"
        funcs[pre + "egexMatch"] = match(must)
        funcs[pre + "egexFind"] = find(must)
        funcs[pre + "egexFindAll"] = find_all(must)
        funcs[pre + "egexReplaceAll"] = replace(must, False)
        funcs[pre + "egexReplaceAllLiteral"] = replace(must, True)
        funcs[pre + "egexSplit"] = split(must)
    funcs["regexQuoteMeta"] = Func((STRING,), None,
                                   lambda ctx, s: "".join("\\" + c if c in _META else c for c in s))
    return funcs


REGEX_FUNCS = _regex_funcs()

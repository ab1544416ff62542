"""Sprig's regular expression functions for engine.gotemplate (kernel), with Go's regexp semantics for
`$1`/`${name}` expansion, empty matches next to a previous match, Split, and MustCompile panic texts.
Patterns are compiled by the render's `regex` compiler (Python `re` unless an RE2 translator is given)."""

from __future__ import annotations

import re

from engine.gotemplate_builtins import INT, STRING, CallContext, Func
from engine.gotemplate_fmt import can_backquote, quote
from engine.gotemplate_values import FuncError, StrList


def _compile(ctx: CallContext, pattern: str, must: bool) -> re.Pattern[str]:
    """Compile like regexp.Compile (must=True: the error is returned) or MustCompile (a panic text)."""
    try:
        return ctx.regex(pattern)
    except (ValueError, re.error) as exc:
        text = str(exc) if str(exc).startswith("error parsing regexp") else f"error parsing regexp: {exc}"
        if must:
            raise FuncError(text) from None
        q = "`" + pattern + "`" if can_backquote(pattern) else quote(pattern)
        raise FuncError(f"regexp: Compile({q}): {text}") from None


def _find_all(rx: re.Pattern[str], s: str, n: int) -> list[re.Match[str]]:
    """Go's allMatches: an empty match right after the previous match is skipped."""
    out: list[re.Match[str]] = []
    pos, prev_end = 0, -1
    limit = len(s) + 1 if n < 0 else n
    while len(out) < limit and pos <= len(s):
        m = rx.search(s, pos)
        if m is None:
            break
        accept = True
        if m.end() == pos:  # an empty match here
            if m.start() == prev_end:
                accept = False
            pos += 1
        else:
            pos = m.end()
        prev_end = m.end()
        if accept:
            out.append(m)
    return out


def _expand(rx: re.Pattern[str], m: re.Match[str], template: str) -> str:
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
        group: int | str = int(name) if name.isdigit() and (name == "0" or name[0] != "0") else name
        try:
            out.append(m.group(group) or "")
        except IndexError:  # no such group: expands to nothing
            pass


def _replace_all(ctx: CallContext, rx: re.Pattern[str], s: str, repl: str, literal: bool) -> str:
    out: list[str] = []
    last = 0
    size = 0
    for m in _all_for_replace(rx, s):
        out.append(s[last:m.start()])
        piece = repl if literal else _expand(rx, m, repl)
        out.append(piece)
        size += len(piece) + m.start() - last
        if size > ctx.max_value:
            raise FuncError(f"result exceeds the template value limit of {ctx.max_value}")
        last = m.end()
    out.append(s[last:])
    return "".join(out)


def _all_for_replace(rx: re.Pattern[str], s: str) -> list[re.Match[str]]:
    """Go's ReplaceAll loop: an empty match right after a match is not replaced (except at the start)."""
    out: list[re.Match[str]] = []
    pos, last_end = 0, 0
    while pos <= len(s):
        m = rx.search(s, pos)
        if m is None:
            break
        if m.end() > last_end or m.start() == 0:
            out.append(m)
        last_end = m.end()
        pos = pos + 1 if pos + 1 > m.end() else m.end()
    return out


def _regex_split(ctx: CallContext, pattern: str, s: str, n: int, must: bool) -> StrList:
    rx = _compile(ctx, pattern, must)
    if n == 0:
        return StrList()
    if pattern and s == "":
        return StrList([""])
    parts = StrList()
    beg = end = 0
    for m in _find_all(rx, s, n):
        if n > 0 and len(parts) == n - 1:
            break
        end = m.start()
        if m.end() != 0:
            parts.append(s[beg:end])
        beg = m.end()
    if end != len(s):
        parts.append(s[beg:])
    return parts


_META = set("\\.+*?()|[]{}^$")


def _regex_funcs() -> dict[str, Func]:
    def match(must: bool) -> Func:
        def impl(ctx: CallContext, pattern: str, s: str) -> bool:
            try:
                return ctx.regex(pattern).search(s) is not None
            except (ValueError, re.error):
                if must:
                    _compile(ctx, pattern, True)
                return False
        return Func((STRING, STRING), None, impl)

    def find(must: bool) -> Func:
        def impl(ctx: CallContext, pattern: str, s: str) -> str:
            m = _compile(ctx, pattern, must).search(s)
            return m.group(0) if m else ""
        return Func((STRING, STRING), None, impl)

    def find_all(must: bool) -> Func:
        def impl(ctx: CallContext, pattern: str, s: str, n: int) -> StrList:
            return StrList(m.group(0) for m in _find_all(_compile(ctx, pattern, must), s, n))
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

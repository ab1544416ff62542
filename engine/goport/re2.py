"""Go regular expressions (RE2) through the google-re2 package (pure, Go library).

Argo compiles data filter `value`s of type string, expression `=~`/`!~` operands and sprig's `regex*` patterns
with Go's `regexp`, which is RE2: matching takes time linear in the subject, whatever the pattern (`^(a+)+$` on
100,000 `a`s and a `!` decides in well under a millisecond). Python's `re` backtracks and would not.

Go semantics kept: unanchored search, leftmost-first (not POSIX longest) matches, `$` is end of text outside
`(?m)`, `\\z`, `\\Q...\\E`, `(?<name>`/`(?P<name>`, POSIX classes, Unicode classes (`\\pL`, `\\p{Greek}`),
`(?U)`, ASCII `\\d \\w \\s \\b`; RE2 refuses what Go refuses (lookarounds, backreferences, repeats over 1000) with
errors worded like Go's (`error parsing regexp: invalid repeat count: `{1001}``).

Go strings are bytes and its regexp matches UTF-8 bytes; so does RE2 here: patterns and subjects are encoded to
UTF-8 once and matched as bytes (offsets in `search_bytes` spans are byte offsets). Measured on this machine:
a search on a small str costs 3.7 us through google-re2's str API, 1.9 us encoding to bytes ourselves, and the
str API re-encodes the whole subject on every call, which made repeated searches from an offset (FindAll,
ReplaceAll) quadratic (7 ms per search on 1 MB). Lone surrogates (not valid in UTF-8) read as U+FFFD, which is
what Go's JSON decoder makes of them.

Compiled patterns are cached (128, as google-re2's own cache); each RE2 object's memory is bounded by RE2's
`max_mem` (8 MiB, its default): a pattern whose program does not fit is refused (`expression too large`), and a
search whose DFA outgrows it falls back to RE2's NFA, still linear.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, Final

import re2

__all__ = ["GoRegexp", "RegexError", "compile_re2", "utf8"]

_OPTIONS: Final = re2.Options()
_OPTIONS.log_errors = False  # RE2 would print every refused pattern on stderr; the caller reports it once

# RE2's error codes (re2/regexp.cc CodeText) and Go's (regexp/syntax ErrorCode) for the same problems
_GO_CODES: Final = (
    ("missing )", "missing closing )"),
    ("unexpected )", "unexpected )"),
    ("missing ]", "missing closing ]"),
    ("invalid perl operator", "invalid or unsupported Perl syntax"),
    ("no argument for repetition operator", "missing argument to repetition operator"),
    ("bad repetition operator", "invalid nested repetition operator"),
    ("invalid repetition size", "invalid repeat count"),
    ("invalid escape sequence", "invalid escape sequence"),
    ("invalid character class range", "invalid character class range"),
    ("invalid character class", "invalid character class"),
    ("trailing \\", "trailing backslash at end of expression"),
    ("invalid named capture group", "invalid named capture"),
    ("invalid UTF-8", "invalid UTF-8"),
    ("pattern too large", "expression too large"),
)


class RegexError(ValueError):
    """A pattern Go's regexp would not compile; the message follows Go's `error parsing regexp: ...` form."""


def _go_error(pattern: str, exc: Exception) -> RegexError:
    raw = exc.args[0] if exc.args else ""
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
    for code, go in _GO_CODES:
        if text.startswith(code):
            arg = text[len(code):].lstrip(":").strip()
            if code == "pattern too large":
                arg = pattern
            elif code == "trailing \\":
                arg = ""  # Go names no fragment here
            return RegexError(f"error parsing regexp: {go}: `{arg}`")
    return RegexError(f"error parsing regexp: {text}: `{pattern}`")


def utf8(text: str) -> bytes:
    """`text` as UTF-8 bytes, lone surrogates as U+FFFD (Go strings cannot hold them)."""
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace").encode("utf-8")


_MAX_NESTING: Final = 1000  # Go's regexp/syntax maxHeight; RE2 itself accepts deeper nesting


def _nesting(pattern: str) -> int:
    """Deepest group nesting of `pattern` (escapes, `\\Q...\\E` and bracket classes skipped), in one pass."""
    depth = deepest = i = 0
    n = len(pattern)
    while i < n:
        ch = pattern[i]
        if ch == "\\":
            if pattern.startswith("Q", i + 1):
                end = pattern.find("\\E", i + 2)
                i = n if end < 0 else end + 2
                continue
            i += 2
            continue
        if ch == "[":
            i += 1
            i += 1 if pattern.startswith("^", i) else 0
            i += 1 if pattern.startswith("]", i) else 0  # a leading ] is a literal
            while i < n and pattern[i] != "]":
                if pattern[i] == "\\":
                    i += 2
                elif pattern.startswith("[:", i) and (end := pattern.find(":]", i + 2)) >= 0:
                    i = end + 2
                else:
                    i += 1
            i += 1
            continue
        if ch == "(":
            depth += 1
            deepest = max(deepest, depth)
        elif ch == ")":
            depth = max(depth - 1, 0)
        i += 1
    return deepest


_LITERAL_CHARS: Final = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_- ")


class GoRegexp:
    """A compiled RE2 pattern with Go's regexp semantics (see the module docstring)."""

    __slots__ = ("_literal", "_rx", "group_index", "groups", "pattern")

    def __init__(self, pattern: str) -> None:
        self.pattern = pattern
        # A pattern of letters, digits, '_', '-' and spaces only matches exactly itself: `matches` is then a
        # substring test (the common filter value, e.g. "push"), without the wrapper's per-call Python work.
        self._literal = pattern if pattern and _LITERAL_CHARS.issuperset(pattern) else None
        if len(pattern) > _MAX_NESTING and _nesting(pattern) > _MAX_NESTING:
            raise RegexError(f"error parsing regexp: expression nests too deeply: `{pattern[:40]}...`")
        try:
            self._rx: Any = re2.compile(utf8(pattern), _OPTIONS)
        except re2.error as exc:
            raise _go_error(pattern, exc) from None
        self.groups: int = self._rx.groups
        self.group_index: dict[str, int] = {
            (k.decode("utf-8", "replace") if isinstance(k, bytes) else k): v
            for k, v in self._rx.groupindex.items()}

    def __repr__(self) -> str:
        return f"GoRegexp({self.pattern!r})"

    def matches(self, text: str) -> bool:
        """regexp.MatchString: is there a match anywhere in `text` (unanchored)?"""
        if self._literal is not None:
            return self._literal in text
        return self._rx.search(utf8(text)) is not None

    def search_bytes(self, data: bytes, pos: int = 0) -> list[tuple[int, int]] | None:
        """The leftmost match starting at or after byte `pos` of `data` (`^` and `\\b` still see the bytes
        before `pos`, as Go's doExecute does): the spans of group 0 and each group, (-1, -1) for a group that
        did not take part; None without a match."""
        m = self._rx.search(data, pos)
        if m is None:
            return None
        return [m.span(i) for i in range(self.groups + 1)]


@lru_cache(maxsize=4096)
def compile_re2(pattern: str) -> GoRegexp:
    """Compile a Go (RE2) pattern; raises RegexError with a Go-style message for one Go would refuse. Cached:
    filters look their values up per event, so the cache must hold every pattern of the loaded sensors (with 128,
    200 sensors' distinct patterns recompiled on every event: 13 us each); a small pattern holds ~1.5 KiB
    (RSS of 10,000 compiled and used), so 4,096 of them cost ~6 MiB at most."""
    return GoRegexp(pattern)

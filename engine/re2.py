"""Go RE2 regular expressions (data filter `value`s of type string) translated to Python `re` (pure).

Argo compiles each value with Go's regexp (RE2) and searches unanchored. Translations: `$` outside `(?m)`
is end of text only (Python's `$` also matches before a final newline), `\\z`, `\\Q...\\E`, `(?<name>`,
POSIX classes such as `[[:alpha:]]`, and ASCII `\\d \\w \\s \\b` (re.ASCII; RE2's `(?i)` also folds
non-ASCII letters, Python then does not). Python-only syntax that RE2 rejects (lookarounds, backreferences,
atomic groups, possessive quantifiers) is rejected too; RE2-only syntax Python lacks (`\\pL`, `\\p{Greek}`,
`(?U)`) is an error.
"""

from __future__ import annotations

import re
import warnings
from functools import lru_cache

_POSIX = {
    "alnum": "0-9A-Za-z", "alpha": "A-Za-z", "ascii": "\\x00-\\x7f", "blank": "\\t ",
    "cntrl": "\\x00-\\x1f\\x7f",
    "digit": "0-9", "graph": "!-~", "lower": "a-z", "print": " -~", "punct": "!-/:-@\\[-`{-~",
    "space": "\\t\\n\\v\\f\\r ", "upper": "A-Z", "word": "0-9A-Za-z_", "xdigit": "0-9A-Fa-f",
}
_FLAG_GROUP = re.compile(r"\(\?[a-zA-Z]*m[a-zA-Z]*[:)]")


class RegexError(ValueError):
    """A pattern Go's regexp would not compile; the message follows Go's `error parsing regexp: ...` form."""


def _fail(fragment: str, code: str) -> RegexError:
    return RegexError(f"error parsing regexp: {code}: `{fragment}`")


def _class(pattern: str, i: int, out: list[str]) -> int:
    """Copy a bracket expression starting at pattern[i] == '['; returns the index after its ']'."""
    out.append("[")
    start, i = i, i + 1
    if pattern[i:i + 1] == "^":
        out.append("^")
        i += 1
    first = True
    while i < len(pattern):
        ch = pattern[i]
        if ch == "]" and not first:
            out.append("]")
            return i + 1
        first = False
        if ch == "[" and pattern[i:i + 2] == "[:":
            end = pattern.find(":]", i + 2)
            name = pattern[i + 2:end] if end > 0 else ""
            negated = name.startswith("^")
            if name.lstrip("^") not in _POSIX:
                raise _fail(pattern[i:end + 2], "invalid character class range")
            if negated:
                raise _fail(pattern, "negated POSIX classes inside brackets are not supported here")
            out.append(_POSIX[name])
            i = end + 2
            continue
        if ch == "\\":
            nxt = pattern[i + 1:i + 2]
            if nxt in ("p", "P"):
                raise _fail(pattern, f"Unicode class \\{nxt} is not supported (Sensorium uses Python's re)")
            out.append(pattern[i:i + 2])
            i += 2
            continue
        out.append("\\" + ch if ch in "[&~|" or (ch == "-" and pattern[i - 1:i] == "-") else ch)
        i += 1
    raise _fail(pattern[start:], "missing closing ]")


def translate(pattern: str) -> str:
    """The Python `re` source for an RE2 pattern; raises RegexError for syntax RE2 would reject."""
    multiline = _FLAG_GROUP.search(pattern) is not None
    out: list[str] = []
    i, n = 0, len(pattern)
    while i < n:
        ch = pattern[i]
        if ch == "[":
            i = _class(pattern, i, out)
            continue
        if ch == "\\":
            nxt = pattern[i + 1:i + 2]
            if nxt == "Q":
                end = pattern.find("\\E", i + 2)
                literal = pattern[i + 2:] if end < 0 else pattern[i + 2:end]
                out.append(re.escape(literal))
                i = n if end < 0 else end + 2
                continue
            if nxt.isdigit() and nxt != "0":
                raise _fail(f"\\{nxt}", "invalid escape sequence (RE2 has no backreferences)")
            if nxt in ("p", "P", "C"):
                raise _fail(pattern, f"escape \\{nxt} is not supported (Sensorium uses Python's re)")
            out.append("\\Z" if nxt == "z" else pattern[i:i + 2])
            i += 2
            continue
        if ch == "(" and pattern[i + 1:i + 2] == "?":
            rest = pattern[i + 2:]
            perl = next((p for p in ("<=", "<!", "P=", "=", "!", ">", "#") if rest.startswith(p)), None)
            if perl is not None:
                raise _fail(f"(?{perl}", "invalid or unsupported Perl syntax")
            if rest.startswith("<"):
                out.append("(?P<")
                i += 3
                continue
            flags = re.match(r"-?[a-zA-Z-]*", rest)
            if flags and "U" in flags.group(0):
                raise _fail(pattern, "the ungreedy flag (?U) is not supported (Sensorium uses Python's re)")
        if ch in "*+?" and pattern[i + 1:i + 2] == "+":
            raise _fail(f"{ch}+", "invalid nested repetition operator")
        out.append("\\Z" if ch == "$" and not multiline else ch)
        i += 1
    return "".join(out)


@lru_cache(maxsize=512)
def compile_re2(pattern: str) -> re.Pattern[str]:
    """Compile an RE2 pattern for unanchored `search`; raises RegexError with a Go-style message."""
    source = translate(pattern)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            return re.compile(source, re.ASCII)
    except re.error as exc:
        raise _fail(pattern, exc.msg) from None

"""Go regexps (RE2 through google-re2): Go's semantics, Go's error wording, linear time."""

from __future__ import annotations

import time

import pytest

from sensorium.engine.goport.re2 import compile_re2, utf8


@pytest.mark.parametrize(("pattern", "text", "found"), [
    ("world", "hello world", True), ("^abc$", "abc\n", False), ("(?m)^abc$", "x\nabc\ny", True),
    (r"a\z", "a", True), (r"\Qa.b\E", "a.b", True), (r"\Qa.b\E", "axb", False),
    ("[[:digit:]]+", "x42", True), ("[[:upper:]]", "abc", False), (r"(?<year>\d{4})", "in 2024", True),
    (r"\d", "٣", False), (r"\w+", "é", False),  # ASCII classes like Go
    (r"^\pL+$", "éte", True), (r"\p{Greek}", "abc λ", True), (r"\PL", "abc", False),  # Unicode classes
    ("(?U)a+", "aaa", True), ("(?i)straße", "STRASSE", False), ("(?i)k", "\u212a", True),  # Kelvin sign folds
    (".", "\n", False), ("(?s).", "\n", True), ("[^a]", "\ud800", True),  # a lone surrogate reads as U+FFFD
])
def test_search_semantics(pattern: str, text: str, found: bool) -> None:
    assert compile_re2(pattern).matches(text) is found


def test_spans_are_utf8_byte_offsets_and_leftmost_first() -> None:
    rx = compile_re2("(?P<word>b+)|(c)")
    assert rx.search_bytes(utf8("éb")) == [(2, 3), (2, 3), (-1, -1)]
    assert rx.group_index == {"word": 1}
    assert compile_re2("a|ab").search_bytes(b"ab") == [(0, 1)]  # leftmost-first, not POSIX longest
    assert compile_re2("^a").search_bytes(b"aa", 1) is None  # `^` still sees the text before pos


@pytest.mark.parametrize(("pattern", "message"), [
    ("(abc", "error parsing regexp: missing closing ): `(abc`"),
    ("[abc", "error parsing regexp: missing closing ]: `[abc`"),
    ("(?=a)", "error parsing regexp: invalid or unsupported Perl syntax: `(?=`"),
    ("x(?<!a)", "error parsing regexp: invalid or unsupported Perl syntax: `(?<!`"),
    (r"(a)\1", "error parsing regexp: invalid escape sequence: `\\1`"),
    ("a++", "error parsing regexp: invalid nested repetition operator: `++`"),
    ("[[:nope:]]", "error parsing regexp: invalid character class range: `[:nope:]`"),
    ("*", "error parsing regexp: missing argument to repetition operator: `*`"),
    ("a{1001}", "error parsing regexp: invalid repeat count: `{1001}`"),
    ("a)", "error parsing regexp: unexpected ): `a)`"),
    ("a\\", "error parsing regexp: trailing backslash at end of expression: ``"),
    (r"\pL{1000}", "error parsing regexp: expression too large: `\\pL{1000}`"),
])
def test_errors_use_go_wording(pattern: str, message: str) -> None:
    with pytest.raises(ValueError) as info:
        compile_re2(pattern)
    assert str(info.value) == message


@pytest.mark.parametrize("pattern", ["^(a+)+$", "(a|aa)+$", "(a*)*b", "^(a|a?)+$"])
def test_backtracking_bombs_decide_in_milliseconds(pattern: str) -> None:
    subject = "a" * 100_000 + "!"
    started = time.perf_counter()
    assert compile_re2(pattern).matches(subject) is False
    assert time.perf_counter() - started < 0.05

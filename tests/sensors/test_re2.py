"""RE2 patterns translated to Python `re` for string data filters."""

from __future__ import annotations

import pytest

from engine.re2 import compile_re2, translate


@pytest.mark.parametrize(("pattern", "text", "found"), [
    ("world", "hello world", True), ("^abc$", "abc\n", False), ("(?m)^abc$", "x\nabc\ny", True),
    (r"a\z", "a", True), (r"\Qa.b\E", "a.b", True), (r"\Qa.b\E", "axb", False),
    ("[[:digit:]]+", "x42", True), ("[[:upper:]]", "abc", False), (r"(?<year>\d{4})", "in 2024", True),
    (r"\d", "٣", False), (r"\w+", "é", False),  # ASCII classes like RE2
])
def test_search_semantics(pattern: str, text: str, found: bool) -> None:
    assert (compile_re2(pattern).search(text) is not None) is found


def test_translation() -> None:
    assert translate("^a$|[$]") == r"^a\Z|[$]"
    assert translate("[a&&b~~c]") == r"[a\&\&b\~\~c]"


@pytest.mark.parametrize(("pattern", "message"), [
    ("(abc", "error parsing regexp: missing ), unterminated subpattern: `(abc`"),
    ("[abc", "error parsing regexp: missing closing ]: `[abc`"),
    ("(?=a)", "error parsing regexp: invalid or unsupported Perl syntax: `(?=`"),
    ("x(?<!a)", "error parsing regexp: invalid or unsupported Perl syntax: `(?<!`"),
    (r"(a)\1", "error parsing regexp: invalid escape sequence (RE2 has no backreferences): `\\1`"),
    ("a++", "error parsing regexp: invalid nested repetition operator: `++`"),
    ("[[:nope:]]", "error parsing regexp: invalid character class range: `[:nope:]`"),
    ("*", "error parsing regexp: nothing to repeat: `*`"),
])
def test_errors_use_go_wording(pattern: str, message: str) -> None:
    with pytest.raises(ValueError) as info:
        compile_re2(pattern)
    assert str(info.value) == message

"""govaluate's lexer: `readToken` and its checks (paren balance, the token-transition table, constant regexes),
and `tryParseTime` for string literals that read as dates."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from sensorium.engine.goport import strconv
from sensorium.engine.goport.civil import days_from_civil
from sensorium.engine.goport.govaluate.values import ExprError, go_sprint

# ---- tokens ---------------------------------------------------------------------------------------------

UNKNOWN, PREFIX, NUMERIC, BOOLEAN, STRING, PATTERN, TIME, VARIABLE, FUNCTION, SEPARATOR, ACCESSOR = (
    "UNKNOWN", "PREFIX", "NUMERIC", "BOOLEAN", "STRING", "PATTERN", "TIME", "VARIABLE", "FUNCTION", "SEPARATOR",
    "ACCESSOR")
COMPARATOR, LOGICALOP, MODIFIER, CLAUSE, CLAUSE_CLOSE, TERNARY = (
    "COMPARATOR", "LOGICALOP", "MODIFIER", "CLAUSE", "CLAUSE_CLOSE", "TERNARY")

_PREFIX_SYMBOLS = frozenset({"-", "!", "~"})
_MODIFIER_SYMBOLS = frozenset({"+", "-", "*", "/", "%", "**", "&", "|", "^", ">>", "<<"})
_LOGICAL_SYMBOLS = frozenset({"&&", "||"})
_COMPARATOR_SYMBOLS = frozenset({"==", "!=", ">", ">=", "<", "<=", "=~", "!~", "in"})
_TERNARY_SYMBOLS = frozenset({"?", ":", "??"})

_OPERANDS = (NUMERIC, BOOLEAN, VARIABLE, PATTERN, FUNCTION, ACCESSOR, STRING, TIME)
_AFTER_VALUE = (MODIFIER, COMPARATOR, LOGICALOP, CLAUSE_CLOSE, TERNARY, SEPARATOR)


@dataclass(frozen=True)
class _State:
    is_eof: bool
    nullable: bool
    next_kinds: frozenset[str]


# govaluate lexerState.go: which token kind may follow which.
_STATES: dict[str, _State] = {
    UNKNOWN: _State(False, True, frozenset({PREFIX, *_OPERANDS, CLAUSE})),
    CLAUSE: _State(False, True, frozenset({PREFIX, *_OPERANDS, CLAUSE, CLAUSE_CLOSE})),
    CLAUSE_CLOSE: _State(True, True, frozenset({
        COMPARATOR, MODIFIER, NUMERIC, BOOLEAN, VARIABLE, STRING, PATTERN, TIME, CLAUSE, CLAUSE_CLOSE, LOGICALOP,
        TERNARY, SEPARATOR})),
    NUMERIC: _State(True, False, frozenset(_AFTER_VALUE)),
    BOOLEAN: _State(True, False, frozenset(_AFTER_VALUE)),
    STRING: _State(True, False, frozenset(_AFTER_VALUE)),
    TIME: _State(True, False, frozenset({MODIFIER, COMPARATOR, LOGICALOP, CLAUSE_CLOSE, SEPARATOR})),
    PATTERN: _State(True, False, frozenset({MODIFIER, COMPARATOR, LOGICALOP, CLAUSE_CLOSE, SEPARATOR})),
    VARIABLE: _State(True, False, frozenset(_AFTER_VALUE)),
    MODIFIER: _State(False, False, frozenset({
        PREFIX, NUMERIC, VARIABLE, FUNCTION, ACCESSOR, STRING, BOOLEAN, CLAUSE, CLAUSE_CLOSE})),
    COMPARATOR: _State(False, False, frozenset({
        PREFIX, NUMERIC, BOOLEAN, VARIABLE, FUNCTION, ACCESSOR, STRING, TIME, CLAUSE, CLAUSE_CLOSE, PATTERN})),
    LOGICALOP: _State(False, False, frozenset({
        PREFIX, NUMERIC, BOOLEAN, VARIABLE, FUNCTION, ACCESSOR, STRING, TIME, CLAUSE, CLAUSE_CLOSE})),
    PREFIX: _State(False, False, frozenset({NUMERIC, BOOLEAN, VARIABLE, FUNCTION, ACCESSOR, CLAUSE, CLAUSE_CLOSE})),
    TERNARY: _State(False, False, frozenset({
        PREFIX, NUMERIC, BOOLEAN, STRING, TIME, VARIABLE, FUNCTION, ACCESSOR, CLAUSE, SEPARATOR})),
    FUNCTION: _State(False, False, frozenset({CLAUSE})),
    ACCESSOR: _State(True, False, frozenset({CLAUSE, *_AFTER_VALUE})),
    SEPARATOR: _State(False, True, frozenset({
        PREFIX, NUMERIC, BOOLEAN, STRING, TIME, VARIABLE, FUNCTION, ACCESSOR, CLAUSE})),
}


@dataclass(frozen=True)
class _Tok:
    kind: str
    value: Any
    text: str  # what the user wrote (for messages)


_GO_SPACE = frozenset("\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009"
                      "\u200a\u2028\u2029\u202f\u205f\u3000")


def _is_space(ch: str) -> bool:
    return ch in _GO_SPACE


def _is_letter(ch: str) -> bool:
    return ch.isalpha()


def _is_digit(ch: str) -> bool:
    return ch.isdecimal()


def _is_numeric(ch: str) -> bool:
    return _is_digit(ch) or ch == "."


def _is_not_quote(ch: str) -> bool:
    return ch not in "'\""


def _is_variable_name(ch: str) -> bool:
    return _is_letter(ch) or _is_digit(ch) or ch in "_."


def _is_not_alphanumeric(ch: str) -> bool:
    return not (_is_digit(ch) or _is_letter(ch) or ch in "()[]" or not _is_not_quote(ch))


def _is_hex(ch: str) -> bool:
    return ch in "0123456789abcdefABCDEF" or (_is_digit(ch) and not ch.isascii())


class _Stream:
    def __init__(self, source: str) -> None:
        self.source = source
        self.pos = 0

    def can_read(self) -> bool:
        return self.pos < len(self.source)

    def read(self) -> str:
        if self.pos >= len(self.source):
            raise ExprError("Unexpected end of expression after the escape character '\\'")
        ch = self.source[self.pos]
        self.pos += 1
        return ch

    def rewind(self, n: int) -> None:
        self.pos -= n


def _read_until_false(stream: _Stream, include_ws: bool, break_ws: bool, escaping: bool,
                      condition: Callable[[str], bool]) -> tuple[str, bool]:
    """govaluate readUntilFalse: (text, whether a terminator was found before the end)."""
    buf: list[str] = []
    while stream.can_read():
        ch = stream.read()
        if escaping and ch == "\\":
            buf.append(stream.read())
            continue
        if _is_space(ch):
            if break_ws and buf:
                return "".join(buf), True
            if not include_ws:
                continue
        if condition(ch):
            buf.append(ch)
        else:
            stream.rewind(1)
            return "".join(buf), True
    return "".join(buf), False


def _read_token_until_false(stream: _Stream, condition: Callable[[str], bool]) -> str:
    stream.rewind(1)
    return _read_until_false(stream, False, True, True, condition)[0]


def _parse_decimal(text: str) -> float | None:
    """strconv.ParseFloat on a run of digits and dots (what govaluate's number lexer collects)."""
    if not text.isascii():
        return None
    try:
        return strconv.parse_float(text)
    except strconv.NumError:
        return None


def _read_token(stream: _Stream, state: _State) -> _Tok | None:
    """govaluate readToken: the next token, None at the end, ExprError for a token it rejects."""
    while stream.can_read():
        start = stream.pos
        ch = stream.read()
        if _is_space(ch):
            continue
        if _is_numeric(ch):
            if stream.can_read() and ch == "0":
                ch = stream.read()
                if stream.can_read() and ch == "x":
                    text, _ = _read_until_false(stream, False, True, True, _is_hex)
                    if not text or not text.isascii() or int(text, 16) >= 1 << 64:
                        raise ExprError(f"Unable to parse hex value '{text}' to uint64")
                    return _Tok(NUMERIC, float(int(text, 16)), stream.source[start:stream.pos])
                stream.rewind(1)
            text = _read_token_until_false(stream, _is_numeric)
            number = _parse_decimal(text)
            if number is None:
                raise ExprError(f"Unable to parse numeric value '{text}' to float64")
            return _Tok(NUMERIC, number, text)
        if ch == ",":
            return _Tok(SEPARATOR, ",", ",")
        if ch == "[":
            text, completed = _read_until_false(stream, True, False, True, lambda c: c != "]")
            if not completed:
                raise ExprError("Unclosed parameter bracket")
            stream.rewind(-1)
            return _Tok(VARIABLE, text, stream.source[start:stream.pos])
        if _is_letter(ch):
            text = _read_token_until_false(stream, _is_variable_name)
            raw = stream.source[start:stream.pos].strip()
            if text in ("true", "false"):
                return _Tok(BOOLEAN, text == "true", raw)
            if text in ("in", "IN"):
                return _Tok(COMPARATOR, "in", raw)
            if text.find(".") > 0:
                if text.endswith("."):
                    raise ExprError(f"Hanging accessor on token '{text}'")
                parts = text.split(".")
                for part in parts[1:]:
                    first = part[:1]
                    if first.upper() != first:
                        raise ExprError(f"Unable to access unexported field '{part}' in token '{text}'")
                return _Tok(ACCESSOR, tuple(parts), raw)
            return _Tok(VARIABLE, text, raw)
        if not _is_not_quote(ch):
            text, completed = _read_until_false(stream, True, False, True, _is_not_quote)
            if not completed:
                raise ExprError("Unclosed string literal")
            stream.rewind(-1)
            raw = stream.source[start:stream.pos]
            when = parse_time_literal(text)
            if when is not None:
                return _Tok(TIME, when, raw)
            return _Tok(STRING, text, raw)
        if ch == "(":
            return _Tok(CLAUSE, "(", "(")
        if ch == ")":
            return _Tok(CLAUSE_CLOSE, ")", ")")
        text = _read_token_until_false(stream, _is_not_alphanumeric)
        if PREFIX in state.next_kinds and text in _PREFIX_SYMBOLS:
            return _Tok(PREFIX, text, text)
        for kind, symbols in ((MODIFIER, _MODIFIER_SYMBOLS), (LOGICALOP, _LOGICAL_SYMBOLS),
                              (COMPARATOR, _COMPARATOR_SYMBOLS), (TERNARY, _TERNARY_SYMBOLS)):
            if text in symbols:
                return _Tok(kind, text, text)
        raise ExprError(f"Invalid token: '{text}'")
    return None


def _go_value(tok: _Tok) -> str:
    """`%v` of a token value in govaluate's messages (a paren token's value is a rune, printed as a number)."""
    if tok.kind == ACCESSOR:
        return "[" + " ".join(tok.value) + "]"
    if tok.kind in (CLAUSE, CLAUSE_CLOSE):
        return str(ord(tok.value))
    return go_sprint(tok.value)


def tokenize(text: str) -> list[_Tok]:
    """parseTokens + checkBalance + checkExpressionSyntax, with govaluate's error messages."""
    stream = _Stream(text)
    state = _STATES[UNKNOWN]
    tokens: list[_Tok] = []
    while stream.can_read():
        tok = _read_token(stream, state)
        if tok is None:
            break
        state = _STATES[tok.kind]
        tokens.append(tok)
    if sum(1 if t.kind == CLAUSE else -1 if t.kind == CLAUSE_CLOSE else 0 for t in tokens):
        raise ExprError("Unbalanced parenthesis")
    state, state_kind = _STATES[UNKNOWN], UNKNOWN
    last: _Tok | None = None
    for tok in tokens:
        if tok.kind not in state.next_kinds:
            if last is not None and last.kind == VARIABLE and tok.kind == CLAUSE:
                raise ExprError(f"Undefined function {last.value}")
            before = f"{state_kind} [{'<nil>' if last is None else _go_value(last)}]"
            raise ExprError(f"Cannot transition token types from {before} to {tok.kind} [{_go_value(tok)}]")
        state, state_kind, last = _STATES[tok.kind], tok.kind, tok
    if not state.is_eof:
        raise ExprError("Unexpected end of expression")
    return tokens


# ---- date literals (govaluate tryParseTime; time.Local is UTC for Sensorium) ------------------------------

_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_FRAC = r"(?:[.,]\d+)?"
_TZ_ABBR = r"(?:UTC|GMT(?:[+-]\d{1,2})?|ChST|MeST|[A-Z]{3}|[A-Z]{2,3}T)"
_TIME_FORMATS: tuple[tuple[re.Pattern[str], str], ...] = tuple((re.compile(p, re.ASCII), kind) for p, kind in (
    (r"(?P<wd>[A-Za-z]{3}) +(?P<mon>[A-Za-z]{3}) +(?P<d>\d{1,2}) +(?P<H>\d{1,2}):(?P<M>\d{2}):(?P<S>\d{2})"
     + _FRAC + r" +(?P<Y>\d{4})", "ansic"),
    (r"(?P<wd>[A-Za-z]{3}) +(?P<mon>[A-Za-z]{3}) +(?P<d>\d{1,2}) +(?P<H>\d{1,2}):(?P<M>\d{2}):(?P<S>\d{2})"
     + _FRAC + r" +" + _TZ_ABBR + r" +(?P<Y>\d{4})", "ansic"),
    (r"(?P<wd>[A-Za-z]{3}) +(?P<mon>[A-Za-z]{3}) +(?P<d>\d{2}) +(?P<H>\d{1,2}):(?P<M>\d{2}):(?P<S>\d{2})"
     + _FRAC + r" +(?P<tz>[+-]\d{4}) +(?P<Y>\d{4})", "ansic"),
    (r"(?P<H>\d{1,2}):(?P<M>\d{2})(?P<pm>AM|PM)", "kitchen"),
    (r"(?P<Y>\d{4})-(?P<m>\d{2})-(?P<d>\d{2})T(?P<H>\d{1,2}):(?P<M>\d{2}):(?P<S>\d{2})" + _FRAC
     + r"(?P<tz>Z|[+-]\d{2}:\d{2})", "date"),
    (r"(?P<Y>\d{4})-(?P<m>\d{2})-(?P<d>\d{2})", "date"),
    (r"(?P<Y>\d{4})-(?P<m>\d{2})-(?P<d>\d{2}) +(?P<H>\d{1,2}):(?P<M>\d{2})", "date"),
    (r"(?P<Y>\d{4})-(?P<m>\d{2})-(?P<d>\d{2}) +(?P<H>\d{1,2}):(?P<M>\d{2}):(?P<S>\d{2})" + _FRAC, "date"),
    (r"(?P<Y>\d{4})-(?P<m>\d{2})-(?P<d>\d{2}) +(?P<H>\d{1,2}):(?P<M>\d{2}):(?P<S>\d{2})" + _FRAC
     + r"(?P<tz>[+-]\d{2}:\d{2})", "date"),
    (r"(?P<Y>\d{4})-(?P<m>\d{2})-(?P<d>\d{2})T(?P<H>\d{1,2})(?P<tz>Z|[+-]\d{4})", "date"),
    (r"(?P<Y>\d{4})-(?P<m>\d{2})-(?P<d>\d{2})T(?P<H>\d{1,2}):(?P<M>\d{2})(?P<tz>Z|[+-]\d{4})", "date"),
    (r"(?P<Y>\d{4})-(?P<m>\d{2})-(?P<d>\d{2})T(?P<H>\d{1,2}):(?P<M>\d{2}):(?P<S>\d{2})" + _FRAC
     + r"(?P<tz>Z|[+-]\d{4})", "date"),
))




def _days_in_month(y: int, m: int) -> int:
    if m == 2:
        return 29 if y % 4 == 0 and (y % 100 != 0 or y % 400 == 0) else 28
    return 30 if m in (4, 6, 9, 11) else 31


def _tz_offset(text: str | None) -> int | None:
    if not text or text == "Z":
        return 0
    digits = text[1:].replace(":", "")
    hours, minutes = int(digits[:2]), int(digits[2:4])
    if hours > 24 or minutes > 59:  # Go: "time zone offset out of range" only past 24h
        return None
    return (hours * 3600 + minutes * 60) * (-1 if text[0] == "-" else 1)


@lru_cache(maxsize=1024)
def parse_time_literal(text: str) -> float | None:
    """Unix seconds of a string literal govaluate reads as a date (time.Local taken as UTC), else None."""
    if ":" not in text and "-" not in text:
        return None
    for pattern, kind in _TIME_FORMATS:
        m = pattern.fullmatch(text)
        if m is None:
            continue
        g = m.groupdict()
        hour, minute, second = int(g.get("H") or 0), int(g.get("M") or 0), int(g.get("S") or 0)
        if kind == "kitchen":
            if hour > 12:
                continue
            hour = hour % 12 + (12 if g["pm"] == "PM" else 0)
            year, month, day = 0, 1, 1
        else:
            year, day = int(g["Y"]), int(g["d"])
            if kind == "ansic":
                if g["wd"].lower() not in _DAYS or g["mon"].lower() not in _MONTHS:
                    continue
                month = _MONTHS.index(g["mon"].lower()) + 1
            else:
                month = int(g["m"])
        if not (1 <= month <= 12 and 1 <= day <= _days_in_month(year, month)) or hour > 23 or minute > 59 \
                or second > 59:
            continue
        offset = _tz_offset(g.get("tz"))
        if offset is None:
            continue
        return float(days_from_civil(year, month, day) * 86400 + hour * 3600 + minute * 60 + second - offset)
    return None

"""govaluate expressions (expr filters, section 2.4 of the semantics reference), never Python `eval`.

Argo builds every expr filter with `govaluate.NewEvaluableExpression` (Knetic/govaluate 9aa4983) and evaluates it
against the fields it bound. This module reproduces that library:

* the lexer is a port of govaluate's `readToken` (symbols are read greedily up to whitespace or an operand, so
  `a==-1` is the invalid token `==-`; strings end at the first unescaped `'` or `"`; `\\` escapes any character,
  also inside identifiers, so `dep\\-1` names `dep-1`; `[my-var]` is a variable; a string literal that parses as
  a date becomes its Unix time; `true`/`false` are the only literals, `nil` is a variable), followed by
  govaluate's checks in its order: paren balance, the token-transition table (`checkExpressionSyntax`),
  compiling constant regexes after `=~`/`!~`;
* the structure comes from an LALR grammar (lark) with govaluate's precedence levels, loosest first:
  `,` < `? : ??` < `||` < `&&` < comparators (`== != > >= < <= =~ !~ in`) < `& | ^` < `<< >>` < `+ -` <
  `* / %` < `**` < prefix `- ! ~`. Every binary level is left-associative: govaluate plans right-recursive
  chains and then mirrors same-precedence chains (`reorderStages`), which yields exactly this. So
  `a ? b : c` is `(a ? b) : c` where `?` gives nil when `a` is false and `:` takes its right side when the left
  is nil;
* evaluation follows `evaluateStage`: left side first, short-circuit for `&& || ?? ? :`, then the right side,
  then govaluate's type checks (with its error texts), then the operator. No coercion: `==` is
  `reflect.DeepEqual`, ordering needs two numbers or two strings, `+` concatenates when either side is a string
  (Go `%v` formatting), all numbers are float64 (division by zero gives ±Inf/NaN, no error).

Limits, checked at load: an expression has at most MAX_CHARS (10,000) characters, and its tree at most MAX_DEPTH
(100) levels - parentheses, prefix operators and every operator of a chain such as `a + b + c` each add one -
because building and evaluating it recurse once per level.

Sensorium rejects at load a few token sequences govaluate accepts but then silently misreads (an operand directly
after `)`, a `)` that closes nothing, a method call on an accessor); each gets an error naming it.

Over ~500 lines because it is one port of one library (lexer, planner, evaluator share the token and node types);
the natural split - a govaluate package in engine/goport with lexer, planner and evaluator modules - is not done
yet (issue 12).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from lark import Lark, Token, Tree
from lark.exceptions import UnexpectedInput
from lark.lexer import Lexer

from sensorium.engine.goport import strconv
from sensorium.engine.goport.re2 import GoRegexp, compile_re2


class ExprError(ValueError):
    """An expression govaluate would not compile (`NewEvaluableExpression` error); message is govaluate's."""


class ExprEvalError(ValueError):
    """An evaluation error (`Evaluate` error); message is govaluate's, e.g. "No parameter 'x' found."."""


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


def _days_from_civil(y: int, m: int, d: int) -> int:
    """Days since 1970-01-01 in the proleptic Gregorian calendar (any year, including 0)."""
    y -= m <= 2
    era = (y if y >= 0 else y - 399) // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


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
        return float(_days_from_civil(year, month, day) * 86400 + hour * 3600 + minute * 60 + second - offset)
    return None


# ---- values: Go's %v and reflect.DeepEqual ----------------------------------------------------------------

def go_sprint(value: Any) -> str:
    """fmt's %v of a govaluate value (float64, string, bool, nil, map, slice)."""
    if value is None:
        return "<nil>"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, float):
        return strconv.format_float(value, "g", -1)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return value
    if isinstance(value, GoRegexp):
        return value.pattern
    if isinstance(value, Mapping):
        return "map[" + " ".join(f"{k}:{go_sprint(value[k])}" for k in sorted(value)) + "]"
    if isinstance(value, (list, tuple)):
        return "[" + " ".join(go_sprint(v) for v in value) + "]"
    return str(value)


def _go_type(value: Any) -> str:
    if value is None:
        return "nil"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, float):
        return "float64"
    if isinstance(value, str):
        return "string"
    if isinstance(value, Mapping):
        return "map[string]interface {}"
    if isinstance(value, (list, tuple)):
        return "[]interface {}"
    return type(value).__name__


def deep_equal(a: Any, b: Any) -> bool:
    """reflect.DeepEqual on decoded JSON values: same Go type and equal contents (1 != "1", true != 1)."""
    if _go_type(a) != _go_type(b):
        return False
    if isinstance(a, Mapping):
        return a.keys() == b.keys() and all(deep_equal(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(deep_equal(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def json_value(value: Any) -> Any:
    """A parsed JSON value as govaluate sees gjson's `Value()`: numbers float64, objects maps, arrays slices."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, (int, float)):
        try:
            return float(value)
        except OverflowError:
            return math.inf if value > 0 else -math.inf
    if isinstance(value, Mapping):
        return {str(k): json_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_value(v) for v in value]
    return value


# ---- grammar ----------------------------------------------------------------------------------------------

_GRAMMAR = r"""
%declare NUMBER STRING BOOL TIME VAR ACCESSOR EMPTY PREFIX POW MUL ADD SHIFT BIT CMP AND OR TERN SEP LPAR RPAR

?start: sep
?sep: tern | sep SEP tern -> binary
?tern: lor | tern TERN lor -> binary
?lor: land | lor OR land -> binary
?land: cmp | land AND cmp -> binary
?cmp: bit | cmp CMP bit -> binary
?bit: shift | bit BIT shift -> binary
?shift: add | shift SHIFT add -> binary
?add: mul | add ADD mul -> binary
?mul: pow | mul MUL pow -> binary
?pow: unary | pow POW unary -> binary
?unary: PREFIX unary -> prefix
      | atom
?atom: NUMBER -> literal
     | STRING -> literal
     | BOOL -> literal
     | TIME -> literal
     | VAR -> variable
     | ACCESSOR -> accessor
     | EMPTY -> empty
     | LPAR sep RPAR -> group
"""

class _FedLexer(Lexer):
    """Tokens come from `tokenize` and are fed to the parser one by one; lark's own lexer is never used."""

    def __init__(self, conf: Any) -> None:
        pass

    def lex(self, lexer_state: Any, parser_state: Any) -> Iterator[Token]:
        return iter(())


_PARSER = Lark(_GRAMMAR, parser="lalr", lexer=_FedLexer)


def _terminal(tok: _Tok) -> str:
    if tok.kind == MODIFIER:
        if tok.value == "**":
            return "POW"
        if tok.value in ("*", "/", "%"):
            return "MUL"
        if tok.value in ("+", "-"):
            return "ADD"
        return "SHIFT" if tok.value in ("<<", ">>") else "BIT"
    return {NUMERIC: "NUMBER", STRING: "STRING", PATTERN: "STRING", BOOLEAN: "BOOL", TIME: "TIME",
            VARIABLE: "VAR", ACCESSOR: "ACCESSOR", PREFIX: "PREFIX", COMPARATOR: "CMP", TERNARY: "TERN",
            SEPARATOR: "SEP", CLAUSE: "LPAR", CLAUSE_CLOSE: "RPAR", "EMPTY": "EMPTY"}.get(
        tok.kind, "AND" if tok.value == "&&" else "OR")


# ---- evaluation tree ---------------------------------------------------------------------------------------

_SHORT = object()  # govaluate's shortCircuitHolder


@dataclass(frozen=True)
class Node:
    op: str  # "lit", "var", "acc", "empty", "group", "prefix", or the operator symbol
    value: Any = None
    left: Node | None = None
    right: Node | None = None


MAX_CHARS = 10_000
MAX_DEPTH = 100


def _check_depth(tree: Tree[Token]) -> None:
    """Refuse a tree deeper than MAX_DEPTH before anything recurses over it (walked with a stack)."""
    stack: list[tuple[Tree[Token] | Token, int]] = [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, Tree):
            if depth > MAX_DEPTH:
                raise ExprError(f"expression nested more than {MAX_DEPTH} levels deep (the limit: parentheses, "
                                "prefix operators and each operator of a chain such as a + b + c add one)")
            stack.extend((child, depth + 1) for child in node.children)


def _build(tree: Tree[Token] | Token, toks: Sequence[_Tok]) -> Node:
    if isinstance(tree, Token):
        raise ExprError(f"internal: unexpected token {tree!r}")
    kids = tree.children
    if tree.data == "literal":
        return Node("lit", toks[int(kids[0].value)].value)  # type: ignore[union-attr]
    if tree.data == "variable":
        return Node("var", toks[int(kids[0].value)].value)  # type: ignore[union-attr]
    if tree.data == "accessor":
        return Node("acc", toks[int(kids[0].value)].value)  # type: ignore[union-attr]
    if tree.data == "empty":
        return Node("empty")
    if tree.data == "group":
        return Node("group", right=_build(kids[1], toks))
    if tree.data == "prefix":
        return Node(toks[int(kids[0].value)].value + "prefix", right=_build(kids[1], toks))  # type: ignore[union-attr]
    op = toks[int(kids[1].value)].value  # type: ignore[union-attr]
    return Node(op, left=_build(kids[0], toks), right=_build(kids[2], toks))


_NEEDS_OPERAND = (MODIFIER, COMPARATOR, LOGICALOP, PREFIX, CLAUSE)


def _plan(text: str, tokens: list[_Tok]) -> Node:
    """optimizeTokens + planStages: constant regexes compiled, then the tree (or govaluate's planner error)."""
    planned: list[_Tok] = []
    depth = 0
    for i, tok in enumerate(tokens):
        if tok.kind == STRING and i > 0 and tokens[i - 1].kind == COMPARATOR and tokens[i - 1].value in ("=~", "!~"):
            try:
                tok = _Tok(PATTERN, compile_re2(tok.value), tok.text)
            except ValueError as exc:
                raise ExprError(str(exc)) from None
        if tok.kind == SEPARATOR and i > 0 and tokens[i - 1].kind == TERNARY:
            raise ExprError("Unable to plan token kind: 'SEPARATOR', value: ','")
        if i > 0 and tokens[i - 1].kind == CLAUSE_CLOSE and tok.kind in (*_OPERANDS, CLAUSE):
            raise ExprError(f"'{tok.text}' directly after ')' is not supported: govaluate ignores or misreads "
                            "an operand that follows a closing parenthesis without an operator")
        if tok.kind == CLAUSE and i > 0 and tokens[i - 1].kind == ACCESSOR:
            raise ExprError(f"method calls such as '{tokens[i - 1].text}(...)' are not supported (govaluate "
                            "accessors only work on Go structs, and event data has none)")
        if tok.kind == CLAUSE_CLOSE:
            if depth == 0:
                raise ExprError("')' closes no '(': govaluate would ignore everything after it")
            if i > 0 and tokens[i - 1].kind in _NEEDS_OPERAND:
                planned.append(_Tok("EMPTY", None, ""))  # govaluate plans a missing operand as nil
        depth += 1 if tok.kind == CLAUSE else -1 if tok.kind == CLAUSE_CLOSE else 0
        planned.append(tok)
    parser = _PARSER.parse_interactive("")
    try:
        for i, tok in enumerate(planned):
            parser.feed_token(Token(_terminal(tok), str(i)))
        tree: Tree[Token] = parser.feed_eof()  # type: ignore[no-untyped-call]
    except UnexpectedInput as exc:  # the checks above leave nothing the grammar rejects; keep a clear message
        raise ExprError(f"cannot parse expression {text!r}: {exc}") from None
    _check_depth(tree)
    return _build(tree, planned)


@dataclass(frozen=True)
class Expression:
    """A compiled govaluate expression; `evaluate` returns the result or raises ExprEvalError."""

    text: str
    root: Node

    def evaluate(self, parameters: Mapping[str, Any]) -> Any:
        return _eval(self.root, parameters)


@lru_cache(maxsize=2048)
def compile_expr(text: str) -> Expression:
    """govaluate.NewEvaluableExpression(text); raises ExprError with govaluate's message (or a limit's)."""
    if len(text) > MAX_CHARS:
        raise ExprError(f"expression is longer than {MAX_CHARS:,} characters (the limit)")
    return Expression(text, _plan(text, tokenize(text)))


# ---- evaluation -------------------------------------------------------------------------------------------

_LOGICAL = "Value '%s' cannot be used with the logical operator '%s', it is not a bool"
_MODIFIER = "Value '%s' cannot be used with the modifier '%s', it is not a number"
_COMPARATOR = "Value '%s' cannot be used with the comparator '%s', it is not a number"
_TERNARY = "Value '%s' cannot be used with the ternary operator '%s', it is not a bool"
_PREFIX = "Value '%s' cannot be used with the prefix '%s'"


def _is_float(v: Any) -> bool:
    return isinstance(v, float)


def _is_bool(v: Any) -> bool:
    return isinstance(v, bool)


def _is_string(v: Any) -> bool:
    return isinstance(v, str)


def _fail(fmt: str, value: Any, symbol: str) -> ExprEvalError:
    return ExprEvalError(fmt % (go_sprint(value), "=" if symbol == "==" else symbol))


def _check(check: Callable[[Any], bool] | None, value: Any, fmt: str, symbol: str) -> None:
    if check is not None and not check(value):
        raise _fail(fmt, value, symbol)


def _int64(f: float) -> int:
    if math.isnan(f) or math.isinf(f):
        return -(1 << 63)
    n = int(f)
    return max(-(1 << 63), min((1 << 63) - 1, n))


def _from_int64(n: int) -> float:
    n &= (1 << 64) - 1
    return float(n - (1 << 64) if n >= 1 << 63 else n)


def _uint64(f: float) -> int:
    return _int64(f) & ((1 << 64) - 1)


def _divide(a: float, b: float) -> float:
    if b == 0:
        if a == 0 or math.isnan(a):
            return math.nan
        return math.copysign(math.inf, a) * math.copysign(1.0, b)
    return a / b


def _mod(a: float, b: float) -> float:
    if b == 0 or math.isinf(a) or math.isnan(a) or math.isnan(b):
        return math.nan
    if math.isinf(b):
        return a
    return math.fmod(a, b)


def _pow(a: float, b: float) -> float:
    try:
        return math.pow(a, b)
    except OverflowError:
        negative = a < 0 and b == int(b) and int(b) % 2 == 1
        return -math.inf if negative else math.inf
    except ValueError:
        if a == 0 and b < 0:
            return math.copysign(math.inf, a) if b == int(b) and int(b) % 2 == 1 else math.inf
        return math.nan


def _binary(op: str, left: Any, right: Any) -> Any:
    """Type checks, then the operator (govaluate's stageSymbolMap)."""
    if op in ("==", "!="):
        return deep_equal(left, right) is (op == "==")
    if op in (">", ">=", "<", "<="):
        if not ((_is_float(left) and _is_float(right)) or (_is_string(left) and _is_string(right))):
            raise _fail(_COMPARATOR, left, op)
        if op == ">":
            return bool(left > right)
        if op == ">=":
            return bool(left >= right)
        if op == "<":
            return bool(left < right)
        return bool(left <= right)
    if op in ("=~", "!~"):
        _check(_is_string, left, _COMPARATOR, op)
        _check(lambda v: _is_string(v) or isinstance(v, GoRegexp), right, _COMPARATOR, op)
        if isinstance(right, str):
            try:
                pattern = compile_re2(right)
            except ValueError as exc:
                raise ExprEvalError(f"Unable to compile regexp pattern '{right}': {exc}") from None
        else:
            pattern = right
        return pattern.matches(left) is (op == "=~")
    if op == "in":
        _check(lambda v: isinstance(v, list), right, _COMPARATOR, op)
        for item in right:
            if _go_type(left) == _go_type(item) and isinstance(left, (Mapping, list)):
                raise ExprEvalError(f"runtime error: comparing uncomparable type {_go_type(left)}")
            if _go_type(left) == _go_type(item) and left == item:
                return True
        return False
    if op == "+":
        if _is_float(left) and _is_float(right):
            return left + right
        if not _is_string(left) and not _is_string(right):
            raise _fail(_MODIFIER, left, op)
        return go_sprint(left) + go_sprint(right)
    if op in ("-", "*", "/", "%", "**", "&", "|", "^", "<<", ">>"):
        _check(_is_float, left, _MODIFIER, op)
        _check(_is_float, right, _MODIFIER, op)
        a, b = float(left), float(right)
        if op == "-":
            return a - b
        if op == "*":
            return a * b
        if op == "/":
            return _divide(a, b)
        if op == "%":
            return _mod(a, b)
        if op == "**":
            return _pow(a, b)
        if op == "&":
            return float(_int64(a) & _int64(b))
        if op == "|":
            return float(_int64(a) | _int64(b))
        if op == "^":
            return float(_int64(a) ^ _int64(b))
        shift = _uint64(b)
        if op == "<<":
            return float((_uint64(a) << shift) & ((1 << 64) - 1)) if shift < 64 else 0.0
        return float(_uint64(a) >> shift) if shift < 64 else 0.0
    if op == "?":
        _check(_is_bool, left, _TERNARY, op)
        return right if left is True else None
    if op in (":", "??"):
        return left if left is not None else right
    if op == ",":
        return [*left, right] if isinstance(left, list) else [left, right]
    if op in ("&&", "||"):
        _check(_is_bool, left, _LOGICAL, op)
        _check(_is_bool, right, _LOGICAL, op)
        return (left and right) if op == "&&" else (left or right)
    raise ExprEvalError(f"unknown operator '{op}'")


def _lookup(parameters: Mapping[str, Any], name: str) -> Any:
    if name not in parameters:
        raise ExprEvalError(f"No parameter '{name}' found.")
    value = parameters[name]
    if isinstance(value, int) and not isinstance(value, bool):  # sanitizedParameters: castToFloat64
        return float(value)
    return value


def _eval(node: Node | None, parameters: Mapping[str, Any]) -> Any:
    if node is None:
        return None
    op = node.op
    if op == "lit":
        return node.value
    if op == "var":
        return _lookup(parameters, node.value)
    if op == "empty":
        return None
    if op == "group":
        return _eval(node.right, parameters)
    if op == "acc":
        parts: tuple[str, ...] = node.value
        _lookup(parameters, parts[0])
        raise ExprEvalError(f"Unable to access '{parts[1]}', '{parts[0]}' is not a struct")
    if op.endswith("prefix"):
        operand = _eval(node.right, parameters)
        symbol = op[:-len("prefix")]
        if symbol == "-":
            _check(_is_float, operand, _PREFIX, symbol)
            return -operand
        if symbol == "!":
            _check(_is_bool, operand, _PREFIX, symbol)
            return not operand
        _check(_is_float, operand, _PREFIX, symbol)
        return _from_int64(~_int64(operand))
    left = _eval(node.left, parameters)
    right: Any = None
    if op == "&&" and left is False:
        return False
    if op == "||" and left is True:
        return True
    if op == "??" and left is not None:
        return left
    if (op == "?" and left is False) or (op == ":" and left is not None):
        right = _SHORT
    if right is not _SHORT:
        right = _eval(node.right, parameters)
    return _binary(op, left, None if right is _SHORT else right)


def evaluate(text: str, parameters: Mapping[str, Any]) -> Any:
    """Compile (cached) and evaluate; ExprError or ExprEvalError."""
    return compile_expr(text).evaluate(parameters)

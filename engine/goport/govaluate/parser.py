"""govaluate's planner as an LALR grammar (lark) with its precedence levels, and the load-time limits."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from lark import Lark, Token, Tree
from lark.exceptions import UnexpectedInput
from lark.lexer import Lexer

from sensorium.engine.goport.govaluate.lexer import (
    _OPERANDS,
    ACCESSOR,
    BOOLEAN,
    CLAUSE,
    CLAUSE_CLOSE,
    COMPARATOR,
    LOGICALOP,
    MODIFIER,
    NUMERIC,
    PATTERN,
    PREFIX,
    SEPARATOR,
    STRING,
    TERNARY,
    TIME,
    VARIABLE,
    _Tok,
)
from sensorium.engine.goport.govaluate.values import ExprError
from sensorium.engine.goport.re2 import compile_re2

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

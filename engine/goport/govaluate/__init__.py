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

Modules: `lexer` (tokens, `readToken`, date literals), `parser` (grammar, tree, limits), `evaluator`
(`evaluateStage`), `values` (errors, `%v`, DeepEqual, event data); this facade compiles and evaluates.
"""


from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from sensorium.engine.goport.govaluate.evaluator import _eval
from sensorium.engine.goport.govaluate.lexer import parse_time_literal, tokenize
from sensorium.engine.goport.govaluate.parser import MAX_CHARS, MAX_DEPTH, Node, _plan
from sensorium.engine.goport.govaluate.values import ExprError, ExprEvalError, deep_equal, go_sprint, json_value

__all__ = ["MAX_CHARS", "MAX_DEPTH", "ExprError", "ExprEvalError", "Expression", "compile_expr", "deep_equal",
           "evaluate", "go_sprint", "json_value", "parse_time_literal", "tokenize"]


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



def evaluate(text: str, parameters: Mapping[str, Any]) -> Any:
    """Compile (cached) and evaluate; ExprError or ExprEvalError."""
    return compile_expr(text).evaluate(parameters)

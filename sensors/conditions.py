"""Trigger `conditions`: a recursive-descent parser over names, `&&`, `||` and parentheses (pure, no eval).

Argo (listener.go getDependencyExpression) maps `-` to `_` for lookup, so `dep-1a` names a dependency
`dep_1a` and vice versa (when two dependencies collide after that mapping, the later one wins, as in Argo).
Argo silently disables a trigger whose expression does not translate; Sensorium raises ValueError at load.
Parentheses nest at most MAX_DEPTH (100) levels (the parser recurses once per level, and so does evaluation).
"""

from __future__ import annotations

import re
from collections.abc import Sequence, Set
from dataclasses import dataclass

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_\-]*")
MAX_DEPTH = 100


@dataclass(frozen=True)
class Name:
    dependency: str

    def evaluate(self, received: Set[str]) -> bool:
        return self.dependency in received

    def render(self) -> str:
        return self.dependency


@dataclass(frozen=True)
class And:
    operands: tuple[Node, ...]

    def evaluate(self, received: Set[str]) -> bool:
        return all(op.evaluate(received) for op in self.operands)

    def render(self) -> str:
        return " && ".join(f"({op.render()})" if isinstance(op, Or) else op.render() for op in self.operands)


@dataclass(frozen=True)
class Or:
    operands: tuple[Node, ...]

    def evaluate(self, received: Set[str]) -> bool:
        return any(op.evaluate(received) for op in self.operands)

    def render(self) -> str:
        return " || ".join(op.render() for op in self.operands)


Node = Name | And | Or


def _walk(node: Node) -> list[Node]:
    if isinstance(node, Name):
        return [node]
    return [node, *(n for op in node.operands for n in _walk(op))]


@dataclass(frozen=True)
class Condition:
    """A trigger's dependency expression. `text` is what the sensor says (or the implied AND of all deps)."""

    text: str
    root: Node

    def evaluate(self, received: Set[str]) -> bool:
        return self.root.evaluate(received)

    def names(self) -> tuple[str, ...]:
        """Dependency names in order of first appearance (the order Argo subscribes in)."""
        return tuple(dict.fromkeys(n.dependency for n in _walk(self.root) if isinstance(n, Name)))

    def has_and(self) -> bool:
        """True when the expression contains `&&`: events are then held until it is satisfied."""
        return any(isinstance(n, And) for n in _walk(self.root))


def default_condition(dependencies: Sequence[str]) -> Condition:
    """No `conditions`: the AND of ALL the sensor's dependencies (not only those some trigger names)."""
    if not dependencies:
        raise ValueError("a sensor needs at least one dependency")
    names = tuple(Name(d) for d in dependencies)
    return Condition(" && ".join(dependencies), names[0] if len(names) == 1 else And(names))


def compile_condition(conditions: str | None, dependencies: Sequence[str]) -> Condition:
    """Parse a trigger's `conditions` against the sensor's dependency names; None or "" means the default."""
    if conditions is None or conditions == "":
        return default_condition(dependencies)
    return Condition(conditions, _Parser(conditions, dependencies).parse())


class _Parser:
    def __init__(self, text: str, dependencies: Sequence[str]) -> None:
        self.text = text
        self.lookup = {d.replace("-", "_"): d for d in dependencies}
        self.tokens = self._tokenize()
        self.pos = 0
        self.depth = 0

    def _error(self, column: int, message: str) -> ValueError:
        shown = self.text if len(self.text) <= 80 else self.text[:77] + "..."
        return ValueError(f"conditions {shown!r}, column {column}: {message}")

    def _tokenize(self) -> list[tuple[str, str, int]]:
        tokens: list[tuple[str, str, int]] = []
        i, text = 0, self.text
        while i < len(text):
            ch, column = text[i], i + 1
            if ch.isspace():
                i += 1
            elif text.startswith(("&&", "||"), i):
                tokens.append(("op", text[i:i + 2], column))
                i += 2
            elif ch in "()":
                tokens.append((ch, ch, column))
                i += 1
            elif ch in "&|":
                raise self._error(column, f"single '{ch}' (use '{ch * 2}')")
            elif ch == "!":
                raise self._error(column, "'!' (negation) is not supported; only &&, || and parentheses are")
            elif m := _NAME.match(text, i):
                word = m.group(0)
                if word.lower() in ("and", "or", "not"):
                    raise self._error(column, f"'{word}' is not an operator here; use && and ||")
                tokens.append(("name", word, column))
                i = m.end()
            else:
                raise self._error(column, f"unexpected character {ch!r}")
        tokens.append(("end", "end of expression", len(text) + 1))
        return tokens

    def _peek(self) -> tuple[str, str, int]:
        return self.tokens[self.pos]

    def _expect(self, kind: str, what: str) -> tuple[str, str, int]:
        token = self._peek()
        if token[0] != kind:
            raise self._error(token[2], f"expected {what}, found {token[1]!r}")
        self.pos += 1
        return token

    def parse(self) -> Node:
        node = self._or()
        self._expect("end", "'&&', '||' or the end of the expression")
        return node

    def _or(self) -> Node:
        operands = [self._and()]
        while self._peek()[:2] == ("op", "||"):
            self.pos += 1
            operands.append(self._and())
        return operands[0] if len(operands) == 1 else Or(tuple(operands))

    def _and(self) -> Node:
        operands = [self._atom()]
        while self._peek()[:2] == ("op", "&&"):
            self.pos += 1
            operands.append(self._atom())
        return operands[0] if len(operands) == 1 else And(tuple(operands))

    def _atom(self) -> Node:
        kind, value, column = self._peek()
        if kind == "(":
            self.depth += 1
            if self.depth > MAX_DEPTH:
                raise self._error(column, f"parentheses nested more than {MAX_DEPTH} levels deep (the limit)")
            self.pos += 1
            node = self._or()
            self._expect(")", "')'")
            self.depth -= 1
            return node
        if kind != "name":
            raise self._error(column, f"expected a dependency name or '(', found {value!r}")
        self.pos += 1
        dependency = self.lookup.get(value.replace("-", "_"))
        if dependency is None:
            known = ", ".join(sorted(self.lookup.values()))
            raise self._error(column, f"unknown dependency {value!r} (known: {known})")
        return Name(dependency)

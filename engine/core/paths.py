"""The path-expression facade (kernel): one compiled path in Argo's three syntaxes - gjson paths
(engine.goport.gjson), JSONPath (jsonpath-ng, extended parser) and JMESPath - all returning gjson's `PathResult`,
whose string()/float()/bool() follow gjson's Result.String()/Float()/Bool(). Evaluation never raises.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import jmespath
from jsonpath_ng import jsonpath as jp
from jsonpath_ng.ext.parser import parse as jsonpath_parse

from sensorium.engine.goport.gjson import (
    MISSING,
    MISSING_RESULT,
    PathResult,
    gjson_get_value,
    parse_json,
    plain,
    plain_steps,
    walk_plain,
)

Syntax = Literal["path", "jsonPath", "jmesPath"]


def _singular_steps(node: Any) -> list[str | int] | None:
    """Steps of an RFC 9535 singular query (names and single indices only), None for any other query."""
    kind = type(node)
    if kind in (jp.Root, jp.This):
        return []
    if kind is jp.Fields:
        fields = node.fields
        return [fields[0]] if len(fields) == 1 and fields[0] != "*" else None
    if kind is jp.Index:
        indices = getattr(node, "indices", None) or [node.index]
        return [int(indices[0])] if len(indices) == 1 else None
    if kind is jp.Child:
        left, right = _singular_steps(node.left), _singular_steps(node.right)
        return None if left is None or right is None else left + right
    return None


def _walk(value: Any, steps: list[str | int]) -> Any:
    for step in steps:
        if isinstance(step, str):
            if not isinstance(value, dict) or step not in value:
                return MISSING
            value = value[step]
        else:
            if not isinstance(value, list) or not -len(value) <= step < len(value):
                return MISSING
            value = value[step]
    return value


@dataclass(frozen=True)
class PathExpr:
    """One compiled path in one of the three syntaxes; evaluation never raises."""

    syntax: Syntax
    expression: str
    compiled: Any = None
    steps: tuple[str | int, ...] | None = None

    @classmethod
    def compile(cls, *, path: str | None = None, json_path: str | None = None,
                jmes_path: str | None = None) -> PathExpr:
        """Exactly one of the arguments; raises ValueError naming the problem."""
        given = [(s, e) for s, e in (("path", path), ("jsonPath", json_path), ("jmesPath", jmes_path))
                 if e is not None]
        if len(given) != 1:
            names = ", ".join(s for s, _ in given)
            raise ValueError("exactly one of path, jsonPath or jmesPath must be set"
                             + (f" (got {names})" if given else ""))
        syntax, expression = given[0]
        if expression == "":
            raise ValueError(f"{syntax} must not be empty")
        if syntax == "path":  # a plain path is walked without gjson's per-call path parsing
            return cls("path", expression, None, plain_steps(expression))
        if syntax == "jsonPath":
            try:
                compiled = jsonpath_parse(expression)
            except Exception as exc:
                raise ValueError(f"invalid jsonPath {expression!r}: {exc}") from None
            steps = _singular_steps(compiled)
            return cls("jsonPath", expression, compiled, None if steps is None else tuple(steps))
        try:
            return cls("jmesPath", expression, jmespath.compile(expression))
        except Exception as exc:
            reason = " ".join(str(exc).split())
            raise ValueError(f"invalid jmesPath {expression!r}: {reason}") from None

    def describe(self) -> str:
        return f"{self.syntax} '{self.expression}'"

    def get(self, doc: Any) -> PathResult:
        """Evaluate against event data: bytes/str are JSON text, anything else an already parsed value."""
        if isinstance(doc, (bytes, str)):
            try:
                doc = parse_json(doc)
            except ValueError as exc:
                return PathResult(False, "Null", "", None, f"not valid JSON: {exc}")
        return self.get_value(doc)

    def get_value(self, doc: Any) -> PathResult:
        """Evaluate against a document already parsed with `parse_json` (a str here is a JSON string)."""
        if self.syntax == "path":
            if self.steps is not None:
                return PathResult.of(walk_plain(doc, self.steps))  # type: ignore[arg-type]
            return PathResult.of(gjson_get_value(doc, self.expression))
        try:
            if self.syntax == "jmesPath":
                found = self.compiled.search(plain(doc))
                return MISSING_RESULT if found is None else PathResult.of(found)
            if self.steps is not None:
                return PathResult.of(_walk(doc, list(self.steps)))
            return PathResult.of([m.value for m in self.compiled.find(doc)])
        except Exception as exc:
            return PathResult(False, "Null", "", None, f"{self.describe()} failed: {exc}")

"""govaluate's errors and values: Go's `%v` of a value, reflect.DeepEqual, event data as govaluate sees it.

Why two value models: govaluate sees only what gjson's Value() and its own operators make: float64, string,
bool, nil, map[string]interface {}, []interface {}, plus a compiled *regexp.Regexp (the right side of `=~`).
The template's model (engine.goport.template.values) is a superset over the same Python types: it adds Go's
int, int64 and uint8 (sprig's arithmetic, `index` on a string), []string, map[string]string, time.Time and the
invalid reflect.Value, which govaluate never holds. So the template's model is the canonical one: `%v` is
template.fmt.sprint_v and reflect.DeepEqual is template.values.deep_equal, and `go_sprint` and `deep_equal`
here are thin adapters that add the one govaluate-only value (*regexp.Regexp, printed by its String(), the
pattern) and lift the template's nesting bound (govaluate's values are event data, bounded where they enter).
tests/goport/test_values.py holds the table both implementations must pass.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from sensorium.engine.goport.re2 import GoRegexp
from sensorium.engine.goport.template.fmt import sprint_v
from sensorium.engine.goport.template.values import deep_equal as template_deep_equal


class ExprError(ValueError):
    """An expression govaluate would not compile (`NewEvaluableExpression` error); message is govaluate's."""


class ExprEvalError(ValueError):
    """An evaluation error (`Evaluate` error); message is govaluate's, e.g. "No parameter 'x' found."."""



# ---- values: Go's %v and reflect.DeepEqual ----------------------------------------------------------------

_NESTING = 10_000  # Go's encoding/json nesting limit: in practice Python's recursion limit comes first, as before


def go_sprint(value: Any) -> str:
    """fmt's %v of a govaluate value (float64, string, bool, nil, map, slice, *regexp.Regexp): template.fmt's
    sprint_v, with the regexp's pattern and an accessor's tuple as a slice."""
    if isinstance(value, GoRegexp):
        return value.pattern
    if isinstance(value, tuple):
        value = list(value)
    return sprint_v(value, max_depth=_NESTING)


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
    """reflect.DeepEqual on govaluate values (1 != "1", true != 1): template.values' deep_equal; two compiled
    regexps are equal when their patterns are (Go compares the compiled structs, which the pattern determines)."""
    if isinstance(a, GoRegexp) or isinstance(b, GoRegexp):
        return isinstance(a, GoRegexp) and isinstance(b, GoRegexp) and a.pattern == b.pattern
    return template_deep_equal(a, b, max_depth=_NESTING)


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

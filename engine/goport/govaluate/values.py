"""govaluate's errors and values: Go's `%v` of a value, reflect.DeepEqual, event data as govaluate sees it."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from sensorium.engine.goport import strconv
from sensorium.engine.goport.re2 import GoRegexp


class ExprError(ValueError):
    """An expression govaluate would not compile (`NewEvaluableExpression` error); message is govaluate's."""


class ExprEvalError(ValueError):
    """An evaluation error (`Evaluate` error); message is govaluate's, e.g. "No parameter 'x' found."."""



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

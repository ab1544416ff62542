"""govaluate's `evaluateStage`: short circuits, type checks with its error texts, float64 operators."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

from sensorium.engine.goport.govaluate.parser import _SHORT, Node
from sensorium.engine.goport.govaluate.values import ExprEvalError, _go_type, deep_equal, go_sprint
from sensorium.engine.goport.re2 import GoRegexp, compile_re2

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

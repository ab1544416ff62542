"""Go's strconv number rules, one implementation each: FormatFloat, ParseInt, ParseUint.

Every float printed the Go way in the project goes through `format_float` (encoding/json, gjson's String(),
fmt's %v/%g/%e/%f/%x, govaluate's %v); every Go integer literal is read by `parse_int`. Outputs are pinned by
tests/goport/test_strconv.py against a table printed by Go itself. Imports nothing from the project.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal


def _digits(f: float) -> tuple[str, int]:
    """Shortest round-trip decimal digits of |f| and Go's decimal point position (value = 0.DIGITS x 10^dp)."""
    if f == 0:
        return "0", 1
    _, digits, exp = Decimal(repr(abs(f))).as_tuple()
    assert isinstance(exp, int)
    text = "".join(map(str, digits))
    dp = len(text) + exp
    return text.rstrip("0") or "0", dp


def _exp_suffix(e: int) -> str:
    return f"e{'-' if e < 0 else '+'}{abs(e):02d}"


def format_float(f: float, verb: str, prec: int) -> str:
    """strconv.FormatFloat(f, verb, prec, 64) for verb e/E/f/F/g/G/x/X; prec -1 means shortest."""
    if math.isnan(f):
        return "NaN"
    if math.isinf(f):
        return "+Inf" if f > 0 else "-Inf"
    neg = "-" if math.copysign(1.0, f) < 0 else ""
    upper = verb in "EGX"
    v = verb.lower()
    if v == "x":
        return neg + _hex_float(abs(f), prec, upper)
    if prec >= 0:
        text = format(abs(f), f".{prec}{'f' if v == 'f' else v}")
        if v == "g" and "e" in text:  # Python and Go agree except that Go keeps at least two exponent digits
            mant, _, e = text.partition("e")
            text = mant + _exp_suffix(int(e))
        return neg + (text.upper() if upper else text)
    digits, dp = _digits(f)
    if v == "g":
        exp = dp - 1
        v = "e" if exp < -4 or exp >= 6 else "f"
    if v == "e":
        text = digits[0] + ("." + digits[1:] if len(digits) > 1 else "") + _exp_suffix(dp - 1 if f else 0)
    elif dp <= 0:
        text = "0." + "0" * -dp + digits
    elif dp >= len(digits):
        text = digits + "0" * (dp - len(digits))
    else:
        text = digits[:dp] + "." + digits[dp:]
    return neg + (text.upper() if upper else text)


def _hex_float(a: float, prec: int, upper: bool) -> str:
    """Go's %x for floats: 0x1.8p+01 (shortest mantissa, two-digit exponent)."""
    if a == 0:
        mant, exp = "0", 0
    else:
        text = a.hex()  # 0x1.8000000000000p+1
        body, _, e = text[2:].partition("p")
        mant, exp = body, int(e)
        head, _, frac = mant.partition(".")
        if prec >= 0:
            frac = (frac + "0" * prec)[:prec]  # truncation; Go rounds (rarely matters)
        else:
            frac = frac.rstrip("0")
        mant = head + ("." + frac if frac else "")
    text = f"0x{mant}p{'-' if exp < 0 else '+'}{abs(exp):02d}"
    return text.upper() if upper else text


_GO_INT = re.compile(r"[+-]?(0[xX](_?[0-9a-fA-F])+|0[oO](_?[0-7])+|0[bB](_?[01])+|0(_?[0-7])*|[1-9](_?[0-9])*)")


def _parse_base0(text: str) -> int | None:
    """The magnitude of a Go base-0 integer literal (sign applied), or None on a syntax error."""
    if not _GO_INT.fullmatch(text):
        return None
    body = text.lstrip("+-").replace("_", "")
    value = int(body, 8) if len(body) > 1 and body[0] == "0" and body[1].isdigit() else int(body, 0)
    return -value if text.startswith("-") else value


def parse_int(text: str) -> int | None:
    """strconv.ParseInt(text, 0, 64): None when Go returns an error (syntax or out of range)."""
    value = _parse_base0(text)
    return value if value is not None and -(1 << 63) <= value < (1 << 63) else None


def parse_uint(text: str) -> int | None:
    """strconv.ParseUint(text, 0, 64): no sign allowed; None when Go returns an error."""
    if text[:1] in ("+", "-"):
        return None
    value = _parse_base0(text)
    return value if value is not None and value < (1 << 64) else None

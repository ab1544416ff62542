"""Go's strconv rules, one implementation each: FormatFloat (64 and 32 bits), ParseFloat, ParseInt, ParseUint,
Quote, and the time package's own quote (`time_quote`).

Every float printed the Go way in the project goes through `format_float` (encoding/json, gjson's String(),
fmt's %v/%g/%e/%f/%x, govaluate's %v); every text converted to a float the Go way goes through `parse_float`
(gjson, template number literals and sprig's casts, govaluate, go-yaml); every Go integer literal is read by
`parse_int`. Callers keep their own grammar (what their lexer lets through) and call these for the conversion.
Outputs are pinned by tests/goport/test_strconv.py against a table printed by Go itself. Imports nothing from the
project.
"""

from __future__ import annotations

import math
import re
import struct
import unicodedata
from decimal import Decimal
from fractions import Fraction


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


def to_float32(f: float) -> float:
    """Go's float32(f): rounded to nearest even, ±Inf past float32's range."""
    try:
        value: float = struct.unpack("f", struct.pack("f", f))[0]
    except OverflowError:
        return math.copysign(math.inf, f)
    return value


def _digits32(f: float) -> tuple[str, int]:
    """Shortest digits of the float32 |f| that read back (float32 rounding) as f, the nearest of them to f when
    two qualify, and the decimal point position, computed exactly on float32's rounding interval."""
    a = abs(f)
    if a == 0:
        return "0", 1
    m, e = math.frexp(a)  # a = m * 2**e, 0.5 <= m < 1
    ulp = Fraction(2) ** (max(e, -125) - 24)  # float32: 24-bit mantissa, smallest normal 2**-126
    v = Fraction(a)
    mant = int(v / ulp)
    inclusive = mant % 2 == 0  # a halfway text rounds to the even mantissa: ours when it is even
    upper = v + ulp / 2
    lower = v - (ulp / 4 if m == 0.5 and e > -125 else ulp / 2)  # at a power of two the gap below is half

    # Go's Dragonbox (internal/strconv/ftoadbox.go) breaks a tie between two nearest candidates to even, but in
    # its branch for a normal power of two (Algorithm 5.6) upwards, except at 2**-54 (its exp == -77)
    tie_up = m == 0.5 and e >= -125 and e != -53

    def inside(x: Fraction) -> bool:
        return (lower <= x <= upper) if inclusive else (lower < x < upper)

    top = math.floor(math.log10(a))  # v's leading decimal digit is at 10**top (corrected below)
    if Fraction(10) ** top > v:
        top -= 1
    elif Fraction(10) ** (top + 1) <= v:
        top += 1
    for p in range(1, 10):  # float32 never needs more than 9 digits
        unit = Fraction(10) ** (top - p + 1)
        down = math.floor(v / unit)
        chosen = None
        for n in (down, down + 1):
            x = n * unit
            if inside(x) and (chosen is None or abs(x - v) < abs(chosen * unit - v)
                              or (abs(x - v) == abs(chosen * unit - v) and (tie_up or n % 2 == 0))):
                chosen = n
        if chosen is not None:
            text = str(chosen)
            dp = top + 1 + (len(text) - p)  # 9.99 rounded up to 10.0 gains a digit
            return text.rstrip("0") or "0", dp
    raise AssertionError(f"no shortest float32 digits for {f!r}")


def format_float(f: float, verb: str, prec: int, bit_size: int = 64) -> str:
    """strconv.FormatFloat(f, verb, prec, bit_size) for verb e/E/f/F/g/G/x/X; prec -1 means shortest.

    With bit_size 32, f is first rounded to float32 (Go's float32(f)) and the shortest digits are those that
    read back as that float32 (`0.1` rather than `0.10000000149011612`)."""
    if bit_size == 32:
        f = to_float32(f)
    elif bit_size != 64:
        raise ValueError(f"strconv: illegal bit size {bit_size}")
    if math.isnan(f):
        return "NaN"
    if math.isinf(f):
        return "+Inf" if f > 0 else "-Inf"
    neg = "-" if math.copysign(1.0, f) < 0 else ""
    upper = verb in "EGX"
    v = verb.lower()
    if v == "x":
        return neg + _hex_float(abs(f), prec, upper)
    if prec >= 0:  # the exact value (a float32 is exact in a float64) correctly rounded: the same for both sizes
        text = format(abs(f), f".{prec}{'f' if v == 'f' else v}")
        if v == "g" and "e" in text:  # Python and Go agree except that Go keeps at least two exponent digits
            mant, _, e = text.partition("e")
            text = mant + _exp_suffix(int(e))
        return neg + (text.upper() if upper else text)
    digits, dp = _digits32(f) if bit_size == 32 else _digits(f)
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


class NumError(ValueError):
    """Go's *strconv.NumError: `strconv.ParseFloat: parsing "x": invalid syntax` (or `value out of range`).

    `value` is what Go returns alongside the error: 0 for a syntax error, the signed infinity for overflow."""

    def __init__(self, func: str, text: str, err: str, value: float = 0.0) -> None:
        super().__init__(f"strconv.{func}: parsing {quote(text)}: {err}")
        self.err = err
        self.value = value


_DEC_FLOAT = re.compile(r"[+-]?(?:[0-9_]+(?:\.[0-9_]*)?|\.[0-9_]+)(?:[eE][+-]?[0-9_]+)?")
_HEX_FLOAT = re.compile(r"[+-]?0[xX](?:[0-9a-fA-F_]+(?:\.[0-9a-fA-F_]*)?|\.[0-9a-fA-F_]+)[pP][+-]?[0-9_]+")
_INF = re.compile(r"[+-]?(?:inf|infinity)", re.IGNORECASE)


def _underscore_ok(s: str) -> bool:
    """strconv's underscoreOK: each `_` sits between digits (a base prefix counts as a digit)."""
    saw = "^"
    i = 0
    if s[:1] in ("+", "-"):
        s = s[1:]
    hexa = False
    if len(s) >= 2 and s[0] == "0" and s[1].lower() in "box":
        i, saw, hexa = 2, "0", s[1].lower() == "x"
    for ch in s[i:]:
        if "0" <= ch <= "9" or (hexa and "a" <= ch.lower() <= "f"):
            saw = "0"
        elif ch == "_":
            if saw != "0":
                return False
            saw = "_"
        elif saw == "_":
            return False
        else:
            saw = "!"
    return saw != "_"


def parse_float(text: str) -> float:
    """strconv.ParseFloat(text, 64): decimal and hexadecimal (`0x1.8p1`, the `p` exponent required) literals with
    `_` between digits, `inf`/`infinity` (signed) and `nan` in any case; correctly rounded, underflow is 0.
    Raises NumError on a syntax error or overflow (its `value` is then ±Inf, as Go returns)."""
    if _INF.fullmatch(text):
        return -math.inf if text[0] == "-" else math.inf
    if text.lower() == "nan":
        return math.nan
    is_hex = _HEX_FLOAT.fullmatch(text) is not None
    if not (is_hex or _DEC_FLOAT.fullmatch(text)) or ("_" in text and not _underscore_ok(text)):
        raise NumError("ParseFloat", text, "invalid syntax")
    body = text.replace("_", "")
    try:
        value = float.fromhex(body) if is_hex else float(body)
    except OverflowError:
        value = -math.inf if body[0] == "-" else math.inf
    if math.isinf(value):
        raise NumError("ParseFloat", text, "value out of range", value)
    return value


def is_print(ch: str) -> bool:
    """unicode.IsPrint: letters, marks, numbers, punctuation, symbols and the ASCII space."""
    return ch == " " or unicodedata.category(ch)[0] in "LMNPS"


def quote(s: str, ascii_only: bool = False, q: str = '"') -> str:
    """strconv.Quote (QuoteToASCII with ascii_only, QuoteRune style with q="'")."""
    out = [q]
    for ch in s:
        o = ord(ch)
        if 0xDC80 <= o <= 0xDCFF:  # a byte that is not UTF-8
            out.append(f"\\x{o - 0xDC00:02x}")
        elif ch == q or ch == "\\":
            out.append("\\" + ch)
        elif (o < 0x80 or not ascii_only) and is_print(ch):
            out.append(ch)
        elif ch in "\a\b\f\n\r\t\v":
            out.append({"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t",
                        "\v": "\\v"}[ch])
        elif o < 0x20 or o == 0x7F:
            out.append(f"\\x{o:02x}")
        elif 0xD800 <= o <= 0xDFFF:
            out.append("\\ufffd")
        elif o < 0x10000:
            out.append(f"\\u{o:04x}")
        else:
            out.append(f"\\U{o:08x}")
    out.append(q)
    return "".join(out)


def time_quote(s: str) -> str:
    """Go's time.quote (time.ParseError, time.ParseDuration errors): `"` and `\\` escaped, every byte of a
    non-ASCII or control character as `\\xHH`; other ASCII as it is. A surrogate escape (a byte that is not
    UTF-8, as the project holds Go strings) is that one byte."""
    out = ['"']
    for ch in s:
        o = ord(ch)
        if o >= 0x80 or o < 0x20:
            data = ch.encode("utf-8", "surrogateescape") if 0xDC80 <= o <= 0xDCFF else \
                ch.encode("utf-8", "surrogatepass")
            out.extend(f"\\x{b:02x}" for b in data)
        else:
            out.append("\\" + ch if ch in '"\\' else ch)
    out.append('"')
    return "".join(out)


def can_backquote(s: str) -> bool:
    """strconv.CanBackquote."""
    return all(ch != "`" and ch != "\ufeff" and (ch == "\t" or " " <= ch != "\x7f") for ch in s)

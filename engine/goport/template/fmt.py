"""Go's fmt output for engine.goport.template: `%v`, Sprint/Sprintln/Sprintf, Quote (floats: engine.goport.strconv).

Sprintf supports the flags `+ - # 0` and space, width and precision (also `*`), the verbs
`v s d q f F e E g G t x X o O b c U T %`, argument indexes `%[2]d`, and Go's error forms `%!d(string=x)`,
`%!d(MISSING)`, `%!(EXTRA ...)`, `%!(NOVERB)`, `%!d(BADINDEX)`. Not supported: the Go-syntax form `%#v` of maps
and lists (printed like `%v`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sensorium.engine.goport.strconv import can_backquote, format_float, is_print, quote
from sensorium.engine.goport.template.values import MAX_DEPTH, MISSING, TemplateLimitError, Uint8, to_bytes, type_name


@dataclass
class _Flags:
    plus: bool = False
    minus: bool = False
    sharp: bool = False
    space: bool = False
    zero: bool = False
    wid: int | None = None
    prec: int | None = None


class Printer:
    """One fmt print call (its flags apply to every element of a map or list, as in Go)."""

    def __init__(self, limit: int = 1 << 20, max_depth: int = MAX_DEPTH) -> None:
        self.f = _Flags()
        self.limit = limit
        self.max_depth = max_depth

    # -- padding ----------------------------------------------------------------------------------------------
    def pad(self, s: str, mode: str = "str") -> str:
        """Pad to the width: `num` zero-pads after the sign, `space` never zero-pads, `str` pads with the
        zero flag's zeros like Go does for strings."""
        w = self.f.wid
        if w is None or len(s) >= w:
            return s
        if w > self.limit:
            raise TemplateLimitError(f"fmt width {w} exceeds the output limit")
        n = len(s)
        if self.f.minus:
            return s + " " * (w - n)
        if self.f.zero and mode == "num":
            sign = s[0] if s[:1] in ("+", "-", " ") else ""
            return sign + "0" * (w - n) + s[len(sign):]
        return ("0" if self.f.zero and mode == "str" else " ") * (w - n) + s

    # -- values -----------------------------------------------------------------------------------------------
    def arg(self, v: Any, verb: str, depth: int = 0) -> str:
        if depth > self.max_depth:
            raise TemplateLimitError("value nested too deeply to print")
        if v is None or v is MISSING:
            return self.pad("<nil>") if verb in "vT" or depth > 0 else self.bad(verb, v)
        if verb == "T":
            return self.pad(type_name(v))
        if isinstance(v, bool):
            return self.pad("true" if v else "false") if verb in "tv" else self.bad(verb, v)
        if isinstance(v, int):
            return self.integer(int(v), verb, isinstance(v, Uint8), v)
        if isinstance(v, float):
            return self.float_(v, verb)
        if isinstance(v, str):
            return self.string(v, verb, v)
        if isinstance(v, datetime):
            if verb in "vsqxX":
                from sensorium.engine.goport.template.time import time_string

                return self.string(time_string(v), verb, v)
            return self.bad(verb, v)
        if isinstance(v, dict):
            parts = [f"{self.arg(k, verb, depth + 1)}:{self.arg(v[k], verb, depth + 1)}" for k in sorted(v)]
            return "map[" + " ".join(parts) + "]"
        if isinstance(v, list):
            return "[" + " ".join(self.arg(x, verb, depth + 1) for x in v) + "]"
        return self.bad(verb, v)

    def bad(self, verb: str, v: Any) -> str:
        if v is None or v is MISSING:
            return f"%!{verb}(<nil>)"
        return f"%!{verb}({type_name(v)}={self.arg(v, 'v')})"

    def integer(self, n: int, verb: str, unsigned: bool, orig: Any) -> str:
        f = self.f
        if verb == "c":
            return self.pad(chr(n) if 0 <= n <= 0x10FFFF else "\ufffd")
        if verb == "q":
            ch = chr(n) if 0 <= n <= 0x10FFFF and not 0xD800 <= n <= 0xDFFF else "\ufffd"
            return self.pad(quote(ch, f.plus, "'"))
        if verb == "U":
            text = f"U+{n:04X}" if n >= 0 else f"U+{n & 0xFFFFFFFFFFFFFFFF:04X}"
            if f.sharp and 0 <= n <= 0x10FFFF and is_print(chr(n)):
                text += f" '{chr(n)}'"
            return self.pad(text)
        bases = {"v": 10, "d": 10, "b": 2, "o": 8, "O": 8, "x": 16, "X": 16}
        if verb not in bases:
            return self.bad(verb, orig)
        base = bases[verb]
        digits = format(abs(n), {2: "b", 8: "o", 10: "d", 16: "x" if verb == "x" else "X"}[base])
        if f.prec is not None:
            digits = "" if f.prec == 0 and n == 0 else digits.rjust(f.prec, "0")
        elif f.zero and not f.minus and f.wid is not None:  # Go: the prefix does not count
            digits = digits.rjust(f.wid - (1 if n < 0 or f.plus or f.space else 0), "0")
        if f.sharp and base == 16:
            digits = ("0x" if verb == "x" else "0X") + digits
        elif f.sharp and base == 2:
            digits = "0b" + digits
        elif verb == "O":
            digits = "0o" + digits
        elif f.sharp and base == 8 and not digits.startswith("0"):
            digits = "0" + digits
        sign = "-" if n < 0 else ("+" if f.plus else (" " if f.space else ""))
        return self.pad(sign + digits, "space")

    def float_(self, x: float, verb: str) -> str:
        f = self.f
        if verb not in "vbgGxXfFeE":
            return self.bad(verb, x)
        if verb == "v":
            verb = "g"
        prec = f.prec if f.prec is not None else (6 if verb in "fFeE" else -1)
        text = format_float(x, verb, prec)
        num = text if text[0] in "+-" else "+" + text
        if f.space and num[0] == "+" and not f.plus:
            num = " " + num[1:]
        if num[1] in "IN":  # infinities and NaN are never zero padded; NaN has no sign unless asked
            if num[1] == "N" and not f.space and not f.plus:
                num = num[1:]
            return self.pad(num, "space")
        if f.plus or num[0] != "+":
            return self.pad(num, "num")
        return self.pad(num[1:], "num")

    def string(self, s: str, verb: str, orig: Any) -> str:
        f = self.f
        if verb in "vs":
            if f.prec is not None:
                s = s[:f.prec]
            return self.pad(s)
        if verb == "q":
            if f.prec is not None:
                s = s[:f.prec]
            if f.sharp and can_backquote(s):
                return self.pad("`" + s + "`")
            return self.pad(quote(s, f.plus))
        if verb in "xX":
            data = to_bytes(s)
            if f.prec is not None:
                data = data[:f.prec]
            fmt_ = "{:02x}" if verb == "x" else "{:02X}"
            parts = [("0x" if verb == "x" else "0X") * f.sharp + fmt_.format(b) for b in data]
            if f.space:
                return self.pad(" ".join(parts))
            head = parts[0][:2] if f.sharp and parts else ""
            return self.pad(head + "".join(p[2:] if f.sharp else p for p in parts))
        return self.bad(verb, orig)


def sprint_v(v: Any, max_depth: int = MAX_DEPTH) -> str:
    """fmt.Sprint of one value (`%v`): maps sorted by key, `<nil>` for nil. The project's one `%v` of values
    (govaluate's go_sprint adapts it); nesting past `max_depth` is a TemplateLimitError."""
    if isinstance(v, str):
        return v
    return Printer(max_depth=max_depth).arg(v, "v")


def sprint(args: list[Any]) -> str:
    """fmt.Sprint: a space between operands when neither is a string."""
    out: list[str] = []
    prev_string = False
    for i, a in enumerate(args):
        is_string = isinstance(a, str)
        if i > 0 and not is_string and not prev_string:
            out.append(" ")
        out.append(sprint_v(a))
        prev_string = is_string
    return "".join(out)


def sprintln(args: list[Any]) -> str:
    """fmt.Sprintln: spaces between all operands and a final newline."""
    return " ".join(sprint_v(a) for a in args) + "\n"


def _parse_num(fmt_: str, i: int) -> tuple[int | None, int]:
    start = i
    while i < len(fmt_) and "0" <= fmt_[i] <= "9":
        i += 1
    return (int(fmt_[start:i]) if i > start else None), i


def sprintf(fmt_: str, args: list[Any], limit: int = 1 << 20) -> str:
    """fmt.Sprintf (a port of doPrintf): Go's verbs, flags, `*`, `[n]` argument indexes and error forms."""
    out: list[str] = []
    size = 0
    argn = 0
    reordered = False
    i, end = 0, len(fmt_)
    p = Printer(limit)

    def arg_number(argn: int, i: int) -> tuple[int, int, bool, bool]:
        """(argn, i, found, ok) for an optional [n] at fmt_[i]."""
        nonlocal reordered
        if i >= end or fmt_[i] != "[":
            return argn, i, False, True
        reordered = True
        close = fmt_.find("]", i)
        if close < 0 or end - i < 3:
            return argn, i + 1, False, False
        num, j = _parse_num(fmt_, i + 1)
        if num is None or j != close:
            return argn, close + 1, False, False
        if 0 <= num - 1 < len(args):
            return num - 1, close + 1, True, True
        return argn, close + 1, True, False

    def int_arg(argn: int) -> tuple[int | None, int]:
        if argn < len(args) and isinstance(args[argn], int) and not isinstance(args[argn], bool):
            return int(args[argn]), argn + 1
        return None, argn + 1

    while i < end:
        good = True
        j = fmt_.find("%", i)
        if j < 0:
            out.append(fmt_[i:])
            break
        out.append(fmt_[i:j])
        i = j + 1
        p.f = f = _Flags()
        while i < end and fmt_[i] in "+-# 0":
            c = fmt_[i]
            f.plus |= c == "+"
            f.sharp |= c == "#"
            f.space |= c == " "
            if c == "-":
                f.minus, f.zero = True, False
            elif c == "0":
                f.zero = not f.minus
            i += 1
        argn, i, after_index, ok = arg_number(argn, i)
        good &= ok
        if i < end and fmt_[i] == "*":
            i += 1
            f.wid, argn = int_arg(argn)
            if f.wid is None:
                out.append("%!(BADWIDTH)")
            elif f.wid < 0:
                f.minus, f.zero, f.wid = True, False, -f.wid
            after_index = False
        else:
            f.wid, i = _parse_num(fmt_, i)
            if after_index and f.wid is not None:
                good = False
        if i + 1 < end and fmt_[i] == ".":
            i += 1
            if after_index:
                good = False
            argn, i, after_index, ok = arg_number(argn, i)
            good &= ok
            if i < end and fmt_[i] == "*":
                i += 1
                f.prec, argn = int_arg(argn)
                if f.prec is not None and f.prec < 0:
                    f.prec = None
                if f.prec is None:
                    out.append("%!(BADPREC)")
                after_index = False
            else:
                f.prec, i = _parse_num(fmt_, i)
                f.prec = f.prec or 0
        if not after_index:
            argn, i, after_index, ok = arg_number(argn, i)
            good &= ok
        for bound in (f.wid, f.prec):
            if bound is not None and bound > limit:
                raise TemplateLimitError(f"fmt width or precision {bound} exceeds the output limit")
        if i >= end:
            out.append("%!(NOVERB)")
            break
        verb = fmt_[i]
        i += 1
        if verb == "%":
            out.append("%")
            continue
        if not good:
            out.append(f"%!{verb}(BADINDEX)")
            continue
        if argn >= len(args):
            out.append(f"%!{verb}(MISSING)")
            continue
        a = args[argn]
        argn += 1
        if verb == "v":
            sharp_v, f.sharp, f.plus = f.sharp, False, False
            piece = p.pad(quote(a)) if sharp_v and isinstance(a, str) else p.arg(a, verb)
        else:
            piece = p.arg(a, verb)
        out.append(piece)
        size += len(piece)
        if size > limit:
            raise TemplateLimitError(f"printf output exceeds {limit} characters")
    if not reordered and argn < len(args):
        extra = ", ".join("<nil>" if a is None or a is MISSING else f"{type_name(a)}={Printer().arg(a, 'v')}"
                          for a in args[argn:])
        out.append(f"%!(EXTRA {extra})")
    return "".join(out)

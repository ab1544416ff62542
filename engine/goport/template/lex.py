"""Lexer for engine.goport.template (Go library): a port of Go's text/template/parse/lex.go.

Hand-written rather than a lark grammar: the lexer is modal (text outside `{{ }}`, tokens inside), trim markers
`{{- ` / ` -}}` remove whitespace from the neighbouring text tokens, comments must hug the delimiters, and the
error messages ("unclosed action", "bad number syntax: \"1x\"", ...) are Go's. Porting Go's state functions keeps
all of that identical.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

LEFT, RIGHT = "{{", "}}"
SPACE_CHARS = " \t\r\n"

# item types
ERROR, EOF, TEXT, COMMENT = "error", "EOF", "text", "comment"
LEFT_DELIM, RIGHT_DELIM, LEFT_PAREN, RIGHT_PAREN = "{{", "}}", "(", ")"
SPACE, PIPE, ASSIGN, DECLARE, CHAR = "space", "|", "=", ":=", "char"
BOOL, NUMBER, COMPLEX, CHAR_CONSTANT, STRING, RAW_STRING = "bool", "number", "complex", "charconst", "string", "raw"
FIELD, VARIABLE, IDENTIFIER, DOT, NIL = "field", "variable", "identifier", ".", "nil"
KEYWORDS = {"block", "break", "continue", "define", "else", "end", "if", "range", "template", "with"}
# keyword items use the keyword itself as their type


@dataclass(frozen=True)
class Item:
    typ: str
    pos: int
    val: str

    def __str__(self) -> str:
        """Go's item.String(), used in "unexpected X in Y" messages."""
        if self.typ == EOF:
            return "EOF"
        if self.typ == ERROR:
            return self.val
        if self.typ in KEYWORDS or self.typ in (DOT, NIL):
            return f"<{self.val}>"
        from sensorium.engine.goport.strconv import quote

        if len(self.val) > 10:
            return quote(self.val[:10]) + "..."
        return quote(self.val)


def is_alnum(ch: str) -> bool:
    """Go's isAlphaNumeric: underscore, unicode letters and digits."""
    return ch == "_" or (ch != "" and (ch.isalpha() or unicodedata.category(ch) == "Nd"))


def _uplus(ch: str) -> str:
    """Go's %#U: U+0040 '@'."""
    return f"U+{ord(ch):04X}" + (f" '{ch}'" if ch.isprintable() else "")


class Lexer:
    """Produces the item list of one template; stops at the first error item."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.start = 0
        self.items: list[Item] = []
        self.paren_depth = 0

    def emit(self, typ: str) -> None:
        self.items.append(Item(typ, self.start, self.text[self.start:self.pos]))
        self.start = self.pos

    def error(self, message: str) -> bool:
        self.items.append(Item(ERROR, self.start, message))
        return False

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def next(self) -> str:
        ch = self.peek()
        self.pos += 1 if ch else 0
        return ch

    def accept(self, valid: str) -> bool:
        if self.peek() and self.peek() in valid:
            self.pos += 1
            return True
        return False

    def accept_run(self, valid: str) -> None:
        while self.peek() and self.peek() in valid:
            self.pos += 1

    # -- delimiters -------------------------------------------------------------------------------------------
    def at_right_delim(self) -> tuple[bool, bool]:
        rest = self.text[self.pos:]
        if len(rest) >= 2 and rest[0] in SPACE_CHARS and rest[1] == "-" and rest[2:].startswith(RIGHT):
            return True, True
        return rest.startswith(RIGHT), False

    def run(self) -> list[Item]:
        ok = True
        while ok:
            ok = self.lex_text()
            if ok:
                ok = self.lex_action()
        return self.items

    def lex_text(self) -> bool:
        """Text up to the next `{{`; returns False at EOF (an EOF item is emitted)."""
        x = self.text.find(LEFT, self.pos)
        if x < 0:
            self.pos = len(self.text)
            if self.pos > self.start:
                self.emit(TEXT)
            self.items.append(Item(EOF, self.pos, ""))
            return False
        self.pos = x
        after = self.text[x + 2:x + 4]
        trim = 0
        if len(after) == 2 and after[0] == "-" and after[1] in SPACE_CHARS:
            chunk = self.text[self.start:self.pos]
            trim = len(chunk) - len(chunk.rstrip(SPACE_CHARS))
        if self.pos - trim > self.start:
            self.items.append(Item(TEXT, self.start, self.text[self.start:self.pos - trim]))
        self.start = self.pos
        return True

    def lex_action(self) -> bool:
        """From `{{` through the matching `}}` (or a whole comment)."""
        self.pos += len(LEFT)
        rest = self.text[self.pos:self.pos + 2]
        marker = 2 if len(rest) == 2 and rest[0] == "-" and rest[1] in SPACE_CHARS else 0
        if self.text.startswith("/*", self.pos + marker):
            self.pos += marker
            self.start = self.pos
            return self.lex_comment()
        self.emit(LEFT_DELIM)
        self.pos += marker
        self.start = self.pos
        self.paren_depth = 0
        while True:
            delim, _ = self.at_right_delim()
            if delim:
                if self.paren_depth == 0:
                    return self.lex_right_delim()
                return self.error("unclosed left paren")
            if not self.lex_inside_action():
                return False

    def lex_comment(self) -> bool:
        self.pos += 2
        x = self.text.find("*/", self.pos)
        if x < 0:
            return self.error("unclosed comment")
        self.pos = x + 2
        delim, trim = self.at_right_delim()
        if not delim:
            return self.error("comment ends before closing delimiter")
        self.pos += (2 if trim else 0) + len(RIGHT)
        if trim:
            self.pos += len(self.text[self.pos:]) - len(self.text[self.pos:].lstrip(SPACE_CHARS))
        self.start = self.pos
        return True

    def lex_right_delim(self) -> bool:
        _, trim = self.at_right_delim()
        if trim:
            self.pos += 2
            self.start = self.pos
        self.pos += len(RIGHT)
        self.emit(RIGHT_DELIM)
        if trim:
            self.pos += len(self.text[self.pos:]) - len(self.text[self.pos:].lstrip(SPACE_CHARS))
            self.start = self.pos
        return True

    # -- inside an action -------------------------------------------------------------------------------------
    def lex_inside_action(self) -> bool:
        ch = self.next()
        if ch == "":
            return self.error("unclosed action")
        if ch in SPACE_CHARS:
            self.pos -= 1
            return self.lex_space()
        if ch == "=":
            self.emit(ASSIGN)
        elif ch == ":":
            if self.next() != "=":
                return self.error("expected :=")
            self.emit(DECLARE)
        elif ch == "|":
            self.emit(PIPE)
        elif ch == '"':
            return self.lex_quote('"', STRING, "unterminated quoted string")
        elif ch == "`":
            end = self.text.find("`", self.pos)
            if end < 0:
                return self.error("unterminated raw quoted string")
            self.pos = end + 1
            self.emit(RAW_STRING)
        elif ch == "$":
            return self.lex_field_or_variable(VARIABLE)
        elif ch == "'":
            return self.lex_quote("'", CHAR_CONSTANT, "unterminated character constant")
        elif ch == "." and not ("0" <= self.peek() <= "9" and self.peek() != ""):
            return self.lex_field_or_variable(FIELD)
        elif ch in "+-." or "0" <= ch <= "9":
            self.pos -= 1
            return self.lex_number()
        elif is_alnum(ch):
            self.pos -= 1
            return self.lex_identifier()
        elif ch == "(":
            self.paren_depth += 1
            self.emit(LEFT_PAREN)
        elif ch == ")":
            self.paren_depth -= 1
            if self.paren_depth < 0:
                return self.error("unexpected right paren")
            self.emit(RIGHT_PAREN)
        elif ch.isascii() and ch.isprintable():
            self.emit(CHAR)
        else:
            return self.error(f"unrecognized character in action: {_uplus(ch)}")
        return True

    def lex_space(self) -> bool:
        spaces = 0
        while self.peek() and self.peek() in SPACE_CHARS:
            self.pos += 1
            spaces += 1
        rest = self.text[self.pos - 1:]
        if len(rest) >= 2 and rest[1] == "-" and rest[2:].startswith(RIGHT):
            self.pos -= 1  # before the space of " -}}"
            if spaces == 1:
                return True
        self.emit(SPACE)
        return True

    def at_terminator(self) -> bool:
        ch = self.peek()
        if ch == "" or ch in SPACE_CHARS or ch in ".,|:()":
            return True
        return self.text.startswith(RIGHT, self.pos)

    def lex_identifier(self) -> bool:
        while is_alnum(self.peek()):
            self.pos += 1
        word = self.text[self.start:self.pos]
        if not self.at_terminator():
            return self.error(f"bad character {_uplus(self.peek())}")
        if word in KEYWORDS:
            self.emit(word)
        elif word == "nil":
            self.emit(NIL)
        elif word in ("true", "false"):
            self.emit(BOOL)
        else:
            self.emit(IDENTIFIER)
        return True

    def lex_field_or_variable(self, typ: str) -> bool:
        if self.at_terminator():
            self.emit(VARIABLE if typ == VARIABLE else DOT)
            return True
        while is_alnum(self.peek()):
            self.pos += 1
        if not self.at_terminator():
            return self.error(f"bad character {_uplus(self.peek())}")
        self.emit(typ)
        return True

    def lex_quote(self, q: str, typ: str, message: str) -> bool:
        while True:
            ch = self.next()
            if ch == "\\":
                ch = self.next()
                if ch not in ("", "\n"):
                    continue
            if ch in ("", "\n"):
                return self.error(message)
            if ch == q:
                break
        self.emit(typ)
        return True

    def scan_number(self) -> bool:
        self.accept("+-")
        digits = "0123456789_"
        if self.accept("0"):
            if self.accept("xX"):
                digits = "0123456789abcdefABCDEF_"
            elif self.accept("oO"):
                digits = "01234567_"
            elif self.accept("bB"):
                digits = "01_"
        self.accept_run(digits)
        if self.accept("."):
            self.accept_run(digits)
        if len(digits) == 11 and self.accept("eE"):
            self.accept("+-")
            self.accept_run("0123456789_")
        if len(digits) == 23 and self.accept("pP"):
            self.accept("+-")
            self.accept_run("0123456789_")
        self.accept("i")
        if is_alnum(self.peek()):
            self.pos += 1
            return False
        return True

    def lex_number(self) -> bool:
        if not self.scan_number():
            from sensorium.engine.goport.strconv import quote

            return self.error(f"bad number syntax: {quote(self.text[self.start:self.pos])}")
        if self.peek() in ("+", "-") and self.peek() != "":
            if not self.scan_number() or self.text[self.pos - 1] != "i":
                from sensorium.engine.goport.strconv import quote

                return self.error(f"bad number syntax: {quote(self.text[self.start:self.pos])}")
            self.emit(COMPLEX)
            return True
        self.emit(NUMBER)
        return True


def lex(text: str) -> list[Item]:
    """All items of the template, ending with EOF or an error item."""
    return Lexer(text).run()

"""Parser for engine.goport.template (Go library): a recursive-descent port of Go's text/template/parse/parse.go.

Node classes print themselves as Go's nodes do (`String()`), which exec errors quote (`at <.Input.a>`).
`define`, `template` and `block` (named templates), `call` and complex constants are outside the subset and
raise TemplateUnsupportedError; everything Go's parser rejects raises TemplateParseError with Go's message.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from sensorium.engine.goport import strconv
from sensorium.engine.goport.strconv import quote
from sensorium.engine.goport.template import lex as lx
from sensorium.engine.goport.template.nodes import (
    ActionNode,
    BoolNode,
    BranchNode,
    BreakNode,
    ChainNode,
    CommandNode,
    ContinueNode,
    DotNode,
    FieldNode,
    IdentifierNode,
    ListNode,
    NilNode,
    Node,
    NumberNode,
    PipeNode,
    StringNode,
    TextNode,
    VariableNode,
    _ElseNode,
    _EndNode,
)
from sensorium.engine.goport.template.values import TemplateParseError, TemplateUnsupportedError

MAX_NESTING = 50


_GO_ESCAPES = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v", "\\": "\\"}


def unquote(lit: str) -> str:
    """strconv.Unquote for string, raw string and character literals; ValueError("invalid syntax")."""
    q = lit[0]
    body = lit[1:-1]
    if q == "`":
        return body.replace("\r", "")
    out = bytearray()
    i = 0
    while i < len(body):
        ch = body[i]
        if ch == q or (ch == "\n"):
            raise ValueError("invalid syntax")
        if ch != "\\":
            out += ch.encode("utf-8", "surrogateescape")
            i += 1
            continue
        esc = body[i + 1:i + 2]
        i += 2
        if esc in _GO_ESCAPES:
            out += _GO_ESCAPES[esc].encode()
        elif esc == q:
            out += q.encode()
        elif esc in ("x", "u", "U"):
            width = {"x": 2, "u": 4, "U": 8}[esc]
            digits = body[i:i + width]
            if len(digits) != width or not re.fullmatch(r"[0-9a-fA-F]+", digits):
                raise ValueError("invalid syntax")
            value = int(digits, 16)
            i += width
            if esc == "x":
                out.append(value)
            elif value > 0x10FFFF or 0xD800 <= value <= 0xDFFF:
                raise ValueError("invalid syntax")
            else:
                out += chr(value).encode()
        elif esc and esc in "01234567":
            digits = body[i - 1:i + 2]
            if len(digits) != 3 or not re.fullmatch(r"[0-7]{3}", digits) or int(digits, 8) > 255:
                raise ValueError("invalid syntax")
            out.append(int(digits, 8))
            i += 2
        else:
            raise ValueError("invalid syntax")
    text = out.decode("utf-8", "surrogateescape")
    if q == "'" and len(text) != 1:
        raise ValueError("invalid syntax")
    return text


def _parse_float(text: str) -> float | None:
    """strconv.ParseFloat(text, 64) for lexer-produced number text (None on a syntax or range error)."""
    try:
        return strconv.parse_float(text)
    except strconv.NumError:
        return None


def _char_code(lit: str) -> int:
    """The rune value of a character constant such as 'a', '\\n', '\\x41' or '\\u00e9'."""
    text = unquote(lit)
    raw = text.encode("utf-8", "surrogateescape")
    if len(text) == 1 and not 0xDC80 <= ord(text) <= 0xDCFF:
        return ord(text)
    if len(raw) == 1:
        return raw[0]
    raise ValueError(f"malformed character constant: {lit}")


def new_number(pos: int, text: str, typ: str) -> NumberNode:
    """Go's parse.newNumber; raises ValueError with Go's message (NotImplementedError for complex numbers)."""
    if typ == lx.CHAR_CONSTANT:
        code = _char_code(text)
        return NumberNode(pos, text, int_value=code, float_value=float(code), is_rune=True)
    if typ == lx.COMPLEX or text.endswith("i"):
        raise NotImplementedError("complex constants")
    node = NumberNode(pos, text)
    node.int_value = strconv.parse_int(text)
    if node.int_value is not None:
        node.float_value = float(node.int_value)
        return node
    f = _parse_float(text)
    if f is None:
        raise ValueError(f"illegal number syntax: {quote(text)}")
    if not any(c in text for c in ".eEpP"):
        raise ValueError(f"integer overflow: {quote(text)}")
    node.float_value = f
    if f == int(f) and -(1 << 63) <= int(f) < (1 << 63):
        node.int_value = int(f)
    return node


class Parser:
    """One parse of one template (Go's Tree)."""

    def __init__(self, text: str, name: str, known_function: Callable[[str], str | None]) -> None:
        self.text = text
        self.name = name
        self.known_function = known_function
        self.items = lx.lex(text)
        self.i = 0
        self.vars: list[str] = ["$"]
        self.range_depth = 0
        self.depth = 0
        self.action_line = 0

    # -- errors -------------------------------------------------------------------------------------------------
    def line(self, pos: int) -> int:
        return self.text.count("\n", 0, pos) + 1

    def error(self, message: str, pos: int | None = None) -> TemplateParseError:
        at = self.items[max(self.i - 1, 0)].pos if pos is None else pos
        return TemplateParseError(f"template: {self.name}:{self.line(at)}: {message}")

    def unsupported(self, message: str, pos: int) -> TemplateUnsupportedError:
        return TemplateUnsupportedError(f"template: {self.name}:{self.line(pos)}: {message}")

    def unexpected(self, item: lx.Item, context: str) -> TemplateParseError:
        if item.typ == lx.ERROR:
            extra = ""
            if self.action_line and self.action_line != self.line(item.pos):
                extra = f" in action started at {self.name}:{self.action_line}"
                if item.val.endswith(" action"):
                    extra = extra[len(" in action"):]
            return self.error(f"{item}{extra}", item.pos)
        if item.typ in ("define", "template", "block"):
            raise self.unsupported(f"unsupported template action '{item.typ}' (named templates are not part of "
                                   "Sensorium's template subset)", item.pos)
        return self.error(f"unexpected {item} in {context}", item.pos)

    # -- token stream -------------------------------------------------------------------------------------------
    def next(self) -> lx.Item:
        item = self.items[min(self.i, len(self.items) - 1)]
        self.i += 1
        return item

    def peek(self) -> lx.Item:
        return self.items[min(self.i, len(self.items) - 1)]

    def next_non_space(self) -> lx.Item:
        item = self.next()
        while item.typ == lx.SPACE:
            item = self.next()
        return item

    def peek_non_space(self) -> lx.Item:
        item = self.next_non_space()
        self.i -= 1
        return item

    def expect(self, typ: str, context: str) -> lx.Item:
        item = self.next_non_space()
        if item.typ != typ:
            raise self.unexpected(item, context)
        return item

    # -- grammar ------------------------------------------------------------------------------------------------
    def parse(self) -> ListNode:
        root = ListNode(self.peek().pos)
        while self.peek().typ != lx.EOF:
            node = self.text_or_action()
            if isinstance(node, (_EndNode, _ElseNode)):
                raise self.error(f"unexpected {node}", node.pos)
            if node is not None:
                root.nodes.append(node)
        return root

    def item_list(self) -> tuple[ListNode, Node]:
        lst = ListNode(self.peek_non_space().pos)
        while self.peek_non_space().typ != lx.EOF:
            node = self.text_or_action()
            if isinstance(node, (_EndNode, _ElseNode)):
                return lst, node
            if node is not None:
                lst.nodes.append(node)
        raise self.error("unexpected EOF")

    def text_or_action(self) -> Node | None:
        item = self.next_non_space()
        if item.typ == lx.TEXT:
            return TextNode(item.pos, item.val)
        if item.typ == lx.LEFT_DELIM:
            self.action_line = self.line(item.pos)
            try:
                return self.action()
            finally:
                self.action_line = 0
        raise self.unexpected(item, "input")

    def action(self) -> Node:
        item = self.next_non_space()
        kind = item.typ
        if kind in ("define", "template", "block"):
            raise self.unexpected(item, "command")
        if kind in ("break", "continue"):
            end = self.next_non_space()
            if end.typ != lx.RIGHT_DELIM:
                raise self.unexpected(end, "{{" + kind + "}}")
            if self.range_depth == 0:
                raise self.error("{{" + kind + "}} outside {{range}}", item.pos)
            return BreakNode(item.pos) if kind == "break" else ContinueNode(item.pos)
        if kind == "else":
            peek = self.peek_non_space()
            if peek.typ in ("if", "with"):
                return _ElseNode(peek.pos)
            return _ElseNode(self.expect(lx.RIGHT_DELIM, "else").pos)
        if kind == "end":
            return _EndNode(self.expect(lx.RIGHT_DELIM, "end").pos)
        if kind in ("if", "range", "with"):
            return self.control(kind)
        self.i -= 1
        start = self.peek()
        return ActionNode(start.pos, self.pipeline("command", lx.RIGHT_DELIM))

    def control(self, context: str) -> BranchNode:
        self.depth += 1
        if self.depth > MAX_NESTING:
            raise self.unsupported(f"template nested deeper than {MAX_NESTING} levels", self.peek().pos)
        mark = len(self.vars)
        try:
            pipe = self.pipeline(context, lx.RIGHT_DELIM)
            if context == "range":
                self.range_depth += 1
            body, nxt = self.item_list()
            if context == "range":
                self.range_depth -= 1
            else_list: ListNode | None = None
            if isinstance(nxt, _ElseNode):
                if context in ("if", "with") and self.peek().typ == context:
                    self.next()
                    else_list = ListNode(nxt.pos, [self.control(context)])
                else:
                    else_list, nxt = self.item_list()
                    if not isinstance(nxt, _EndNode):
                        raise self.error(f"expected end; found {nxt}", nxt.pos)
            return BranchNode(pipe.pos, context, pipe, body, else_list)
        finally:
            del self.vars[mark:]
            self.depth -= 1

    def pipeline(self, context: str, end: str) -> PipeNode:
        pipe = PipeNode(self.peek_non_space().pos)
        while True:  # declarations: "$x :=", "$x =", "$i, $v :=" (range only)
            save = self.i
            var = self.peek_non_space()
            if var.typ != lx.VARIABLE:
                break
            self.next_non_space()
            nxt = self.peek_non_space()
            if nxt.typ in (lx.ASSIGN, lx.DECLARE):
                pipe.is_assign = nxt.typ == lx.ASSIGN
                self.next_non_space()
                pipe.decl.append(VariableNode(var.pos, [var.val]))
                self.vars.append(var.val)
                break
            if nxt.typ == lx.CHAR and nxt.val == ",":
                self.next_non_space()
                pipe.decl.append(VariableNode(var.pos, [var.val]))
                self.vars.append(var.val)
                if context == "range" and len(pipe.decl) < 2:
                    if self.peek_non_space().typ in (lx.VARIABLE, lx.RIGHT_DELIM, lx.RIGHT_PAREN):
                        continue
                    raise self.error("range can only initialize variables")
                raise self.error(f"too many declarations in {context}")
            self.i = save
            break
        while True:
            item = self.next_non_space()
            if item.typ == end:
                self.check_pipeline(pipe, context)
                return pipe
            if item.typ in (lx.BOOL, lx.CHAR_CONSTANT, lx.COMPLEX, lx.DOT, lx.FIELD, lx.IDENTIFIER, lx.NUMBER,
                            lx.NIL, lx.RAW_STRING, lx.STRING, lx.VARIABLE, lx.LEFT_PAREN):
                self.i -= 1
                pipe.cmds.append(self.command())
            else:
                raise self.unexpected(item, context)

    def check_pipeline(self, pipe: PipeNode, context: str) -> None:
        if not pipe.cmds:
            raise self.error(f"missing value for {context}")
        for i, cmd in enumerate(pipe.cmds[1:]):
            if isinstance(cmd.args[0], (BoolNode, DotNode, NilNode, NumberNode, StringNode)):
                raise self.error(f"non executable command in pipeline stage {i + 2}")

    def command(self) -> CommandNode:
        cmd = CommandNode(self.peek_non_space().pos)
        while True:
            self.peek_non_space()
            operand = self.operand()
            if operand is not None:
                cmd.args.append(operand)
            item = self.next()
            if item.typ == lx.SPACE:
                continue
            if item.typ in (lx.RIGHT_DELIM, lx.RIGHT_PAREN):
                self.i -= 1
            elif item.typ != lx.PIPE:
                raise self.unexpected(item, "operand")
            break
        if not cmd.args:
            raise self.error("empty command")
        return cmd

    def operand(self) -> Node | None:
        node = self.term()
        if node is None or self.peek().typ != lx.FIELD:
            return node
        fields: list[str] = []
        chain_pos = self.peek().pos
        while self.peek().typ == lx.FIELD:
            fields.append(self.next().val[1:])
        if isinstance(node, FieldNode):
            return FieldNode(chain_pos, node.ident + fields)
        if isinstance(node, VariableNode):
            return VariableNode(chain_pos, node.ident + fields)
        if isinstance(node, (BoolNode, StringNode, NumberNode, NilNode, DotNode)):
            raise self.error(f"unexpected . after term {quote(str(node))}")
        return ChainNode(chain_pos, node, fields)

    def term(self) -> Node | None:
        item = self.next_non_space()
        typ = item.typ
        if typ == lx.IDENTIFIER:
            problem = self.known_function(item.val)
            if problem == "undefined":
                raise self.error(f"function {quote(item.val)} not defined", item.pos)
            if problem:
                raise self.unsupported(problem, item.pos)
            return IdentifierNode(item.pos, item.val)
        if typ == lx.DOT:
            return DotNode(item.pos)
        if typ == lx.NIL:
            return NilNode(item.pos)
        if typ == lx.VARIABLE:
            name = item.val.split(".")[0]
            if name not in self.vars:
                raise self.error(f"undefined variable {quote(name)}", item.pos)
            return VariableNode(item.pos, [item.val])
        if typ == lx.FIELD:
            return FieldNode(item.pos, [item.val[1:]])
        if typ == lx.BOOL:
            return BoolNode(item.pos, item.val == "true")
        if typ in (lx.CHAR_CONSTANT, lx.COMPLEX, lx.NUMBER):
            try:
                return new_number(item.pos, item.val, typ)
            except NotImplementedError:
                raise self.unsupported(f"complex constant {item.val} is not supported", item.pos) from None
            except ValueError as exc:
                raise self.error(str(exc), item.pos) from None
        if typ == lx.LEFT_PAREN:
            self.depth += 1
            if self.depth > MAX_NESTING:
                raise self.unsupported(f"template nested deeper than {MAX_NESTING} levels", item.pos)
            try:
                return self.pipeline("parenthesized pipeline", lx.RIGHT_PAREN)
            finally:
                self.depth -= 1
        if typ in (lx.STRING, lx.RAW_STRING):
            try:
                return StringNode(item.pos, item.val, unquote(item.val))
            except ValueError as exc:
                raise self.error(str(exc), item.pos) from None
        self.i -= 1
        return None


def parse(text: str, name: str, known_function: Callable[[str], str | None]) -> ListNode:
    """Parse a whole template. `known_function(name)` returns None for a supported function, "undefined" for
    a name Go would not know, or a message for a known but unsupported function."""
    return Parser(text, name, known_function).parse()

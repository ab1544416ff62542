"""Executor for engine.goport.template (Go library): a port of Go's text/template/exec.go over the Go value model.

Sandbox: values are only JSON-like data, so field access is a map lookup and nothing else (no attribute or
method access on Python objects); every node evaluation, function call and range iteration counts as a step;
output, every string a function builds and every list are bounded; a wall-clock deadline backs the step count.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NoReturn

from sensorium.engine.goport.deadline import DeadlineExceeded
from sensorium.engine.goport.deadline import check as check_deadline
from sensorium.engine.goport.re2 import GoRegexp
from sensorium.engine.goport.template.builtins import ANY, BOOL, FLOAT, INT, STRING, VALUE, Func, assignable, can_be_nil
from sensorium.engine.goport.template.fmt import Printer
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
)
from sensorium.engine.goport.template.values import (
    MISSING,
    FuncError,
    StrList,
    StrMap,
    TemplateExecError,
    TemplateLimitError,
    finish_output,
    from_json_value,
    is_true,
    type_name,
)


@dataclass(frozen=True)
class Limits:
    """Sandbox bounds for one render."""

    max_steps: int = 100_000
    """Node evaluations, function calls and range iterations."""
    max_output: int = 1 << 20
    """Characters of output."""
    max_value: int = 1 << 20
    """Characters of any string (and elements of any list) a function builds."""
    timeout: float = 2.0
    """Seconds of wall-clock time (a backstop for expensive function calls)."""


class _Break(Exception):
    pass


class _Continue(Exception):
    pass


_NO_FINAL: Any = object()  # Go's missingVal: no value is piped into the command


class State:
    """One execution (Go's exec state); also the CallContext functions see."""

    def __init__(self, text: str, name: str, funcs: dict[str, Func], limits: Limits,
                 clock: Callable[[], datetime], regex: Callable[[str], GoRegexp]) -> None:
        self.text, self.name, self.funcs, self.limits = text, name, funcs, limits
        self.max_value = limits.max_value
        self._clock, self._regex = clock, regex
        self.vars: list[list[Any]] = []
        self.out: list[str] = []
        self.size = 0
        self.steps = 0
        self.node: Node | None = None
        self.dot_iface = False  # dot is an interface{} element (from ranging over []interface{} or a map)
        self.deadline = time.monotonic() + limits.timeout

    # -- CallContext ------------------------------------------------------------------------------------------
    def now(self) -> datetime:
        return self._clock()

    def regex(self, pattern: str) -> GoRegexp:
        return self._regex(pattern)

    # -- bookkeeping ------------------------------------------------------------------------------------------
    def at(self, node: Node) -> None:
        self.node = node

    def errorf(self, message: str, cls: type[TemplateExecError] = TemplateExecError) -> NoReturn:
        if self.node is None:
            raise cls(f"template: {self.name}: {message}")
        pos = self.node.pos
        line_start = self.text.rfind("\n", 0, pos) + 1
        col = len(self.text[line_start:pos].encode("utf-8", "surrogateescape"))
        line = self.text.count("\n", 0, pos) + 1
        context = str(self.node)
        if len(context) > 20:
            context = context[:20] + "..."
        raise cls(f'template: {self.name}:{line}:{col}: executing "{self.name}" at <{context}>: {message}')

    def step(self) -> None:
        self.steps += 1
        if self.steps > self.limits.max_steps:
            self.errorf(f"template exceeded {self.limits.max_steps} evaluation steps", TemplateLimitError)
        if self.steps & 63 == 0:
            if time.monotonic() > self.deadline:
                self.errorf(f"template exceeded its {self.limits.timeout:g}s time limit", TemplateLimitError)
            try:
                check_deadline()  # the sensor stage's per-event limit
            except DeadlineExceeded as exc:
                self.errorf(str(exc), TemplateLimitError)

    def write(self, s: str) -> None:
        self.size += len(s)
        if self.size > self.limits.max_output:
            self.errorf(f"template output exceeds {self.limits.max_output} characters", TemplateLimitError)
        self.out.append(s)

    def var_entry(self, name: str) -> list[Any]:
        entry: list[Any]
        for entry in reversed(self.vars):
            if entry[0] == name:
                return entry
        self.errorf(f"undefined variable: {name}")

    def set_var(self, name: str, value: Any, iface: bool = False) -> None:
        entry = self.var_entry(name)
        entry[1], entry[2] = value, iface

    # -- statements -------------------------------------------------------------------------------------------
    def walk(self, dot: Any, node: Node) -> None:
        self.step()
        self.at(node)
        if isinstance(node, ActionNode):
            val = self.eval_pipeline(dot, node.pipe)
            if not node.pipe.decl:
                self.print_value(node, val)
        elif isinstance(node, TextNode):
            self.write(node.text)
        elif isinstance(node, ListNode):
            for child in node.nodes:
                self.walk(dot, child)
        elif isinstance(node, BranchNode):
            if node.kind == "range":
                self.walk_range(dot, node)
            else:
                self.walk_if_or_with(dot, node)
        elif isinstance(node, BreakNode):
            raise _Break
        elif isinstance(node, ContinueNode):
            raise _Continue
        else:  # pragma: no cover - the parser builds no other statement nodes
            self.errorf(f"unknown node: {node}")

    def print_value(self, node: Node, val: Any) -> None:
        """Go's printValue: the invalid value prints as <no value>, everything else as fmt's %v."""
        self.at(node)
        if val is MISSING or val is None:
            self.write("<no value>")
        elif isinstance(val, str):
            self.write(val)
        else:
            self.write(Printer(self.max_value).arg(val, "v"))

    def walk_if_or_with(self, dot: Any, node: BranchNode) -> None:
        mark = len(self.vars)
        saved = self.dot_iface
        try:
            val = self.eval_pipeline(dot, node.pipe)
            if is_true(val):
                if node.kind == "with":
                    self.dot_iface = False
                    self.walk(val, node.list)
                else:
                    self.walk(dot, node.list)
            elif node.else_list is not None:
                self.walk(dot, node.else_list)
        finally:
            del self.vars[mark:]
            self.dot_iface = saved

    def walk_range(self, dot: Any, node: BranchNode) -> None:
        self.at(node)
        mark = len(self.vars)
        saved = self.dot_iface
        pipe = node.pipe
        try:
            val = self.eval_pipeline(dot, pipe)
            body_mark = len(self.vars)
            iface = isinstance(val, (list, dict)) and not isinstance(val, (StrList, StrMap))

            def one(index: Any, elem: Any) -> None:
                self.step()
                if pipe.decl:
                    if pipe.is_assign:
                        if len(pipe.decl) > 1:
                            self.set_var(pipe.decl[0].ident[0], index)
                        else:
                            self.set_var(pipe.decl[0].ident[0], elem, iface)
                    else:
                        self.vars[-1][1:] = [elem, iface]
                if len(pipe.decl) > 1:
                    if pipe.is_assign:
                        self.set_var(pipe.decl[1].ident[0], elem, iface)
                    else:
                        self.vars[-2][1:] = [index, False]
                self.dot_iface = iface
                try:
                    self.walk(elem, node.list)
                except _Continue:
                    pass
                finally:
                    del self.vars[body_mark:]
                    self.dot_iface = saved

            try:
                if isinstance(val, list) and val:
                    for i, elem in enumerate(list(val)):
                        one(i, elem)
                    return
                if isinstance(val, dict) and val:
                    for key, elem in sorted(val.items(), key=lambda kv: kv[0]):
                        one(key, elem)
                    return
                if isinstance(val, int) and not isinstance(val, bool):
                    if len(pipe.decl) > 1:
                        self.errorf(f"can't use {val} to iterate over more than one variable")
                    if val > 0:
                        for i in range(val):
                            one(type(val)(i), type(val)(i))
                        return
                elif not (val is MISSING or val is None or isinstance(val, (list, dict))):
                    self.errorf(f"range can't iterate over {Printer().arg(val, 'v')}")
            except _Break:
                return
            if node.else_list is not None:
                self.walk(dot, node.else_list)
        finally:
            del self.vars[mark:]
            self.dot_iface = saved

    # -- expressions ------------------------------------------------------------------------------------------
    def eval_pipeline(self, dot: Any, pipe: PipeNode) -> Any:
        self.at(pipe)
        value = _NO_FINAL
        for cmd in pipe.cmds:
            value = self.eval_command(dot, cmd, value)
            if value is None:  # a nil interface{} result digs down to the invalid value
                value = MISSING
        for var in pipe.decl:
            if pipe.is_assign:
                self.set_var(var.ident[0], value)
            else:
                self.vars.append([var.ident[0], value, False])
        return value

    def not_a_function(self, args: list[Node], final: Any) -> None:
        if len(args) > 1 or final is not _NO_FINAL:
            self.errorf(f"can't give argument to non-function {args[0]}")

    def eval_command(self, dot: Any, cmd: CommandNode, final: Any) -> Any:
        first = cmd.args[0]
        self.step()
        if isinstance(first, FieldNode):
            return self.eval_field_node(dot, first, cmd.args, final)
        if isinstance(first, ChainNode):
            return self.eval_chain_node(dot, first, cmd.args, final)
        if isinstance(first, IdentifierNode):
            return self.eval_function(dot, first, cmd, cmd.args, final)
        if isinstance(first, PipeNode):
            self.not_a_function(cmd.args, final)
            return self.eval_pipeline(dot, first)
        if isinstance(first, VariableNode):
            return self.eval_variable_node(dot, first, cmd.args, final)
        self.at(first)
        self.not_a_function(cmd.args, final)
        if isinstance(first, BoolNode):
            return first.value
        if isinstance(first, DotNode):
            return dot
        if isinstance(first, NilNode):
            self.errorf("nil is not a command")
        if isinstance(first, NumberNode):
            return self.ideal_constant(first)
        if isinstance(first, StringNode):
            return first.text
        self.errorf(f"can't evaluate command {first}")

    def ideal_constant(self, node: NumberNode) -> Any:
        self.at(node)
        text = node.text
        is_hex_int = len(text) > 2 and text[0] == "0" and text[1] in "xX" and not any(c in text for c in "pP")
        if node.float_value is not None and not node.is_rune and not is_hex_int \
                and any(c in text for c in ".eEpP"):
            return node.float_value
        if node.int_value is not None:
            return node.int_value
        self.errorf(f"{text} overflows int")

    def eval_field_node(self, dot: Any, field: FieldNode, args: list[Node] | None, final: Any) -> Any:
        self.at(field)
        return self.eval_field_chain(dot, field.ident, args, final, self.dot_iface)

    def eval_chain_node(self, dot: Any, chain: ChainNode, args: list[Node] | None, final: Any) -> Any:
        self.at(chain)
        if isinstance(chain.node, NilNode):
            self.errorf(f"indirection through explicit nil in {chain}")
        base = self.eval_arg(dot, None, chain.node)
        return self.eval_field_chain(base, chain.fields, args, final, False)

    def eval_variable_node(self, dot: Any, var: VariableNode, args: list[Node] | None, final: Any) -> Any:
        self.at(var)
        _, value, iface = self.var_entry(var.ident[0])
        if len(var.ident) == 1:
            self.not_a_function(args or [var], final)
            return value
        return self.eval_field_chain(value, var.ident[1:], args, final, iface)

    def eval_field_chain(self, receiver: Any, ident: list[str], args: list[Node] | None, final: Any,
                         iface: bool) -> Any:
        for name in ident[:-1]:
            receiver, iface = self.eval_field(name, None, _NO_FINAL, receiver, iface)
        return self.eval_field(ident[-1], args, final, receiver, iface)[0]

    def eval_field(self, name: str, args: list[Node] | None, final: Any, receiver: Any,
                   iface: bool) -> tuple[Any, bool]:
        """A map lookup (the only field access there is); returns the value and whether it is an interface{}."""
        if receiver is MISSING:
            return MISSING, False
        if receiver is None:
            self.errorf(f"nil pointer evaluating interface {{}}.{name}")
        if isinstance(receiver, dict):
            if (args is not None and len(args) > 1) or final is not _NO_FINAL:
                self.errorf(f"{name} is not a method but has arguments")
            return receiver.get(name, MISSING), not isinstance(receiver, StrMap)
        if isinstance(receiver, datetime):
            self.errorf(f"can't evaluate field {name} in type time.Time (methods of time.Time are not supported;"
                        " use sprig's date functions)")
        self.errorf(f"can't evaluate field {name} in type {'interface {}' if iface else type_name(receiver)}")

    def eval_function(self, dot: Any, node: IdentifierNode, cmd: Node, args: list[Node] | None,
                      final: Any) -> Any:
        self.at(node)
        return self.eval_call(dot, self.funcs[node.name], node.name, cmd, args, final)

    def eval_call(self, dot: Any, fn: Func, name: str, node: Node, args: list[Node] | None, final: Any) -> Any:
        argn = args[1:] if args is not None else []
        num_in = len(argn) + (final is not _NO_FINAL)
        num_fixed = len(argn)
        if fn.variadic is not None:
            num_fixed = len(fn.params)
            if num_in < num_fixed:
                self.errorf(f"wrong number of args for {name}: want at least {num_fixed} got {len(argn)}")
        elif num_in != len(fn.params):
            self.errorf(f"wrong number of args for {name}: want {len(fn.params)} got {num_in}")
        if name in ("and", "or"):
            v: Any = MISSING
            for arg in argn:
                v = self.eval_arg(dot, VALUE, arg)
                if is_true(v) == (name == "or"):
                    return v
            if final is not _NO_FINAL:
                v = self.validate_type(final, VALUE)
            return v
        argv: list[Any] = []
        for i, arg in enumerate(argn):
            typ = fn.params[i] if i < num_fixed else fn.variadic
            argv.append(self.eval_arg(dot, typ, arg))
        if final is not _NO_FINAL:
            if fn.variadic is not None and num_in - 1 >= num_fixed:
                typ = fn.variadic
            else:
                typ = fn.params[num_in - 1]
            argv.append(self.validate_type(final, typ))
        self.step()
        try:
            result = fn.impl(self, *argv)
        except FuncError as exc:
            self.at(node)
            self.errorf(f"error calling {name}: {exc}")
        except RecursionError:
            self.at(node)
            self.errorf(f"error calling {name}: value nested too deeply", TemplateLimitError)
        if isinstance(result, (str, list, dict)) and len(result) > self.max_value:
            self.at(node)
            self.errorf(f"error calling {name}: result exceeds the template value limit of {self.max_value}",
                        TemplateLimitError)
        return result

    def validate_type(self, value: Any, typ: str | None) -> Any:
        if value is MISSING:
            if typ is None or typ == VALUE:
                return MISSING
            if can_be_nil(typ):
                return None
            self.errorf(f"invalid value; expected {typ}")
        if typ is None or typ in (ANY, VALUE):
            return value
        if value is None:
            self.errorf(f"wrong type for value; expected {typ}; got interface {{}}")
        if not assignable(value, typ):
            self.errorf(f"wrong type for value; expected {typ}; got {type_name(value)}")
        return value

    def eval_arg(self, dot: Any, typ: str | None, node: Node) -> Any:
        self.at(node)
        if isinstance(node, DotNode):
            return self.validate_type(dot, typ)
        if isinstance(node, NilNode):
            if typ is not None and can_be_nil(typ):
                return MISSING if typ == VALUE else None
            self.errorf(f"cannot assign nil to {typ}")
        if isinstance(node, FieldNode):
            return self.validate_type(self.eval_field_node(dot, node, [node], _NO_FINAL), typ)
        if isinstance(node, VariableNode):
            return self.validate_type(self.eval_variable_node(dot, node, None, _NO_FINAL), typ)
        if isinstance(node, PipeNode):
            return self.validate_type(self.eval_pipeline(dot, node), typ)
        if isinstance(node, IdentifierNode):
            return self.validate_type(self.eval_function(dot, node, node, None, _NO_FINAL), typ)
        if isinstance(node, ChainNode):
            return self.validate_type(self.eval_chain_node(dot, node, None, _NO_FINAL), typ)
        if typ == BOOL:
            if isinstance(node, BoolNode):
                return node.value
            self.errorf(f"expected bool; found {node}")
        if typ == FLOAT:
            if isinstance(node, NumberNode) and node.float_value is not None:
                return node.float_value
            self.errorf(f"expected float; found {node}")
        if typ == INT:
            if isinstance(node, NumberNode) and node.int_value is not None:
                return node.int_value
            self.errorf(f"expected integer; found {node}")
        if typ == STRING:
            if isinstance(node, StringNode):
                return node.text
            self.errorf(f"expected string; found {node}")
        if typ in (ANY, VALUE):
            if isinstance(node, BoolNode):
                return node.value
            if isinstance(node, NumberNode):
                return self.ideal_constant(node)
            if isinstance(node, StringNode):
                return node.text
        self.errorf(f"can't handle {node} for arg of type {typ}")


def execute(root: ListNode, text: str, name: str, funcs: dict[str, Func], data: Any, limits: Limits,
            clock: Callable[[], datetime], regex: Callable[[str], GoRegexp]) -> str:
    """Run a parsed template over JSON-like data (numbers become float64 first)."""
    state = State(text, name, funcs, limits, clock, regex)
    value = from_json_value(data)
    if value is None:
        value = MISSING
    state.vars = [["$", value, False]]
    try:
        state.walk(value, root)
    except RecursionError:
        raise TemplateLimitError(f"template: {name}: value or template nested too deeply") from None
    return finish_output("".join(state.out))

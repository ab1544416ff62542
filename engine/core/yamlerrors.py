"""PyYAML's and libyaml's syntax errors in plain words: one sentence per problem, naming the lines involved.

The scanner and parser say what token they expected ("expected <block end>, but found '?'", "did not find expected
key"); a user wants to know what is wrong with the line. `explain(exc, text)` maps the common messages of both
parsers (pure-Python PyYAML and libyaml word them differently) to a sentence; anything else keeps the parser's
words, with the line where its construct started. The line the message belongs to is the caller's
(`problem_mark`).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import yaml

_TOKEN = re.compile(r"found character '(.+)' that cannot start any token")


@dataclass(frozen=True)
class _Where:
    """What a rule needs to phrase its sentence."""

    problem: str
    context: str
    line: int             # 1-based line of the problem
    column: int           # 0-based column of the problem
    started: int | None   # 1-based line where the construct being read started, if another line
    started_column: int | None
    text: str

    def char(self) -> str:
        lines = self.text.splitlines()
        if 0 < self.line <= len(lines) and self.column < len(lines[self.line - 1]):
            return lines[self.line - 1][self.column]
        found = _TOKEN.search(self.problem)
        return found.group(1).encode().decode("unicode_escape") if found else ""

    def indent(self) -> int:
        lines = self.text.splitlines()
        if not 0 < self.line <= len(lines):
            return self.column
        raw = lines[self.line - 1]
        return len(raw) - len(raw.lstrip(" "))

    def since(self) -> str:
        return f" (started at line {self.started})" if self.started is not None else ""


def _levels(text: str, first: int, last: int) -> list[int]:
    """The indentations at which lines `first` to `last` (1-based, exclusive) hold keys or items."""
    levels: set[int] = set()
    for raw in text.splitlines()[first - 1:last - 1]:
        content = raw.lstrip(" ")
        if not content or content.startswith("#"):
            continue
        column = len(raw) - len(content)
        levels.add(column)
        while content.startswith("- ") or content == "-":  # `- key: value`: the key's column is a level too
            stripped = content[1:].lstrip(" ")
            column += len(content) - len(stripped)
            content = stripped
            if content:
                levels.add(column)
    return sorted(levels)


def _indentation(w: _Where, block: str, item: str) -> str:
    if w.started is None or w.started_column is None:
        return f"unexpected text after a complete value: quote the whole value, or start {item} on its own line"
    indent = w.indent()
    if indent < w.started_column:
        return (f"line {w.line} is indented less than the {block} it continues (started at line {w.started}): "
                f"indent it by {w.started_column} space{'s' if w.started_column != 1 else ''}")
    if indent > w.started_column:
        levels = _levels(w.text, w.started, w.line)
        below = [n for n in levels if n < indent]
        above = [n for n in levels if n > indent]
        where = (f"between the levels of the lines above it ({below[-1]} and {above[0]} spaces)" if below and above
                 else "deeper than the lines above it")
        return (f"line {w.line} is indented {indent} space{'s' if indent != 1 else ''}, {where}: align it with the "
                f"{block} started at line {w.started} or with a key above it")
    return f"line {w.line} does not continue the {block} started at line {w.started}: expected {item} here"


def _block_mapping(w: _Where) -> str:
    if w.char() == "-" and (w.started_column is None or w.indent() <= w.started_column):
        return (f"a list item ('- ') cannot stand beside the keys of the mapping started at line "
                f"{w.started or w.line}: put the list under its key, indented")
    return _indentation(w, "mapping", "a `key: value`")


def _block_sequence(w: _Where) -> str:
    return _indentation(w, "list", "an item starting with '- '")


def _cannot_start(w: _Where) -> str:
    char = w.char()
    if char == "\t":
        return "a tab character cannot indent YAML: use spaces"
    if char in "@`":
        return f"'{char}' is reserved in YAML and cannot start a value: quote the value"
    if char == "%":
        return "'%' cannot start a value (it starts a directive): quote the value"
    return f"{char!r} cannot start a value here: quote the value"


def _unclosed_quote(w: _Where) -> str:
    return f"the quoted string opened at line {w.started or w.line} is never closed: add the closing quote"


def _flow(close: str, kind: str) -> Callable[[_Where], str]:
    def explain(w: _Where) -> str:
        return (f"the {kind} opened with '{'[' if close == ']' else '{'}' at line {w.started or w.line} is not "
                f"closed with '{close}' where it should end, or two of its entries lack a ',' between them")
    return explain


def _mapping_value(w: _Where) -> str:
    return ("a ':' followed by a space cannot appear here: quote a value that contains ': ', or check that this "
            "line is not indented deeper than the key above it")


def _simple_key(w: _Where) -> str:
    return (f"line {w.started or w.line} is neither a `key: value` nor a list item (no ':' after it): add the ':', "
            f"or quote a text that spans several lines")


def _tab(w: _Where) -> str:
    return "a tab character cannot indent YAML: use spaces"


def _escape(w: _Where) -> str:
    return ("unknown escape sequence in a double-quoted string: write '\\\\' for a backslash, or use single quotes "
            "(in which a backslash is an ordinary character)")


def _name(w: _Where) -> str:
    sigil = "an anchor ('&')" if "anchor" in w.context else "an alias ('*')"
    return f"{sigil} needs a name made of letters, digits, '-' or '_' right after it"


# (pattern on the problem, pattern on the context or "", explanation): the first match wins.
_RULES: tuple[tuple[re.Pattern[str], re.Pattern[str] | None, Callable[[_Where], str]], ...] = (
    (re.compile(r"^mapping values are not allowed"), None, _mapping_value),
    (re.compile(r"cannot start any token"), None, _cannot_start),
    (re.compile(r"tab character that violates indentation|found a tab character"), None, _tab),
    (re.compile(r"^found unexpected end of stream"), re.compile(r"quoted scalar"), _unclosed_quote),
    (re.compile(r"expected ',' or '\]'"), None, _flow("]", "list")),
    (re.compile(r"expected ',' or '\}'"), None, _flow("}", "mapping")),
    (re.compile(r"could not find expected ':'"), re.compile(r"simple key"), _simple_key),
    (re.compile(r"^found unknown escape character"), None, _escape),
    (re.compile(r"alphabetic or numeric character"), re.compile(r"anchor|alias"), _name),
    (re.compile(r"did not find expected key|expected <block end>"), re.compile(r"block mapping"), _block_mapping),
    (re.compile(r"did not find expected '-' indicator|expected <block end>"), re.compile(r"block collection"),
     _block_sequence),
)


def explain(exc: yaml.MarkedYAMLError, text: str) -> str:
    """One plain sentence for a syntax error of `text`; the parser's own words when no rule knows it."""
    problem = " ".join(str(exc.problem or exc).split())
    context = exc.context or ""
    pm, cm = exc.problem_mark, exc.context_mark
    line = pm.line + 1 if pm else (cm.line + 1 if cm else 0)
    column = pm.column if pm else 0
    started = cm.line + 1 if cm and cm.line + 1 != line else None
    where = _Where(problem, context, line, column, started, cm.column if cm and started is not None else None,
                   text)
    for on_problem, on_context, rule in _RULES:
        if on_problem.search(problem) and (on_context is None or on_context.search(context)):
            return rule(where)
    if context and started is not None:
        return f"{problem} ({context.removeprefix('while ')} started at line {started})"
    return problem

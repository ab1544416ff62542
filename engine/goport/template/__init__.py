"""Go text/template with sprig functions, a documented subset, for Argo Events templates (Go library).

Used for the data filter `template` (data `{"Input": <gjson String() of the path>}`) and the trigger parameter
`dataTemplate`/`contextTemplate` (data `{"Input": <payload parsed to Go values>}`). Argo parses every template
with `template.New("param").Funcs(sprig.FuncMap())`, so messages name the template `param`.

API
    compile_template(text, *, name="param", limits=None, regex=None) -> GoTemplate
        raises TemplateParseError (a TemplateError, itself a ValueError) for what Go's parser rejects too:
        syntax errors, `function "foo" not defined`, `undefined variable "$x"`; and TemplateUnsupportedError
        for valid Go outside this subset ("unsupported template action 'define'", sprig functions not listed
        below). Argo fails over at run time on the first kind; Sensorium reports the second at load.
    GoTemplate.render(data, *, clock=None) -> str
        raises TemplateExecError with Go's messages (`template: param:1:3: executing "param" at <upper 1>:
        ...`), TemplateLimitError (a TemplateExecError) when the sandbox stops it.
    ArgoTemplate(text).execute(input_value) -> str
        Argo's semantics in one place: data `{"Input": input_value}`, a Go parse error raised on every
        execution (not at construction), output "" or "<no value>" raised as TemplateEmptyError.

Implementation: a hand-written lexer and recursive-descent parser ported from Go's text/template/parse (not a lark
grammar: the lexer is modal, trim markers and comments interact with the delimiters, and a port keeps Go's error
messages and positions), and an executor ported from text/template/exec.go over JSON-like data only.
Sandbox: no attribute or method access on Python objects (a field is a map key, nothing else), never eval;
Limits bound evaluation steps (100000), output and any built string or list (1 MiB each), and wall-clock time (2s).

Language (Go 1.23 text/template):
    text, `{{ }}` actions, trim markers `{{- ` / ` -}}`, comments `{{/* */}}`; fields `.Input.a.b` (map keys
    only), `.`, `$`, variables (`$x := p`, `$x = p`), pipelines `a | b c`, parenthesised pipelines and chains
    `(p).a`, literals (strings, raw strings, numbers incl. hex/octal/binary/underscores/runes, true, false,
    nil); `if / else if / else`, `with / else with / else`, `range` over lists, maps (sorted keys) and ints
    with `$v :=`, `$i, $v :=`, `else`, `break`, `continue`; variables scoped to their block.
    Not supported (load-time error): `define`, `template`, `block` (named templates), `call`, complex numbers.
Builtins: and or not len index eq ne lt le gt ge print printf println html js urlquery (`slice` is sprig's).
Sprig (v3.3): upper lower title untitle trim trimAll trimall trimPrefix trimSuffix nospace replace substr trunc
    abbrev repeat contains hasPrefix hasSuffix split splitList join quote squote cat indent nindent plural b64enc
    b64dec sha1sum sha256sum sha512sum toString uuidv4 hello atoi int int64 float64 add add1 sub mul div mod max
    biggest min floor ceil round default empty coalesce all any ternary fail toJson mustToJson toRawJson
    mustToRawJson toPrettyJson mustToPrettyJson fromJson mustFromJson now date dateInZone date_in_zone htmlDate
    unixEpoch list tuple first last rest initial reverse uniq compact append push prepend has without sortAlpha
    slice dict get set unset hasKey keys values pick omit pluck regexMatch regexFind regexFindAll regexReplaceAll
    regexReplaceAllLiteral regexSplit regexQuoteMeta and the must* regex variants. Every other sprig function is
    a load-time "unsupported function" error.

Values follow Go: JSON numbers are float64 (`{{ .Input.n }}` with 1234567 prints `1.234567e+06`, 12 prints `12`,
`eq .Input.n 1` is an error - write `1.0`); maps print `map[k:v]` with sorted keys, lists `[1 2]`, nil inside
them `<nil>`; a missing key (or null) printed at the top prints `<no value>`. Strings are byte strings.

Known differences from Go: methods of time.Time (`now.Unix`) are not callable; `time.Time` prints without the
monotonic `m=+...` suffix and Go's `Local` zone is UTC; `keys`/`values` are sorted (Go: random order);
regular expressions are RE2 (engine.goport.re2, Go's syntax and linear time; the `regex` argument
only replaces the compiler in tests); `printf` lacks the Go-syntax `%#v` of maps and lists;
`mustFromJson` error texts are Python's; nanoseconds beyond microseconds print as zeros.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Final

from sensorium.engine.goport.re2 import GoRegexp, compile_re2
from sensorium.engine.goport.template.builtins import BUILTINS, Func
from sensorium.engine.goport.template.exec import Limits, execute
from sensorium.engine.goport.template.nodes import ListNode
from sensorium.engine.goport.template.parse import parse
from sensorium.engine.goport.template.sprig import SPRIG, SPRIG_UNSUPPORTED
from sensorium.engine.goport.template.values import (
    TemplateError,
    TemplateExecError,
    TemplateLimitError,
    TemplateParseError,
    TemplateUnsupportedError,
)

__all__ = [
    "EMPTY_OUTPUTS",
    "ArgoTemplate",
    "GoTemplate",
    "Limits",
    "TemplateEmptyError",
    "TemplateError",
    "TemplateExecError",
    "TemplateLimitError",
    "TemplateParseError",
    "TemplateUnsupportedError",
    "compile_template",
]

FUNCS: Final[dict[str, Func]] = {**BUILTINS, **SPRIG}
"""Every function a template may call (sprig replaces Go's builtin `slice`, as Funcs() does in Go)."""

EMPTY_OUTPUTS: Final = ("", "<no value>")
"""Outputs Argo treats as a failed template (`template evaluated to empty string or no value`)."""


def _known_function(name: str) -> str | None:
    if name in FUNCS:
        return None
    if name == "call":
        return "unsupported builtin function \"call\" (template data holds no functions)"
    if name in SPRIG_UNSUPPORTED:
        return f"unsupported function \"{name}\" (a sprig function outside Sensorium's template subset)"
    return "undefined"


def _utc_now() -> datetime:
    return datetime.now(UTC)


class GoTemplate:
    """A parsed template; render() may be called any number of times (also concurrently)."""

    def __init__(self, text: str, name: str, root: ListNode, limits: Limits,
                 regex: Callable[[str], GoRegexp]) -> None:
        self.text, self.name, self.limits = text, name, limits
        self._root, self._regex = root, regex

    def __repr__(self) -> str:
        return f"GoTemplate({self.text!r})"

    def render(self, data: Any, *, clock: Callable[[], datetime] | None = None) -> str:
        """Execute over JSON-like data (dict/list/str/int/float/bool/None); ints are treated as float64."""
        return execute(self._root, self.text, self.name, FUNCS, data, self.limits, clock or _utc_now,
                       self._regex)


def compile_template(text: str, *, name: str = "param", limits: Limits | None = None,
                     regex: Callable[[str], GoRegexp] | None = None) -> GoTemplate:
    """Parse `text`; raises TemplateParseError (Go rejects it too) or TemplateUnsupportedError (outside the
    subset). `regex` compiles the patterns of the regex functions (it may raise ValueError with Go's text)."""
    try:
        root = parse(text, name, _known_function)
    except RecursionError:
        raise TemplateUnsupportedError(f"template: {name}: template nested too deeply") from None
    return GoTemplate(text, name, root, limits or Limits(), regex or compile_re2)


class TemplateEmptyError(TemplateExecError):
    """The template ran but printed "" or "<no value>", which Argo treats as a failure."""

    def __init__(self, text: str, output: str) -> None:
        self.text, self.output = text, output
        super().__init__(f"template evaluated to empty string or no value: {text}")


class ArgoTemplate:
    """A data filter `template` or a `dataTemplate`/`contextTemplate` as Argo Events runs it.

    Argo parses the template for every event, so a template Go cannot parse is not a load error there: it fails
    each execution (a filter error, or a parameter that falls back to its key or value). Constructing this
    raises only TemplateUnsupportedError (valid Go outside the subset - report it at load); a Go parse error is
    kept in `parse_error` and raised by every execute()."""

    def __init__(self, text: str, *, limits: Limits | None = None,
                 regex: Callable[[str], GoRegexp] | None = None) -> None:
        self.text = text
        self.template: GoTemplate | None = None
        self.parse_error: TemplateParseError | None = None
        try:
            self.template = compile_template(text, limits=limits, regex=regex)
        except TemplateParseError as exc:
            self.parse_error = exc

    def execute(self, input_value: Any, *, clock: Callable[[], datetime] | None = None) -> str:
        """Render with data `{"Input": input_value}`; raises TemplateError, TemplateEmptyError included."""
        if self.template is None:
            assert self.parse_error is not None
            raise self.parse_error
        out = self.template.render({"Input": input_value}, clock=clock)
        if out in EMPTY_OUTPUTS:
            raise TemplateEmptyError(self.text, out)
        return out

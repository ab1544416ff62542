"""Dependency filters (sensor stage): functions of (filter spec, event) returning verdicts.

Ports pkg/sensors/dependencies/filter.go decision for decision, including the odd ones (no data passes,
unparsable strings read as 0 by number filters, unanchored regexes, OR mode passing with errors); each odd
decision is named in the verdict's `reason` so the trace can explain it. Kinds run in Argo's order: exprs
(`engine.goport.govaluate`), data, context, time (`sensors.timefilter`), script (sandboxed Lua, `sensors.lua`).
`check_filters` finds at load what Argo would only find event by event (expressions and Lua that do not compile,
time filters its controller rejects). No I/O, except that script filters run Lua under a time limit.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import Any, Literal, TypeVar

import msgspec

from sensorium.engine.core.cloudevent import CloudEvent
from sensorium.engine.core.paths import PathExpr
from sensorium.engine.goport import strconv
from sensorium.engine.goport.deadline import DeadlineExceeded
from sensorium.engine.goport.deadline import check as check_deadline
from sensorium.engine.goport.gjson import (
    PathResult,
    go_parse_bool,
    go_parse_float,
    go_quote,
    parse_json,
)
from sensorium.engine.goport.govaluate import ExprError, ExprEvalError, compile_expr, evaluate, go_sprint, json_value
from sensorium.engine.goport.re2 import compile_re2
from sensorium.engine.goport.template import ArgoTemplate, TemplateEmptyError, TemplateError, TemplateUnsupportedError
from sensorium.sensors.lua import LuaScriptError, check_syntax, memory_limit, run_script
from sensorium.sensors.spec import ContextFilter, DataFilter, EventDependencyFilter, ExprFilter, TimeFilter
from sensorium.sensors.timefilter import TimeFilterError, check_time, validate_time_filter
from sensorium.sensors.transform import TransformError, decode_object

FilterKind = Literal["exprs", "data", "context", "time", "script", "filters"]


class FilterDetail(msgspec.Struct, frozen=True, gc=False):
    """One check: what was looked at, the value seen (gjson string rendering, None if missing), the wanted."""

    target: str
    seen: str | None
    wanted: tuple[str, ...]
    comparator: str
    type: str
    passed: bool
    reason: str


class FilterVerdict(msgspec.Struct, frozen=True):
    """Result of one filter kind (or of all of a dependency's filters, kind "filters", with `parts`)."""

    kind: FilterKind
    passed: bool
    error: str | None = None
    details: tuple[FilterDetail, ...] = ()
    reason: str = ""
    parts: tuple[FilterVerdict, ...] = ()

    def failures(self) -> tuple[FilterDetail, ...]:
        """The checks that did not pass, here and in `parts` (what a trace shows for a rejected event)."""
        return tuple(d for d in self.details if not d.passed) + tuple(
            d for part in self.parts for d in part.failures())


@lru_cache(maxsize=512)
def _template(text: str) -> ArgoTemplate:
    """A data filter template as Argo runs it (Go text/template + sprig, RE2 regexes); raises
    TemplateUnsupportedError for valid Go outside Sensorium's subset, keeps a Go parse error for each run."""
    return ArgoTemplate(text, regex=compile_re2)


def _apply_template(f: DataFilter, r: PathResult, or_mode: bool) -> tuple[PathResult | None, str | None]:
    """The data filter `template` (F:240-276): executed with {"Input": r.String()}; its output, as a gjson
    string, replaces the value; a parse or execution error, "" or "<no value>" is an error."""
    try:
        out = _template(f.template).execute(r.string())
    except TemplateEmptyError:
        if or_mode:
            return None, f"template evaluated to empty string or no value: '{f.template}'"
        return None, f"template '{f.template}' evaluated to empty string or no value"
    except TemplateError as exc:
        return None, str(exc)
    return PathResult(True, "String", go_quote(out), out), None


@lru_cache(maxsize=1024)
def _expr(path: str | None, json_path: str | None, jmes_path: str | None) -> PathExpr:
    return PathExpr.compile(path=path or None, json_path=json_path or None, jmes_path=jmes_path or None)


_Spec = TypeVar("_Spec")
_Value = TypeVar("_Value")


def once_per_spec(build: Callable[[_Spec], _Value]) -> Callable[[_Spec], _Value]:
    """`build(spec)` worked out once per spec object. Filter specs are immutable and live as long as their sensor,
    so they are keyed by identity (hashing a large spec by value would cost more than the work saved); an entry
    holds its spec, so the id is not reused while cached; past 4,096 specs (those of sensors reloaded away) the
    cache starts over. What `build` raises is raised again on the next call."""
    values: dict[int, tuple[_Spec, _Value]] = {}

    @functools.wraps(build)
    def cached(spec: _Spec) -> _Value:
        hit = values.get(id(spec))
        if hit is not None and hit[0] is spec:
            return hit[1]
        value = build(spec)
        if len(values) >= 4096:
            values.clear()
        values[id(spec)] = (spec, value)
        return value

    return cached


def context_filter(spec: ContextFilter | None, event: CloudEvent) -> FilterVerdict:
    """Exact equality on type, subject, source and datacontenttype when set (F:425-447), plus extensions."""
    if spec is None:
        return FilterVerdict("context", True)
    details: list[FilterDetail] = []
    passed = True
    for label, name, want, extension in _context_checks(spec):
        seen = event.extensions.get(name) if extension else getattr(event, name)
        equal = seen == want
        passed = passed and equal
        details.append(FilterDetail(label, seen, (want,), "=", "string", equal, "equal" if equal else "not equal"))
    return FilterVerdict("context", passed, details=tuple(details))


@once_per_spec
def _context_checks(spec: ContextFilter) -> tuple[tuple[str, str, str, bool], ...]:
    """(target, attribute or extension name, wanted value, is an extension) of every field `spec` sets, in
    context_filter's order (type, subject, source, datacontenttype, extensions); worked out once per spec."""
    fields = (("type", spec.type), ("subject", spec.subject), ("source", spec.source),
              ("datacontenttype", spec.datacontenttype))
    return tuple([(f"context.{name}", name, want, False) for name, want in fields if want != ""]
                 + [(f"context.extensions.{k}", k, v, True) for k, v in spec.extensions.items() if v != ""])


def _compare(op: str, event_value: float, wanted: float) -> bool:
    if op in ("", "="):
        return event_value == wanted
    return {"!=": event_value != wanted, "<": event_value < wanted, "<=": event_value <= wanted,
            ">": event_value > wanted, ">=": event_value >= wanted}.get(op, False)


def _match_one(f: DataFilter, r: PathResult) -> tuple[bool | None, str]:
    """Does the extracted value satisfy one of the filter's values? (None, error) when a value is invalid."""
    seen = r.string()
    if f.type == "bool":
        got = r.bool()
        note = ""
        if r.kind == "String" and go_parse_bool(seen.lower()) is None:
            note = f"; the string {seen!r} is not a Go bool, so it reads as false (Argo)"
        for value in f.value:
            want = go_parse_bool(value)
            if want is None:
                return None, f"strconv.ParseBool: parsing {go_quote(value)}: invalid syntax"
            if want == got:
                return True, f"reads as {str(got).lower()}, wanted {value!r}{note}"
        return False, f"reads as {str(got).lower()}, none of the values{note}"
    if f.type == "number":
        got_num = r.float()
        note = ""
        if r.kind == "String" and go_parse_float(seen)[1] is not None:
            note = f"; the string {seen!r} is not a number, so it reads as 0 (Argo)"
        elif r.kind not in ("Number", "String"):
            note = f"; a {r.kind} value reads as {strconv.format_float(got_num, 'f', -1)} (Argo)"
        op = f.comparator or "="
        for value in f.value:
            wanted, err = go_parse_float(value)
            if err is not None:
                return None, err
            if _compare(f.comparator, got_num, wanted):
                return True, f"{strconv.format_float(got_num, 'f', -1)} {op} {value}{note}"
        return False, f"{strconv.format_float(got_num, 'f', -1)} is not {op} any value{note}"
    if f.type == "string":
        for value in f.value:
            try:
                found = compile_re2(value).matches(seen)
            except ValueError as exc:
                return None, str(exc)
            if f.comparator in ("", "=") and found:
                return True, f"regex {value!r} found in {seen!r} (unanchored search)"
            if f.comparator == "!=" and not found:
                return True, f"regex {value!r} not found in {seen!r}"
        if f.comparator not in ("", "=", "!="):
            return False, f"comparator '{f.comparator}' never matches a string filter (Argo)"
        if f.comparator == "!=":
            return False, f"every regex was found in {seen!r}"
        return False, f"no regex was found in {seen!r} (unanchored search)"
    return None, f"unsupported JSON type '{f.type}'"


def data_filters(filters: Sequence[DataFilter] | None, operator: str, event: CloudEvent) -> FilterVerdict:
    """filterData (F:198-420): AND stops at the first failing filter; OR at the first passing one."""
    if not filters:
        return FilterVerdict("data", True)
    if event.data is None:
        return FilterVerdict("data", True, reason="the event has no data, so data filters pass (Argo)")
    try:
        doc = parse_json(event.data)
    except ValueError:
        return FilterVerdict("data", False, "data filter error (event data not valid JSON)")
    or_mode = operator == "or"
    errors: list[str] = []
    details: list[FilterDetail] = []
    for f in filters:
        check_deadline()
        expr = _expr(f.path, f.json_path, f.jmes_path)
        r = expr.get_value(doc)
        error: str | None = None
        passed, reason = False, ""
        if not r.exists:
            error = f"{expr.describe()} does not exist" + (f" ({r.error})" if r.error else "")
        elif not f.value:
            error = "no values specified"
        else:
            if f.template:
                templated, error = _apply_template(f, r, or_mode)
                if templated is not None:
                    r = templated
            if error is None:
                outcome, reason = _match_one(f, r)
                passed, error = outcome is True, reason if outcome is None else None
        details.append(FilterDetail(expr.describe(), r.string() if r.exists else None, tuple(f.value),
                                    f.comparator, f.type, passed, error or reason))
        if error is not None:
            if not or_mode:
                return FilterVerdict("data", False, f"data filter error ({error})", tuple(details))
            errors.append(error)
        elif passed and or_mode:
            note = "; errors of earlier filters are discarded (Argo)" if errors else ""
            return FilterVerdict("data", True, None, tuple(details), "a filter passed (or)" + note)
        elif not passed and not or_mode:
            return FilterVerdict("data", False, None, tuple(details), "a filter failed (and)")
    if or_mode:
        error = f"data filter errors [{' / '.join(errors)}]" if errors else None
        return FilterVerdict("data", False, error, tuple(details), "no filter passed (or)")
    return FilterVerdict("data", True, None, tuple(details), "every filter passed (and)")


# ---- expr filters ------------------------------------------------------------------------------------------

def _binding(value: Any) -> str:
    return go_quote(value) if isinstance(value, str) else go_sprint(value)


def expr_filters(filters: Sequence[ExprFilter] | None, operator: str, event: CloudEvent) -> FilterVerdict:
    """filterExpr (F:114-193): fields bound from the data, govaluate result must be the boolean true.
    AND returns at the first false expression or error; OR at the first true one, errors collected."""
    if filters is None:
        return FilterVerdict("exprs", True)
    if event.data is None:
        return FilterVerdict("exprs", True, reason="the event has no data, so expr filters pass (Argo)")
    try:
        doc = parse_json(event.data)
    except ValueError:
        return FilterVerdict("exprs", False, "expr filter error (event data not valid JSON)")
    or_mode = operator == "or"
    errors: list[str] = []
    details: list[FilterDetail] = []

    def detail(f: ExprFilter, seen: str | None, passed: bool, reason: str) -> None:
        details.append(FilterDetail(f"expr '{f.expr}'", seen, ("true",), "==", "expr", passed, reason))

    for f in filters:
        params: dict[str, Any] = {}
        missing: str | None = None
        for field in f.fields:
            check_deadline()
            path = _expr(field.path, field.json_path, field.jmes_path)
            r = path.get_value(doc)
            if not r.exists:
                missing = f"{path.describe()} does not exist" + (f" ({r.error})" if r.error else "")
                break
            params[field.name] = json_value(r.value)
        seen = ", ".join(f"{k}={_binding(v)}" for k, v in params.items()) or None
        if missing is not None:
            detail(f, seen, False, missing)
            if not or_mode:
                return FilterVerdict("exprs", False, f"expr filter error ({missing})", tuple(details))
            errors.append(missing)
            continue
        if not params:
            detail(f, None, True, "no field is bound, so the expression is skipped (Argo)")
            continue
        try:
            result = evaluate(f.expr, params)
        except (ExprError, ExprEvalError) as exc:
            detail(f, seen, False, str(exc))
            if not or_mode:
                return FilterVerdict("exprs", False, f"expr filter error ({exc})", tuple(details))
            errors.append(str(exc))
            continue
        passed = result is True
        shown = _binding(result)
        detail(f, seen, passed, f"evaluated to {shown}" if isinstance(result, bool) or result is None
               else f"evaluated to {shown}, which is not the boolean true")
        if passed and or_mode:
            return FilterVerdict("exprs", True, None, tuple(details), "an expression is true (or)")
        if not passed and not or_mode:
            return FilterVerdict("exprs", False, None, tuple(details), "an expression is not true (and)")
    if or_mode:
        error = f"expr filter errors [{' / '.join(errors)}]" if errors else None
        return FilterVerdict("exprs", False, error, tuple(details), "no expression is true (or)")
    return FilterVerdict("exprs", True, None, tuple(details), "every expression is true (and)")


# ---- time and script filters -------------------------------------------------------------------------------

def time_filter(spec: TimeFilter | None, event: CloudEvent) -> FilterVerdict:
    """filterTime (F:469-506): the event `time` in [start, stop), the window crossing midnight when stop < start."""
    if spec is None:
        return FilterVerdict("time", True)
    zone = f" ({spec.timezone})" if spec.timezone else " (UTC)"
    try:
        check = check_time(spec.start, spec.stop, spec.timezone, event.time)
    except TimeFilterError as exc:
        error = f"time filter error ({exc})"
        detail = FilterDetail("time", event.time or None, (spec.start, spec.stop), "in", "time" + zone, False,
                              str(exc))
        return FilterVerdict("time", False, error, (detail,))
    detail = FilterDetail("time", check.event, (check.start, check.stop), "in", "time" + zone, check.passed,
                          check.reason)
    return FilterVerdict("time", check.passed, None, (detail,), check.reason)


def script_filter(script: str, event: CloudEvent) -> FilterVerdict:
    """filterScript (F:508-541): the Lua chunk's last returned value must be exactly `true`; errors are fatal."""
    if not script:
        return FilterVerdict("script", True)
    if event.data is None:
        return FilterVerdict("script", True, reason="the event has no data, so the script filter passes (Argo)")
    try:
        data = decode_object(event.data)
        result = run_script(script, data, max_memory=memory_limit(len(event.data)))
    except (TransformError, LuaScriptError) as exc:
        detail = FilterDetail("script", None, ("true",), "==", "script", False, str(exc))
        return FilterVerdict("script", False, f"script filter error ({exc})", (detail,))
    seen = result.type_name if not result.returned else ("true" if result.is_true else result.type_name)
    if result.is_true:
        reason = "the script returned true"
    elif not result.returned:
        reason = "the script returned nothing, which is not true"
    else:
        reason = f"the script returned a {result.type_name} value that is not true"
    detail = FilterDetail("script", seen, ("true",), "==", "script", result.is_true, reason)
    return FilterVerdict("script", result.is_true, None, (detail,), reason)


# ---- combination ------------------------------------------------------------------------------------------

def combine_filters(operator: str, kinds: Sequence[tuple[bool, FilterVerdict]]) -> FilterVerdict:
    """filterEvent (F:57-109) over (kind is set, verdict) pairs given in Argo's order exprs, data, context,
    time, script. AND: an error fails at once; OR: only set kinds vote, errors are joined with " / " and
    returned with the vote, so (passed, error) is possible. Script errors are fatal in both modes.
    `parts` holds the verdicts of the kinds that are set."""
    parts = tuple(v for is_set, v in kinds if is_set)
    for _, verdict in kinds:
        if verdict.error is not None and (verdict.kind == "script" or operator != "or"):
            return FilterVerdict("filters", False, verdict.error, parts=parts, reason=f"{verdict.kind} error")
    if operator != "or":
        passed = all(v.passed for _, v in kinds)
        reason = "every filter kind passed (and)" if passed else "a filter kind failed (and)"
        return FilterVerdict("filters", passed, parts=parts, reason=reason)
    passed = any(is_set and v.passed for is_set, v in kinds)
    errors = [v.error for _, v in kinds if v.error is not None]
    if not any(is_set for is_set, _ in kinds):
        reason = "filtersLogicalOperator is or but no filter kind is set, so nothing can pass (Argo)"
    elif passed and errors:
        reason = "a filter kind passed (or); the errors are reported but the event passes (Argo)"
    else:
        reason = "a set filter kind passed (or)" if passed else "no set filter kind passed (or)"
    return FilterVerdict("filters", passed, " / ".join(errors) or None, parts=parts, reason=reason)


def unsupported(spec: EventDependencyFilter) -> list[tuple[str, str]]:
    """(field, message) for each filter feature this version cannot evaluate: templates using Go template
    features or sprig functions outside engine.goport.template's subset."""
    found: list[tuple[str, str]] = []
    for i, f in enumerate(spec.data or ()):
        if f.template:
            try:
                _template(f.template)
            except TemplateUnsupportedError as exc:
                found.append((f"data.{i}.template", str(exc)))
    return found


def check_filters(spec: EventDependencyFilter) -> list[tuple[str, str]]:
    """(field, message) for each filter that can be found broken at load: expressions, Lua scripts and data
    filter templates that do not compile, time filters Argo's controller rejects. Argo finds these event by
    event (every event fails the filter); Sensorium refuses the sensor."""
    found: list[tuple[str, str]] = []
    for i, f in enumerate(spec.exprs or ()):
        try:
            compile_expr(f.expr)
        except ExprError as exc:
            found.append((f"exprs.{i}.expr", f"expression {f.expr!r} does not compile: {exc}"))
    if spec.time is not None:
        try:
            validate_time_filter(spec.time.start, spec.time.stop, spec.time.timezone)
        except TimeFilterError as exc:
            found.append(("time", str(exc)))
    if spec.script:
        try:
            check_syntax(spec.script)
        except LuaScriptError as exc:
            found.append(("script", f"Lua script does not compile: {exc}"))
    for i, data in enumerate(spec.data or ()):
        if data.template:
            try:
                parse_error = _template(data.template).parse_error
            except TemplateUnsupportedError:
                continue  # reported by `unsupported`
            if parse_error is not None:
                found.append((f"data.{i}.template", f"template does not parse: {parse_error}"))
    return found


# Argo's Filter() (filter.go) returns `false, err` whenever filterEvent returned an error, so in Argo an OR-mode
# event that passed one kind but got an error from another is discarded; the listener's "passed but with
# filtering error" branch is unreachable. The semantics reference (sections 2.2, 7, 8) specifies the opposite
# (the event passes with the error), and Sensorium follows the reference. Set this to True to follow Filter().
DISCARD_ON_FILTER_ERROR = False


_Run = Callable[[EventDependencyFilter, CloudEvent], FilterVerdict]
_KINDS: tuple[tuple[FilterKind, Callable[[EventDependencyFilter], bool], _Run], ...] = (
    ("exprs", lambda s: s.exprs is not None, lambda s, e: expr_filters(s.exprs, s.expr_logical_operator, e)),
    ("data", lambda s: s.data is not None, lambda s, e: data_filters(s.data, s.data_logical_operator, e)),
    ("context", lambda s: s.context is not None, lambda s, e: context_filter(s.context, e)),
    ("time", lambda s: s.time is not None, lambda s, e: time_filter(s.time, e)),
    ("script", lambda s: bool(s.script), lambda s, e: script_filter(s.script, e)),
)
_NO_FILTERS = FilterVerdict("filters", True, reason="no filters")


@once_per_spec
def _plan(spec: EventDependencyFilter) -> tuple[tuple[FilterKind, _Run], ...]:
    """The kinds `spec` sets, in Argo's order, worked out once per spec (a kind that is not set passes with no
    error and no vote, so it is not run per event); ValueError for a feature `unsupported` names."""
    problems = unsupported(spec)
    if problems:
        raise ValueError("; ".join(f"filters.{field}: {message}" for field, message in problems))
    return tuple((kind, run) for kind, is_set, run in _KINDS if is_set(spec))


def evaluate_filters(spec: EventDependencyFilter | None, operator: str, event: CloudEvent) -> FilterVerdict:
    """All of a dependency's filters in Argo's order (exprs, data, context, time, script); AND mode stops at
    the first error, OR mode collects errors (a script error always stops). See DISCARD_ON_FILTER_ERROR."""
    if spec is None:
        return _NO_FILTERS
    or_mode = operator == "or"
    kinds: list[tuple[bool, FilterVerdict]] = []
    for kind, run in _plan(spec):
        try:
            check_deadline()
            verdict = run(spec, event)
        except DeadlineExceeded as exc:  # the event's time is up: this kind fails, and the dependency with it
            kinds.append((True, FilterVerdict(kind, False, str(exc), reason="the event exceeded its time limit")))
            return FilterVerdict("filters", False, str(exc), parts=tuple(v for _, v in kinds),
                                 reason=f"{kind} filters timed out")
        kinds.append((True, verdict))
        if verdict.error is not None and (not or_mode or verdict.kind == "script"):
            break
    combined = combine_filters(operator, kinds)
    if DISCARD_ON_FILTER_ERROR and combined.error is not None and combined.passed:
        return msgspec.structs.replace(
            combined, passed=False,
            reason="a filter kind passed (or), but Argo's Filter() discards any event whose filters reported "
                   "an error")
    return combined

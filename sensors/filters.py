"""Dependency filters (sensor stage): pure functions of (filter spec, event) returning verdicts, no I/O.

Ports pkg/sensors/dependencies/filter.go decision for decision, including the odd ones (no data passes,
unparsable strings read as 0 by number filters, unanchored regexes, OR mode passing with errors); each odd
decision is named in the verdict's `reason` so the trace can explain it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

from engine.cloudevent import CloudEvent
from engine.paths import (
    PathExpr,
    PathResult,
    format_float,
    go_parse_bool,
    go_parse_float,
    go_quote,
    parse_json,
)
from sensors.re2 import compile_re2
from sensors.spec import ContextFilter, DataFilter, EventDependencyFilter

FilterKind = Literal["exprs", "data", "context", "time", "script", "filters"]


@dataclass(frozen=True)
class FilterDetail:
    """One check: what was looked at, the value seen (gjson string rendering, None if missing), the wanted."""

    target: str
    seen: str | None
    wanted: tuple[str, ...]
    comparator: str
    type: str
    passed: bool
    reason: str


@dataclass(frozen=True)
class FilterVerdict:
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


@lru_cache(maxsize=1024)
def _expr(path: str | None, json_path: str | None, jmes_path: str | None) -> PathExpr:
    return PathExpr.compile(path=path or None, json_path=json_path or None, jmes_path=jmes_path or None)


def context_filter(spec: ContextFilter | None, event: CloudEvent) -> FilterVerdict:
    """Exact equality on type, subject, source and datacontenttype when set (F:425-447), plus extensions."""
    if spec is None:
        return FilterVerdict("context", True)
    checks: list[tuple[str, str, str | None]] = [
        ("type", spec.type, event.type), ("subject", spec.subject, event.subject),
        ("source", spec.source, event.source),
        ("datacontenttype", spec.datacontenttype, event.datacontenttype)]
    checks += [(f"extensions.{k}", v, event.extensions.get(k)) for k, v in spec.extensions.items()]
    details = tuple(
        FilterDetail(f"context.{name}", seen, (want,), "=", "string", seen == want,
                     "equal" if seen == want else "not equal")
        for name, want, seen in checks if want != "")
    return FilterVerdict("context", all(d.passed for d in details), details=details)


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
            note = f"; a {r.kind} value reads as {format_float(got_num)} (Argo)"
        op = f.comparator or "="
        for value in f.value:
            wanted, err = go_parse_float(value)
            if err is not None:
                return None, err
            if _compare(f.comparator, got_num, wanted):
                return True, f"{format_float(got_num)} {op} {value}{note}"
        return False, f"{format_float(got_num)} is not {op} any value{note}"
    if f.type == "string":
        for value in f.value:
            try:
                found = compile_re2(value).search(seen) is not None
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
        expr = _expr(f.path, f.json_path, f.jmes_path)
        r = expr.get_value(doc)
        error: str | None = None
        passed, reason = False, ""
        if not r.exists:
            error = f"{expr.describe()} does not exist" + (f" ({r.error})" if r.error else "")
        elif not f.value:
            error = "no values specified"
        elif f.template:
            error = "data filter templates are not supported yet"
        else:
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


def combine_filters(operator: str, kinds: Sequence[tuple[bool, FilterVerdict]]) -> FilterVerdict:
    """filterEvent (F:45-109) over (kind is set, verdict) pairs given in Argo's order exprs, data, context,
    time, script. AND: an error fails at once; OR: only set kinds vote, errors are joined and returned with
    the decision, so (passed, error) is possible. Script errors are fatal in both modes."""
    parts = tuple(v for _, v in kinds)
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
    """(field, message) for each filter feature this version cannot evaluate yet."""
    found: list[tuple[str, str]] = []
    if spec.exprs is not None:
        found.append(("exprs", "expression filters are not supported yet"))
    if spec.time is not None:
        found.append(("time", "time filters are not supported yet"))
    if spec.script:
        found.append(("script", "script filters are not supported yet"))
    for i, f in enumerate(spec.data or ()):
        if f.template:
            found.append((f"data.{i}.template", "data filter templates are not supported yet"))
    return found


def evaluate_filters(spec: EventDependencyFilter | None, operator: str, event: CloudEvent) -> FilterVerdict:
    """All of a dependency's filters; raises ValueError for kinds listed by `unsupported`."""
    if spec is None:
        return FilterVerdict("filters", True, reason="no filters")
    problems = unsupported(spec)
    if problems:
        raise ValueError("; ".join(f"filters.{field}: {message}" for field, message in problems))
    data = data_filters(spec.data, spec.data_logical_operator, event)
    if data.error is not None and operator != "or":
        return combine_filters(operator, [(spec.data is not None, data)])
    context = context_filter(spec.context, event)
    return combine_filters(operator, [(spec.data is not None, data), (spec.context is not None, context)])

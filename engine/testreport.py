"""`sensorium test CASES.yaml`, the second half: checking a case's dry run against its expectations, and the text,
JSON and JUnit XML reports. Loading cases files is `engine.testcases`."""

from __future__ import annotations

import difflib
import json
import re
import time
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from typing import Any

from sensorium.engine.core.secrets import Secrets
from sensorium.engine.dryrun import (
    DryRun,
    FiringResult,
    dry_run,
    render_text,
    request_json,
    to_json,
)
from sensorium.engine.testcases import (
    Case,
    CaseFile,
    CaseResult,
    Failure,
    RejectExpect,
    RequestExpect,
    SuiteResult,
)
from sensorium.engine.trace.records import FilterChecked

# ---- checking ---------------------------------------------------------------------------------------------------

def _pretty(value: Any) -> list[str]:
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=False).splitlines()


def unified(expected: Any, actual: Any) -> tuple[str, ...]:
    """A unified diff of the two values as pretty JSON (`-` expected, `+` actual)."""
    lines = difflib.unified_diff(_pretty(expected), _pretty(actual), "expected", "actual", lineterm="", n=2)
    return tuple(lines)


def _same(expected: Any, actual: Any) -> bool:
    """Equality where true is not 1 (YAML and JSON both tell them apart)."""
    if isinstance(expected, bool) or isinstance(actual, bool):
        return type(expected) is type(actual) and expected == actual
    if isinstance(expected, list) and isinstance(actual, list):
        return len(expected) == len(actual) and all(_same(e, a) for e, a in zip(expected, actual, strict=True))
    if isinstance(expected, dict) and isinstance(actual, dict):
        return expected.keys() == actual.keys() and all(_same(v, actual[k]) for k, v in expected.items())
    return bool(expected == actual)


def subset_differences(expected: Any, actual: Any, path: str) -> list[str]:
    """Where `actual` does not contain `expected`: mappings are matched as subsets (extra keys in `actual` are
    fine), lists and scalars must be equal. One line per difference, `path: expected X, got Y`."""
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return [f"{path}: expected a mapping, got {_show(actual)}"]
        out = []
        for key, value in expected.items():
            sub = f"{path}.{key}" if path else str(key)
            if key not in actual:
                out.append(f"{sub}: missing (expected {_show(value)})")
            else:
                out.extend(subset_differences(value, actual[key], sub))
        return out
    return [] if _same(expected, actual) else [f"{path}: expected {_show(expected)}, got {_show(actual)}"]


def _show(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 200 else text[:200] + "…"


def project(expected: Any, actual: Any) -> Any:
    """`actual` cut down to the keys `expected` names (recursively), so a diff shows only what was asked."""
    if isinstance(expected, dict) and isinstance(actual, dict):
        return {k: project(v, actual[k]) for k, v in expected.items() if k in actual}
    return actual


def _actual_request(firing: FiringResult, run: DryRun) -> dict[str, Any]:
    request = request_json(firing.request) or {}
    return {**request, "error": run.mask(firing.error)}


def _check_request(expect: RequestExpect, firings: list[FiringResult], run: DryRun, index: int) -> Failure | None:
    label = f"requests[{index}] (line {expect.line}): {expect.trigger} firing #{expect.nth + 1}"
    if expect.nth >= len(firings):
        return Failure(f"{label}: {expect.trigger} fired {len(firings)} time(s)")
    firing = firings[expect.nth]
    actual = _actual_request(firing, run)
    wanted = dict(expect.fields)
    problems: list[str] = []
    if firing.request is None and "error" not in wanted:
        problems.append(f"request: not built: {actual['error']}")
    if "error" in wanted:
        if actual["error"] is None or str(wanted["error"]) not in actual["error"]:
            problems.append(f"error: expected text containing {_show(wanted['error'])}, got {_show(actual['error'])}")
    if "method" in wanted and firing.request is not None and str(wanted["method"]).upper() != actual["method"]:
        problems.append(f"method: expected {_show(wanted['method'])}, got {_show(actual['method'])}")
        wanted["method"] = str(wanted["method"]).upper()
    if "url" in wanted and firing.request is not None and wanted["url"] != actual["url"]:
        problems.append(f"url: expected {_show(wanted['url'])}, got {_show(actual['url'])}")
    if "headers" in wanted and firing.request is not None:
        by_name = {k.lower(): (k, v) for k, v in actual["headers"].items()}
        shown: dict[str, Any] = {}
        for name, value in dict(wanted["headers"]).items():
            found = by_name.get(str(name).lower())
            if found is None:
                problems.append(f"headers.{name}: missing (expected {_show(value)})")
            else:
                shown[name] = found[1]
                if str(value) != found[1]:
                    problems.append(f"headers.{name}: expected {_show(value)}, got {_show(found[1])}")
        actual["headers"] = shown
    if "body" in wanted and firing.request is not None:
        problems.extend(subset_differences(wanted["body"], actual["body"], "body"))
    if not problems:
        return None
    if firing.request is None:
        actual = {"error": actual["error"]}
    else:
        actual = {k: project(wanted[k], actual[k]) if k != "headers" else actual[k] for k in wanted if k in actual}
    return Failure(f"{label}: " + "; ".join(problems), unified(wanted, actual))


def _target_names(target: str) -> set[str]:
    """What a `rejected_by` target may be written as: the check's whole target (`path 'body.status'`), the
    expression inside the quotes (`body.status`), or a context attribute without `context.` (`type`)."""
    names = {target}
    inner = re.fullmatch(r"\w+ '(.*)'", target, re.DOTALL)
    if inner:
        names.add(inner.group(1))
    if target.startswith("context."):
        names.add(target.removeprefix("context."))
    return names


def _describe_check(check: FilterChecked) -> str:
    seen = "nothing (missing)" if check.seen is None else _show(check.seen)
    verdict = "pass" if check.passed else "FAIL"
    target = f" {check.target}" if check.target else ""
    return f"{check.kind}{target}: saw {seen} -> {verdict}: {check.error or check.reason}"


def _check_rejected(expect: RejectExpect, run: DryRun) -> Failure | None:
    label = (f"rejected_by (line {expect.line}): event {expect.event}, dependency {expect.dependency}, "
             f"{expect.kind}{' ' + expect.target if expect.target else ''}")
    if expect.event > len(run.results):
        return Failure(f"{label}: the case has {len(run.results)} event(s)")
    result = run.results[expect.event - 1]
    verdicts = [d for d in result.dependencies if d.name == expect.dependency]
    if not verdicts:
        matched = ", ".join(d.name for d in result.dependencies) or "no dependency"
        return Failure(f"{label}: the event did not match this dependency (source {result.event.source!r}, "
                       f"subject {result.event.subject!r}; it matched {matched})")
    verdict = verdicts[0]
    checks = [c for c in run.checks[expect.event - 1] if c.dependency == expect.dependency]
    lines = tuple(run.mask(_describe_check(c)) or "" for c in checks)
    if verdict.passed:
        return Failure(f"{label}: the dependency passed its filters ({verdict.filters.reason})", lines)
    if expect.kind == "transform":
        if verdict.transform is not None and verdict.transform.event is None:
            return None
        return Failure(f"{label}: the transform did not drop the event", lines)
    for check in checks:
        if not check.passed and check.kind == expect.kind and (
                expect.target is None or expect.target in _target_names(check.target)):
            return None
    return Failure(f"{label}: no such check failed; the checks were:", lines)


def check_case(case: Case, run: DryRun) -> list[Failure]:
    """Every expectation of `case` against its dry run; an empty list when all hold."""
    failures: list[Failure] = []
    fired = [f.trigger for f in run.firings]
    expect = case.expect
    if expect.fires is not None and sorted(expect.fires) != sorted(fired):
        failures.append(Failure(f"fires: expected [{', '.join(sorted(expect.fires))}], fired "
                                f"[{', '.join(sorted(fired))}]",
                                unified(sorted(expect.fires), sorted(fired))))
    for name in expect.not_fires:
        causes = [f for f in run.firings if f.trigger == name]
        if causes:
            events = "; ".join(", ".join(f"{d}={e}" for d, e in f.events.items()) for f in causes)
            failures.append(Failure(f"not_fires: {name} fired {len(causes)} time(s) (with {events})"))
    by_trigger: dict[str, list[FiringResult]] = {}
    for firing in run.firings:
        by_trigger.setdefault(firing.trigger, []).append(firing)
    for i, req in enumerate(expect.requests):
        failure = _check_request(req, by_trigger.get(req.trigger, []), run, i)
        if failure is not None:
            failures.append(failure)
    for rej in expect.rejected_by:
        failure = _check_rejected(rej, run)
        if failure is not None:
            failures.append(failure)
    return failures


def run_cases(cases_file: CaseFile, secrets: Secrets | None = None) -> SuiteResult:
    """Every case, each on a fresh sensor state, in file order."""
    secrets = secrets if secrets is not None else Secrets(cases_file.secrets_dir)
    results = []
    for case in cases_file.cases:
        start = time.perf_counter()
        run = dry_run(cases_file.sensor, case.events, secrets)
        failures = check_case(case, run)
        results.append(CaseResult(case, run, failures, time.perf_counter() - start))
    return SuiteResult(cases_file, results)


# ---- output -----------------------------------------------------------------------------------------------------

def failure_text(failure: Failure, indent: str = "") -> str:
    return "\n".join([indent + failure.summary, *(indent + "  " + line for line in failure.diff)])


def render_suite_text(suite: SuiteResult, *, color: bool = False) -> str:
    """PASS/FAIL per case; under a failed case its diffs and its trace; a summary line."""
    green, red, reset = ("\033[32m", "\033[31m", "\033[0m") if color else ("", "", "")
    cf = suite.cases_file
    out = [f"{cf.file}: sensor {cf.sensor.metadata.name} ({cf.sensor_file})"]
    for result in suite.results:
        if result.passed:
            out.append(f"{green}PASS{reset}  {result.case.name}")
            continue
        out.append(f"{red}FAIL{reset}  {result.case.name}  ({cf.file}:{result.case.line})")
        out.extend(failure_text(f, "      ") for f in result.failures)
        out.append("      trace:")
        trace = render_text(result.run).rstrip("\n").splitlines()
        out.extend("        " + line if line else "" for line in trace)
    passed = len(suite.results) - suite.failed
    out.append(f"{len(suite.results)} case(s): {passed} passed, {suite.failed} failed")
    return "\n".join(out) + "\n"


def suite_json(suite: SuiteResult) -> dict[str, Any]:
    cf = suite.cases_file
    return {"file": cf.file, "sensor": cf.sensor.metadata.name, "passed": suite.failed == 0,
            "cases": [{"name": r.case.name, "line": r.case.line, "passed": r.passed,
                       "failures": [{"summary": f.summary, "diff": list(f.diff)} for f in r.failures],
                       "result": to_json(r.run)}
                      for r in suite.results]}


_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _xml_text(text: str) -> str:
    """`text` with the characters XML 1.0 cannot hold (control characters, lone surrogates) as `\\uXXXX`."""
    return _NOT_XML.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def junit_xml(suites: Sequence[SuiteResult]) -> bytes:
    """A JUnit XML report: one <testsuite> per cases file, one <testcase> per case, a <failure> per failed case
    whose message is the first failed expectation and whose text is every diff."""
    root = ET.Element("testsuites", name="sensorium test",
                      tests=str(sum(len(s.results) for s in suites)), failures=str(sum(s.failed for s in suites)),
                      errors="0", time=f"{sum(r.seconds for s in suites for r in s.results):.3f}")
    for suite in suites:
        cf = suite.cases_file
        element = ET.SubElement(root, "testsuite", name=_xml_text(cf.file), tests=str(len(suite.results)),
                                failures=str(suite.failed), errors="0", skipped="0",
                                time=f"{sum(r.seconds for r in suite.results):.3f}")
        for result in suite.results:
            case = ET.SubElement(element, "testcase", name=_xml_text(result.case.name),
                                 classname=_xml_text(f"{cf.file}:{cf.sensor.metadata.name}"),
                                 file=_xml_text(cf.file), line=str(result.case.line),
                                 time=f"{result.seconds:.3f}")
            if result.failures:
                failure = ET.SubElement(case, "failure", type="ExpectationFailed",
                                        message=_xml_text(result.failures[0].summary))
                failure.text = _xml_text("\n\n".join(failure_text(f) for f in result.failures) + "\n")
    ET.indent(root)
    text: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return text + b"\n"

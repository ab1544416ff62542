"""Issue 11 "Done when": `^(a+)+$` on 100,000 `a`s and a `!` decides in milliseconds through a data filter, an
expression and a data filter template (RE2 is linear; Python's `re` took more than 30 s on 36 `a`s)."""

from __future__ import annotations

import time
from typing import Any

import pytest

from sensorium.sensors.filters import evaluate_filters
from tests.sensors.builders import event, filters

SUBJECT = "a" * 100_000 + "!"


@pytest.mark.parametrize("spec", [
    {"data": [{"path": "body.s", "type": "string", "value": ["^(a+)+$"]}]},
    {"exprs": [{"expr": "s =~ '^(a+)+$'", "fields": [{"name": "s", "path": "body.s"}]}]},
    {"exprs": [{"expr": "s =~ p", "fields": [{"name": "s", "path": "body.s"}, {"name": "p", "path": "body.p"}]}]},
    {"data": [{"path": "body.s", "type": "string", "value": ["true"],
               "template": '{{ regexMatch "^(a+)+$" .Input }}'}]},
], ids=["data-filter", "expr-constant", "expr-from-event", "template"])
def test_backtracking_bomb_is_decided_in_milliseconds(spec: dict[str, Any]) -> None:
    e = event({"body": {"s": SUBJECT, "p": "^(a+)+$"}})
    started = time.perf_counter()
    verdict = evaluate_filters(filters(spec), "", e)
    elapsed = time.perf_counter() - started
    assert (verdict.passed, verdict.error) == (False, None)
    assert elapsed < 0.1, f"took {elapsed:.3f}s"

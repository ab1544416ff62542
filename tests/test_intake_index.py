"""The shared intake's dispatch index only narrows: every dependency whose filters pass an event is selected for
it (checked against the real filters over a grid of dependencies and events), and exact conditions select only
the sensors that want the event's value."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from sensorium.engine.intake_index import NARROW_FROM, DispatchIndex, literal_pattern, need_of
from sensorium.sensors.filters import evaluate_filters
from sensorium.sensors.spec import EventDependency
from tests.sensors.builders import event


def narrowing(sensors: dict[str, list[EventDependency]]) -> DispatchIndex:
    """An index that narrows from the first sensor on (the engine's narrows only from NARROW_FROM sensors)."""
    return DispatchIndex(sensors, narrow_from=1)


def test_a_few_listeners_all_get_the_event_so_each_traces_why() -> None:
    few = {f"s{i}": [dependency({"data": [string_filter(f"^c{i}$")]})] for i in range(NARROW_FROM - 1)}
    assert DispatchIndex(few).select(event({"body": {"customer": "c0"}})) == set(few)
    many = {**few, "last": [dependency({"data": [string_filter("^z$")]})]}
    assert DispatchIndex(many).select(event({"body": {"customer": "c0"}})) == {"s0"}


def dependency(filters: dict[str, Any] | None = None, **extra: Any) -> EventDependency:
    doc: dict[str, Any] = {"name": "d", "eventSourceName": "webhook", "eventName": "example", **extra}
    if filters is not None:
        doc["filters"] = filters
    return EventDependency.model_validate(doc)


def string_filter(*values: str, path: str = "body.customer", **extra: Any) -> dict[str, Any]:
    return {"path": path, "type": "string", "value": list(values), **extra}


@pytest.mark.parametrize(("pattern", "expected"), [
    ("acme", ("contains", "acme")), ("^acme$", ("exact", "acme")), ("^acme", ("prefix", "acme")),
    ("acme$", ("suffix", "acme")), (r"^a\.b$", ("exact", "a.b")), ("^$", ("exact", "")),
    ("a.b", None), ("a|b", None), (r"\d+", None), ("(?i)acme", None), ("", None), ("^", None),
    (r"acme\$", ("contains", "acme$")), ("[a]", None), ("a*", None), ("\\", None),
])
def test_literal_patterns(pattern: str, expected: tuple[str, str] | None) -> None:
    assert literal_pattern(pattern) == expected


DEPENDENCIES = {
    "exact": dependency({"data": [string_filter("^c-17$")]}),
    "exact-two": dependency({"data": [string_filter("^c-17$", "^c-18$")]}),
    "contains": dependency({"data": [string_filter("17")]}),
    "prefix": dependency({"data": [string_filter("^c-1")]}),
    "suffix": dependency({"data": [string_filter("8$")]}),
    "regex": dependency({"data": [string_filter("c-1[78]")]}),
    "not-equal": dependency({"data": [string_filter("^c-17$", comparator="!=")]}),
    "or-filters": dependency({"data": [string_filter("^c-17$")], "context": {"type": "order"}},
                             filtersLogicalOperator="or"),
    "or-data": dependency({"data": [string_filter("^c-17$"), string_filter("^x$", path="body.other")],
                           "dataLogicalOperator": "or"}),
    "or-data-one": dependency({"data": [string_filter("^c-18$")], "dataLogicalOperator": "or"}),
    "and-data": dependency({"data": [{"path": "body.n", "type": "number", "value": ["1"]},
                                     string_filter("^c-18$")]}),
    "templated": dependency({"data": [string_filter("^C-17$", template="{{ upper .Input }}")]}),
    "transformed": dependency({"data": [string_filter("^c-17$")]}, transform={"jq": ".body.customer = \"c-17\""}),
    "context-type": dependency({"context": {"type": "order"}}),
    "context-ext": dependency({"context": {"extensions": {"tenant": "t1"}}}),
    "context-and-data": dependency({"context": {"type": "order"}, "data": [string_filter("^c-18$")]}),
    "jsonpath": dependency({"data": [{"jsonPath": "$.body.customer", "type": "string", "value": ["^c-17$"]}]}),
    "no-filters": dependency(),
    "other-key": dependency({"data": [string_filter("^c-17$")]}, eventName="other"),
}

EVENTS = [
    event({"body": {"customer": "c-17", "n": 1}}, type="order"),
    event({"body": {"customer": "c-18", "n": 1}}, type="order", extensions={"tenant": "t1"}),
    event({"body": {"customer": "xc-17y", "n": 2}}, type="refund"),
    event({"body": {"customer": 17}}),
    event({"body": {"customer": {"id": "c-17"}}}),
    event({"body": {"other": "x"}}, type="order"),
    event({"body": {"customer": None}}),
    event(),  # no data: data filters pass
    event(raw=b"not json"),
    event({"body": {"customer": "c-17"}}, subject="other"),
]


@pytest.mark.parametrize("index", range(len(EVENTS)))
def test_every_dependency_that_passes_an_event_is_selected(index: int) -> None:
    ev = EVENTS[index]
    selected = narrowing({name: [dep] for name, dep in DEPENDENCIES.items()}).select(ev)
    for name, dep in DEPENDENCIES.items():
        if (dep.event_source_name, dep.event_name) != (ev.source, ev.subject):
            assert name not in selected
            continue
        if dep.transform is None and evaluate_filters(dep.filters, dep.filters_logical_operator, ev).passed:
            assert name in selected, f"{name} passes {ev} but was not selected"
        if name in ("no-filters", "or-filters", "or-data", "regex", "not-equal", "templated", "transformed",
                    "jsonpath"):
            assert name in selected, f"{name} has no indexed condition and must see every event of its key"


def test_exact_values_select_only_the_sensors_that_want_them() -> None:
    deps = {f"s{i}": [dependency({"data": [string_filter(f"^c-{i}$")]})] for i in range(1000)}
    index = narrowing(deps)
    assert index.select(event({"body": {"customer": "c-17"}})) == {"s17"}
    assert index.select(event({"body": {"customer": "c-1000"}})) == set()
    assert index.select(event({"body": {"other": "c-17"}})) == set()  # missing path: every filter fails
    assert index.select(event()) == set(deps)  # no data: data filters pass (Argo)


def test_substring_prefix_and_suffix_literals() -> None:
    deps = {f"s{i}": [dependency({"data": [string_filter(f"id{i}")]})] for i in range(100)}
    deps["p"] = [dependency({"data": [string_filter("^eu-")]})]
    deps["q"] = [dependency({"data": [string_filter("-prod$")]})]
    index = narrowing(deps)
    assert index.select(event({"body": {"customer": "eu-id42-prod"}})) == {"s4", "s42", "p", "q"}
    assert index.select(event({"body": {"customer": "us-id7-dev"}})) == {"s7"}


def test_context_conditions() -> None:
    index = narrowing({"orders": [dependency({"context": {"type": "order"}})],
                           "t1": [dependency({"context": {"extensions": {"tenant": "t1"}}})]})
    assert index.select(event(type="order")) == {"orders"}
    assert index.select(event(type="refund", extensions={"tenant": "t1"})) == {"t1"}
    assert index.select(event(type="refund")) == set()


def test_needs() -> None:
    assert need_of(DEPENDENCIES["no-filters"]) is None
    assert need_of(DEPENDENCIES["or-filters"]) is None
    assert need_of(DEPENDENCIES["transformed"]) is None
    need = need_of(DEPENDENCIES["context-and-data"])
    assert need is not None and (need.kind, need.name) == ("data", "body.customer")  # an exact data value first
    need = need_of(DEPENDENCIES["exact-two"])
    assert need is not None and need.values == (("exact", "c-17"), ("exact", "c-18"))


def test_listeners_by_key() -> None:
    index = narrowing({"a": [dependency(), dependency(name="e")], "b": [dependency()]})
    assert index.by_key == {"webhook.example": ["a", "b"]}
    assert list(itertools.chain(index.by_key.values())) == [["a", "b"]]

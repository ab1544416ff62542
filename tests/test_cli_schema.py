"""`sensorium schema`: a JSON Schema generated from the models, with a description on every property."""

from __future__ import annotations

import json
from typing import Any

import pytest

from sensorium.engine.cli import main
from sensorium.engine.config import is_test_cases
from sensorium.engine.schema import document_schema, undocumented


def test_every_property_has_a_description() -> None:
    for kind in (None, "Sensor", "EventSource", "EventBus"):
        assert undocumented(document_schema(kind)) == [], kind


def test_the_walk_finds_a_missing_description() -> None:
    schema: dict[str, Any] = {"$defs": {"X": {"properties": {"a": {"type": "string"},
                                                             "b": {"type": "string", "description": "B"}}}}}
    assert undocumented(schema) == ["#/$defs/X/properties/a"]


def test_cli_prints_one_schema_dispatching_on_kind(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["properties"]["kind"]["enum"] == ["Sensor", "EventSource", "EventBus"]
    assert [b["then"]["$ref"] for b in schema["allOf"]] == ["#/$defs/Sensor", "#/$defs/EventSource",
                                                            "#/$defs/EventBus"]
    sensor = schema["$defs"]["Sensor"]
    assert set(sensor["required"]) >= {"apiVersion", "kind", "metadata", "spec"}
    dep = schema["$defs"]["EventDependency"]["properties"]
    assert {"eventSourceName", "eventName", "filtersLogicalOperator"} <= set(dep)  # Argo's names, not Python's
    assert schema["$defs"]["EventDependency"]["additionalProperties"] is False


def test_cli_prints_one_kind(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema", "--kind", "EventBus"]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert schema["title"] == "EventBus"
    assert "jetstream" in schema["$defs"]["EventBusSpec"]["properties"]


def test_example_documents_validate_against_the_schema() -> None:
    from pathlib import Path

    import yaml

    jsonschema = pytest.importorskip("jsonschema")  # test extra; see pyproject
    validator = jsonschema.Draft202012Validator(document_schema())
    root = Path(__file__).resolve().parent.parent / "examples"
    from sensorium.engine import formats
    from sensorium.engine.config import substitute_env

    def read(path: Path) -> str:
        text = path.read_text()
        return substitute_env(text, str(path), {}, formats.raw_spans(text))

    # as the engine reads them: `${VAR:-default}` (the quickstart's ports) replaced first, here by its default;
    # other systems' documents (Weik.io's) are translated at load, so the Argo schema is not theirs
    docs = [doc for path in sorted(root.rglob("*.yaml")) if not is_test_cases(path)
            for doc in yaml.safe_load_all(read(path)) if doc and formats.claiming(doc) is None]
    assert len(docs) >= 5
    for doc in docs:
        assert [e.message for e in validator.iter_errors(doc)] == [], doc["metadata"]["name"]
    bad = {**docs[0], "kind": "Sensor", "spec": {"dependencies": [{"name": "d", "eventSourceName": "a",
                                                                   "eventNam": "typo"}], "triggers": []}}
    assert list(validator.iter_errors(bad))

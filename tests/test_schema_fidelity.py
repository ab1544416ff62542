"""The JSON Schema tells the truth: Argo's field names exactly, no running feature called unsupported, a `$id`,
`--out`, and Argo's own example sensors (supported trigger kinds or not) accepted with no false errors."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from sensorium.engine.cli import main
from sensorium.engine.registry import REGISTRY, TEMPLATE_KEYS
from sensorium.engine.schema import SCHEMA_ID, document_schema

ROOT = Path(__file__).resolve().parent
# a copy of the project's behavioural reference (shared/reference/argo-sensor-semantics.md), kept with the tests
# so a clone runs them on its own
REFERENCE = ROOT / "upstream" / "argo-sensor-semantics.md"
UPSTREAM = sorted((ROOT / "upstream" / "sensors").glob("*.y*ml")) + sorted(
    (ROOT / "upstream" / "unsupported").glob("*.y*ml"))
# what is described as not supported and is refused at load (or ignored): the trigger kinds the registry lacks,
# legacy NATS Streaming and EventSource filters
_REFUSED = {*(k for k in TEMPLATE_KEYS if k not in REGISTRY.triggers), "nats", "stan", "filter",
            "schemaRegistry", "config"}  # (Kafka's Avro and sarama YAML, refused at load)
_UNSUPPORTED = re.compile(r"not supported|unsupported|not yet", re.I)


def _properties(node: Any, where: str = "#") -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(pointer of the holder, property name, property schema) anywhere in `node`."""
    if isinstance(node, dict):
        for name, prop in (node.get("properties") or {}).items():
            if isinstance(prop, dict):
                yield where, name, prop
        for key, value in node.items():
            yield from _properties(value, f"{where}/{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _properties(value, f"{where}/{index}")


def _reference_keys() -> set[str]:
    """Every YAML key written in the reference's code blocks (Argo's JSON tags)."""
    blocks = re.findall(r"```yaml\n(.*?)```", REFERENCE.read_text(encoding="utf-8"), re.S)
    keys: set[str] = set()
    for block in blocks:
        keys.update(re.findall(r"(?:^|[{,\s])([a-zA-Z][A-Za-z0-9]*):(?=\s)", block, re.M))
    return keys


def test_field_names_are_argos_json_tags() -> None:
    reference = _reference_keys()
    assert {"eventSourceName", "k8s", "dataTemplate", "tls"} <= reference  # the reader finds them
    by_lower = {key.lower(): key for key in reference}
    names = {name for _, name, _ in _properties(document_schema())}
    wrong = sorted(f"{name} (Argo: {by_lower[name.lower()]})" for name in names
                   if name.lower() in by_lower and by_lower[name.lower()] != name)
    assert wrong == []
    assert "k8s" in document_schema()["$defs"]["TriggerTemplate"]["properties"]
    assert "k8s" in document_schema()["$defs"]["TriggerPolicy"]["properties"]


def test_no_running_feature_is_described_as_unsupported() -> None:
    described = {name for _, name, prop in _properties(document_schema())
                 if _UNSUPPORTED.search(str(prop.get("description", "")))}
    assert described and described <= _REFUSED, sorted(described - _REFUSED)
    for running in ("http", "log", "dataTemplate", "contextTemplate", "exprs", "template", "script", "jq",
                    "jsonPath", "conditionsReset", "dlqTrigger", "rateLimit"):
        assert running not in described


def test_the_schema_has_an_id_and_is_written_with_out(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "sensorium.schema.json"
    assert main(["schema", "--out", str(out)]) == 0
    assert capsys.readouterr().out == ""
    schema = json.loads(out.read_text(encoding="utf-8"))
    assert schema["$id"] == SCHEMA_ID and schema == document_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    assert main(["schema", "--kind", "Sensor"]) == 0
    assert json.loads(capsys.readouterr().out)["$id"] == f"{SCHEMA_ID}:Sensor"
    assert main(["schema", "--out", str(tmp_path / "missing" / "x.json")]) == 2
    assert "--out: cannot write" in capsys.readouterr().err


@pytest.mark.parametrize("path", UPSTREAM, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_argos_example_sensors_have_no_schema_errors(path: Path) -> None:
    validator = jsonschema.Draft202012Validator(document_schema())
    docs = [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc]
    assert docs
    for doc in docs:
        assert [f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(doc)] == []


def test_the_schema_still_flags_a_typo() -> None:
    validator = jsonschema.Draft202012Validator(document_schema())
    doc = yaml.safe_load((ROOT / "upstream" / "sensors" / "calendar.yaml").read_text(encoding="utf-8"))
    doc["spec"]["dependencies"][0]["eventNme"] = doc["spec"]["dependencies"][0].pop("eventName")
    assert any("eventNme" in e.message for e in validator.iter_errors(doc))

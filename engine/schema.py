"""`sensorium schema`: one JSON Schema for Sensor, EventSource and EventBus documents, generated from the
pydantic models (every field's description included), for editors' YAML language servers."""

from __future__ import annotations

from typing import Any

from pydantic.json_schema import models_json_schema

from engine.core.specbase import ArgoModel
from engine.documents import KINDS, EventBus, EventSource, Sensor

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
_MODELS: tuple[type[ArgoModel], ...] = (Sensor, EventSource, EventBus)


def _lax_integers(node: Any) -> Any:
    """Integers may also be written as digit strings (Argo files quote ports and counts; the models accept
    them): `{"type": "integer"}` becomes `{"type": ["integer", "string"], "pattern": ...}`."""
    if isinstance(node, dict):
        out = {key: _lax_integers(value) for key, value in node.items()}
        if out.get("type") == "integer":
            out["type"] = ["integer", "string"]
            out["pattern"] = "^[+-]?[0-9]+$"
        return out
    if isinstance(node, list):
        return [_lax_integers(value) for value in node]
    return node


def document_schema(kind: str | None = None) -> dict[str, Any]:
    """The schema of every document kind (dispatching on `kind`), or of one kind when `kind` is given."""
    if kind is not None:
        schema = _lax_integers(KINDS[kind].model_json_schema(by_alias=True))
        return {"$schema": SCHEMA_DIALECT, **schema}
    _, top = models_json_schema([(m, "validation") for m in _MODELS], by_alias=True)
    top = _lax_integers(top)
    names = [m.__name__ for m in _MODELS]
    return {
        "$schema": SCHEMA_DIALECT,
        "title": "Sensorium documents",
        "description": "An Argo Events Sensor, EventSource or EventBus document as Sensorium reads it.",
        "type": "object",
        "required": ["apiVersion", "kind"],
        "properties": {
            "apiVersion": {"const": "argoproj.io/v1alpha1", "description": "Always argoproj.io/v1alpha1."},
            "kind": {"enum": names, "description": "Which document this is: " + ", ".join(names) + "."},
        },
        "allOf": [{"if": {"properties": {"kind": {"const": name}}, "required": ["kind"]},
                   "then": {"$ref": f"#/$defs/{name}"}} for name in names],
        "$defs": top.get("$defs", {}),
    }


def undocumented(schema: dict[str, Any]) -> list[str]:
    """JSON pointers of properties without a description, anywhere in `schema` (empty: all documented)."""
    missing: list[str] = []

    def walk(node: Any, where: str) -> None:
        if isinstance(node, dict):
            for name, prop in (node.get("properties") or {}).items():
                if not isinstance(prop, dict) or not prop.get("description"):
                    missing.append(f"{where}/properties/{name}")
            for key, value in node.items():
                if key != "if":  # `if` holds matchers, not fields
                    walk(value, f"{where}/{key}")
        elif isinstance(node, list):
            for index, value in enumerate(node):
                walk(value, f"{where}/{index}")

    walk(schema, "#")
    return missing

"""`sensorium schema`: one JSON Schema for Sensor, EventSource and EventBus documents, generated from the
pydantic models (every field's description included), for editors' YAML language servers."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from sensorium.engine.core.specbase import ArgoModel
from sensorium.engine.documents import KINDS, EventBus, EventSource, Sensor
from sensorium.engine.registry import REGISTRY, Registry

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
SCHEMA_ID = "urn:sensorium:schema:argoproj.io:v1alpha1"
"""The schema's `$id` (a URN: a stable name, not a download location); one kind's schema appends `:KIND`."""
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


def _registered_kinds(schema: dict[str, Any], registry: Registry) -> dict[str, Any]:
    """`schema` with each registered trigger and source kind's spec model under its key: a kind whose template
    or EventSource field is untyped in the document models (a kind Argo has and Sensorium did not run) gets its
    model's schema there, from the registry."""
    defs: dict[str, Any] = schema.setdefault("$defs", {})
    targets: list[tuple[str, str, type[BaseModel], bool]] = (
        [("TriggerTemplate", k.name, k.spec, False) for k in registry.triggers.values()]
        + [("EventSourceSpec", k.name, k.spec, True) for k in registry.sources.values()])
    for owner, key, model, by_name in targets:
        holder = defs.get(owner)
        if holder is None:
            continue
        properties = holder.setdefault("properties", {})
        if "$ref" in str(properties.get(key, "")):
            continue  # typed already: the document models name this kind's spec
        sub = _lax_integers(model.model_json_schema(by_alias=True, ref_template="#/$defs/{model}"))
        defs.update(sub.pop("$defs", {}))
        defs[model.__name__] = sub
        ref: dict[str, Any] = {"$ref": f"#/$defs/{model.__name__}"}
        if by_name:  # spec.<kind>.<eventName>: one entry per event name
            ref = {"type": "object", "additionalProperties": ref}
        description = (sub.get("description") or f"{key} ({model.__name__}).").strip()
        properties[key] = {"anyOf": [ref, {"type": "null"}], "default": None, "description": description}
    return schema


def document_schema(kind: str | None = None, registry: Registry = REGISTRY) -> dict[str, Any]:
    """The schema of every document kind (dispatching on `kind`), or of one kind when `kind` is given; the
    registered kinds' spec models (`engine.registry`) are the schemas of their keys."""
    if kind is not None:
        schema = _lax_integers(KINDS[kind].model_json_schema(by_alias=True))
        return {"$schema": SCHEMA_DIALECT, "$id": f"{SCHEMA_ID}:{kind}", **_registered_kinds(schema, registry)}
    _, top = models_json_schema([(m, "validation") for m in _MODELS], by_alias=True)
    top = _registered_kinds(_lax_integers(top), registry)
    names = [m.__name__ for m in _MODELS]
    return {
        "$schema": SCHEMA_DIALECT,
        "$id": SCHEMA_ID,
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

"""A YAML document's data validated into a model, with every problem located at its file and line.

`Origin` says where a document came from; `validate_model` turns pydantic's errors into one
`FILE:LINE: field.path: message` ConfigError each, with "did you mean" for misspelt fields. `engine.config` loads
Argo documents with it, and each foreign format (`engine.formats`) validates its own documents with it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml
from pydantic import ValidationError

from sensorium.engine.core.errors import ConfigError
from sensorium.engine.core.yamlread import dotted_path
from sensorium.engine.suggest import closest, field_names

__all__ = ["ConfigErrors", "Origin", "validate_model", "validation_problems"]


@dataclass(frozen=True)
class Origin:
    """Where a document came from, to point errors at it."""

    file: str
    node: yaml.Node
    _keys: dict[int, dict[str, tuple[yaml.Node, yaml.Node]]] = field(default_factory=dict, compare=False,
                                                                      repr=False)

    @property
    def line(self) -> int:
        return self.node.start_mark.line + 1

    def locate(self, loc: Sequence[str | int]) -> tuple[int, str]:
        """Line of the deepest node that exists along `loc`, and the dotted field path."""
        node, line = self.node, self.line
        for part in loc:
            found = self._child(node, part)
            if found is None:
                break
            node, line = found[0], found[1].start_mark.line + 1
        return line, dotted_path(loc)

    def _child(self, node: yaml.Node, part: str | int) -> tuple[yaml.Node, yaml.Node] | None:
        """(child node, node whose line names it): the key for a mapping entry, the item for a list entry.
        Mapping keys are indexed once per node, so that locating every error of a big mapping stays linear."""
        if isinstance(node, yaml.MappingNode):
            keys = self._keys.get(id(node))
            if keys is None:
                keys = self._keys[id(node)] = {}
                for key, value in node.value:
                    if isinstance(key, yaml.ScalarNode):
                        keys.setdefault(key.value, (value, key))
            return keys.get(str(part))
        if isinstance(node, yaml.SequenceNode) and isinstance(part, int) and 0 <= part < len(node.value):
            return node.value[part], node.value[part]
        return None


def _message(err: Mapping[str, Any]) -> str:
    kind, msg = err.get("type", ""), str(err.get("msg", ""))
    if kind == "extra_forbidden":
        return "unknown field"
    if kind == "missing":
        return "required field is missing"
    if kind == "literal_error" and err.get("loc", ())[-1:] == ("kind",):
        return f"unknown kind {err.get('input')!r} (want Sensor, EventSource or EventBus)"
    for prefix in ("Value error, ", "Assertion failed, "):
        if msg.startswith(prefix):
            return msg[len(prefix):]
    return msg[:1].lower() + msg[1:]


def validate_model(model: type[Any], data: Any, origin: Origin) -> Any:
    """`data` as a `model` instance; raises ConfigErrors naming every problem at its line."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ConfigErrors(validation_problems(model, exc, origin)) from None


def validation_problems(model: type[Any], exc: ValidationError, origin: Origin,
                        prefix: Sequence[str | int] = ()) -> list[ConfigError]:
    """`exc` (from validating `model`) as one ConfigError per problem, each at its line: `prefix` is where the
    validated value sits in the document (a source entry's `spec.<kind>.<name>`)."""
    found = [([p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-"))], err)
             for err in exc.errors()]
    errors = []
    for loc, message in _with_suggestions(model, [(loc, err.get("type", ""), _message(err)) for loc, err in found]):
        line, path = origin.locate([*prefix, *loc])
        errors.append(ConfigError(message, origin.file, line, path))
    return errors


def _with_suggestions(model: type[Any], errors: list[tuple[list[Any], str, str]]) -> list[tuple[list[Any], str]]:
    """`unknown field; did you mean NAME?` for a misspelt field, and the `required field is missing` of NAME
    folded into it (`eventNme` is one mistake, not two)."""
    missing = {tuple(loc) for loc, kind, _ in errors if kind == "missing"}
    folded: set[tuple[Any, ...]] = set()
    out: list[tuple[list[Any], str]] = []
    for loc, kind, message in errors:
        if kind == "extra_forbidden" and loc and isinstance(loc[-1], str):
            parent = loc[:-1]
            known = field_names(model, parent)
            absent = [name for name in known if (*parent, name) in missing]
            guess = closest(loc[-1], absent) or closest(loc[-1], known)
            if guess is not None:
                folded.add((*parent, guess))
                message = f"unknown field; did you mean {guess}?"
        out.append((loc, message))
    return [(loc, message) for loc, message in out
            if tuple(loc) not in folded or message != "required field is missing"]


class ConfigErrors(ConfigError):
    """Several problems at once (validation reports all of them)."""

    def __init__(self, errors: Sequence[ConfigError]) -> None:
        self.errors = list(errors)
        first = self.errors[0]
        super().__init__(first.message, first.file, first.line, first.field)

    def render(self) -> str:
        return "\n".join(ConfigError.render(e) for e in getattr(self, "errors", [])) or super().render()

""""Did you mean": the closest known name to a misspelt one (field names, event names, dependency names).

A case-insensitive match wins (`Example` for `example`), then difflib's closest match. For an unknown field, the
names come from the pydantic model at that place in the document (its YAML aliases).
"""

from __future__ import annotations

import difflib
import types
from collections.abc import Iterable, Sequence
from typing import Any, Union, get_args, get_origin

from pydantic import BaseModel


def closest(name: str, known: Iterable[str]) -> str | None:
    """The known name `name` most likely means, or None."""
    candidates = [k for k in dict.fromkeys(known) if k != name]
    folded = [k for k in candidates if k.lower() == name.lower()]
    if folded:
        return folded[0]
    found = difflib.get_close_matches(name, candidates, n=1, cutoff=0.75)
    return found[0] if found else None


def _members(tp: Any) -> list[Any]:
    """The types a field annotation may hold (Optional and unions flattened)."""
    if get_origin(tp) in (Union, types.UnionType):
        return [m for arg in get_args(tp) for m in _members(arg)]
    return [tp]


def _step(tp: Any, part: str | int) -> list[Any]:
    out: list[Any] = []
    for member in _members(tp):
        origin = get_origin(member)
        if isinstance(member, type) and issubclass(member, BaseModel) and isinstance(part, str):
            for name, info in member.model_fields.items():
                if part in (name, info.alias):
                    out.extend(_members(info.annotation))
        elif origin in (list, tuple) and isinstance(part, int):
            out.extend(_members(get_args(member)[0]) if get_args(member) else [])
        elif origin is dict and isinstance(part, str):
            args = get_args(member)
            out.extend(_members(args[1]) if len(args) == 2 else [])
    return out


def field_names(model: type[BaseModel], parent: Sequence[str | int]) -> list[str]:
    """The YAML names of the fields of the model found at `parent` below `model` (empty: none found)."""
    current: list[Any] = [model]
    for part in parent:
        current = [t for tp in current for t in _step(tp, part)]
    return [info.alias or name for tp in current if isinstance(tp, type) and issubclass(tp, BaseModel)
            for name, info in tp.model_fields.items()]

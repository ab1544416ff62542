"""`sensorium convert`: the Argo documents a set of files means, as YAML (composition root).

Argo documents print as they were loaded; documents of another system's format (engine.formats) print as what they
were translated into, each preceded by a comment naming the file and line it came from. The output loads back
with `sensorium validate` to the same engine model.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from sensorium.engine.config import Config, Origin, load


def _document(doc: Any) -> dict[str, Any]:
    data: dict[str, Any] = doc.model_dump(mode="json", by_alias=True, exclude_unset=True)
    return data


def render(config: Config) -> str:
    """Every document of `config` (buses, then event sources, then sensors) as multi-document YAML."""
    parts: list[str] = []
    entries: list[tuple[Any, Origin]] = [*config.buses, *config.sources, *config.sensors]
    for doc, origin in entries:
        text = yaml.safe_dump(_document(doc), sort_keys=False, allow_unicode=True, width=120)
        parts.append(f"# from {origin.file}:{origin.line}\n{text}")
    return "---\n".join(parts)


def convert(paths: Iterable[str | Path]) -> str:
    """Load `paths` (raising ConfigErrors like `validate`) and render the Argo documents they mean."""
    return render(load(paths))

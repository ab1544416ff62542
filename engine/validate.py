"""`sensorium validate`: every problem in every document, without connecting to anything."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from sensorium.engine.assemble import check_document
from sensorium.engine.config import Config, ConfigErrors, iter_files, load
from sensorium.engine.core.errors import ConfigError


@dataclass
class Validation:
    files: list[Path] = field(default_factory=list)
    config: Config | None = None
    errors: list[ConfigError] = field(default_factory=list)

    def summary(self) -> str:
        config = self.config or Config()
        parts = []
        for label, docs in (("Sensor", config.sensors), ("EventSource", config.sources), ("EventBus", config.buses)):
            if docs:
                names = ", ".join(doc.metadata.name for doc, _ in docs)
                parts.append(f"{len(docs)} {label}{'s' if len(docs) != 1 else ''} ({names})")
        what = "; ".join(parts) or "no documents"
        return f"ok: {len(self.files)} file{'s' if len(self.files) != 1 else ''}, {what}"


def validate(paths: Sequence[str]) -> Validation:
    """Load every file under `paths` with the same checks as `sensorium run`; collects all problems."""
    result = Validation()
    existing: list[str] = []
    for raw in paths:
        if Path(raw).exists():
            existing.append(raw)
        else:
            result.errors.append(ConfigError("no such file or directory", raw, 0))
    result.files = iter_files(existing)
    if existing and not result.files:
        result.errors.append(ConfigError("no .yaml or .yml files found", existing[0], 0))
    try:
        result.config = load(result.files, checks=[check_document])
    except ConfigErrors as exc:
        result.errors.extend(exc.errors)
    except ConfigError as exc:
        result.errors.append(exc)
    if result.config is not None and not (result.config.sensors or result.config.sources or result.config.buses):
        if result.files and not result.errors:
            result.errors.append(ConfigError("no Sensor, EventSource or EventBus documents found",
                                             str(result.files[0]), 0))
    return result

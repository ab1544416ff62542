"""`sensorium validate`: every problem in every document, without connecting to anything."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from sensorium.engine.assemble import check_document
from sensorium.engine.config import Config, ConfigErrors, iter_files, load
from sensorium.engine.core.errors import ConfigError, ConfigWarning

FORMATS = ("text", "json", "github")


@dataclass
class Validation:
    files: list[Path] = field(default_factory=list)
    config: Config | None = None
    errors: list[ConfigError] = field(default_factory=list)
    warnings: list[ConfigError] = field(default_factory=list)  # ConfigWarnings: exit 0, printed marked

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
        result.warnings.extend(result.config.warnings)
    except ConfigErrors as exc:
        result.errors.extend(e for e in exc.errors if not isinstance(e, ConfigWarning))
        result.warnings.extend(e for e in exc.errors if isinstance(e, ConfigWarning))
    except ConfigError as exc:
        result.errors.append(exc)
    if result.config is not None and not (result.config.sensors or result.config.sources or result.config.buses):
        if result.files and not result.errors:
            result.errors.append(ConfigError("no Sensor, EventSource or EventBus documents found",
                                             str(result.files[0]), 0))
    return result


def problem_json(problem: ConfigError) -> dict[str, object]:
    """One problem as `{file, line, path, severity, message}` (`line` 0: the file as a whole)."""
    return {"file": problem.file, "line": problem.line, "path": problem.field, "severity": problem.severity,
            "message": problem.message}


def _escape(text: str, in_property: bool = False) -> str:
    """GitHub workflow-command escaping (`%`, CR, LF; in a property also `:` and `,`)."""
    text = text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
    return text.replace(":", "%3A").replace(",", "%2C") if in_property else text


def github_annotation(problem: ConfigError) -> str:
    """`::error file=F,line=L::path: message` (or `::warning ...`): GitHub Actions shows it on the file's line."""
    props = [f"file={_escape(problem.file, True)}"] + ([f"line={problem.line}"] if problem.line > 0 else [])
    what = f"{problem.field}: {problem.message}" if problem.field else problem.message
    return f"::{problem.severity} {','.join(props)}::{_escape(what)}"


def render(result: Validation, fmt: str) -> tuple[str, str]:
    """(standard output, standard error) of `sensorium validate --format FMT`. Text: one `FILE:LINE: field:
    message` line per problem, warnings marked `warning:`, on standard error, and the summary on standard output
    when there is no error; json: a list of problem objects; github: one annotation per problem."""
    problems = [*result.errors, *result.warnings]
    if fmt == "json":
        import json

        return json.dumps([problem_json(p) for p in problems], indent=2, ensure_ascii=False) + "\n", ""
    if fmt == "github":
        return "".join(github_annotation(p) + "\n" for p in problems), ""
    err = "".join(p.render() + "\n" for p in problems)
    if result.errors:
        count = len(result.errors)
        return "", err + f"{count} problem{'s' if count != 1 else ''}{_warnings(result, ' and')} found\n"
    return result.summary() + _warnings(result, ";") + "\n", err


def _warnings(result: Validation, joiner: str) -> str:
    count = len(result.warnings)
    return f"{joiner} {count} warning{'s' if count != 1 else ''}" if count else ""

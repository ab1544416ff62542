"""Loading configuration: files and directories of multi-document YAML into validated Argo documents.

Every problem is a ConfigError carrying `FILE:LINE` and the field path in Argo's own names. `${VAR}` and
`${VAR:-default}` are substituted from the environment before parsing (line numbers are kept).
"""

from __future__ import annotations

import bisect
import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from sensorium.engine import collector, formats
from sensorium.engine.core import yamlread
from sensorium.engine.core.errors import ConfigError, ConfigWarning
from sensorium.engine.core.yamlread import dotted_path
from sensorium.engine.crosscheck import cross_document_problems
from sensorium.engine.documents import KINDS, EventBus, EventSource, Sensor
from sensorium.engine.located import ConfigErrors, Origin, validate_model, validation_problems
from sensorium.engine.partial import salvage_sensor

__all__ = ["Config", "ConfigErrors", "Origin", "dotted_path", "load", "load_document", "load_documents",
           "validation_problems"]

# `${NAME}` or `${NAME:-default}` (a default ends at the line's end); any other `${` is the empty `bad` branch
_VAR = re.compile(r"\$\{(?:([A-Za-z_][A-Za-z0-9_]*)(?::-([^}\n]*))?\}|(?P<bad>))")
_SUFFIXES = (".yaml", ".yml")
T = TypeVar("T")


@dataclass
class Config:
    buses: list[tuple[EventBus, Origin]] = field(default_factory=list)
    sources: list[tuple[EventSource, Origin]] = field(default_factory=list)
    sensors: list[tuple[Sensor, Origin]] = field(default_factory=list)
    warnings: list[ConfigError] = field(default_factory=list)  # ConfigWarnings: it runs, but is likely a mistake

    def add(self, doc: Any, origin: Origin) -> None:
        """Keep a loaded document (None, an invalid one, is dropped)."""
        if isinstance(doc, EventBus):
            self.buses.append((doc, origin))
        elif isinstance(doc, EventSource):
            self.sources.append((doc, origin))
        elif isinstance(doc, Sensor):
            self.sensors.append((doc, origin))

    @property
    def bus(self) -> EventBus | None:
        return self.buses[0][0] if self.buses else None


def substitute_env(text: str, file: str, environ: Mapping[str, str],
                   keep: Sequence[tuple[int, int]] = ()) -> str:
    """Replace `${NAME}` and `${NAME:-default}` from `environ`; an unset NAME without a default, and any other
    `${` (unclosed, empty, not a name), is a ConfigError at its line. Text inside the `keep` spans (sorted,
    disjoint: documents of a format that resolves its own placeholders, `formats.raw_spans`) is left as it is."""
    starts = [a for a, _ in keep]

    def repl(match: re.Match[str]) -> str:
        at = bisect.bisect_right(starts, match.start()) - 1
        if at >= 0 and match.start() < keep[at][1]:
            return match.group(0)
        line = text.count("\n", 0, match.start()) + 1
        if match.group("bad") is not None:
            shown = text[match.start():match.start() + 24].split("\n", 1)[0]
            raise ConfigError(f"malformed {shown!r}: want ${{NAME}} or ${{NAME:-default}} (NAME: letters, digits, "
                              "_; not starting with a digit)", file, line)
        name, default = match.group(1), match.group(2)
        if name in environ:
            return environ[name]
        if default is not None:
            return default
        raise ConfigError(f"environment variable ${{{name}}} is not set", file, line)

    return _VAR.sub(repl, text)


_CASES_KEY = re.compile(r"^cases:", re.MULTILINE)
_KIND_KEY = re.compile(r"^kind:", re.MULTILINE)


def is_test_cases(path: Path) -> bool:
    """Whether `path` is a `sensorium test` cases file (a top-level `cases:` key and no top-level `kind:`).
    Directories given to `run` and `validate` skip them, so tests can live next to the documents they test."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    return bool(_CASES_KEY.search(text)) and not _KIND_KEY.search(text)


def iter_files(paths: Iterable[str | Path]) -> list[Path]:
    """The YAML files to load: files as given, and every .yaml/.yml file under a directory except test cases."""
    files: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            files.extend(sorted(p for p in path.rglob("*")
                                if p.suffix in _SUFFIXES and p.is_file() and not is_test_cases(p)))
        elif path.is_file():
            files.append(path)
        else:
            raise ConfigError(f"no such file or directory: {path}", str(path), 0)
    return files


def parse_documents(text: str, file: str) -> list[tuple[Any, Origin]]:
    """YAML text into (plain data, origin) per non-empty document, within engine.core.yamlread's limits; any problem
    is a ConfigError."""
    return [(doc.data, Origin(file, doc.node)) for doc in yamlread.parse(text, file)]


def load_documents(file: Path, environ: Mapping[str, str] | None = None) -> list[tuple[Any, Origin]]:
    name = str(file)
    text = yamlread.read_file(str(file), name)
    text = substitute_env(text, name, os.environ if environ is None else environ, formats.raw_spans(text))
    yamlread.check_text(text, name)  # what the environment brought in
    return parse_documents(text, name)


Check = Callable[[Any, Origin], list[ConfigError]]


def load(paths: Iterable[str | Path], environ: Mapping[str, str] | None = None,
         checks: Sequence[Check] = ()) -> Config:
    """Load and validate everything; raises ConfigErrors listing every problem found (warnings included) when
    one is an error. The cross-document checks (engine.crosscheck) run on the valid documents; their
    warnings alone do not stop a load: they are in `Config.warnings`. The cyclic garbage collector is paused
    meanwhile (engine.collector: it made loading many documents several times slower)."""
    with collector.paused():
        return _load(paths, environ, checks)


def _load(paths: Iterable[str | Path], environ: Mapping[str, str] | None, checks: Sequence[Check]) -> Config:
    config = Config()
    errors: list[ConfigError] = []
    states: dict[str, dict[str, Any]] = {}  # each foreign format's state during this load (engine.formats)
    for file in iter_files(paths):
        try:
            docs = load_documents(file, environ)
        except ConfigError as exc:
            errors.append(exc)
            continue
        for data, origin in docs:
            fmt = formats.claiming(data)
            if fmt is None:
                doc, problems = load_document(data, origin, checks)
                errors.extend(problems)
                config.add(doc, origin)
                continue
            state = states.setdefault(fmt.name, {})
            translated, problems = _guarded(partial(fmt.translate, data, origin, state), origin)
            errors.extend(problems)
            for doc, at in translated or []:
                errors.extend(problem for check in checks for problem in check(doc, at))
                config.add(doc, at)
    for fmt in formats.formats():
        if fmt.finish is not None and fmt.name in states:
            finish, state = fmt.finish, states[fmt.name]
            state[formats.LOADED_SOURCES] = tuple(config.sources)
            finished, problems = _guarded(partial(finish, state), None)
            translated, more = finished if finished is not None else ([], [])
            errors.extend([*problems, *more])
            for doc, at in translated:
                errors.extend(problem for check in checks for problem in check(doc, at))
                config.add(doc, at)
    errors.extend(_cross_checks(config))
    errors.extend(cross_document_problems(config.sources, config.sensors))
    config.warnings = [error for error in errors if isinstance(error, ConfigWarning)]
    if len(errors) > len(config.warnings):
        raise ConfigErrors(errors)
    return config


def _guarded(translate: Callable[[], T], origin: Origin | None) -> tuple[T | None, list[ConfigError]]:
    """A foreign format's result (engine.formats) and its problems; never a traceback (see load_document)."""
    try:
        return translate(), []
    except ConfigErrors as exc:
        return None, list(exc.errors)
    except ConfigError as exc:
        return None, [exc]
    except Exception as exc:
        what = " ".join(str(exc).split())[:200]
        return None, [ConfigError(f"cannot translate this document ({type(exc).__name__}: {what}); this is a "
                                  "Sensorium bug, please report it with the file",
                                  origin.file if origin else "", origin.line if origin else 0)]


def load_document(data: Any, origin: Origin, checks: Sequence[Check] = ()) -> tuple[Any, list[ConfigError]]:
    """One parsed YAML document as its model (None when it is not valid) and every problem found in it,
    including those `checks` report on the model."""
    try:
        doc = _load_one(data, origin)
        return doc, [problem for check in checks for problem in check(doc, origin)]
    except ConfigErrors as exc:
        return None, _unique([*exc.errors, *_partial_problems(data, origin, checks)])
    except ConfigError as exc:
        return None, [exc]
    except Exception as exc:  # the last line of defence: no file may get a traceback, even through a bug in a check
        what = " ".join(str(exc).split())[:200]
        return None, [ConfigError(f"cannot check this document ({type(exc).__name__}: {what}); this is a "
                                  "Sensorium bug, please report it with the file", origin.file, origin.line)]


def _partial_problems(data: Any, origin: Origin, checks: Sequence[Check]) -> list[ConfigError]:
    """What the invalid parts of a document hid: the sensor-wide checks and `checks` on its valid parts."""
    sensor, problems = salvage_sensor(data) if isinstance(data, dict) else (None, [])
    errors = [ConfigError(message, origin.file, *origin.locate(loc)) for loc, message in problems]
    if sensor is not None:
        errors.extend(problem for check in checks for problem in check(sensor, origin))
    return errors


def _unique(errors: list[ConfigError]) -> list[ConfigError]:
    return list({error.render(): error for error in errors}.values())


def _load_one(data: Any, origin: Origin) -> Any:
    if not isinstance(data, dict):
        raise ConfigError(f"a document must be a mapping, got {type(data).__name__}", origin.file, origin.line)
    kind = data.get("kind")
    if not isinstance(kind, str) or kind not in KINDS:
        line, _ = origin.locate(["kind"])
        what = ("missing kind" if kind is None else f"unknown kind {kind!r}" if isinstance(kind, str)
                else f"kind must be a string, not {yamlread.kind_of(kind)}")
        raise ConfigError(f"{what} (want Sensor, EventSource or EventBus)", origin.file, line, "kind")
    return validate_model(KINDS[kind], data, origin)


def _cross_checks(config: Config) -> list[ConfigError]:
    errors = []
    if len(config.buses) > 1:
        _, origin = config.buses[1]
        errors.append(ConfigError("more than one EventBus document", origin.file, origin.line))
    seen: dict[tuple[str, str], Origin] = {}
    named: list[tuple[EventSource | Sensor, Origin]] = [*config.sources, *config.sensors]
    for doc, origin in named:
        key = (doc.kind, doc.metadata.name)
        if key in seen:
            line, path = origin.locate(["metadata", "name"])
            errors.append(ConfigError(f"duplicate {doc.kind} name '{doc.metadata.name}' "
                                      f"(first at {seen[key].file}:{seen[key].line})", origin.file, line, path))
        seen[key] = origin
    return errors

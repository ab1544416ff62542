"""The `python` event source (a Sensorium kind; Weik.io's `custom`): events from a Python file of the user's.

The file named by `implementation` defines

    async def events(params: dict[str, str]) -> AsyncIterator[Any]

an async generator that yields one payload per event (anything JSON-serialisable; it becomes the event data).
`params` holds the entry's `parameters`, plus its `secretParameters` read from the secrets directory at each start.
Each payload is stored on the bus before the generator is asked for the next one (so a source that reads a
device or a queue acknowledges upstream only after the event is stored; a payload the bus refuses is retried with
backoff, never dropped).

Custom code is trusted like the configuration itself: it runs in the engine's process and event loop (blocking
calls belong in `asyncio.to_thread`). At load the file must exist, compile and define `events`, and every
`requirements` entry (`{package: version specifier}`) must be installed in a matching version; otherwise the
load fails naming the package and the `pip install` command. The file is imported when the source starts.

Stopping the engine cancels the generator (its `finally:` blocks run); one still running `STOP_TIMEOUT` seconds
later is abandoned with a warning, so the rest of the engine stops in order (a generator that never honours its
cancellation still keeps the process from exiting: it must let `CancelledError` through). An exception raised
by it (or a payload that is not JSON) is one ERROR line naming the entry and the exception, and the generator is
started again after a pause doubling from `RESTART_MIN` to `RESTART_MAX` (reset once a run lasted
`RESTART_MAX`); a generator that ends by itself is restarted the same way. The engine and the other sources
keep running.
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
import importlib.metadata
import importlib.util
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion, Version
from pydantic import Field, field_validator, model_validator

from sensorium.engine.core.cloudevent import CloudEvent
from sensorium.engine.core.errors import SensoriumError
from sensorium.engine.core.secrets import Secrets
from sensorium.engine.core.specbase import KeySelector
from sensorium.sources.base import Publish, Report, no_report, publish_retrying
from sensorium.sources.eventshape import EventShape, dress

__all__ = [
    "RESTART_MAX",
    "RESTART_MIN",
    "CustomSource",
    "PythonSourceContext",
    "check_implementation",
    "check_requirements",
]

log = logging.getLogger("sensorium.sources.custom")

RESTART_MIN = 1.0
"""Seconds before the first restart of a generator that raised or ended."""
RESTART_MAX = 60.0
"""The longest pause between restarts; a run at least this long resets the pause."""
STOP_TIMEOUT = 5.0
"""Seconds the engine's stop waits for a cancelled generator to finish (its `finally:` blocks)."""
MAX_SOURCE_BYTES = 1_048_576


def check_requirements(requirements: dict[str, str]) -> None:
    """ValueError naming the first requirement that is not installed in a matching version, with the command
    that installs it."""
    for package, spec in requirements.items():
        try:
            specifiers = SpecifierSet(spec)
        except InvalidSpecifier:
            raise ValueError(f"requirements.{package}: {spec!r} is not a version specifier (e.g. '>=3.5')") from None
        wanted = f"{package}{spec}"
        try:
            installed = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            raise ValueError(f"requirement {wanted} is not installed: run pip install '{wanted}'") from None
        try:
            ok = specifiers.contains(Version(installed), prereleases=True)
        except InvalidVersion:
            ok = False
        if not ok:
            raise ValueError(f"requirement {wanted} is not met: {package} {installed} is installed; run "
                             f"pip install '{wanted}'")


def check_implementation(path: str) -> None:
    """ValueError unless `path` is a readable Python file that compiles and defines `events` at its top level."""
    file = Path(path)
    try:
        if file.stat().st_size > MAX_SOURCE_BYTES:
            raise ValueError(f"implementation {path}: larger than {MAX_SOURCE_BYTES} bytes")
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"implementation {path}: cannot be read ({type(exc).__name__}: "
                         f"{getattr(exc, 'strerror', None) or exc})") from None
    try:
        tree = ast.parse(text, filename=path)
    except SyntaxError as exc:
        raise ValueError(f"implementation {path}:{exc.lineno}: {exc.msg}") from None
    if not any(isinstance(node, (ast.AsyncFunctionDef, ast.FunctionDef)) and node.name == "events"
               for node in tree.body):
        raise ValueError(f"implementation {path}: defines no function events(params) (want `async def "
                         "events(params)` yielding payloads)")


class PythonSourceContext(EventShape):
    """One `spec.python.<eventName>` entry: an async generator of payloads in a Python file (trusted code)."""

    implementation: str = Field(min_length=1, description="Path of the Python file defining `async def "
                                "events(params)` (relative paths are from the working directory).")
    parameters: dict[str, str] = Field(default_factory=dict, max_length=1000,
                                       description="Passed to `events(params)` as they are.")
    secret_parameters: dict[str, KeySelector] = Field(
        default_factory=dict, max_length=100, description="Added to `params`, each read from a secret at start "
        "(never logged).")
    requirements: dict[str, str] = Field(default_factory=dict, max_length=100, description="Python packages "
                                         "needed, `{package: version specifier}`; checked at load.")

    @field_validator("requirements")
    @classmethod
    def _requirements(cls, v: dict[str, str]) -> dict[str, str]:
        check_requirements(v)
        return v

    @model_validator(mode="after")
    def _implementation(self) -> PythonSourceContext:
        check_implementation(self.implementation)
        return self


Events = Callable[[dict[str, str]], AsyncIterator[Any]]


def load_events(path: str, name: str) -> Events:
    """Import the file at `path` as a module of its own and return its `events`."""
    spec = importlib.util.spec_from_file_location(f"sensorium_custom_{name}", path)
    if spec is None or spec.loader is None:
        raise SensoriumError(f"implementation {path}: cannot be imported")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    events = getattr(module, "events", None)
    if not callable(events):
        raise SensoriumError(f"implementation {path}: defines no function events(params)")
    return events  # type: ignore[no-any-return]


@dataclass(frozen=True)
class _Entry:
    event_source: str
    event_name: str
    spec: PythonSourceContext

    @property
    def key(self) -> str:
        return f"python.{self.event_source}.{self.event_name}"


class CustomSource:
    """Every `python` entry, one supervised task each."""

    def __init__(self, entries: Sequence[tuple[str, str, PythonSourceContext]], publish: Publish,
                 secrets: Secrets, restart_min: float = RESTART_MIN, restart_max: float = RESTART_MAX,
                 report: Report = no_report, stop_timeout: float = STOP_TIMEOUT) -> None:
        self.entries = [_Entry(*e) for e in entries]
        self.stop_timeout = stop_timeout
        self.publish, self.secrets, self.report = publish, secrets, report
        self.restart_min, self.restart_max = restart_min, restart_max
        self._tasks: list[asyncio.Task[None]] = []
        self.restarts: dict[str, int] = {}

    async def start(self) -> None:
        for entry in self.entries:
            self._tasks.append(asyncio.create_task(self._supervised(entry), name=entry.key))

    async def stop(self) -> None:
        """Cancel every generator and wait up to `stop_timeout` seconds for them to finish; one that ignores the
        cancellation is abandoned with one WARNING line (the engine's stop is not held up by it)."""
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            _, pending = await asyncio.wait(self._tasks, timeout=self.stop_timeout)
            for task in pending:
                log.warning("python source %s: events() did not stop within %gs of its cancellation; abandoned",
                            task.get_name(), self.stop_timeout)
        self._tasks = []

    async def _supervised(self, entry: _Entry) -> None:
        delay = self.restart_min
        while True:
            started = time.monotonic()
            try:
                await self._run(entry)
                problem = "events() ended"
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # trusted code, but its failure must not stop the engine
                problem = f"events() raised {type(exc).__name__}: {' '.join(str(exc).split())[:500]}"
            if time.monotonic() - started >= self.restart_max:
                delay = self.restart_min
            self.restarts[entry.key] = self.restarts.get(entry.key, 0) + 1
            log.error("python source %s/%s: %s; restarting in %gs", entry.event_source, entry.event_name, problem,
                      delay, extra={"event_source": entry.event_source, "event_name": entry.event_name})
            self.report("python", entry.event_source, entry.event_name, problem, None)
            await asyncio.sleep(delay)
            delay = min(self.restart_max, delay * 2)

    async def _run(self, entry: _Entry) -> None:
        params = dict(entry.spec.parameters)
        for key, ref in entry.spec.secret_parameters.items():
            params[key] = self.secrets.get(ref.name, ref.key)
        events = load_events(entry.spec.implementation, entry.event_name)
        generator = events(params)
        try:
            async for payload in generator:
                await self._publish(entry, payload)
        finally:
            with contextlib.suppress(Exception):
                await generator.aclose()  # type: ignore[attr-defined]

    async def _publish(self, entry: _Entry, payload: Any) -> None:
        try:
            data = json.dumps(payload, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()
        except (TypeError, ValueError) as exc:
            raise ValueError(f"a payload is not JSON: {exc}") from None
        now = datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
        event = CloudEvent(id=str(uuid.uuid4()), source=entry.event_source, type="python", subject=entry.event_name,
                           datacontenttype="application/json", time=now, data=data)
        event = dress(event, entry.spec.cloud_event, entry.spec.variables or ())
        await publish_retrying(self.publish, event, f"python source {entry.key}: event {event.id}", log,
                               self.restart_max)

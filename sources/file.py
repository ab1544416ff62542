"""Argo's `file` event source: one event per change of a watched file, with Argo's event data plus the file's
metadata.

An entry watches one `watchPathConfig.directory` (not its subdirectories, as Argo's fsnotify watch) for the files
whose path relative to the directory equals `path` or matches `pathRegexp` (RE2, unanchored, as Go's
`MatchString`), and reports the changes of its `eventType`: `CREATE`, `WRITE`, `REMOVE` or `RENAME` (the old name
of a file renamed inside the directory; the new name is a `CREATE`; a file moved out of the directory is a
`REMOVE`). `polling: true` polls the directory instead of using inotify (for network file systems).

The event's data is Argo's `{"name": "<directory>/<path>", "op": "WRITE", "metadata": {...}}` (`metadata` copied
from the entry, left out when empty) plus Sensorium's `file`: `{"name", "size", "mode", "mtime"}` (base name,
bytes, permission bits in octal as `"0644"`, modification time RFC 3339 UTC); `file` is absent when the file no
longer exists (REMOVE, RENAME).

**Coalescing.** Changes are read through `watchfiles`, which groups them: a group closes after `STEP_MS` of quiet,
or at the latest `DEBOUNCE_MS` after it opened. Each group yields at most one event per file and type, so a burst
of writes to one file (gaps under 300 ms) is **one WRITE event per file per debounce window, default 1600 ms** (a
burst lasting longer gives one WRITE per 1600 ms of it). A single change is published about 300 ms after it.

**A deleted watched directory** (or one missing at start) is one warning log line; the source then looks for it
again after a pause doubling from 0.1 s to `RETRY_MAX`, watches it again once it is back (one info line), and
never stops the engine. An event the bus refuses is retried with the same backoff, so no change is dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import stat
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import PurePosixPath
from typing import Generic, Protocol, TypeVar

import watchfiles
from pydantic import Field, field_validator, model_validator

from sensorium.engine.core.cloudevent import CloudEvent
from sensorium.engine.core.specbase import ArgoModel
from sensorium.engine.goport.jsonenc import marshal
from sensorium.engine.goport.re2 import RegexError, compile_re2
from sensorium.sources.base import Publish, Report, no_report, publish_retrying

__all__ = ["CHECK_MS", "DEBOUNCE_MS", "RETRY_MAX", "STEP_MS", "FileContext", "FileSource", "WatchPathConfig",
           "file_changes", "file_metadata", "publish_retrying", "supervise_directory"]

log = logging.getLogger("sensorium.sources.file")

DEBOUNCE_MS = 1600
"""The longest a group of changes is collected before its events are published (watchfiles' default)."""
STEP_MS = 300
"""A group of changes closes after this long without a new change (watchfiles' `step`)."""
RETRY_MAX = 30.0  # seconds: the longest pause between looks for a missing directory, or publish attempts
CHECK_MS = 1000  # how often the watcher wakes without changes, to notice a deleted directory


class Op(StrEnum):
    """fsnotify's operation names, as Argo writes them."""

    CREATE = "CREATE"
    WRITE = "WRITE"
    REMOVE = "REMOVE"
    RENAME = "RENAME"


class WatchPathConfig(ArgoModel):
    """`watchPathConfig`: the directory watched and which of its files are reported."""

    directory: str = Field(description="Absolute path of the directory watched (not its subdirectories).")
    path: str | None = Field(default=None, description="Path of the file, relative to the directory.")
    path_regexp: str | None = Field(default=None, description="RE2 matched against the path relative to the "
                                    "directory (unanchored); instead of `path`.")

    @field_validator("directory")
    @classmethod
    def _directory(cls, v: str) -> str:
        if not v:
            raise ValueError("directory is required")
        if not PurePosixPath(v).is_absolute():
            raise ValueError(f"directory must be an absolute file path, got {v[:200]!r}")
        return v

    @field_validator("path_regexp")
    @classmethod
    def _regexp(cls, v: str | None) -> str | None:
        if v:
            try:
                compile_re2(v)
            except RegexError as exc:
                raise ValueError(f"pathRegexp: {exc}") from None
        return v or None

    @model_validator(mode="after")
    def _one(self) -> WatchPathConfig:
        if not self.path and not self.path_regexp:
            raise ValueError("either path or pathRegexp must be specified")
        if self.path and self.path_regexp:
            raise ValueError("path and pathRegexp cannot be specified together")
        if self.path and PurePosixPath(self.path).is_absolute():
            raise ValueError("path must be a relative file path")
        return self

    def matches(self, relative: str) -> bool:
        """Whether the file at `relative` (to the directory) is one this entry reports."""
        if self.path:
            return relative == self.path
        return self.path_regexp is not None and compile_re2(self.path_regexp).matches(relative)


class FileContext(ArgoModel):
    """One `spec.file.<eventName>` entry: changes of the files of a directory."""

    event_type: Op = Field(description="The change reported: CREATE, WRITE, REMOVE or RENAME.")
    watch_path_config: WatchPathConfig = Field(description="The directory and the files of it reported.")
    polling: bool = Field(default=False, description="Poll the directory instead of using inotify.")
    metadata: dict[str, str] | None = Field(default=None, description="Copied into the event data as `metadata`.")
    filter: dict[str, object] | None = Field(default=None, description="Event source filter: not supported yet.")

    @field_validator("filter")
    @classmethod
    def _filter(cls, v: dict[str, object] | None) -> dict[str, object] | None:
        if v is not None:
            raise ValueError("event source filters are not supported yet; filter in the sensor instead")
        return v


def _relative(directory: str, path: str) -> str:
    return os.path.relpath(path, directory)


def file_changes(changes: set[tuple[watchfiles.Change, str]], inodes: dict[str, tuple[int, int]]
                 ) -> list[tuple[Op, str]]:
    """One group of watchfiles changes as fsnotify operations, in a stable order: a deleted file whose (device,
    inode), remembered in `inodes`, reappears under an added name in the same group is a RENAME, else a REMOVE;
    an added file is a CREATE, a modified one a WRITE. `inodes` is updated (path -> (st_dev, st_ino))."""
    added = sorted(p for c, p in changes if c == watchfiles.Change.added)
    modified = sorted(p for c, p in changes if c == watchfiles.Change.modified)
    deleted = sorted(p for c, p in changes if c == watchfiles.Change.deleted)
    now: dict[str, tuple[int, int]] = {}
    for p in added + modified:
        with contextlib.suppress(OSError):
            st = os.stat(p)
            now[p] = (st.st_dev, st.st_ino)
    new_ids = {now[p] for p in added if p in now}
    out: list[tuple[Op, str]] = []
    for p in deleted:
        old = inodes.pop(p, None)
        out.append((Op.RENAME if old is not None and old in new_ids else Op.REMOVE, p))
    out += [(Op.CREATE, p) for p in added]
    out += [(Op.WRITE, p) for p in modified]
    inodes.update(now)
    return out


def file_metadata(path: str) -> dict[str, object] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    mtime = datetime.fromtimestamp(st.st_mtime, UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
    return {"name": os.path.basename(path), "size": st.st_size, "mode": f"{stat.S_IMODE(st.st_mode):04o}",
            "mtime": mtime}


@dataclass(frozen=True)
class _Entry:
    event_source: str
    event_name: str
    spec: FileContext

    @property
    def key(self) -> str:
        return f"file.{self.event_source}.{self.event_name}"


class _Keyed(Protocol):
    @property
    def key(self) -> str: ...


E = TypeVar("E", bound=_Keyed)


class WatchingSource(Generic[E]):
    """What the directory-watching kinds (`file`, `fileWatch`) share: one supervised watcher task per entry
    (`_supervised`, each subclass's own), started and stopped together."""

    def __init__(self, entries: list[E], publish: Publish, debounce_ms: int, step_ms: int, report: Report) -> None:
        self.entries, self.publish, self.report = entries, publish, report
        self.debounce_ms, self.step_ms = debounce_ms, step_ms
        self._tasks: list[asyncio.Task[None]] = []
        self._stop = asyncio.Event()
        self._ready: list[asyncio.Event] = []

    async def start(self) -> None:
        self._stop = asyncio.Event()
        for entry in self.entries:
            ready = asyncio.Event()
            self._ready.append(ready)
            self._tasks.append(asyncio.create_task(self._supervised(entry, ready), name=entry.key))

    async def watching(self, timeout: float = 10.0) -> None:
        """Wait until every entry's watcher has started (for tests and callers that write right after start)."""
        async with asyncio.timeout(timeout):
            for ready in self._ready:
                await ready.wait()

    async def stop(self) -> None:
        self._stop.set()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks, self._ready = [], []

    async def _supervised(self, entry: E, ready: asyncio.Event) -> None:
        raise NotImplementedError


class FileSource(WatchingSource[_Entry]):
    """Every file entry, one watcher task each."""

    def __init__(self, entries: Sequence[tuple[str, str, FileContext]], publish: Publish,
                 debounce_ms: int = DEBOUNCE_MS, step_ms: int = STEP_MS, report: Report = no_report) -> None:
        super().__init__([_Entry(*e) for e in entries], publish, debounce_ms, step_ms, report)

    async def _supervised(self, entry: _Entry, ready: asyncio.Event) -> None:
        await supervise_directory(f"file {entry.key}", entry.spec.watch_path_config.directory, self._stop,
                                  lambda: self._watch(entry, ready), log,
                                  lambda problem: self.report("file", entry.event_source, entry.event_name, problem,
                                                              None))

    async def _watch(self, entry: _Entry, ready: asyncio.Event) -> None:
        """Publish the entry's changes until the directory is gone (returns) or the source stops."""
        config = entry.spec.watch_path_config
        directory = config.directory
        inodes: dict[str, tuple[int, int]] = {}
        with os.scandir(directory) as it:
            for item in it:
                with contextlib.suppress(OSError):
                    st = item.stat()
                    inodes[item.path] = (st.st_dev, st.st_ino)
        watcher = watchfiles.awatch(directory, watch_filter=None, debounce=self.debounce_ms, step=self.step_ms,
                                    stop_event=self._stop, rust_timeout=CHECK_MS, yield_on_timeout=True,
                                    recursive=False, force_polling=entry.spec.polling or None,
                                    poll_delay_ms=100)
        ready.set()
        async for changes in watcher:
            for op, path in file_changes(changes, inodes):
                if op == entry.spec.event_type and config.matches(_relative(directory, path)):
                    await self._publish(entry, op, path)
            if not os.path.isdir(directory):
                return

    async def _publish(self, entry: _Entry, op: Op, path: str) -> None:
        data: dict[str, object] = {"name": path, "op": op.value}
        if entry.spec.metadata:  # Go's `json:"metadata,omitempty"`
            data["metadata"] = entry.spec.metadata
        meta = file_metadata(path) if op in (Op.CREATE, Op.WRITE) else None
        if meta is not None:
            data["file"] = meta
        now = datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
        event = CloudEvent(id=str(uuid.uuid4()), source=entry.event_source, type="file", subject=entry.event_name,
                           datacontenttype="application/json", time=now,
                           data=marshal(data, sort_keys=False).encode())
        log.info("file %s: %s %s", entry.key, op.value, path)
        await publish_retrying(self.publish, event, f"file {entry.key}: {op.value} {path}", log, RETRY_MAX)


async def supervise_directory(label: str, directory: str, stop: asyncio.Event, watch: Callable[[], Awaitable[None]],
                              logger: logging.Logger = log, missing_report: Callable[[str], None] | None = None
                              ) -> None:
    """Run `watch()` (which returns once the directory is gone) while `directory` exists, until `stop` is set.
    While it is missing: one WARNING line (and `missing_report(problem)`), then a look again after a pause
    doubling from 0.1 s to RETRY_MAX; one INFO line when it is back. A watcher that fails (watchfiles' errors) is
    started again the same way. `label` starts each line (`file file.<source>.<event>`)."""
    delay, missing = 0.1, False
    while not stop.is_set():
        if not os.path.isdir(directory):
            if not missing:
                logger.warning("%s: watched directory %s does not exist; watching it again once it does", label,
                               directory)
                if missing_report is not None:
                    missing_report(f"watched directory {directory} does not exist")
                missing = True
            await asyncio.sleep(delay)
            delay = min(RETRY_MAX, delay * 2)
            continue
        if missing:
            logger.info("%s: directory %s is back; watching it", label, directory)
            missing, delay = False, 0.1
        try:
            await watch()
        except (OSError, RuntimeError) as exc:  # watchfiles' errors (a directory gone while starting)
            logger.warning("%s: watching %s failed (%s); trying again in %gs", label, directory,
                           exc.__class__.__name__, delay)
            await asyncio.sleep(delay)
            delay = min(RETRY_MAX, delay * 2)



"""The `fileWatch` event source (a Sensorium kind; Weik.io's `file-watch`): one event per change of a file under a
directory whose name matches a glob.

An entry watches `path` (a directory; with `includeSubdirectories`, its whole tree) for the files whose base name
matches `pattern` (a glob: `*.csv`; default `*`), and reports the kinds of change listed in `notifyFilters`:
`Created`, `Modified`, `Deleted` (default all three). A file renamed is `Deleted` under its old name and `Created`
under its new one. The event data is

    {"path": "<full path>", "name": "<path relative to the directory>", "change": "Created",
     "file": {"name", "size", "mode", "mtime"}}

(`file` absent once the file is gone, as in the `file` kind). The watcher, its coalescing (**one `Modified` per file
per 1600 ms debounce window**), the retries of a missing directory and of a refused publish are those of Argo's
`file` kind (`sources.file`).
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import json
import logging
import os
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import PurePosixPath
from typing import Literal

import watchfiles
from pydantic import Field, field_validator

from sensorium.engine.core.cloudevent import CloudEvent
from sensorium.sources.base import Publish, Report, no_report, publish_retrying
from sensorium.sources.eventshape import EventShape, dress
from sensorium.sources.file import (
    CHECK_MS,
    DEBOUNCE_MS,
    RETRY_MAX,
    STEP_MS,
    Op,
    WatchingSource,
    file_changes,
    file_metadata,
    supervise_directory,
)

__all__ = ["FileWatchContext", "FileWatchSource"]

log = logging.getLogger("sensorium.sources.filewatch")

Change = Literal["Created", "Modified", "Deleted"]
_ALL: tuple[Change, ...] = ("Created", "Modified", "Deleted")
_CHANGES: dict[Op, tuple[Change, ...]] = {Op.CREATE: ("Created",), Op.WRITE: ("Modified",),
                                          Op.REMOVE: ("Deleted",), Op.RENAME: ("Deleted",)}


class FileWatchContext(EventShape):
    """One `spec.fileWatch.<eventName>` entry: changes of the files matching a glob under a directory."""

    path: str = Field(description="Absolute path of the directory watched.")
    pattern: str = Field(default="*", min_length=1, description="Glob the file's base name must match, e.g. *.csv.")
    include_subdirectories: bool = Field(default=False, description="Watch the directory's whole tree.")
    notify_filters: list[Change] = Field(default_factory=lambda: list(_ALL), min_length=1,
                                         description="The changes reported: Created, Modified, Deleted.")
    polling: bool = Field(default=False, description="Poll the directory instead of using inotify.")

    @field_validator("path")
    @classmethod
    def _absolute(cls, v: str) -> str:
        if not PurePosixPath(v).is_absolute():
            raise ValueError(f"path must be an absolute directory path, got {v[:200]!r}")
        return v


@dataclass(frozen=True)
class _Entry:
    event_source: str
    event_name: str
    spec: FileWatchContext

    @property
    def key(self) -> str:
        return f"fileWatch.{self.event_source}.{self.event_name}"

    def reports(self, op: Op, path: str) -> tuple[Change, ...]:
        if not fnmatch.fnmatchcase(os.path.basename(path), self.spec.pattern):
            return ()
        return tuple(c for c in _CHANGES[op] if c in self.spec.notify_filters)


class FileWatchSource(WatchingSource[_Entry]):
    """Every fileWatch entry, one watcher task each."""

    def __init__(self, entries: Sequence[tuple[str, str, FileWatchContext]], publish: Publish,
                 debounce_ms: int = DEBOUNCE_MS, step_ms: int = STEP_MS, report: Report = no_report) -> None:
        super().__init__([_Entry(*e) for e in entries], publish, debounce_ms, step_ms, report)

    async def _supervised(self, entry: _Entry, ready: asyncio.Event) -> None:
        await supervise_directory(f"fileWatch {entry.key}", entry.spec.path, self._stop,
                                  lambda: self._watch(entry, ready), log,
                                  lambda problem: self.report("fileWatch", entry.event_source, entry.event_name,
                                                              problem, None))

    async def _watch(self, entry: _Entry, ready: asyncio.Event) -> None:
        directory = entry.spec.path
        inodes: dict[str, tuple[int, int]] = {}
        for root, _dirs, files in os.walk(directory):
            for name in files:
                with contextlib.suppress(OSError):
                    st = os.stat(os.path.join(root, name))
                    inodes[os.path.join(root, name)] = (st.st_dev, st.st_ino)
            if not entry.spec.include_subdirectories:
                break
        watcher = watchfiles.awatch(directory, watch_filter=None, debounce=self.debounce_ms, step=self.step_ms,
                                    stop_event=self._stop, rust_timeout=CHECK_MS, yield_on_timeout=True,
                                    recursive=entry.spec.include_subdirectories,
                                    force_polling=entry.spec.polling or None, poll_delay_ms=100)
        ready.set()
        async for changes in watcher:
            for op, path in file_changes(changes, inodes):
                if os.path.isdir(path):
                    continue
                for change in entry.reports(op, path):
                    await self._publish(entry, change, path)
            if not os.path.isdir(directory):
                return

    async def _publish(self, entry: _Entry, change: Change, path: str) -> None:
        data: dict[str, object] = {"path": path, "name": os.path.relpath(path, entry.spec.path), "change": change}
        meta = file_metadata(path) if change != "Deleted" else None
        if meta is not None:
            data["file"] = meta
        now = datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
        event = CloudEvent(id=str(uuid.uuid4()), source=entry.event_source, type="fileWatch",
                           subject=entry.event_name, datacontenttype="application/json", time=now,
                           data=json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode())
        event = dress(event, entry.spec.cloud_event, entry.spec.variables or ())
        log.info("fileWatch %s: %s %s", entry.key, change, path)
        await publish_retrying(self.publish, event, f"fileWatch {entry.key}: {change} {path}", log, RETRY_MAX)

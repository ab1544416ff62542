"""The `fileWatch` source (Weik.io's file-watch) on a real temp directory: the glob, subdirectories, the notify
filters, a rename, and the event data a sensor sees."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from sensorium.engine.core.cloudevent import CloudEvent
from sensorium.sources.filewatch import FileWatchContext, FileWatchSource
from tests.collected import Collected


@asynccontextmanager
async def running(directory: Path, **spec: Any) -> AsyncIterator[Collected]:
    got = Collected()
    context = FileWatchContext.model_validate({"path": str(directory), **spec})
    source = FileWatchSource([("inbox", "files", context)], got.publish, debounce_ms=300)
    await source.start()
    try:
        await source.watching()
        yield got
    finally:
        await source.stop()


@pytest.mark.slow
@pytest.mark.parametrize("polling", [False, True])
async def test_matching_files_in_subdirectories_are_reported_once_per_change(tmp_path: Path, polling: bool) -> None:
    (tmp_path / "2026").mkdir()
    async with running(tmp_path, pattern="*.csv", includeSubdirectories=True, polling=polling) as got:
        (tmp_path / "2026" / "a.csv").write_text("1")
        (tmp_path / "skip.txt").write_text("not matched")
        created = await got.wait_for(1)
        await asyncio.sleep(0.5)
        (tmp_path / "2026" / "a.csv").write_text("12")
        modified = await got.wait_for(2)
        await asyncio.sleep(0.5)
        (tmp_path / "2026" / "a.csv").unlink()
        data = await got.wait_for(3)
    path = str(tmp_path / "2026" / "a.csv")
    assert [(d["path"], d["name"], d["change"]) for d in data] == [
        (path, "2026/a.csv", "Created"), (path, "2026/a.csv", "Modified"), (path, "2026/a.csv", "Deleted")]
    assert created[0]["file"]["size"] == 1 and modified[1]["file"]["size"] == 2 and "file" not in data[2]
    assert {(e.source, e.subject, e.type) for e in got.events} == {("inbox", "files", "fileWatch")}


@pytest.mark.slow
async def test_notify_filters_and_top_level_only(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    async with running(tmp_path, notifyFilters=["Deleted"], cloudEvent={"type": "com.x.gone"}) as got:
        (tmp_path / "sub" / "deep.csv").write_text("x")
        (tmp_path / "top.csv").write_text("x")
        await asyncio.sleep(0.8)
        (tmp_path / "sub" / "deep.csv").unlink()
        (tmp_path / "top.csv").rename(tmp_path / "renamed.csv")
        data = await got.wait_for(1)
        await asyncio.sleep(0.8)  # nothing else arrives: a created file and the subdirectory are not reported
    assert [(d["name"], d["change"]) for d in got.data()] == [("top.csv", "Deleted")] == [
        (d["name"], d["change"]) for d in data]
    assert got.events[0].type == "com.x.gone"


@pytest.mark.parametrize(("spec", "message"), [
    ({"path": "relative/dir"}, "path must be an absolute directory path"),
    ({"path": "/x", "notifyFilters": ["Renamed"]}, "Input should be 'Created', 'Modified' or 'Deleted'"),
    ({"path": "/x", "notifyFilters": []}, "at least 1 item"),
])
def test_a_bad_entry_is_refused(spec: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        FileWatchContext.model_validate(spec)


async def test_a_missing_directory_is_reported_once(tmp_path: Path) -> None:
    reported: list[tuple[str, str, str, str, int | None]] = []

    def report(kind: str, source: str, event: str, problem: str, status: int | None) -> None:
        reported.append((kind, source, event, problem, status))

    async def publish(event: CloudEvent) -> None:
        return None

    missing = tmp_path / "not-yet"
    context = FileWatchContext.model_validate({"path": str(missing)})
    source = FileWatchSource([("inbox", "files", context)], publish, report=report)
    await source.start()
    try:
        async with asyncio.timeout(5):
            while not reported:
                await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)  # looked again a few times meanwhile
    finally:
        await source.stop()
    assert reported == [("fileWatch", "inbox", "files", f"watched directory {missing} does not exist", None)]

"""The `file` source on a real temp directory (inotify through watchfiles, and polling): the events a user's
sensor sees for a created, written, renamed and removed file, a burst of writes coalesced, and a watched
directory deleted and created again."""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
import stat
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from pydantic import ValidationError

from sensorium.engine.registry import REGISTRY
from sensorium.sources.file import FileContext, FileSource
from tests.collected import Collected


def entry(directory: Path, event_type: str, **watch: str) -> FileContext:
    return FileContext.model_validate({"eventType": event_type, "metadata": {"team": "ops"},
                                       "watchPathConfig": {"directory": str(directory), **watch}})


@asynccontextmanager
async def running(entries: list[tuple[str, str, FileContext]], debounce_ms: int = 300
                  ) -> AsyncIterator[Collected]:
    got = Collected()
    source = FileSource(entries, got.publish, debounce_ms=debounce_ms)
    await source.start()
    try:
        await source.watching()
        yield got
    finally:
        await source.stop()


@pytest.mark.slow
@pytest.mark.parametrize("polling", [False, True])
async def test_a_created_written_and_removed_file_is_reported(tmp_path: Path, polling: bool) -> None:
    def spec(kind: str) -> FileContext:
        return FileContext.model_validate({**entry(tmp_path, kind, pathRegexp=r"\.csv$").model_dump(by_alias=True),
                                           "polling": polling})

    entries = [("files", name.lower(), spec(name)) for name in ("CREATE", "WRITE", "REMOVE")]
    async with running(entries) as got:
        target = tmp_path / "orders.csv"
        target.write_text("")
        await got.wait_for(1)
        await asyncio.sleep(0.5)
        target.write_text("id,total\n1,20\n")
        await got.wait_for(2)
        mode = f"{stat.S_IMODE(target.stat().st_mode):04o}"
        (tmp_path / "notes.txt").write_text("not matched")
        await asyncio.sleep(0.5)
        target.unlink()
        data = await got.wait_for(3)
        await asyncio.sleep(0.5)
    assert [(e.subject, e.type, e.source) for e in got.events] == [
        ("create", "file", "files"), ("write", "file", "files"), ("remove", "file", "files")]
    create, write, remove = data
    assert create["name"] == write["name"] == remove["name"] == str(target)
    assert [create["op"], write["op"], remove["op"]] == ["CREATE", "WRITE", "REMOVE"]
    assert create["metadata"] == {"team": "ops"}
    assert create["file"]["name"] == "orders.csv" and create["file"]["size"] == 0
    assert write["file"]["size"] == len("id,total\n1,20\n")
    assert write["file"]["mode"] == mode and write["file"]["mtime"].endswith("Z")
    assert "file" not in remove
    assert got.events[0].data is not None and got.events[0].data.startswith(b'{"name":')  # Argo's field order


@pytest.mark.slow
async def test_a_burst_of_writes_is_one_write_event(tmp_path: Path) -> None:
    target = tmp_path / "log.txt"
    target.write_text("")
    async with running([("files", "w", entry(tmp_path, "WRITE", path="log.txt"))], debounce_ms=1600) as got:
        for i in range(50):
            with target.open("a") as f:
                f.write(f"line {i}\n")
            await asyncio.sleep(0.005)
        data = await got.wait_for(1)
        await asyncio.sleep(1.0)
    assert len(got.events) == 1, got.data()
    assert data[0]["file"]["size"] == sum(len(f"line {i}\n") for i in range(50))


@pytest.mark.slow
async def test_a_rename_reports_the_old_name_and_a_create_the_new(tmp_path: Path) -> None:
    old = tmp_path / "a.txt"
    old.write_text("x")
    entries = [("files", "renamed", entry(tmp_path, "RENAME", pathRegexp=".")),
               ("files", "created", entry(tmp_path, "CREATE", pathRegexp="."))]
    async with running(entries) as got:
        old.rename(tmp_path / "b.txt")
        await got.wait_for(2)
        await asyncio.sleep(0.5)
    by_subject = {e.subject: json.loads(e.data or b"") for e in got.events}
    assert by_subject["renamed"]["name"] == str(old) and by_subject["renamed"]["op"] == "RENAME"
    assert by_subject["created"]["name"] == str(tmp_path / "b.txt")


@pytest.mark.slow
async def test_a_deleted_directory_is_one_log_line_and_watched_again_when_back(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    watched = tmp_path / "inbox"
    watched.mkdir()
    caplog.set_level(logging.INFO, "sensorium.sources.file")
    async with running([("files", "new", entry(watched, "CREATE", path="job.json"))]) as got:
        shutil.rmtree(watched)
        await asyncio.sleep(3.0)  # the watcher notices within a second, then looks again with backoff
        watched.mkdir()
        await asyncio.sleep(2.5)
        (watched / "job.json").write_text("{}")
        data = await got.wait_for(1, timeout=15)
    missing = [r for r in caplog.records if "does not exist" in r.getMessage()]
    assert len(missing) == 1 and missing[0].levelno == logging.WARNING
    assert str(watched) in missing[0].getMessage()
    assert any("is back" in r.getMessage() for r in caplog.records)
    assert data[0]["name"] == str(watched / "job.json")


@pytest.mark.slow
async def test_a_directory_missing_at_start_does_not_stop_the_source(tmp_path: Path) -> None:
    watched = tmp_path / "later"
    got = Collected()
    source = FileSource([("files", "new", entry(watched, "CREATE", path="x"))], got.publish, debounce_ms=300)
    await source.start()
    try:
        await asyncio.sleep(0.3)
        watched.mkdir()
        await source.watching(timeout=15)
        await asyncio.sleep(0.3)
        (watched / "x").write_text("")
        data = await got.wait_for(1, timeout=10)
    finally:
        await source.stop()
    assert data[0]["op"] == "CREATE"


@pytest.mark.parametrize(("watch", "message"), [
    ({"directory": "relative/dir", "path": "a"}, "absolute"),
    ({"directory": "/tmp"}, "either path or pathRegexp"),
    ({"directory": "/tmp", "path": "a", "pathRegexp": "a"}, "cannot be specified together"),
    ({"directory": "/tmp", "path": "/etc/passwd"}, "relative"),
    ({"directory": "/tmp", "pathRegexp": "(unclosed"}, "pathRegexp"),
])
def test_a_bad_watch_path_config_is_refused(watch: dict[str, str], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        FileContext.model_validate({"eventType": "CREATE", "watchPathConfig": watch})


def test_an_unknown_event_type_is_refused() -> None:
    with pytest.raises(ValidationError, match="eventType"):
        FileContext.model_validate({"eventType": "CHMOD", "watchPathConfig": {"directory": "/tmp", "path": "a"}})


def test_the_file_kind_is_registered() -> None:
    assert REGISTRY.sources["file"].spec is FileContext

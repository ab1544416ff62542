"""The garbage collector around start-up (engine.collector): loading collects nothing and leaves the collector as it
found it; `sensorium run` holds it from before loading until the engine has collected and frozen what start-up
built, and never leaves it off."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sensorium.engine import collector
from sensorium.engine.assemble import load_checked
from sensorium.engine.cli import main
from tests.fixtures_http import HttpSink
from tests.test_registry_run import TOY, engine, write

SENSOR = """---
apiVersion: argoproj.io/v1alpha1
kind: Sensor
metadata: {name: s%(i)d}
spec:
  dependencies: [{name: d, eventSourceName: src, eventName: e%(i)d}]
  triggers: [{template: {name: t, log: {}}}]
"""


@pytest.fixture
def collections() -> Iterator[list[int]]:
    """The generation of every collection that starts while the test runs; the collector is on again after it."""
    seen: list[int] = []
    # a full collection first: which generation the next young collection reaches depends on how many ran
    # before (every tenth young one takes the middle generation along), which is up to the tests that ran before
    gc.collect()

    def record(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            seen.append(info["generation"])

    gc.callbacks.append(record)
    try:
        yield seen
    finally:
        gc.callbacks.remove(record)
        collector.release()
        gc.enable()


def many_sensors(folder: Path, count: int = 300) -> Path:
    folder.mkdir()
    for first in range(0, count, 100):
        (folder / f"sensors{first}.yaml").write_text("".join(SENSOR % {"i": i} for i in range(first, first + 100)))
    return folder


def test_loading_runs_no_collection_and_leaves_the_collector_as_it_was(tmp_path: Path,
                                                                       collections: list[int]) -> None:
    folder = many_sensors(tmp_path / "docs")
    assert gc.isenabled()
    config = load_checked([folder])
    assert len(config.compiled) == 300
    # without the pause, 300 documents allocate enough for dozens; with it, only the young collection that
    # follows switching the collector on again (it moves what the load built to the older generations)
    assert collections in ([], [0])
    assert gc.isenabled()
    gc.disable()
    load_checked([folder])
    assert not gc.isenabled()  # a caller that had it off keeps it off


def test_a_refused_configuration_leaves_the_collector_on(tmp_path: Path, collections: list[int],
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "bad.yaml").write_text("kind: Sensor\nmetadata: {name: s}\nspec: {}\n")
    assert main(["run", str(tmp_path / "bad.yaml"), "--log-level", "ERROR"]) == 2
    assert "bad.yaml:" in capsys.readouterr().err
    assert gc.isenabled()


async def test_the_engine_releases_the_hold_once_start_up_is_frozen(tmp_path: Path, http_sink: HttpSink,
                                                                     collections: list[int]) -> None:
    checked = load_checked([write(tmp_path / "docs", sensors=("s1", "s2"), url=http_sink.url)], registry=TOY)
    collector.hold()
    assert not gc.isenabled()
    async with engine(checked, tmp_path / "data"):
        assert gc.isenabled()
        assert gc.get_freeze_count() > 0  # start-up's objects are out of the collector's generations
        await http_sink.wait_for(2, timeout=10)  # and the engine runs as ever
    assert gc.isenabled()
    assert gc.get_freeze_count() == 0

"""`sensorium convert`: what files mean, as Argo documents that load back to the same engine model."""

from __future__ import annotations

from pathlib import Path

import pytest

from sensorium.engine.cli import main
from sensorium.engine.config import load
from sensorium.engine.convert import render

# every example folder, and each bus example on its own (a folder holds one EventBus)
EXAMPLES = [*sorted(p for p in Path("examples").iterdir() if p.is_dir() and p.name != "buses"),
            *sorted(Path("examples/buses").glob("*.yaml"))]


@pytest.mark.parametrize("folder", EXAMPLES, ids=lambda p: p.name)
def test_argo_examples_convert_to_the_same_documents(folder: Path, tmp_path: Path) -> None:
    original = load([folder], environ={})
    out = tmp_path / "converted.yaml"
    out.write_text(render(original))
    again = load([out], environ={})
    assert [d for d, _ in again.sensors] == [d for d, _ in original.sensors]
    assert [d for d, _ in again.sources] == [d for d, _ in original.sources]
    assert [d for d, _ in again.buses] == [d for d, _ in original.buses]


def test_each_document_names_where_it_came_from(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["convert", "examples/quickstart"]) == 0
    out = capsys.readouterr().out
    assert "# from examples/quickstart/webhook-sensor.yaml:3\n" in out
    assert "kind: Sensor" in out and "kind: EventSource" in out


def test_an_invalid_file_is_file_line_and_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("apiVersion: argoproj.io/v1alpha1\nkind: Sensor\nmetadata: {name: x}\nspec:\n  nope: 1\n")
    assert main(["convert", str(bad)]) == 2
    err = capsys.readouterr().err
    assert f"{bad}:5: spec.nope: unknown field" in err

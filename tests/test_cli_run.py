"""`sensorium run` trace flags: what they select, and a trace file that cannot be written (exit 2)."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from sensorium.engine.cli import _trace_hub, build_parser, main
from sensorium.engine.trace.fmt import StreamSink

SENSOR = """\
apiVersion: argoproj.io/v1alpha1
kind: Sensor
metadata: {name: s}
spec:
  dependencies: [{name: d, eventSourceName: a, eventName: b}]
  triggers: [{template: {name: t, log: {}}}]
"""


def hub_for(*args: str) -> tuple[list[StreamSink], bool]:
    hub = _trace_hub(build_parser().parse_args(["run", "x", *args]))
    sinks = [s for s in hub.sinks if isinstance(s, StreamSink)]
    return sinks, hub.bus_trace


def test_trace_flags_choose_the_sink(tmp_path: Path) -> None:
    assert hub_for() == ([], True)
    assert hub_for("--no-bus-trace") == ([], False)
    assert not _trace_hub(build_parser().parse_args(["run", "x", "--no-bus-trace"])).enabled
    (human,), _ = hub_for("--trace")
    assert (human.fmt, human.owns) == ("human", False)
    (as_json,), _ = hub_for("--trace-format", "json")
    assert (as_json.fmt, as_json.owns) == ("json", False)
    (to_file,), _ = hub_for("--trace-format", "json", "--trace-file", str(tmp_path / "t.jsonl"))
    assert (to_file.fmt, to_file.owns) == ("json", True)
    assert not isinstance(to_file.stream, io.StringIO)
    to_file.stream.close()


def test_unwritable_trace_file_is_a_config_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "sensor.yaml").write_text(SENSOR)
    target = tmp_path / "missing-dir" / "trace.jsonl"
    code = main(["run", str(tmp_path / "sensor.yaml"), "--trace-file", str(target), "--log-level", "ERROR"])
    assert code == 2
    assert capsys.readouterr().err == f"{target}:0: --trace-file: cannot write: No such file or directory\n"

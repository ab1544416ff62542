"""`sensorium test`: the JSON contract of issue 4, exactly, and bad input as FILE:LINE messages with exit 2."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from sensorium.engine.cli import main

SENSOR = """\
apiVersion: argoproj.io/v1alpha1
kind: EventSource
metadata: {name: ignored}
spec: {webhook: {x: {port: "1", endpoint: /x}}}
---
apiVersion: argoproj.io/v1alpha1
kind: Sensor
metadata:
  name: contract
spec:
  dependencies:
    - name: first
      eventSourceName: src
      eventName: ev
      filtersLogicalOperator: or
      filters:
        context: {type: special}
        data:
          - path: body.n
            type: number
            comparator: ">"
            value: ["5"]
    - name: second
      eventSourceName: src
      eventName: ev
    - name: other
      eventSourceName: elsewhere
      eventName: ev
  triggers:
    - template:
        name: json-body
        conditions: first
        http:
          url: https://user:pw-in-url@example.test/hook
          headers: {X-Plain: plain}
          secureHeaders:
            - name: X-Token
              valueFrom: {secretKeyRef: {name: api, key: token}}
          payload:
            - src: {dependencyName: first, dataKey: body.n, useRawData: true}
              dest: n
    - template:
        name: text-body
        conditions: second
        http:
          url: http://example.test/text
          method: PUT
          payload:
            - src: {dependencyName: second, dataKey: body.word}
              dest: ""
    - template:
        name: empty-body
        conditions: second
        http: {url: "http://example.test/empty", method: GET}
    - template:
        name: logged
        conditions: second
        log: {}
    - template:
        name: missing-secret
        conditions: second
        http:
          url: http://example.test/secret
          basicAuth:
            username: {name: nobody, key: user}
"""


def event(id_: str, data: object, type_: str = "webhook", source: str = "src") -> str:
    return json.dumps({"specversion": "1.0", "id": id_, "source": source, "type": type_, "subject": "ev",
                       "datacontenttype": "application/json", "data": data})


@pytest.fixture
def files(tmp_path: Path) -> Path:
    (tmp_path / "sensor.yaml").write_text(SENSOR)
    (tmp_path / "secrets" / "api").mkdir(parents=True)
    (tmp_path / "secrets" / "api" / "token").write_text("tok-SECRET-123\n")
    (tmp_path / "events.jsonl").write_text("\n".join([
        event("e1", {"body": {"n": 7, "word": "hello"}}),
        event("e2", {"body": {"word": "x"}}, type_="special"),
        event("e3", {"body": {}}, source="nobody-listens"),
    ]) + "\n")
    return tmp_path


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["test", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_json_output_follows_the_contract_exactly(files: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, str(files / "sensor.yaml"), "--event", str(files / "events.jsonl"),
                         "--secrets-dir", str(files / "secrets"), "--output", "json")
    assert (code, err) == (0, "")
    result = json.loads(out)
    assert list(result) == ["sensor", "events", "firings"]
    assert result["sensor"] == "contract"
    missing_path = "data filter error (path 'body.n' does not exist)"
    filters = [[d.pop("filters") for d in e["dependencies"]] for e in result["events"]]
    assert result["events"] == [
        {"id": "e1", "dependencies": [{"name": "first", "passed": True, "error": None},
                                      {"name": "second", "passed": True, "error": None}]},
        # OR over filter kinds: context passed, data failed with an error -> passed AND error (section 2.2)
        {"id": "e2", "dependencies": [{"name": "first", "passed": True, "error": missing_path},
                                      {"name": "second", "passed": True, "error": None}]},
        {"id": "e3", "dependencies": []},
    ]
    # every filter's reason is kept: e2's data filter failed with an error, its context filter passed
    check = {"comparator": ">", "type": "number", "wanted": ["5"]}
    assert filters == [
        [[{"kind": "data", "target": "path 'body.n'", "seen": "7", **check, "passed": True, "reason": "7 > 5",
           "error": None},
          {"kind": "context", "target": "context.type", "seen": "webhook", "wanted": ["special"], "comparator": "=",
           "type": "string", "passed": False, "reason": "not equal", "error": None}], []],
        [[{"kind": "data", "target": "path 'body.n'", "seen": None, **check, "passed": False,
           "reason": "path 'body.n' does not exist", "error": None},
          {"kind": "context", "target": "context.type", "seen": "special", "wanted": ["special"], "comparator": "=",
           "type": "string", "passed": True, "reason": "equal", "error": None}], []],
        [],
    ]
    firings = result["firings"]
    assert [(f["trigger"], f["events"]) for f in firings] == [
        ("json-body", {"first": "e1"}), ("text-body", {"second": "e1"}), ("empty-body", {"second": "e1"}),
        ("logged", {"second": "e1"}), ("missing-secret", {"second": "e1"}),
        ("json-body", {"first": "e2"}), ("text-body", {"second": "e2"}), ("empty-body", {"second": "e2"}),
        ("logged", {"second": "e2"}), ("missing-secret", {"second": "e2"}),
    ]
    assert all(list(f) == ["trigger", "events", "request", "error"] for f in firings)
    assert firings[0]["request"] == {"method": "POST", "url": "https://user:***@example.test/hook",
                                     "headers": {"X-Plain": "plain", "X-Token": "***"}, "body": {"n": 7}}
    assert firings[0]["error"] is None
    assert firings[1]["request"] == {"method": "PUT", "url": "http://example.test/text", "headers": {},
                                     "body": "hello"}
    assert firings[2]["request"] == {"method": "GET", "url": "http://example.test/empty", "headers": {},
                                     "body": None}
    assert firings[3] == {"trigger": "logged", "events": {"second": "e1"}, "request": None,
                          "error": "log trigger: it sends no HTTP request"}
    assert firings[4]["request"] is None
    assert firings[4]["error"].startswith("failed to retrieve the username, secret 'nobody/user' not found")
    assert firings[5] == {"trigger": "json-body", "events": {"first": "e2"}, "request": None,
                          "error": "payload[0] (dest 'n'): unable to resolve 'first' parameter value. "
                                   "err: dataKey 'body.n' does not exist in the event payload"}
    assert "tok-SECRET-123" not in out and "pw-in-url" not in out


def test_text_output_explains_each_decision(files: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, str(files / "sensor.yaml"), "--event", str(files / "events.jsonl"),
                         "--secrets-dir", str(files / "secrets"))
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[0] == "event e1 · sensor contract"
    assert ("  filter     first data path 'body.n': saw \"7\", wanted number > [\"5\"] -> pass: 7 > 5") in lines
    assert any(line.startswith("  dependency first matched the event: filters pass, error: " + "data filter error")
               for line in lines)
    assert any("no dependency listens to eventSourceName \"nobody-listens\"" in line for line in lines)
    assert "X-Token: ***" in out and "tok-SECRET-123" not in out
    assert lines[-1] == ("sensor contract: 3 event(s), 10 firing(s): json-body, text-body, empty-body, logged, "
                         "missing-secret, json-body, text-body, empty-body, logged, missing-secret; 3 could not "
                         "build a request")


def test_events_from_several_files_are_read_in_order(files: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (files / "a.json").write_text(json.dumps(json.loads(event("z9", {"body": {"n": 9}})), indent=2))
    code, out, _ = run(capsys, str(files / "sensor.yaml"), "--event", str(files / "a.json"),
                       "--event", str(files / "events.jsonl"), "--output", "json")
    assert code == 0
    assert [e["id"] for e in json.loads(out)["events"]] == ["z9", "e1", "e2", "e3"]


@pytest.mark.parametrize(("name", "content", "expected"), [
    ("bad.jsonl", '{"specversion":"1.0","id":"a","source":"s","type":"t"}\n{"id": 1\n',
     "{f}:2: not JSON: Expecting ',' delimiter"),
    ("array.json", '[{"specversion":"1.0"}]', "{f}:1: not a CloudEvent: a structured CloudEvent must be a JSON object"),
    ("noid.json", '\n\n{"specversion":"1.0","source":"s","type":"t"}', "{f}:3: not a CloudEvent: missing required "
                                                                      "attribute 'id'"),
    ("pretty.json", '{\n  "specversion": "1.0",\n  "id": "x",,\n}', "{f}:3: not JSON: Expecting property name"),
    ("empty.json", "  \n", "{f}:1: no events in this file"),
])
def test_bad_event_files(files: Path, capsys: pytest.CaptureFixture[str], name: str, content: str,
                         expected: str) -> None:
    path = files / name
    path.write_text(content)
    code, out, err = run(capsys, str(files / "sensor.yaml"), "--event", str(path))
    assert (code, out) == (2, "")
    assert err.startswith(expected.format(f=path)), err


def test_unreadable_event_file_and_all_problems_at_once(files: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (files / "one.json").write_text('{"specversion": "0.3", "id": "a", "source": "s", "type": "t"}')
    code, _, err = run(capsys, str(files / "sensor.yaml"), "--event", str(files / "missing.json"),
                       "--event", str(files / "one.json"))
    assert code == 2
    assert err.splitlines() == [f"{files}/missing.json:0: cannot read event file: No such file or directory",
                                f"{files}/one.json:1: not a CloudEvent: unsupported specversion '0.3' (want 1.0)"]


@pytest.mark.parametrize(("yaml_text", "expected"), [
    ("- just\n- a list\n", "{f}:1: a document must be a mapping, got list"),
    ("kind: EventSource\n", "{f}:0: no Sensor document in this file"),
    ("kind: Sensor\napiVersion: argoproj.io/v1alpha1\nmetadata: {name: s}\nspec:\n  dependencies: [{name: d, "
     "eventSourceName: a, eventName: b}]\n  triggers:\n    - template: {name: t, log: {}}\n"
     "    - template: {name: t, log: {}}\n", "{f}:8: spec.triggers[1].template.name: trigger names must be unique: t"),
    ("key: [unclosed\n", "{f}:2: invalid YAML"),
])
def test_bad_sensor_files(tmp_path: Path, files: Path, capsys: pytest.CaptureFixture[str], yaml_text: str,
                          expected: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(yaml_text)
    code, out, err = run(capsys, str(path), "--event", str(files / "events.jsonl"))
    assert (code, out) == (2, "")
    assert err.startswith(expected.format(f=path)), err


def test_several_sensors_need_a_name(files: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = SENSOR + "---\n" + SENSOR.split("---\n")[1].replace("name: contract", "name: twin")
    (files / "two.yaml").write_text(text)
    code, _, err = run(capsys, str(files / "two.yaml"), "--event", str(files / "events.jsonl"))
    assert code == 2 and "2 Sensor documents (contract, twin): choose one with --sensor NAME" in err
    code, out, _ = run(capsys, str(files / "two.yaml"), "--event", str(files / "events.jsonl"), "--sensor", "twin",
                       "--output", "json")
    assert code == 0 and json.loads(out)["sensor"] == "twin"


@pytest.mark.integration  # starts a child process
def test_bad_input_exits_2_without_traceback(files: Path) -> None:
    (files / "list.yaml").write_text("- a\n")
    done = subprocess.run([sys.executable, "-m", "sensorium", "test", str(files / "list.yaml"), "--event",
                           str(files / "nope.json")], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr == f"{files}/list.yaml:1: a document must be a mapping, got list\n"
    assert "Traceback" not in done.stderr


def test_a_transform_is_traced_before_the_filters(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "s.yaml").write_text("""\
apiVersion: argoproj.io/v1alpha1
kind: Sensor
metadata: {name: tr}
spec:
  dependencies:
    - name: d
      eventSourceName: src
      eventName: ev
      transform: {jq: ".body.n += 1"}
      filters:
        data: [{path: body.n, type: number, value: ["2"]}]
  triggers:
    - template: {name: t, http: {url: "http://x", payload: [{src: {dependencyName: d, dataKey: body.n}, dest: n}]}}
""")
    (tmp_path / "e.json").write_text(event("t1", {"body": {"n": 1}}))
    code, out, _ = run(capsys, str(tmp_path / "s.yaml"), "--event", str(tmp_path / "e.json"))
    assert code == 0
    steps = [line.split()[0] for line in out.splitlines()[1:] if line.startswith("  ")]
    assert steps[:4] == ["received", "dependency", "transform", "filter"]
    assert '  transform  d jq: data is now 16 bytes: {"body":{"n":2}}' in out
    assert "saw \"2\", wanted number = [\"2\"] -> pass" in out


def test_a_huge_value_a_filter_saw_is_cut_in_the_trace(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sensor = tmp_path / "sensor.yaml"
    sensor.write_text("""apiVersion: argoproj.io/v1alpha1
kind: Sensor
metadata: {name: bomb}
spec:
  dependencies:
    - name: d
      eventSourceName: webhook
      eventName: example
      filters:
        data: [{path: body.s, type: string, value: ["^(a+)+$"]}]
        exprs: [{expr: 's =~ "^(a+)+$"', fields: [{name: s, path: body.s}]}]
  triggers:
    - template: {name: t, log: {}}
""")
    event = tmp_path / "event.json"
    event.write_text(json.dumps({"specversion": "1.0", "id": "1", "source": "webhook", "subject": "example",
                                 "type": "webhook", "datacontenttype": "application/json",
                                 "data": {"body": {"s": "a" * 100_000 + "!"}}}))
    assert main(["test", str(sensor), "--event", str(event)]) == 0
    out = capsys.readouterr().out
    filters = [line for line in out.splitlines() if line.strip().startswith("filter")]
    assert len(filters) == 2 and all("-> fail" in line or "FAIL" in line.upper() for line in filters)
    assert all(len(line) < 2500 for line in filters), [len(line) for line in filters]
    assert "(100001 characters)" in out  # says how long the value was

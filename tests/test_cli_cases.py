"""`sensorium test CASES.yaml`: expectations that pass and fail (exit 0/1 with a readable diff), raw webhook requests
as events (byte for byte what the webhook publishes), invalid cases files (exit 2, FILE:LINE, all problems at
once), the JUnit report, secrets, and `--version`/`--help`."""

from __future__ import annotations

import asyncio
import json
import tomllib
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from sensorium.engine.cli import build_parser, main
from sensorium.engine.testcases import load_cases
from tests.webhook_harness import exchange, post, webhook

ROOT = Path(__file__).resolve().parent.parent

SENSOR = """\
apiVersion: argoproj.io/v1alpha1
kind: Sensor
metadata: {name: orders}
spec:
  dependencies:
    - name: order
      eventSourceName: shop
      eventName: order
    - name: payment
      eventSourceName: bank
      eventName: paid
      filters:
        data:
          - {path: body.status, type: string, value: ["^settled$"]}
          - {path: header.X-Token.0, type: string, value: [".*"]}
  triggers:
    - template:
        name: ship
        conditions: "order && payment"
        http:
          url: http://127.0.0.1:9000/ship
          headers: {Content-Type: application/json}
          secureHeaders:
            - name: X-Api-Token
              valueFrom: {secretKeyRef: {name: api, key: token}}
          payload:
            - src: {dependencyName: order, dataKey: body.id}
              dest: order
            - src: {dependencyName: order, dataKey: body.items, useRawData: true}
              dest: items
    - template:
        name: refund
        conditions: payment
        log: {}
"""

TOKEN = "tok-CASES-SECRET-42"


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "sensor.yaml").write_text(SENSOR)
    (tmp_path / "secrets" / "api").mkdir(parents=True)
    (tmp_path / "secrets" / "api" / "token").write_text(TOKEN + "\n")
    return tmp_path


def cases(folder: Path, text: str, name: str = "tests.yaml") -> str:
    path = folder / name
    path.write_text("sensor: sensor.yaml\nsecrets_dir: secrets\n" + text)
    return str(path)


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["test", *args])
    out, err = capsys.readouterr()
    return code, out, err


ORDER = "- webhook: {source: shop, event: order, body: {id: A-1, items: [{sku: tea, qty: 2}]}}"
SETTLED = ("- webhook: {source: bank, event: paid, headers: {X-Token: " + TOKEN + "}, "
           "body: {status: settled}}")
PENDING = "- webhook: {source: bank, event: paid, headers: {X-Token: t}, body: {status: pending}}"


def one_case(events: list[str], expect: str, name: str = "the case") -> str:
    lines = [f"  - name: {name}", "    events:", *(f"      {e}" for e in events), "    expect:",
             *(f"      {line}" for line in expect.strip().splitlines())]
    return "cases:\n" + "\n".join(lines) + "\n"


def test_passing_expectations_exit_0(folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = cases(folder, one_case([ORDER, PENDING, SETTLED], """
fires: [refund, ship]
not_fires: []
requests:
  - trigger: ship
    method: post
    url: http://127.0.0.1:9000/ship
    headers: {content-type: application/json, X-Api-Token: "***"}
    body: {items: [{sku: tea, qty: 2}]}
rejected_by:
  - {event: 2, dependency: payment, kind: data, target: body.status}
  - {event: 2, dependency: payment, kind: data, target: "path 'body.status'"}
"""))
    code, out, err = run(capsys, path)
    assert (code, err) == (0, "")
    assert out.splitlines() == [f"{path}: sensor orders ({folder}/sensor.yaml)", "PASS  the case",
                                "1 case(s): 1 passed, 0 failed"]


def test_each_case_starts_with_a_fresh_sensor_state(folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = one_case([ORDER], "fires: []", "order only") + one_case([SETTLED], "fires: [refund]", "payment only")[7:]
    code, out, _ = run(capsys, cases(folder, text))
    assert code == 0, out  # the first case's order is not held when the second case's payment arrives


@pytest.mark.parametrize(("expect", "summary", "diff"), [
    ("fires: [ship]", "fires: expected [ship], fired [refund]", ["-  \"ship\"", "+  \"refund\""]),
    ("not_fires: [refund]", "not_fires: refund fired 1 time(s) (with payment=event-1)", []),
    ("requests: [{trigger: ship, body: {order: A-1}}]", "requests[0] (line 8): ship firing #1: ship fired 0 time(s)",
     []),
    ("rejected_by: [{event: 1, dependency: payment, kind: data}]",
     "rejected_by (line 8): event 1, dependency payment, data: the dependency passed its filters "
     "(every filter kind passed (and))", []),
    ("rejected_by: [{event: 1, dependency: order, kind: data}]",
     "rejected_by (line 8): event 1, dependency order, data: the event did not match this dependency "
     "(source 'bank', subject 'paid'; it matched payment)", []),
])
def test_each_kind_of_failed_expectation_exits_1_and_says_why(folder: Path, capsys: pytest.CaptureFixture[str],
                                                              expect: str, summary: str, diff: list[str]) -> None:
    path = cases(folder, one_case([SETTLED], expect))  # a payment without its order: refund fires, ship waits
    code, out, err = run(capsys, path)
    assert (code, err) == (1, ""), out
    lines = out.splitlines()
    assert lines[1] == f"FAIL  the case  ({path}:4)"
    assert lines[2] == "      " + summary
    for line in diff:
        assert "        " + line in lines
    assert "      trace:" in lines  # the case's trace follows, to see why
    assert lines[-1] == "1 case(s): 0 passed, 1 failed"


def test_a_request_mismatch_lists_each_field_and_a_diff(folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = cases(folder, one_case([ORDER, SETTLED], """
requests:
  - trigger: ship
    method: PUT
    url: http://127.0.0.1:9000/other
    headers: {X-Api-Token: not-the-token, X-Missing: x}
    body: {order: A-2, items: [{sku: tea}], extra: 1}
"""))
    code, out, _ = run(capsys, path)
    assert code == 1
    summary = out.splitlines()[2]
    assert summary.startswith("      requests[0] (line 10): ship firing #1: ")
    assert summary.split("#1: ")[1].split("; ") == [
        'method: expected "PUT", got "POST"', 'url: expected "http://127.0.0.1:9000/other", got '
        '"http://127.0.0.1:9000/ship"', 'headers.X-Api-Token: expected "not-the-token", got "***"',
        'headers.X-Missing: missing (expected "x")', 'body.order: expected "A-2", got "A-1"',
        'body.items: expected [{"sku": "tea"}], got [{"sku": "tea", "qty": 2}]',  # lists match exactly
        'body.extra: missing (expected 1)']
    assert '        -  "method": "PUT",' in out and '        +  "method": "POST",' in out
    assert TOKEN not in out


def test_a_request_that_could_not_be_built(folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (folder / "secrets" / "api" / "token").unlink()
    expect = "requests: [{trigger: ship, body: {order: A-1}}, {trigger: ship, error: \"secret 'api/token'\"}]"
    path = cases(folder, one_case([ORDER, SETTLED, ORDER, SETTLED], expect))
    code, out, _ = run(capsys, path)
    assert code == 1
    assert "requests[0] (line 11): ship firing #1: request: not built: failed to retrieve the value for " \
           "secureHeader, secret 'api/token' not found" in out
    assert "requests[1]" not in out.split("trace:")[0]  # the second expects the error: it holds


def test_webhook_requests_become_the_events_the_webhook_publishes(folder: Path) -> None:
    """A `webhook:` event is byte for byte the CloudEvent data a real WebhookServer publishes for that request."""
    body = b'{"id": "A-1",  "n": 1.50, "u": "\\u00e9"}'
    headers = ["Content-Type: application/json", "X-Tag: a", "X-Tag: b"]
    path = cases(folder, f"""cases:
  - name: raw
    events:
      - webhook:
          source: src
          event: hook
          headers: {{Host: test, Content-Length: "{len(body)}", Connection: close,
                     Content-Type: application/json, X-Tag: [a, b]}}
          body: '{body.decode()}'
      - webhook: {{source: src, event: hook, method: GET, query: {{q: [x, y]}},
                   headers: {{Host: test, Connection: close}}}}
    expect: {{fires: []}}
""")
    (raw_event, get_event) = [e.event for e in load_cases(path).cases[0].events]

    async def published() -> list[bytes]:
        """What real WebhookServers publish for the same two requests, sent as raw bytes."""
        async with webhook() as hook:
            await exchange(hook.port, post("/hook", body, *headers))
            out = [e.data or b"" for e in hook.published]
        async with webhook(method="GET") as hook:
            await exchange(hook.port, b"GET /hook?q=x&q=y HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")
            return out + [e.data or b"" for e in hook.published]

    first, second = asyncio.run(published())
    assert raw_event.data == first
    assert json.loads(raw_event.data or b"")["body"] == {"id": "A-1", "n": 1.50, "u": "é"}
    assert get_event.data == second
    assert (raw_event.id, raw_event.source, raw_event.subject, raw_event.type) == ("event-1", "src", "hook",
                                                                                    "webhook")


def test_a_structured_body_gets_the_json_content_type(folder: Path) -> None:
    path = cases(folder, one_case(["- webhook: {source: shop, event: order, body: {id: A-1}}"], "fires: []"))
    (event,) = [e.event for e in load_cases(path).cases[0].events]
    assert event.data == b'{"header":{"Content-Type":["application/json"]},"body":{"id":"A-1"}}'


def test_invalid_cases_files_exit_2_with_every_problem(folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = cases(folder, """cases:
  - name: typo
    events:
      - webhook: {source: shop, event: order, body: {id: 1}, hedaers: {}}
      - cloudevent: missing.json
      - webhook: {source: shop, event: order, body: '""" + "[" * 300 + """'}
    expect:
      fires: [shipp]
      rejected_by: [{event: 9, dependency: order, kind: data}, {event: 1, dependency: order, kind: filter}]
      unknown: 1
  - name: typo
    events: []
""")
    code, out, err = run(capsys, path)
    assert (code, out) == (2, "")
    assert err.splitlines() == [
        f"{path}:6: cases[0].events[0].webhook.hedaers: unknown field (want one of: source, event, method, headers, "
        "body, query, metadata, id, time)",
        f"{folder}/missing.json:0: cannot read event file: No such file or directory",
        f"{path}:8: cases[0].events[2].webhook.body: JSON body nested deeper than 256 levels",
        f"{path}:12: cases[0].expect.unknown: unknown field (want one of: fires, not_fires, requests, rejected_by)",
        f"{path}:10: cases[0].expect.fires[0]: no trigger named 'shipp' in the sensor (it has: ship, refund)",
        f"{path}:11: cases[0].expect.rejected_by[0].event: must be the number of one of this case's 1 event(s), "
        "counting from 1",
        f"{path}:11: cases[0].expect.rejected_by[1].kind: unknown filter kind 'filter' (want one of: exprs, data, "
        "context, time, script, transform)",
        f"{path}:14: cases[1].events: must be a non-empty list of events (cloudevent: or webhook:)",
        f"{path}:13: cases[1].expect: must be a mapping, not null",
    ]


@pytest.mark.parametrize(("text", "message"), [
    ("cases: []\n", ":3: cases: must be a non-empty list of cases"),
    ("cases: [{name: x, events: [{webhook: {source: a, event: b}}], expect: {}}]\n",
     ":3: cases[0].expect: no expectation: give at least one of fires, not_fires, requests, rejected_by"),
])
def test_small_mistakes(folder: Path, capsys: pytest.CaptureFixture[str], text: str, message: str) -> None:
    path = cases(folder, text)
    code, _, err = run(capsys, path)
    assert code == 2 and err == path + message + "\n"


def test_a_sensor_file_without_events_or_cases(folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, str(folder / "sensor.yaml"))
    assert code == 2
    assert err == (f"{folder}/sensor.yaml:1: not a cases file (a YAML mapping with `cases:`); to evaluate a Sensor "
                   "file give its events with --event FILE\n")


def test_sensor_file_on_the_command_line(folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (folder / "sub").mkdir()
    path = folder / "sub" / "cases.yaml"
    path.write_text("cases:\n" + one_case([ORDER], "fires: []")[7:])
    code, _, err = run(capsys, str(path))
    assert code == 2 and "no sensor: add `sensor: FILE` (relative to this file) or give --sensor-file" in err
    code, out, _ = run(capsys, str(path), "--sensor-file", str(folder / "sensor.yaml"))
    assert code == 0 and "PASS  the case" in out


def test_junit_report_is_valid_xml_with_counts_and_diffs(folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    passing = one_case([ORDER], "fires: []", "holds")
    failing = one_case([SETTLED], "fires: [ship]", '"wrong \\e[31m <name> & \\"quotes\\""')[7:]
    path = cases(folder, passing + failing)
    report = folder / "out" / "report.xml"
    report.parent.mkdir()
    code, _, _ = run(capsys, path, "--junit", str(report))
    assert code == 1
    root = ET.parse(report).getroot()
    assert (root.get("tests"), root.get("failures"), root.get("errors")) == ("2", "1", "0")
    (suite,) = root.iter("testsuite")
    assert (suite.get("name"), suite.get("tests"), suite.get("failures")) == (path, "2", "1")
    first, second = suite.iter("testcase")
    assert (first.get("name"), first.find("failure")) == ("holds", None)
    assert second.get("name") == 'wrong \\u001b[31m <name> & "quotes"'
    failure = second.find("failure")
    assert failure is not None
    assert failure.get("message") == "fires: expected [ship], fired [refund]"
    assert '-  "ship"' in (failure.text or "") and '+  "refund"' in (failure.text or "")
    assert TOKEN not in report.read_text()


def test_json_output_of_cases(folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = cases(folder, one_case([ORDER, PENDING], "not_fires: [ship]"))
    code, out, _ = run(capsys, path, "--output", "json")
    assert code == 0
    (suite,) = json.loads(out)["suites"]
    (case,) = suite["cases"]
    assert (case["name"], case["passed"], case["failures"]) == ("the case", True, [])
    payment = case["result"]["events"][1]["dependencies"][0]
    assert payment["filters"][0] == {"kind": "data", "target": "path 'body.status'", "seen": "pending",
                                     "wanted": ["^settled$"], "comparator": "", "type": "string", "passed": False,
                                     "reason": "no regex was found in 'pending' (unanchored search)", "error": None}


def test_secret_values_a_filter_saw_are_masked(folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The event carries the token the trigger reads as a secret (header X-Token): every output shows ***."""
    path = cases(folder, one_case([ORDER, SETTLED], "fires: [refund]"))
    code, out, _ = run(capsys, path, "--output", "json")
    assert code == 1
    seen = [f["seen"] for e in json.loads(out)["suites"][0]["cases"][0]["result"]["events"]
            for d in e["dependencies"] for f in d["filters"]]
    assert "***" in seen and TOKEN not in out


def test_huge_values_are_cut_in_json_filters(folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    huge = "x" * 50_000
    event = "- webhook: {source: bank, event: paid, headers: {X-Token: t}, body: {status: " + huge + "}}"
    code, out, _ = run(capsys, cases(folder, one_case([event], "fires: []")), "--output", "json")
    assert code == 0
    (check,) = json.loads(out)["suites"][0]["cases"][0]["result"]["events"][0]["dependencies"][0]["filters"]
    assert check["seen"] == "x" * 1000 + "… (50000 characters)"
    assert len(out) < 10_000


def test_version() -> None:
    expected = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    from sensorium.engine.cli import version

    assert version() == expected


def test_version_printed(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--version"])
    assert capsys.readouterr().out.strip().startswith("sensorium ")


@pytest.mark.parametrize("command", [None, "run", "publish", "trace", "test", "validate", "schema"])
def test_help_ends_with_examples_and_exit_codes(command: str | None) -> None:
    parser = build_parser()
    if command is not None:
        parser = next(a for a in parser._subparsers._group_actions  # type: ignore[union-attr]
                      if a.dest == "command").choices[command]
    text = parser.format_help()
    examples, codes = text.split("examples:\n")[1].split("\nexit codes:\n")
    assert examples.strip().startswith("sensorium")
    assert [line.split()[0] for line in codes.strip().splitlines()] == ["0", "1", "2", "130"]
    if command == "test":
        assert "  1    an expectation failed" in codes


def test_a_cases_file_that_is_not_yaml_says_where(folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = cases(folder, "cases:\n  - name: [unclosed\n")
    code, out, err = run(capsys, path)
    assert (code, out) == (2, "")
    assert err.startswith(f"{path}:5: invalid YAML: the list opened with '[' at line 4 is not closed with ']'"), err


def test_a_one_letter_secret_does_not_blank_out_the_output(folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (folder / "secrets" / "api" / "token").write_text("e\n")
    path = cases(folder, one_case([ORDER, SETTLED], "fires: [ship]"))
    code, out, _ = run(capsys, path, "--output", "json")
    assert code == 1
    result = json.loads(out)["suites"][0]["cases"][0]["result"]
    assert result["events"][1]["dependencies"][0]["filters"][0]["seen"] == "settled"
    assert result["firings"][0]["request"]["headers"]["X-Api-Token"] == "***"

"""A secret value never appears in any output: a real `sensorium run` (secure header + basic auth, a retry,
debug logging, --trace in both formats) and `sensorium test`; every stream is searched for every secret."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.engine_harness import EngineProcess, event, publish, unique, write_config
from tests.fixtures_http import HttpSink

TOKEN, USER, PASSWORD = "tok-7f3a9c-SECRET", "svc-user-SECRET", "pw-51d2e8-SECRET"
SECRETS = [TOKEN, USER, PASSWORD, base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()]


def sensor(name: str, source: str, url: str) -> str:
    return f"""
apiVersion: argoproj.io/v1alpha1
kind: Sensor
metadata: {{name: {name}}}
spec:
  dependencies: [{{name: d, eventSourceName: {source}, eventName: e}}]
  triggers:
    - template:
        name: secure
        http:
          url: {url}/secure
          secureHeaders:
            - name: X-Token
              valueFrom: {{secretKeyRef: {{name: api, key: token}}}}
          basicAuth:
            username: {{name: basic, key: user}}
            password: {{name: basic, key: password}}
          payload: [{{src: {{dependencyName: d, dataKey: n}}, dest: n}}]
      retryStrategy: {{steps: 2, duration: 10ms, jitter: 0}}
"""


def write_secrets(folder: Path) -> Path:
    for name, key, value in (("api", "token", TOKEN), ("basic", "user", USER), ("basic", "password", PASSWORD)):
        (folder / name).mkdir(parents=True, exist_ok=True)
        (folder / name / key).write_text(value + "\n")
    return folder


def assert_no_secret(where: str, text: str) -> None:
    for secret in SECRETS:
        assert secret not in text, f"secret found in {where}"


def run_cli(*args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "sensorium", *args], capture_output=True, text=True,
                          timeout=120, check=False, env={**os.environ, "NO_COLOR": "1"})
    assert done.returncode == 0, done.stderr
    return done.stdout + done.stderr


@pytest.mark.parametrize("trace_format", ["human", "json"])
async def test_no_secret_in_any_output_of_a_traced_engine(nats_url: str, http_sink: HttpSink, tmp_path: Path,
                                                          trace_format: str) -> None:
    name, source = unique("secret"), unique("src")
    secrets = write_secrets(tmp_path / "secrets")
    config = write_config(tmp_path / "config", sensor(name, source, http_sink.url))
    trace_file = tmp_path / "trace.out"
    extra = ["--trace"] if trace_format == "human" else ["--trace-format", "json", "--trace-file", str(trace_file)]
    engine = EngineProcess(config, nats_url, "--secrets-dir", str(secrets), "--log-level", "DEBUG",
                           "--data-dir", str(tmp_path / "data"), *extra)
    http_sink.program(503)
    await engine.start()
    try:
        sent = event(source, "e", b'{"n":1}')
        await publish(nats_url, sent)
        got = await http_sink.wait_for(2, timeout=30)
    finally:
        assert await engine.terminate() == 0  # a graceful stop: the firing finishes, its records are written
    # the secrets were really used: the sink got them
    assert got[1].header("X-Token") == TOKEN
    assert got[1].header("Authorization") == "Basic " + SECRETS[3]

    output = "".join(engine.output)
    assert_no_secret("engine stdout/stderr", output)
    if trace_format == "json":
        text = trace_file.read_text()
        records = [json.loads(line) for line in text.splitlines()]
        assert {"request", "response", "retry", "outcome", "ack"} <= {r["step"] for r in records}
        assert [r["headers"] for r in records if r["step"] == "request"] == [
            {"X-Token": "***", "Authorization": "***"}]
        assert_no_secret("trace file", text)
    else:
        assert "request    secure [" in output and "X-Token: ***; Authorization: ***" in output
    for fmt in ("human", "json"):
        from_bus = run_cli("trace", "--bus", nats_url, "--sensor", name, "--format", fmt)
        assert sent.id in from_bus
        assert_no_secret(f"sensorium trace --format {fmt}", from_bus)


@pytest.mark.integration  # starts a child process
def test_no_secret_in_sensorium_test_output(tmp_path: Path) -> None:
    secrets = write_secrets(tmp_path / "secrets")
    (tmp_path / "sensor.yaml").write_text(sensor("dry", "src", "http://127.0.0.1:1"))
    (tmp_path / "event.json").write_text(json.dumps({
        "specversion": "1.0", "id": "e1", "source": "src", "type": "t", "subject": "e",
        "datacontenttype": "application/json", "data": {"n": 1}}))
    for output in ("text", "json"):
        text = run_cli("test", str(tmp_path / "sensor.yaml"), "--event", str(tmp_path / "event.json"),
                       "--secrets-dir", str(secrets), "--output", output, "--log-level", "DEBUG")
        assert "***" in text
        assert_no_secret(f"sensorium test --output {output}", text)

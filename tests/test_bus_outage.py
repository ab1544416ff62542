"""An unreachable bus: one clear line per attempt naming the broker, retries with backoff, health says so."""

from __future__ import annotations

import asyncio
import json
import urllib.request

import pytest

from tests.engine_harness import EngineProcess, free_port, unique, write_config

pytestmark = pytest.mark.integration  # runs `sensorium run` as a child process


def health(port: int) -> tuple[int, dict[str, object]]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


@pytest.mark.parametrize("scheme", ["nats", "kafka"])
async def test_unreachable_bus_is_retried_with_backoff(scheme: str, tmp_path: object) -> None:
    from pathlib import Path

    assert isinstance(tmp_path, Path)
    dead, health_port = free_port(), free_port()
    folder = write_config(tmp_path, f"""
apiVersion: argoproj.io/v1alpha1
kind: Sensor
metadata: {{name: {unique("lonely")}}}
spec:
  dependencies: [{{name: d, eventSourceName: s, eventName: e}}]
  triggers: [{{template: {{name: t, log: {{}}}}}}]
""")
    engine = EngineProcess(folder, f"{scheme}://127.0.0.1:{dead}", "--health-port", str(health_port))
    start = asyncio.create_task(engine.start(timeout=60))
    await asyncio.sleep(8)
    assert not start.done()  # still waiting for the bus, not crashed
    status, body = await asyncio.to_thread(health, health_port)
    assert status == 503 and body["status"] == "unavailable"
    assert body["bus"]["health"] == "disconnected"  # type: ignore[index]
    start.cancel()
    code = await engine.terminate()
    errors = [line for line in engine.output if "retrying in" in line]
    assert 2 <= len(errors) <= 6, engine.output  # backoff: 0.5, 1, 2, 4 s ... not a busy loop
    assert all(f"127.0.0.1:{dead}" in line for line in errors)
    assert not any("Traceback" in line for line in engine.output)
    assert code in (0, 1)

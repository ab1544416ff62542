"""Weik.io and custom sources inside a running engine, on a real nats-server, firing into a real HTTP sink: the
Weik.io webhook's signature (good, tampered, unsigned) and TransformPayload, a custom Python source that raises and
is restarted, Argo's `file` and Sensorium's `fileWatch` reporting files written while the engine runs."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
from pathlib import Path

import aiohttp
import pytest

from sensorium.engine.trace.records import SourceProblem
from tests.engine_harness import Engine, free_port, write_config
from tests.fixtures_http import HttpSink
from tests.trace_log import TraceLog

ROOT = Path(__file__).resolve().parent.parent
WEIKIO = ROOT / "examples" / "weikio"
SECRET = (WEIKIO / "secrets" / "orders-hook-secret" / "value").read_text().strip()


def order(order_id: int, total: int) -> bytes:
    return json.dumps({"order": {"id": order_id, "total": total, "customer": {"email": "ada@example.com"}}}).encode()


def signed(body: bytes, key: str = SECRET) -> dict[str, str]:
    return {"Content-Type": "application/json",
            "X-Signature": hmac.new(key.encode(), body, hashlib.sha256).hexdigest()}


async def test_the_weik_webhook_checks_its_signature_and_transforms_the_payload(
        tmp_path: Path, nats_url: str, http_sink: HttpSink, caplog: pytest.LogCaptureFixture) -> None:
    port = free_port()
    sources = (WEIKIO / "eventsources.yaml").read_text().replace('Port: "12000"', f'Port: "{port}"').replace(
        "http://127.0.0.1:8081/api/prices", f"http://127.0.0.1:{free_port()}/api/prices")
    sensor = (WEIKIO / "sensor.yaml").read_text().replace("http://127.0.0.1:9000", http_sink.url)
    folder = write_config(tmp_path / "config", sources, sensor)
    url = f"http://127.0.0.1:{port}/orders"
    trace = TraceLog()
    async with Engine(folder, nats_url, secrets_dir=WEIKIO / "secrets", tracer=trace), \
            aiohttp.ClientSession() as session:
        async def send(body: bytes, headers: dict[str, str]) -> tuple[int, str]:
            async with session.post(url, data=body, headers=headers) as response:
                return response.status, await response.text()

        assert await send(order(40, 999), signed(order(41, 999))) == (401, "unauthorized\n")  # tampered
        assert await send(order(40, 999), {"Content-Type": "application/json"}) == (401, "unauthorized\n")
        assert await send(order(40, 999), signed(order(40, 999), "wrong-key")) == (401, "unauthorized\n")
        no_order = b'{"total": 5}'
        assert await send(no_order, signed(no_order)) == (500, "transformPayload failed\n")
        assert await send(order(41, 250), signed(order(41, 250))) == (200, "success")
        [request] = await http_sink.wait_for(1, timeout=20)
        # the prices poll (nothing listens on its port) failed: a record for the sensor that waits for prices
        [poll] = await trace.wait(lambda r: r.step == "source" and getattr(r, "kind", "") == "httpPoll")
    refusals = [(r.sensor, r.source, r.subject, r.problem, r.status) for r in trace.records
                if isinstance(r, SourceProblem) and r.kind == "webhook"]
    assert refusals == [
        ("weikio-orders", "orders-hook", "orders-hook", "X-Signature does not match", 401),
        ("weikio-orders", "orders-hook", "orders-hook", "no X-Signature header", 401),
        ("weikio-orders", "orders-hook", "orders-hook", "X-Signature does not match", 401),
        ("weikio-orders", "orders-hook", "orders-hook", "transformPayload failed: transform raised KeyError: 'order'",
         500)]
    assert isinstance(poll, SourceProblem) and (poll.sensor, poll.source) == ("weikio-orders", "prices")
    assert poll.problem.startswith("poll failed: ") and "Bearer" not in poll.problem
    # the refused ones were never published: the first request the sink got is the good one's
    assert (request.path, request.json()) == ("/fulfil", {"orderId": "41", "customer": "ada@example.com"})
    assert "X-Signature does not match" in caplog.text and "no X-Signature header" in caplog.text
    assert "transformPayload failed: transform raised KeyError: 'order'" in caplog.text
    assert SECRET not in caplog.text


FLAKY_SOURCE = """\
import asyncio
from pathlib import Path

RUNS = Path(__file__).with_name("runs.txt")


async def events(params):
    runs = int(RUNS.read_text()) if RUNS.exists() else 0
    RUNS.write_text(str(runs + 1))
    yield {"run": runs + 1, "device": params["DeviceId"], "token": params["Token"]}
    if runs == 0:
        raise RuntimeError("device unplugged")
    try:
        await asyncio.Event().wait()  # the second run keeps running until the engine stops it
    finally:
        Path(__file__).with_name("stopped.txt").write_text("cleaned up")
"""

CUSTOM_SOURCE = """\
apiVersion: weik.io/v1
kind: EventSource
metadata:
  name: device
spec:
  Type: custom
  EventType: com.example.device.reading
  EventSource: lab
  Parameters:
    Implementation: flaky.py
    DeviceId: d-7
    Token: ${device-token}
  Variables:
    - SourceColumn: device
      TargetVariable: DeviceId
"""

CUSTOM_SENSOR = """\
apiVersion: argoproj.io/v1alpha1
kind: Sensor
metadata:
  name: readings
spec:
  dependencies:
    - name: reading
      eventSourceName: device
      eventName: device
      filters:
        context: {type: com.example.device.reading}
  triggers:
    - template:
        name: post
        http:
          url: SINK/readings
          method: POST
          payload:
            - src: {dependencyName: reading, dataKey: run}
              dest: run
            - src: {dependencyName: reading, dataKey: variables.DeviceId}
              dest: device
"""


async def test_a_custom_source_that_raises_is_restarted_and_its_events_fire(
        tmp_path: Path, nats_url: str, http_sink: HttpSink, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    folder = write_config(tmp_path / "config", CUSTOM_SOURCE, CUSTOM_SENSOR.replace("SINK", http_sink.url))
    (folder / "flaky.py").write_text(FLAKY_SOURCE)
    secrets = tmp_path / "secrets"
    (secrets / "device-token").mkdir(parents=True)
    (secrets / "device-token" / "value").write_text("tok-123\n")
    trace = TraceLog()
    async with Engine(folder, nats_url, secrets_dir=secrets, tracer=trace):
        requests = await http_sink.wait_for(2, timeout=30)
    assert (folder / "stopped.txt").read_text() == "cleaned up"  # the engine's stop ran the generator's finally
    [raised] = [r for r in trace.records if isinstance(r, SourceProblem)]
    assert (raised.sensor, raised.kind, raised.source, raised.problem) == (
        "readings", "python", "device", "events() raised RuntimeError: device unplugged")
    assert [r.json() for r in requests] == [{"run": "1", "device": "d-7"}, {"run": "2", "device": "d-7"}]
    assert ("python source device/device: events() raised RuntimeError: device unplugged; restarting in 1s"
            in caplog.text)
    assert "tok-123" not in caplog.text


FILE_SOURCES = """\
apiVersion: argoproj.io/v1alpha1
kind: EventSource
metadata:
  name: drop
spec:
  file:
    created:
      eventType: CREATE
      watchPathConfig:
        directory: DIR/argo
        pathRegexp: "\\\\.csv$"
---
apiVersion: weik.io/v1
kind: EventSource
metadata:
  name: inbox
spec:
  Type: file-watch
  EventType: com.example.inbox.file
  EventSource: inbox
  Parameters:
    Path: DIR/weik
    Pattern: "*.csv"
    IncludeSubdirectories: "true"
    NotifyFilters: Created
"""

FILE_SENSOR = """\
apiVersion: argoproj.io/v1alpha1
kind: Sensor
metadata:
  name: files
spec:
  dependencies:
    - {name: argo, eventSourceName: drop, eventName: created}
    - {name: weik, eventSourceName: inbox, eventName: inbox}
  triggers:
    - template:
        name: argo
        conditions: argo
        http:
          url: SINK/argo
          method: POST
          payload:
            - src: {dependencyName: argo, dataKey: name}
              dest: path
    - template:
        name: weik
        conditions: weik
        http:
          url: SINK/weik
          method: POST
          payload:
            - src: {dependencyName: weik, dataKey: name}
              dest: name
            - src: {dependencyName: weik, dataKey: change}
              dest: change
"""


async def test_file_sources_report_files_written_while_the_engine_runs(tmp_path: Path, nats_url: str,
                                                                       http_sink: HttpSink) -> None:
    watched = tmp_path / "watched"
    (watched / "argo").mkdir(parents=True)
    (watched / "weik" / "2026").mkdir(parents=True)
    folder = write_config(tmp_path / "config", FILE_SOURCES.replace("DIR", str(watched)),
                          FILE_SENSOR.replace("SINK", http_sink.url))
    async with Engine(folder, nats_url):
        # the watchers start with the engine: write new files until both kinds reported one
        written: list[str] = []
        for attempt in range(40):
            (watched / "argo" / f"a{attempt}.csv").write_text("x")
            (watched / "argo" / f"a{attempt}.txt").write_text("not reported")
            (watched / "weik" / "2026" / f"w{attempt}.csv").write_text("y")
            (watched / "weik" / f"w{attempt}.txt").write_text("not reported")
            written.append(str(attempt))
            await asyncio.sleep(0.5)
            paths = {r.path for r in http_sink.requests}
            if {"/argo", "/weik"} <= paths:
                break
        await asyncio.sleep(2)  # a file written just before the break is still reported
        requests = list(http_sink.requests)
    argo = [r.json()["path"] for r in requests if r.path == "/argo"]
    weik = [r.json() for r in requests if r.path == "/weik"]
    assert argo and all(p.startswith(str(watched / "argo" / "a")) and p.endswith(".csv") for p in argo)
    assert weik and all(w["name"].startswith("2026/w") and w["name"].endswith(".csv") and w["change"] == "Created"
                        for w in weik)
    assert len(argo) == len(set(argo)) and len({w["name"] for w in weik}) == len(weik)  # each file once

"""Reloading the configuration of a running engine (`--watch`, SIGHUP) on a real nats-server, firing at a real HTTP
sink: events published during a reload fire exactly once, a bad new configuration is refused (the old one keeps
firing), and `sensorium run` reloads on SIGHUP. Also the operator flags: `--bus-port` and the quickstart's ports
from the environment."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import sys
from collections import Counter
from pathlib import Path

import aiohttp
import pytest

from sensorium.engine.assemble import load_checked
from tests.engine_harness import Engine, EngineProcess, event, free_port, publish, unique
from tests.fixtures_http import HttpSink, Reply

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parent.parent


def sensor(name: str, source: str, url: str) -> str:
    return f"""\
apiVersion: argoproj.io/v1alpha1
kind: Sensor
metadata: {{name: {name}}}
spec:
  dependencies: [{{name: d, eventSourceName: {source}, eventName: go}}]
  triggers:
    - template:
        name: t
        http:
          url: {url}
          method: POST
          payload:
            - src: {{dependencyName: d, contextKey: id}}
              dest: id
"""


def webhook(name: str, port: int, endpoint: str) -> str:
    return f"""\
apiVersion: argoproj.io/v1alpha1
kind: EventSource
metadata: {{name: {name}}}
spec:
  webhook:
    go: {{port: "{port}", endpoint: {endpoint}, method: POST}}
"""


async def logged(caplog: pytest.LogCaptureFixture, text: str, timeout: float = 20.0) -> str:
    """The first captured log message containing `text`, waiting for it."""
    for _ in range(int(timeout / 0.05)):
        found = [r.getMessage() for r in caplog.records if text in r.getMessage()]
        if found:
            return found[0]
        await asyncio.sleep(0.05)
    raise AssertionError(f"no log line with {text!r}:\n" + "\n".join(r.getMessage() for r in caplog.records))


def reloading_engine(folder: Path, nats_url: str) -> Engine:
    engine = Engine(folder, nats_url, ack_wait=2.0)
    engine.options.reload = lambda: load_checked([folder])
    engine.options.watch = [folder]
    return engine


async def test_events_published_during_a_reload_fire_exactly_once(nats_url: str, http_sink: HttpSink,
                                                                  tmp_path: Path,
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "sensorium.engine")
    source, changing, steady = unique("shop"), unique("changing"), unique("steady")
    kept_port, moved_port = free_port(), free_port()
    folder = tmp_path / "config"
    folder.mkdir()
    (folder / "changing.yaml").write_text(sensor(changing, source, f"{http_sink.url}/v1"))
    (folder / "steady.yaml").write_text(sensor(steady, source, f"{http_sink.url}/steady"))
    (folder / "kept.yaml").write_text(webhook(unique("kept"), kept_port, "/kept"))
    (folder / "moved.yaml").write_text(webhook(unique("moved"), moved_port, "/old"))
    http_sink.default = Reply(delay=0.05)  # firings are in flight when the reload stops the changed sensor
    events = [event(source, "go") for _ in range(150)]
    async with reloading_engine(folder, nats_url):
        for index, item in enumerate(events):
            await publish(nats_url, item)
            if index == 40:
                (folder / "changing.yaml").write_text(sensor(changing, source, f"{http_sink.url}/v2"))
                (folder / "moved.yaml").write_text(webhook(unique("moved"), moved_port, "/new"))
        summary = await logged(caplog, "reloaded:")
        await http_sink.wait_for(2 * len(events), timeout=60)
        async with aiohttp.ClientSession() as session:
            statuses = []
            for url in (f"http://127.0.0.1:{kept_port}/kept", f"http://127.0.0.1:{moved_port}/new",
                        f"http://127.0.0.1:{moved_port}/old"):
                async with session.post(url, json={}) as resp:
                    statuses.append(resp.status)
        await asyncio.sleep(3.0)  # past ack_wait: an event left unacknowledged would be redelivered by now
    assert summary == ("reloaded: 1 sensor(s) started or replaced, 0 removed, 1 unchanged; 1 source unit(s) "
                       "(re)started, 0 stopped, 1 unchanged")
    assert statuses == [200, 200, 404]
    ids = {e.id for e in events}
    changed = Counter(json.loads(r.body)["id"] for r in http_sink.requests if r.path in ("/v1", "/v2"))
    unchanged = Counter(json.loads(r.body)["id"] for r in http_sink.requests if r.path == "/steady")
    assert set(changed) == ids and set(changed.values()) == {1}
    assert set(unchanged) == ids and set(unchanged.values()) == {1}
    paths = Counter(r.path for r in http_sink.requests)
    assert paths["/v1"] > 0 and paths["/v2"] > 0, paths  # both versions fired: the reload happened mid-stream


async def test_a_bad_new_config_is_refused_and_the_old_one_keeps_firing(nats_url: str, http_sink: HttpSink,
                                                                         tmp_path: Path,
                                                                         caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "sensorium.engine")
    source, name = unique("shop"), unique("kept")
    folder = tmp_path / "config"
    folder.mkdir()
    path = folder / "sensor.yaml"
    path.write_text(sensor(name, source, f"{http_sink.url}/old"))
    async with reloading_engine(folder, nats_url):
        broken = sensor(name, source, f"{http_sink.url}/new").replace("  triggers:", "\ttriggers:")
        broken = broken.replace("eventName: go}]", "eventNme: go}]")
        path.write_text(broken)
        refused = await logged(caplog, "reload refused")
        await publish(nats_url, event(source, "go"))
        (request,) = await http_sink.wait_for(1)
    assert refused == ("reload refused, the running configuration is kept: "
                       f"{path}:6: invalid YAML: a tab character cannot indent YAML: use spaces")
    assert request.path == "/old"
    assert not [r for r in caplog.records if r.getMessage().startswith("reloaded")]


async def test_sighup_reloads_a_running_sensorium(nats_url: str, http_sink: HttpSink, tmp_path: Path) -> None:
    source, name = unique("shop"), unique("hup")
    folder = tmp_path / "config"
    folder.mkdir()
    (folder / "sensor.yaml").write_text(sensor(name, source, f"{http_sink.url}/before"))
    engine = EngineProcess(folder, nats_url)
    await engine.start()
    try:
        await publish(nats_url, event(source, "go"))
        await http_sink.wait_for(1, timeout=20)
        (folder / "sensor.yaml").write_text(sensor(name, source, f"{http_sink.url}/after"))
        assert engine.proc is not None
        engine.proc.send_signal(signal.SIGHUP)
        for _ in range(400):
            if any("reloaded:" in line for line in engine.output):
                break
            await asyncio.sleep(0.05)
        await publish(nats_url, event(source, "go"))
        requests = await http_sink.wait_for(2, timeout=20)
    finally:
        code = await engine.terminate()
    assert [r.path for r in requests] == ["/before", "/after"], "".join(engine.output)
    assert code == 0


async def test_quickstart_ports_from_the_environment_and_a_pinned_bus_port(tmp_path: Path) -> None:
    webhook_port, sink_port, bus_port = free_port(), free_port(), free_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "WEBHOOK_PORT": str(webhook_port), "SINK_PORT": str(sink_port)}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "sensorium", "run", str(ROOT / "examples" / "quickstart"), "--sink", str(sink_port),
        "--bus-port", str(bus_port), "--webhook-host", "127.0.0.1", cwd=tmp_path, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    lines: list[str] = []
    try:
        assert proc.stdout is not None
        while not any("engine running" in line for line in lines):
            line = (await asyncio.wait_for(proc.stdout.readline(), 60)).decode()
            assert line, "".join(lines)
            lines.append(line)
        assert (tmp_path / ".sensorium" / "bus.url").read_text() == f"nats://127.0.0.1:{bus_port}\n"
        async with aiohttp.ClientSession() as session, session.post(
                f"http://127.0.0.1:{webhook_port}/example", json={"message": "hello"}) as resp:
            assert resp.status == 200
        while not any(line.startswith("sink received:") for line in lines):
            line = (await asyncio.wait_for(proc.stdout.readline(), 20)).decode()
            assert line, "".join(lines)
            lines.append(line)
    finally:
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.wait(), 30)
    assert [line.strip() for line in lines if line.startswith("sink received:")] == [
        'sink received: POST /hello {"message":"hello","from":"webhook"}']

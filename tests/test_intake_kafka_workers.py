"""Issue 13 item 3 on Kafka: `sensorium run --workers 2` shares the work through the intake's consumer group.
Records are spread over the topic's partitions (12) by their key (Argo's `<eventSourceName>.<eventName>`, FNV-1a),
both workers fire, nothing is lost, and a worker killed with `kill -9` is restarted with every event still fired
(at-least-once). Real Kafka broker, real HTTP sink."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections import Counter
from pathlib import Path

import pytest

from sensorium.buses.kafka.bus import DEFAULT_PARTITIONS
from sensorium.engine.goport.sarama import SaramaHashPartitioner
from tests.engine_harness import event, publish, unique
from tests.fixtures_http import HttpSink, Reply
from tests.test_workers import Output, sink_counts

KEYS = 6


def config(source: str, sink: str) -> str:
    return "".join(f"""---
apiVersion: argoproj.io/v1alpha1
kind: Sensor
metadata: {{name: {source}-{k}}}
spec:
  dependencies:
    - {{name: d, eventSourceName: {source}, eventName: e{k}}}
  triggers:
    - template:
        name: t
        http:
          url: {sink}/k{k}
          headers: {{X-Worker: "${{SENSORIUM_WORKER_ID}}"}}
          payload: [{{src: {{dependencyName: d, dataKey: n}}, dest: n}}]
""" for k in range(KEYS))


@pytest.mark.integration
async def test_two_workers_share_the_kafka_group_and_a_killed_one_loses_nothing(
        kafka_broker: str, tmp_path: Path, http_sink: HttpSink) -> None:
    every = list(range(DEFAULT_PARTITIONS))
    half = DEFAULT_PARTITIONS // 2  # the range assignor gives each of two members one half of the partitions
    while True:  # a source whose keys land in both halves, so that both workers have work
        source = unique("kw")
        partitions = {SaramaHashPartitioner()(f"{source}.e{k}".encode(), every, every) for k in range(KEYS)}
        if min(partitions) < half <= max(partitions):
            break
    (tmp_path / "sensors.yaml").write_text(config(source, http_sink.url))
    bus_url = f"kafka://{kafka_broker}"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    parent = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "sensorium", "run", str(tmp_path / "sensors.yaml"), "--workers", "2",
        "--bus", bus_url, "--group", unique("workers"), "--ack-wait", "3", "--no-bus-trace",
        "--max-in-flight", "64", "--data-dir", str(tmp_path / "data"), cwd=tmp_path, env=env,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
    assert parent.stderr is not None
    out = Output(parent.stderr)

    def events(numbers: range) -> list:  # type: ignore[type-arg]
        return [event(source, f"e{n % KEYS}", json.dumps({"n": n}).encode()) for n in numbers]

    try:
        await out.wait(r"engine running: 6 sensor", count=2, timeout=120)
        await asyncio.sleep(5.0)  # both members joined: the group's partitions are split between them
        await publish(bus_url, *events(range(300)))
        counts = await sink_counts(http_sink, 300, timeout=120)
        await asyncio.sleep(2.0)
        counts = Counter(int(r.json()["n"]) for r in http_sink.requests)
        assert set(counts) == set(range(300))
        assert [n for n, c in counts.items() if c > 1] == []
        by_worker = Counter(r.header("X-Worker") for r in http_sink.requests)
        print(f"kafka clean run: 300 events over partitions {sorted(partitions)}, by worker {dict(by_worker)}")
        assert len(partitions) >= 2
        assert set(by_worker) == {"0", "1"}, by_worker

        pid = int((await out.wait(r"worker 1 started \(pid (\d+)\)"))[0].group(1))
        http_sink.reset()
        http_sink.default = Reply(delay=0.05)
        publishing = asyncio.create_task(publish(bus_url, *events(range(300, 500))))
        await asyncio.sleep(0.5)
        os.kill(pid, signal.SIGKILL)
        await out.wait(r"worker 1 \(pid \d+\) exited with status -9; restarting")
        await publishing
        counts = await sink_counts(http_sink, 200, timeout=180)
        assert set(counts) == set(range(300, 500))
        print(f"kafka after kill -9: 200 events, {sum(c - 1 for c in counts.values())} fired twice")
    finally:
        if parent.returncode is None:
            parent.send_signal(signal.SIGTERM)
            code = await asyncio.wait_for(parent.wait(), 90)
            assert code == 0, "\n".join(out.lines[-30:])

"""The README's quickstart, as written: `sensorium run examples/quickstart --sink 9000` on the embedded bus."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path

import aiohttp
import pytest

pytestmark = pytest.mark.integration  # runs `sensorium run` (and its embedded nats-server) as child processes

ROOT = Path(__file__).resolve().parent.parent


async def test_quickstart_fires_on_embedded_bus_and_survives_a_kill(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    lines: list[str] = []

    async def start() -> asyncio.subprocess.Process:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "sensorium", "run", str(ROOT / "examples" / "quickstart"), "--sink", "9000",
            cwd=tmp_path, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        assert proc.stdout is not None

        async def pump() -> None:
            assert proc.stdout is not None
            while line := await proc.stdout.readline():
                lines.append(line.decode())

        asyncio.get_running_loop().create_task(pump())
        for _ in range(300):
            if any("engine running" in line for line in lines):
                return proc
            await asyncio.sleep(0.1)
        raise AssertionError("quickstart did not start:\n" + "".join(lines))

    async def wait_received(count: int) -> list[str]:
        for _ in range(100):
            got = [line.strip() for line in lines if line.startswith("sink received:")]
            if len(got) >= count:
                return got
            await asyncio.sleep(0.1)
        raise AssertionError("sink got too little:\n" + "".join(lines))

    proc = await start()
    async with aiohttp.ClientSession() as session:
        for message in ("hello", "bye"):
            async with session.post("http://127.0.0.1:12000/example", json={"message": message}) as resp:
                assert resp.status == 200
    assert await wait_received(1) == ['sink received: POST /hello {"message":"hello","from":"webhook"}']

    # `sensorium publish` finds the embedded bus through .sensorium/bus.url
    event = {"specversion": "1.0", "id": "ev-1", "source": "webhook", "type": "webhook", "subject": "example",
             "datacontenttype": "application/json", "data": {"body": {"message": "hello from a file"}}}
    (tmp_path / "event.json").write_text(json.dumps(event))
    pub = await asyncio.create_subprocess_exec(sys.executable, "-m", "sensorium", "publish", "event.json",
                                               cwd=tmp_path, env=env, stdout=asyncio.subprocess.PIPE)
    out, _ = await pub.communicate()
    assert pub.returncode == 0, out
    assert (await wait_received(2))[1] == (
        'sink received: POST /hello {"message":"hello from a file","from":"webhook"}')

    # killed outright: the embedded nats-server goes with it, and a restart reuses the same data directory
    proc.send_signal(signal.SIGKILL)
    await proc.wait()
    lines.clear()
    proc = await start()
    proc.send_signal(signal.SIGTERM)
    assert await asyncio.wait_for(proc.wait(), 30) == 0
    assert not (tmp_path / ".sensorium" / "bus.url").exists()

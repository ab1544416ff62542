"""`sensorium run --workers N` webhooks on one port (SO_REUSEPORT): how the kernel spreads connections.

    python -m bench.webhook_workers 1 2 1 2

For each N given: starts `sensorium run --workers N --ops-port P` (embedded bus, one webhook), POSTs 2,000 events
with a new connection each (32 in flight), prints the POST rate and each worker's count of 200 answers
(`sensorium_webhook_requests_total`, worker i on port P + i). Interleave the runs: the machine is shared.
"""

from __future__ import annotations

import asyncio
import pathlib
import re
import signal
import sys
import tempfile
import time

import aiohttp

from sensorium.buses.embedded import free_port

SOURCE = """apiVersion: argoproj.io/v1alpha1
kind: EventSource
metadata: {{name: shop}}
spec:
  webhook:
    orders: {{port: "{port}", endpoint: /orders, method: POST}}
"""


async def measure(workers: int, posts: int = 2000) -> None:
    folder = pathlib.Path(tempfile.mkdtemp())
    port, ops = free_port(), free_port()
    (folder / "s.yaml").write_text(SOURCE.format(port=port))
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "sensorium", "run", str(folder / "s.yaml"), "--workers", str(workers),
        "--webhook-host", "127.0.0.1", "--no-bus-trace", "--ops-port", str(ops), "--data-dir", str(folder / "data"),
        "--log-level", "WARNING", stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
    await asyncio.sleep(6)  # start-up
    started = time.perf_counter()
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True, limit=32)) as session:
        async def one(n: int) -> None:
            async with session.post(f"http://127.0.0.1:{port}/orders", json={"n": n}) as response:
                assert response.status == 200, response.status

        await asyncio.gather(*(one(n) for n in range(posts)))
    elapsed = time.perf_counter() - started
    answered = []
    async with aiohttp.ClientSession() as session:
        for worker in range(workers):
            async with session.get(f"http://127.0.0.1:{ops + (worker if workers > 1 else 0)}/metrics") as response:
                found = re.search(r'sensorium_webhook_requests_total\{[^}]*code="200"[^}]*\} (\S+)',
                                  await response.text())
                answered.append(int(float(found.group(1))) if found else 0)
    print(f"workers={workers}: {posts} POSTs in {elapsed:.2f}s = {posts / elapsed:.0f}/s; 200s per worker {answered}")
    proc.send_signal(signal.SIGTERM)
    await proc.wait()


if __name__ == "__main__":
    for count in sys.argv[1:] or ["1", "2"]:
        asyncio.run(measure(int(count)))

"""`sensorium replay` of N stored events, each firing two HTTP triggers, to a local sink: the whole command's time.

    python -m bench.replay 1000

Starts a nats-server (JetStream, temporary data), stores N events, then times `sensorium replay --since 1h` as a
child process (start-up and connecting included) three ways: firing without the bus trace, a dry run, and firing
with the bus trace (the default). The sink is an aiohttp server in this process. The machine is shared: run it
more than once.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from aiohttp import web

from sensorium.buses.base import EventKey
from sensorium.buses.embedded import EmbeddedNats
from sensorium.buses.jetstream.bus import JetStreamBus
from sensorium.engine.core.cloudevent import CloudEvent, encode_structured, new_id, now_rfc3339

SENSOR = """apiVersion: argoproj.io/v1alpha1
kind: Sensor
metadata: {{name: orders}}
spec:
  dependencies:
    - {{name: order, eventSourceName: shop, eventName: orders,
       filters: {{data: [{{path: kind, type: string, value: [paid]}}]}}}}
  triggers:
    - template:
        name: notify
        http: {{url: "{sink}/orders", method: POST,
               payload: [{{src: {{dependencyName: order, dataKey: n}}, dest: n}}]}}
    - template:
        name: audit
        http: {{url: "{sink}/audit", method: POST,
               payload: [{{src: {{dependencyName: order, dataKey: n}}, dest: n}}]}}
"""


async def main(count: int) -> None:
    tmp = Path(tempfile.mkdtemp())
    server = EmbeddedNats(tmp / "nats")
    await server.start()
    received = 0

    async def handle(request: web.Request) -> web.Response:
        nonlocal received
        await request.read()
        received += 1
        return web.Response()

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    sockets: Any = site._server
    port = sockets.sockets[0].getsockname()[1]
    try:
        (tmp / "sensor.yaml").write_text(SENSOR.format(sink=f"http://127.0.0.1:{port}"))
        bus = JetStreamBus(server.url)
        await bus.start()
        events = [CloudEvent(id=new_id(), source="shop", type="webhook", subject="orders", time=now_rfc3339(),
                             datacontenttype="application/json", data=json.dumps({"n": i, "kind": "paid"}).encode())
                  for i in range(count)]
        await bus.publish_many([(EventKey("shop", "orders"), e.id, encode_structured(e)) for e in events])
        await bus.close()
        for label, extra in (("fire, no bus trace", ["--no-bus-trace"]), ("dry run", ["--dry-run", "--no-bus-trace"]),
                             ("fire, bus trace", [])):
            received = 0
            started = time.perf_counter()
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "sensorium", "replay", str(tmp / "sensor.yaml"), "--bus", server.url,
                "--sensor", "orders", "--since", "1h", *extra, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE, env={**os.environ, "PYTHONUNBUFFERED": "1"})
            out, _ = await proc.communicate()
            took = time.perf_counter() - started
            summary = out.decode().strip().splitlines()[-1] if out else ""
            print(f"{label:20} exit {proc.returncode}  {took:5.2f} s  {received} requests  {summary}")
    finally:
        await runner.cleanup()
        await server.stop()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 1000))

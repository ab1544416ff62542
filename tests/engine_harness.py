"""Running the real engine in tests: in-process (`Engine`) or as a `sensorium run` subprocess (`EngineProcess`)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
import uuid
from pathlib import Path

from sensorium.buses.base import Bus, EventKey
from sensorium.engine.app import EngineOptions, run_engine
from sensorium.engine.assemble import load_checked
from sensorium.engine.busconfig import from_url
from sensorium.engine.core.cloudevent import CloudEvent, encode_structured, new_id, now_rfc3339
from sensorium.engine.runner import RunnerSettings
from sensorium.engine.trace.records import NULL_TRACER, Tracer


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def event(source: str, subject: str, data: bytes | None = b'{"a":1}', **attrs: str) -> CloudEvent:
    return CloudEvent(id=attrs.pop("id", new_id()), source=source, type=attrs.pop("type", "webhook"),
                      subject=subject, datacontenttype=attrs.pop("datacontenttype", "application/json"),
                      time=now_rfc3339(), data=data, extensions=attrs)


async def publish(bus_url: str, *events: CloudEvent, raw: list[tuple[EventKey, bytes]] | None = None) -> None:
    bus: Bus = from_url(bus_url)
    await bus.start()
    try:
        await bus.publish_many([(EventKey(e.source, e.subject), e.id, encode_structured(e)) for e in events])
        for key, body in raw or []:
            await bus.publish(key, new_id(), body)
    finally:
        await bus.close()


def order_sensor(source: str, sink_url: str, event: str = "example") -> str:
    """A Sensor on `source`/`event` POSTing `{"order": <the event data's body.order>}` to `sink_url`/got: how
    the event source tests see an event go all the way through the engine."""
    return f"""
apiVersion: argoproj.io/v1alpha1
kind: Sensor
metadata: {{name: {unique("order-sensor")}}}
spec:
  dependencies: [{{name: d, eventSourceName: {source}, eventName: {event}}}]
  triggers:
    - template:
        name: t
        http:
          url: {sink_url}/got
          payload: [{{src: {{dependencyName: d, dataKey: body.order}}, dest: order}}]
"""


def write_config(folder: Path, *documents: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for index, text in enumerate(documents):
        (folder / f"doc{index}.yaml").write_text(text)
    return folder


class Engine:
    """`async with Engine(...)`: the engine runs in this event loop until the block ends. Give it a
    `tests.trace_log.TraceLog` as `tracer` to wait on its records (e.g. the `ack` of the last event)."""

    def __init__(self, config_dir: Path, bus_url: str | None, *, secrets_dir: Path | None = None,
                 ack_wait: float = 30.0, data_dir: Path | None = None, tracer: Tracer = NULL_TRACER) -> None:
        self.config = load_checked([config_dir])
        self.options = EngineOptions(bus_url=bus_url, secrets_dir=secrets_dir, webhook_host="127.0.0.1",
                                     data_dir=data_dir or config_dir / ".sensorium", handle_signals=False,
                                     runner=RunnerSettings(ack_wait=ack_wait, fetch_timeout=0.2), tracer=tracer)
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        ready = asyncio.Event()
        self._stop = asyncio.Event()
        self._task = asyncio.create_task(run_engine(self.config, self.options, self._stop, ready))
        waiter = asyncio.create_task(ready.wait())
        done, _ = await asyncio.wait({waiter, self._task}, timeout=60, return_when=asyncio.FIRST_COMPLETED)
        if waiter not in done:
            waiter.cancel()
            if self._task in done:
                self._task.result()  # raises what stopped the engine
            raise TimeoutError("engine did not become ready within 60 s")

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            await asyncio.wait_for(self._task, 30)
            self._task = None

    async def __aenter__(self) -> Engine:
        await self.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.stop()


class EngineProcess:
    """`sensorium run` as a child process, for tests that kill it."""

    def __init__(self, config_dir: Path, bus_url: str, *extra: str) -> None:
        self.args = [sys.executable, "-m", "sensorium", "run", str(config_dir), "--bus", bus_url,
                     "--webhook-host", "127.0.0.1", *extra]
        self.proc: asyncio.subprocess.Process | None = None
        self.output: list[str] = []  # stdout and stderr lines; complete once kill() or terminate() returned
        self._pumping: asyncio.Task[None] | None = None

    async def start(self, timeout: float = 60.0) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            *self.args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"})
        assert self.proc.stdout is not None

        async def ready() -> None:
            assert self.proc is not None and self.proc.stdout is not None
            while True:
                line = (await self.proc.stdout.readline()).decode()
                if not line:
                    raise RuntimeError("engine exited before it was ready:\n" + "".join(self.output))
                self.output.append(line)
                if "engine running" in line:
                    return

        await asyncio.wait_for(ready(), timeout)
        self._pumping = asyncio.get_running_loop().create_task(self._pump())

    async def _pump(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        while line := await self.proc.stdout.readline():
            self.output.append(line.decode())

    async def _pumped(self) -> None:
        """The output read to its end (the process exited; a child of it still holding the pipe: 5 s at most)."""
        if self._pumping is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._pumping), 5)

    async def kill(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.send_signal(signal.SIGKILL)
            await self.proc.wait()
        await self._pumped()

    async def terminate(self) -> int:
        assert self.proc is not None
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.proc.wait(), 30)
        if self.proc.returncode is None:
            await self.kill()
        await self._pumped()
        return self.proc.returncode or 0

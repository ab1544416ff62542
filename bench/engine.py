"""Benchmark: events/s and publish -> HTTP sink latency of the engine, against a bare loop, in one run.

    python -m bench.engine [--events 10000] [--in-flight 50] [--rate 200 --rate2 1000 --paced-events 600] [--rounds 1]
                           [--only engine,bare-aiohttp] [--in-process] [--profile DIR]
                           [--trace-rounds 48] [--trace-events 600] [--trace-restart 4] [--instructions]

One command, one harness process, which:
  1. starts an embedded nats-server (JetStream, temporary data directory) and an HTTP sink (aiohttp server on
     127.0.0.1 that answers 200 at once and records, per event id, the publish timestamp carried in the body
     and the arrival time);
  2. measures the sink's ceiling: plain aiohttp POSTs with --in-flight requests in flight, straight to the sink;
  3. runs the engine (`engine.app.run_engine`, the function behind `sensorium run`) with a realistic sensor: one
     dependency with a context filter and a data filter, an HTTP trigger whose payload has three parameters
     (contextKey, dataKey, dataKey with useRawData), POSTing to the sink;
  4. runs the same load through two bare loops: a nats-py pull consumer on the same stream (batched fetch), JSON
     decode, one POST, ack; once with the engine's `HttpClient`, once with a plain `aiohttp.ClientSession`;
     same in-flight bound as the engine's runner (`RunnerSettings.max_in_flight`), same fetch batch;
  5. measures what tracing costs (`Bench.tracing`): the engine with tracing off, with --trace-format json
     --trace-file and with the bus trace, side by side, taking turns at bursts of --trace-events events
     (--trace-rounds rounds, new processes every --trace-restart rounds); --instructions counts instructions per
     event under valgrind instead of trusting times.

Every system under test (SUT) runs in its own child process (`python -m bench.engine --worker ...`), so the
harness (sink + publisher) and the SUT do not share one event loop; `--in-process` runs them in the harness's
loop instead (the sink then competes with the SUT for one core). Each phase uses its own event source name
(hence its own subject and durable consumer), warms up, and ends by purging the stream and deleting its
consumers. Load per phase: a burst of --events events published with `JetStreamBus.publish_many` (each event's
data carries its publish time in ns), for throughput (first publish -> last arrival at the sink), then
--paced-events events at --rate events/s, then at --rate2 events/s, for latency at a steady load (burst latency
is mostly queueing). CPU per event is the SUT process's user+system time over the burst window (/proc), which is
steadier than wall-clock rates on a shared machine.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import socket
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import aiohttp
from aiohttp import web

from bench import callgrind
from bench.cpuclock import process_cpu_seconds
from sensorium.buses.base import Bus, EventKey
from sensorium.engine.trace.hub import DEFAULT_INTERVAL

ROOT = Path(__file__).resolve().parent.parent
EVENT_NAME = "bench"
JSON_HEADERS = (("Content-Type", "application/json"),)
# "engine-inline" is the engine with the stage evaluated on the loop (sensors.inline.InlineGate) instead of in
# the sensor's stage thread: a proposal measured here by patching the runner in the worker process only.
BARE_KINDS = ("bare-aiohttp", "bare-httpclient", "bare-puller")  # the baselines the engine is compared with
TABLE_KINDS = ("ceiling", *BARE_KINDS, "engine", "engine-inline")
# The side-by-side comparison against tracing off also measures the event loop: "engine-uvloop" is tracing off on
# the loop `sensorium run` picks (uvloop), every other variant runs on the standard asyncio loop.
TRACE_VARIANTS = ("engine-trace-json", "engine-trace-bus", "engine-trace-bus-all", "engine-trace-bus-thread",
                  "engine-trace-bus-steps", "engine-trace-dropped", "engine-trace-calls", "engine-trace-build",
                  "engine-trace-encode", "engine-metrics", "engine-uvloop")
KINDS = TABLE_KINDS + TRACE_VARIANTS
LABELS = {
    "ceiling": "sink ceiling (plain aiohttp, no bus)",
    "bare-aiohttp": "bare loop + aiohttp.ClientSession",
    "bare-httpclient": "bare loop + engine HttpClient",
    "bare-puller": "bare loop + HttpClient + engine's fetch",
    "engine": "engine, tracing off",
    "engine-inline": "engine, tracing off, stage inline",
    "engine-uvloop": "engine, tracing off, uvloop (run's default)",
    "engine-trace-json": "engine, --trace-format json --trace-file",
    "engine-trace-bus": "engine, bus trace (run's default)",
    "engine-trace-bus-all": "engine, bus trace, --trace-detail all",
    "engine-trace-calls": "engine, tracing on, records not built",
    "engine-trace-build": "engine, records built, not encoded",
    "engine-trace-encode": "engine, records encoded, not published",
    "engine-trace-bus-thread": "engine, bus trace encoded in a thread",
    "engine-trace-bus-steps": "engine, bus trace, no routine records",
    "engine-trace-dropped": "engine, bus trace, compressed, not sent",
    "engine-metrics": "engine, tracing off, metrics (--ops-port)",
}
# The `sensorium run` options of each engine variant (besides the sensor file); bus tracing is on unless
# --no-bus-trace, so "tracing off" needs it.
ENGINE_RUN_ARGS: dict[str, tuple[str, ...]] = {
    "engine": ("--no-bus-trace",),
    "engine-inline": ("--no-bus-trace",),
    "engine-uvloop": ("--no-bus-trace",),
    "engine-trace-json": ("--no-bus-trace", "--trace-format", "json", "--trace-file", "{trace_file}"),
    "engine-trace-bus": (),
    "engine-trace-bus-all": ("--trace-detail", "all"),
    # where the bus trace's cost goes: the same run's default trace, cut short at each stage (bench.tracebuild)
    "engine-trace-calls": (),
    "engine-trace-build": (),
    "engine-trace-encode": (),
    "engine-trace-bus-thread": (),
    "engine-trace-bus-steps": (),
    "engine-trace-dropped": (),
    "engine-metrics": ("--no-bus-trace", "--ops-port", "{ops_port}"),
}
LABEL_WIDTH = 41
# --instructions: under callgrind the engine runs about 30 times slower (28 against ~850 events/s here), so the
# trace writer's 0.1 s batches would hold a few events instead of dozens and its per-batch work would count many
# times over per event. Stretched 30 times they held 532 records, against 373-385 in full-speed runs: 20 is closer.
VALGRIND_SLOWDOWN = 20
SEPARATORS = (",", ":")


# ----------------------------------------------------------------------------------------------- the sink


class Sink:
    """The HTTP sink: records `id -> (published_ns, arrived_ns)` from bodies `{"id": ..., "ts": ..., ...}`."""

    def __init__(self) -> None:
        self.arrivals: dict[str, tuple[int, int]] = {}
        self.duplicates = 0
        self.unparsed = 0
        self._pending: set[str] = set()
        self._done = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self.url = f"http://{host}:{port}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        arrived = time.time_ns()
        try:
            doc = json.loads(body)
            event_id, published = str(doc["id"]), int(doc["ts"])
        except (ValueError, KeyError, TypeError):
            self.unparsed += 1
            return web.Response(status=200)
        if event_id in self.arrivals:
            self.duplicates += 1
        else:
            self.arrivals[event_id] = (published, arrived)
            if self._pending:
                self._pending.discard(event_id)
                if not self._pending:
                    self._done.set()
        return web.Response(status=200)

    def reset(self) -> None:
        self.arrivals.clear()
        self.duplicates = self.unparsed = 0
        self._pending.clear()
        self._done.clear()

    def expect(self, ids: Iterable[str]) -> None:
        """Wait (in `wait`) for these ids besides any already expected."""
        self._pending.update(i for i in ids if i not in self.arrivals)
        if self._pending:
            self._done.clear()
        else:
            self._done.set()

    async def wait(self, timeout: float, stall: float, alive: Callable[[], bool]) -> bool:
        """True once every expected id arrived; False after `timeout`, after `stall` seconds without a new
        arrival, or when `alive()` turns false (the system under test died)."""
        deadline = time.monotonic() + timeout
        seen, last_progress = len(self.arrivals), time.monotonic()
        while not self._done.is_set():
            now = time.monotonic()
            if len(self.arrivals) != seen:
                seen, last_progress = len(self.arrivals), now
            if now >= deadline or now - last_progress >= stall or not alive():
                return False
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._done.wait(), min(0.5, deadline - now))
        return True


# ------------------------------------------------------------------------------- the systems under test


@dataclass(frozen=True)
class WorkerSpec:
    kind: str
    bus_url: str
    sink_url: str
    source: str
    in_flight: int
    batch: int
    fetch_timeout: float = 1.0
    ceiling_events: int = 0
    warmup: int = 0
    stats_file: str = ""  # tracing comparison: where an engine worker leaves its trace statistics (JSON) on exit
    trace_interval: float = 0.0  # the trace writer's batch interval, s (0: the engine's own)
    inline: bool = False  # the stage evaluated on the loop (sensors.inline), as in engine-inline
    toggle: bool = False  # --trace-toggle: SIGUSR1 switches this engine's tracing off, SIGUSR2 on again


SUT = Callable[[WorkerSpec, asyncio.Event, asyncio.Event, asyncio.Event], Coroutine[Any, Any, None]]


def sensor_yaml(spec: WorkerSpec) -> str:
    """One dependency with a context and a data filter; an HTTP trigger with three payload parameters."""
    return f"""\
apiVersion: argoproj.io/v1alpha1
kind: Sensor
metadata:
  name: bench-{spec.source}
spec:
  dependencies:
    - name: push
      eventSourceName: {spec.source}
      eventName: {EVENT_NAME}
      filters:
        context:
          type: webhook
        data:
          - path: body.action
            type: string
            value: ["push"]
  triggers:
    - template:
        name: sink
        http:
          url: {spec.sink_url}/engine
          method: POST
          headers:
            Content-Type: application/json
          payload:
            - src: {{dependencyName: push, contextKey: id}}
              dest: id
            - src: {{dependencyName: push, dataKey: body.ts, useRawData: true}}
              dest: ts
            - src: {{dependencyName: push, dataKey: body.user}}
              dest: user
      retryStrategy:
        steps: 3
        duration: 1s
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def sut_engine(spec: WorkerSpec, stop: asyncio.Event, ready: asyncio.Event, go: asyncio.Event) -> None:
    """The engine as `sensorium run SENSOR --bus URL [trace options]` sets it up: the same argument parser,
    the same tracer (`engine.cli._trace_hub`: the --trace sink and, unless --no-bus-trace, the bus), closed
    after the engine stops. Only the runner's in-flight bound and fetch batch are the bench's, so that every
    variant has the same ones."""
    from sensorium.engine.app import EngineOptions, run_engine
    from sensorium.engine.assemble import load_checked
    from sensorium.engine.cli import _trace_hub, build_parser
    from sensorium.engine.runner import RunnerSettings

    if spec.kind == "engine-inline" or spec.inline:
        _inline_stage()
    with tempfile.TemporaryDirectory(prefix="sensorium-bench-") as tmp:
        sensor = Path(tmp) / "sensor.yaml"
        sensor.write_text(sensor_yaml(spec))
        # the harness counts the trace file's lines once this process is gone (not in the counted instructions)
        trace_file = Path(spec.stats_file).with_suffix(".jsonl") if spec.stats_file else Path(tmp) / "trace.jsonl"
        argv = ["run", str(sensor), "--bus", spec.bus_url, "--data-dir", str(Path(tmp) / "data"),
                "--webhook-host", "127.0.0.1",
                *(a.format(trace_file=trace_file, ops_port=_free_port()) for a in ENGINE_RUN_ARGS[spec.kind])]
        args = build_parser().parse_args(argv)
        config = load_checked(args.paths)
        hub = _trace_hub(args)
        if spec.kind == "engine-trace-bus-thread":
            hub.encode_in_thread = True
        elif spec.kind == "engine-trace-bus-steps":  # every event step by step (five records), as before 2026-12-07
            hub.routine_records = False
        elif spec.kind == "engine-trace-dropped":  # all of the bus trace's work but the publish (bench.tracepair's)
            from bench.tracepair import Dropped
            from sensorium.engine.trace.bus import BusTraceSink

            hub.bus_trace = False
            hub.sinks = [BusTraceSink(Dropped())]
        elif spec.kind in ("engine-trace-calls", "engine-trace-build", "engine-trace-encode"):
            from bench.tracebuild import cut_short

            cut_short(hub, spec.kind.rsplit("-", 1)[1])
        if spec.trace_interval:
            hub.interval = spec.trace_interval
        if spec.toggle:
            _tracing_switch()
        options = EngineOptions(bus_url=args.bus, data_dir=args.data_dir, webhook_host=args.webhook_host,
                                handle_signals=False, tracer=hub, ops_port=args.ops_port,
                                # each variant its own intake: variants running side by side on one bus must
                                # not share one durable consumer (the deployment's, `--group`)
                                intake_group=f"bench-{spec.kind}-{spec.source}",
                                runner=RunnerSettings(ack_wait=args.ack_wait, batch=spec.batch,
                                                      fetch_timeout=spec.fetch_timeout,
                                                      max_in_flight=spec.in_flight))
        try:
            await run_engine(config, options, stop, ready)
        finally:
            await hub.close()
            if spec.stats_file:
                Path(spec.stats_file).write_text(json.dumps({
                    "enabled": hub.enabled, "written": hub.written, "dropped": hub.dropped,
                    "sink_errors": hub.sink_errors, "batches": hub.batches}))


def tracing_switch() -> Callable[[bool], None]:
    """A switch for the tracing of every runner and HTTP trigger made from now on in this process: off as
    `--no-bus-trace` has it (the runners stop tracing, the triggers stop keeping what only traces read), on
    again. They are found by wrapping their constructors, as `_inline_stage` wraps the runner."""
    from sensorium.engine.runner import SensorRunner
    from sensorium.triggers.http import HttpTrigger

    runners: list[SensorRunner] = []
    triggers: list[HttpTrigger] = []
    for cls, made in ((SensorRunner, runners), (HttpTrigger, triggers)):
        def init(self: Any, *args: Any, _original: Any = cls.__init__, _made: list[Any] = made,
                 **kwargs: Any) -> None:
            _original(self, *args, **kwargs)
            _made.append(self)

        cls.__init__ = init  # type: ignore[method-assign]

    def switch(on: bool) -> None:
        for runner in runners:
            runner._tracing = on
        for trigger in triggers:
            trigger.details = on

    return switch


def _tracing_switch() -> None:
    """In this worker process only (--trace-toggle): SIGUSR1 switches tracing off (`tracing_switch`), SIGUSR2
    back on. The engine starts traced (its runners attach the bus trace)."""
    switch = tracing_switch()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGUSR1, switch, False)
    loop.add_signal_handler(signal.SIGUSR2, switch, True)


def _inline_stage() -> None:
    """In this worker process only: `SensorRunner._process` evaluates events that `sensors.inline.InlineGate`
    lets through on the loop (under the same event deadline), the rest in the stage thread as before."""
    from sensorium.engine.runner import SensorRunner, StageResultLike
    from sensorium.sensors.inline import InlineGate
    from sensorium.sensors.stage import SensorStage

    original = SensorRunner._process
    gates: dict[int, InlineGate | None] = {}

    async def _process(self: SensorRunner, event: Any) -> StageResultLike:
        gate = gates.get(id(self.stage), ...)
        if gate is ...:
            gate = gates[id(self.stage)] = (InlineGate(self.stage.sensor) if isinstance(self.stage, SensorStage)
                                            else None)
        if gate is None or not gate.inline(event):
            return await original(self, event)
        return self.stage.decide(event, self._evaluate(event), self.clock())

    SensorRunner._process = _process  # type: ignore[method-assign]


Poster = Callable[[bytes], Awaitable[int]]


@contextlib.asynccontextmanager
async def _aiohttp_poster(url: str) -> AsyncIterator[Poster]:
    # Same pool size as the engine's HttpClient (100 connections); the in-flight bound is the caller's.
    connector = aiohttp.TCPConnector(limit=100)
    async with aiohttp.ClientSession(connector=connector) as session:
        headers = dict(JSON_HEADERS)

        async def post(body: bytes) -> int:
            async with session.post(url, data=body, headers=headers) as response:
                await response.read()
                return response.status

        yield post


@contextlib.asynccontextmanager
async def _httpclient_poster(url: str) -> AsyncIterator[Poster]:
    from sensorium.triggers.http import HttpClient, HttpRequest

    async with HttpClient() as client:
        async def post(body: bytes) -> int:
            return await client.send(HttpRequest(method="POST", url=url, headers=JSON_HEADERS, body=body))

        yield post


async def sut_bare(spec: WorkerSpec, stop: asyncio.Event, ready: asyncio.Event, go: asyncio.Event) -> None:
    """nats-py pull consumer (batched fetch) -> json.loads -> one POST -> ack, `in_flight` at a time. "bare-puller"
    fetches as the engine does (`buses.jetstream.pull.Puller`) instead of through nats-py's `fetch`."""
    import nats
    from nats.aio.msg import Msg
    from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

    subject = f"default.{spec.source}.{EVENT_NAME}"
    durable = f"bare-{spec.source}"
    from sensorium.buses.jetstream.pull import Puller

    poster = _httpclient_poster if spec.kind in ("bare-httpclient", "bare-puller") else _aiohttp_poster
    nc = await nats.connect(spec.bus_url)
    try:
        js = nc.jetstream()
        config = ConsumerConfig(durable_name=durable, deliver_policy=DeliverPolicy.NEW,
                                ack_policy=AckPolicy.EXPLICIT, ack_wait=30.0, filter_subject=subject,
                                max_ack_pending=max(spec.in_flight * 4, 1000))
        psub = await js.pull_subscribe(subject, durable=durable, stream="default", config=config)  # (and the durable)
        puller = Puller(nc, "default", durable) if spec.kind == "bare-puller" else None
        if puller is not None:
            await puller.start()
        async with poster(f"{spec.sink_url}/bare") as post:
            slots = asyncio.Semaphore(spec.in_flight)
            tasks: set[asyncio.Task[None]] = set()

            async def handle(msg: Msg) -> None:
                try:
                    event = json.loads(msg.data)
                    body = event["data"]["body"]
                    out = json.dumps({"id": event["id"], "ts": body["ts"], "user": body["user"]},
                                     separators=SEPARATORS).encode()
                    status = await post(out)
                    if status != 200:
                        logging.warning("sink answered %d", status)
                    await msg.ack()
                except Exception as exc:  # a benchmark worker should say what went wrong and go on
                    logging.warning("bare loop: %s: %s", type(exc).__name__, exc)
                finally:
                    slots.release()

            ready.set()
            while not stop.is_set():
                try:
                    msgs = (await psub.fetch(spec.batch, timeout=spec.fetch_timeout) if puller is None
                            else await puller.fetch(spec.batch, spec.fetch_timeout))
                except TimeoutError:
                    continue
                for msg in msgs:
                    await slots.acquire()
                    task = asyncio.create_task(handle(msg))
                    tasks.add(task)
                    task.add_done_callback(tasks.discard)
            await asyncio.gather(*tasks)
            with contextlib.suppress(Exception):
                await psub.unsubscribe()
                if puller is not None:
                    await puller.close()
    finally:
        await nc.close()


def ceiling_ids(source: str, n: int, prefix: str = "c") -> list[str]:
    return [f"{prefix}-{source}-{i}" for i in range(n)]


async def sut_ceiling(spec: WorkerSpec, stop: asyncio.Event, ready: asyncio.Event, go: asyncio.Event) -> None:
    """Plain aiohttp straight to the sink, `in_flight` at a time: warm-up, ready, then on `go` the measured run."""
    async with _aiohttp_poster(f"{spec.sink_url}/ceiling") as post:
        async def send(ids: Sequence[str]) -> None:
            it = iter(ids)

            async def one_connection() -> None:
                for event_id in it:
                    body = json.dumps({"id": event_id, "ts": time.time_ns(), "user": "alice"},
                                      separators=SEPARATORS).encode()
                    await post(body)

            await asyncio.gather(*(one_connection() for _ in range(spec.in_flight)))

        await send(ceiling_ids(spec.source, spec.warmup, "w"))
        ready.set()
        await go.wait()
        await send(ceiling_ids(spec.source, spec.ceiling_events))
        await stop.wait()


# every engine variant is the engine with its own `sensorium run` options (ENGINE_RUN_ARGS, the one list of them)
SUTS: dict[str, SUT] = {"ceiling": sut_ceiling, **dict.fromkeys(BARE_KINDS, sut_bare),
                        **dict.fromkeys(ENGINE_RUN_ARGS, sut_engine)}


# ---------------------------------------------------------------------------- running a SUT (two ways)


class Worker(Protocol):
    async def start(self, timeout: float) -> None: ...
    def go(self) -> None: ...
    def switch_tracing(self, on: bool) -> None: ...
    def pid(self) -> int | None: ...
    def cpu_seconds(self) -> float | None: ...
    def alive(self) -> bool: ...
    async def stop(self) -> None: ...


class ProcessWorker:
    """The SUT in a child process: `python -m bench.engine --worker SPEC`; READY on stdout, GO on stdin,
    SIGTERM to stop."""

    def __init__(self, spec: WorkerSpec, profile: Path | None, callgrind: Path | None = None) -> None:
        self.spec, self.profile, self.callgrind = spec, profile, callgrind
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self, timeout: float) -> None:
        args = [sys.executable, "-m", "bench.engine", "--worker", json.dumps(asdict(self.spec))]
        if self.callgrind is not None:  # instructions are counted from `count_instructions()` on
            args = [*callgrind.command(self.callgrind), *args]
        if self.profile is not None:
            args += ["--profile", str(self.profile)]
        self.proc = await asyncio.create_subprocess_exec(*args, cwd=ROOT, stdin=asyncio.subprocess.PIPE,
                                                         stdout=asyncio.subprocess.PIPE)
        assert self.proc.stdout is not None
        line = await asyncio.wait_for(self.proc.stdout.readline(), timeout)
        if line.strip() != b"READY":
            await self.stop()
            raise RuntimeError(f"worker {self.spec.kind} did not start (exit {self.proc.returncode})")

    def go(self) -> None:
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.write(b"GO\n")

    def switch_tracing(self, on: bool) -> None:
        """--trace-toggle: the worker's tracing on or off from its next message on (`_tracing_switch`)."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGUSR2 if on else signal.SIGUSR1)

    async def count_instructions(self) -> None:
        assert self.proc is not None
        await callgrind.control(self.proc.pid, "-i", "on")

    async def dump_instructions(self) -> int:
        """The instructions counted since counting began or since the previous dump (callgrind_control -d)."""
        assert self.proc is not None and self.callgrind is not None
        return await callgrind.dump(self.proc.pid, self.callgrind)

    def instructions(self) -> int | None:
        """Instructions counted (callgrind's totals, written when the process exits)."""
        return callgrind.totals(self.callgrind) if self.callgrind is not None else None

    def cpu_seconds(self) -> float | None:
        return process_cpu_seconds(self.proc.pid) if self.proc is not None else None

    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def alive(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    async def stop(self) -> None:
        if self.proc is None or self.proc.returncode is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(self.proc.wait(), 60)
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()


class TaskWorker:
    """The SUT as a task in the harness's own event loop (`--in-process`)."""

    def __init__(self, spec: WorkerSpec) -> None:
        self.spec = spec
        self._stop, self._ready, self._go = asyncio.Event(), asyncio.Event(), asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def pid(self) -> int | None:
        return None  # runs in the harness's loop: it cannot be stopped while the harness publishes

    def switch_tracing(self, on: bool) -> None:
        raise NotImplementedError("--trace-toggle runs the engine in a child process")

    async def start(self, timeout: float) -> None:
        self._task = asyncio.create_task(SUTS[self.spec.kind](self.spec, self._stop, self._ready, self._go))
        waiter = asyncio.create_task(self._ready.wait())
        done, _ = await asyncio.wait({self._task, waiter}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        if waiter not in done:
            waiter.cancel()
            if self._task in done:
                self._task.result()
            raise RuntimeError(f"worker {self.spec.kind} did not become ready in {timeout:g}s")

    def go(self) -> None:
        self._go.set()

    def cpu_seconds(self) -> float | None:
        return time.process_time()  # the whole harness process: SUT, sink and publisher together

    def alive(self) -> bool:
        return self._task is not None and not self._task.done()

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            await asyncio.wait_for(self._task, 60)


async def worker_main(spec: WorkerSpec, profile: Path | None) -> None:
    loop = asyncio.get_running_loop()
    stop, ready, go = asyncio.Event(), asyncio.Event(), asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    task = asyncio.create_task(SUTS[spec.kind](spec, stop, ready, go))
    waiter = asyncio.create_task(ready.wait())
    await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
    if not ready.is_set():
        waiter.cancel()
        await task
        raise RuntimeError("the system under test stopped before it was ready")
    profiler = None
    if profile is not None:
        from pyinstrument import Profiler

        profiler = Profiler(interval=0.001, async_mode="disabled")
        profiler.start()
    print("READY", flush=True)

    stdin = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(stdin), sys.stdin)

    async def read_go() -> None:
        while line := await stdin.readline():
            if line.strip() == b"GO":
                go.set()

    reader = asyncio.create_task(read_go())
    try:
        await task
    finally:
        reader.cancel()
        if profiler is not None and profile is not None:
            profiler.stop()
            profile.write_text(profiler.output_text(unicode=False, color=False))


# ------------------------------------------------------------------------------------------- the load


def encode_event(source: str, event_id: str, seq: int) -> bytes:
    """A webhook-shaped structured CloudEvent whose data carries its publish time (ns) in `body.ts`."""
    from sensorium.engine.core.cloudevent import CloudEvent, encode_structured, now_rfc3339

    data = {"header": {"Content-Type": ["application/json"], "User-Agent": ["sensorium-bench"]},
            "body": {"ts": time.time_ns(), "seq": seq, "user": "alice", "action": "push", "repo": "org/repo",
                     "ref": "refs/heads/main", "commits": [{"id": "a1b2c3d4", "message": "fix: the thing"}]}}
    event = CloudEvent(id=event_id, source=source, type="webhook", subject=EVENT_NAME,
                       datacontenttype="application/json", time=now_rfc3339(),
                       data=json.dumps(data, separators=SEPARATORS).encode())
    return encode_structured(event)


def new_ids(n: int) -> list[str]:
    return [uuid.uuid4().hex for _ in range(n)]


async def publish_burst(bus: Bus, key: EventKey, ids: Sequence[str], chunk: int) -> None:
    for start in range(0, len(ids), chunk):
        await bus.publish_many([(key, i, encode_event(key.source, i, start + n))
                                for n, i in enumerate(ids[start:start + chunk])])


async def publish_paced(bus: Bus, key: EventKey, ids: Sequence[str], rate: float) -> None:
    started, sent = time.monotonic(), 0
    while sent < len(ids):
        due = min(len(ids), int((time.monotonic() - started) * rate) + 1)
        if due > sent:
            await bus.publish_many([(key, i, encode_event(key.source, i, n))
                                    for n, i in enumerate(ids[sent:due], sent)])
            sent = due
        await asyncio.sleep(0.002)


# ------------------------------------------------------------------------------------------ measuring


@dataclass
class Stats:
    sent: int
    received: int
    rate: float  # events/s, first publish -> last arrival
    p50_ms: float
    p99_ms: float


def summarize(sink: Sink, ids: Sequence[str], since: int | None = None) -> Stats:
    """Counts, events/s from the first publish (or from `since`, ns, for a backlog) to the last arrival, and
    publish-to-arrival latencies."""
    got = [sink.arrivals[i] for i in ids if i in sink.arrivals]
    if not got:
        return Stats(len(ids), 0, 0.0, float("nan"), float("nan"))
    latencies = sorted(arrived - published for published, arrived in got)
    span = max(a for _, a in got) - (min(p for p, _ in got) if since is None else since)

    def pct(q: float) -> float:
        return latencies[min(len(latencies) - 1, round(q * (len(latencies) - 1)))] / 1e6

    return Stats(len(ids), len(got), len(got) / (span / 1e9) if span > 0 else float("inf"), pct(0.50), pct(0.99))


@dataclass
class Measurement:
    stats: Stats
    complete: bool
    sut_cpu_us: float | None  # SUT process CPU (user+system) per event over the window
    harness_cpu_us: float  # harness process (sink + publisher) CPU per event over the window
    harness_util: float  # harness process CPU / wall time over the window (1.0 = one core busy)


@dataclass
class Result:
    kind: str
    burst: Measurement
    paced: Measurement | None
    duplicates: int
    unparsed: int
    round_no: int = 0
    paced2: Measurement | None = None  # at --rate2


class PhaseFailed(RuntimeError):
    pass


def _signal(worker: Worker, pid: int, sig: signal.Signals, what: str) -> None:
    """Send `sig` to the worker process; PhaseFailed saying how it ended when it is gone."""
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        code = getattr(getattr(worker, "proc", None), "returncode", None)
        status = "exit status not known yet" if code is None else f"exit code {code}"
        if code is not None and code < 0:
            with contextlib.suppress(ValueError):
                status = f"killed by {signal.Signals(-code).name}"
        raise PhaseFailed(f"{what}: the worker (pid {pid}) is gone: {status}") from None


@dataclass
class Bench:
    args: argparse.Namespace
    bus_url: str
    sink: Sink
    bus: Bus
    purge: Callable[[], Awaitable[None]]
    profile_dir: Path | None
    work_dir: Path
    results: dict[str, list[Result]] = field(default_factory=dict)
    failures: dict[str, int] = field(default_factory=dict)
    trace_rounds: list[TraceRound] = field(default_factory=list)
    trace_stats: dict[str, dict[str, Any]] = field(default_factory=dict)
    trace_handled: int = 0  # events each variant of the tracing comparison handled
    trace_duplicates: int = 0
    instructions: dict[str, list[tuple[int, int]]] = field(default_factory=dict)  # kind -> (counted, events)
    burst_instructions: dict[str, list[tuple[int, int]]] = field(default_factory=dict)  # the same, main table

    def worker(self, spec: WorkerSpec, callgrind: Path | None = None) -> Worker:
        if self.args.in_process:
            return TaskWorker(spec)
        profile = self.profile_dir / f"{spec.kind}.txt" if self.profile_dir is not None else None
        return ProcessWorker(spec, profile, callgrind)

    async def _measure(self, worker: Worker, ids: Sequence[str], load: Callable[[], Awaitable[None]],
                       what: str, backlog: bool = False, settle: float = 0.0) -> Measurement:
        """One load through `worker`. `backlog` (a burst, unless --live-bursts or --instructions): the events
        are published while the SUT process is stopped (SIGSTOP), and the window starts when it continues, so the
        harness's publishing (0.6 of a core at these rates, beside the SUT, the sink and nats-server on two
        cores) is outside it and events/s is the rate of draining a backlog."""
        self.sink.reset()
        self.sink.expect(ids)
        pid = worker.pid() if backlog and not self.args.live_bursts and not self.args.instructions else None
        resumed: int | None = None
        if pid is not None:
            _signal(worker, pid, signal.SIGSTOP, what)
            try:
                await load()
            finally:
                cpu0, harness0, wall0 = worker.cpu_seconds(), time.process_time(), time.monotonic()
                resumed = time.time_ns()
                _signal(worker, pid, signal.SIGCONT, what)  # (a stopped process dies of SIGKILL only)
        else:
            cpu0, harness0, wall0 = worker.cpu_seconds(), time.process_time(), time.monotonic()
            await load()
        complete = await self.sink.wait(self.args.timeout, self.args.stall, worker.alive)
        harness1, wall1 = time.process_time(), time.monotonic()
        if settle:  # what the load caused after its last arrival (acks, the trace's last batch) is the SUT's too
            await asyncio.sleep(settle)
        cpu1 = worker.cpu_seconds()
        stats = summarize(self.sink, ids, resumed)
        if not complete:
            why = "the worker exited" if not worker.alive() else "timed out or stalled"
            print(f"  !! {what}: {stats.sent - stats.received} of {stats.sent} events did not reach the sink "
                  f"({why})", file=sys.stderr)
            if stats.received == 0:
                raise PhaseFailed(f"{what}: no event reached the sink ({why})")
        cpu_us = (cpu1 - cpu0) / len(ids) * 1e6 if cpu0 is not None and cpu1 is not None else None
        return Measurement(stats, complete, cpu_us, (harness1 - harness0) / len(ids) * 1e6,
                           (harness1 - harness0) / (wall1 - wall0))

    async def phase(self, kind: str, round_no: int) -> Result:
        a = self.args
        source = f"b{round_no}{kind.replace('-', '')[:6]}{uuid.uuid4().hex[:6]}"
        spec = WorkerSpec(kind=kind, bus_url=self.bus_url, sink_url=self.sink.url, source=source,
                          in_flight=a.in_flight, batch=a.batch, fetch_timeout=a.fetch_timeout,
                          ceiling_events=a.events, warmup=a.warmup)
        counting = a.instructions and kind != "ceiling"
        worker = self.worker(spec, self.work_dir / f"{source}.callgrind" if counting else None)
        try:
            await worker.start(timeout=300 if counting else 60)
            paced = paced2 = None
            if kind == "ceiling":
                ids = ceiling_ids(source, a.events)

                async def go() -> None:
                    worker.go()

                burst = await self._measure(worker, ids, go, "ceiling")
            else:
                key = EventKey(source, EVENT_NAME)
                warm = new_ids(a.warmup)
                await self._measure(worker, warm, lambda: publish_burst(self.bus, key, warm, a.chunk), "warm-up")
                await asyncio.sleep(0.3)
                ids = new_ids(a.events)
                if counting and isinstance(worker, ProcessWorker):  # from the burst's first publish to its end
                    await worker.count_instructions()
                burst = await self._measure(worker, ids, lambda: publish_burst(self.bus, key, ids, a.chunk),
                                            "burst", backlog=True)
                if counting and isinstance(worker, ProcessWorker):
                    counted = await worker.dump_instructions()
                    self.burst_instructions.setdefault(kind, []).append((counted, burst.stats.received))
                if a.paced_events > 0 and not a.instructions:  # (valgrind could not keep up with the pace)
                    await asyncio.sleep(0.3)
                    slow = new_ids(a.paced_events)
                    paced = await self._measure(worker, slow, lambda: publish_paced(self.bus, key, slow, a.rate),
                                                "paced")
                if a.paced_events > 0 and a.rate2 > 0 and not a.instructions:
                    await asyncio.sleep(0.3)
                    fast = new_ids(a.paced_events)
                    paced2 = await self._measure(worker, fast,
                                                 lambda: publish_paced(self.bus, key, fast, a.rate2), "paced2")
        finally:
            await worker.stop()
            await self.purge()
        result = Result(kind, burst, paced, self.sink.duplicates, self.sink.unparsed, round_no, paced2)
        self.results.setdefault(kind, []).append(result)
        return result


    async def _burst(self, worker: Worker, key: EventKey, n: int, what: str, backlog: bool = False,
                     settle: float = 0.0) -> Measurement:
        ids = new_ids(n)
        return await self._measure(worker, ids, lambda: publish_burst(self.bus, key, ids, self.args.chunk), what,
                                   backlog, settle)

    async def tracing(self, variants: Sequence[str]) -> None:
        """Tracing off ("engine") and each of `variants`, running side by side, take turns: each round publishes
        one burst of --trace-events to each in turn, in an order that rotates every round. A variant is idle
        but for its own burst, and the bursts of a round run within seconds of each other, so the neighbours'
        load (which swings over tens of seconds on a shared machine) mostly hits every variant of a round
        alike. Every --trace-restart rounds the processes are replaced by new ones: one process can run a few
        per cent faster or slower than another running the same code for its whole life (memory layout, hash
        seed), which more rounds in the same processes would not average out."""
        a = self.args
        kinds = ["engine", *variants]
        for first in range(1, a.trace_rounds + 1, a.trace_restart):
            await self._tracing_generation(kinds, first, min(a.trace_rounds, first + a.trace_restart - 1))

    async def _tracing_generation(self, kinds: Sequence[str], first: int, last: int) -> None:
        a = self.args
        workers: dict[str, tuple[Worker, EventKey, Path]] = {}
        try:
            if a.trace_toggle:  # one process for both: "engine" is the same worker with its tracing switched off
                kinds = [k for k in kinds if k != "engine"]
            for kind in kinds:
                source = f"t{kind.replace('-', '')[6:12]}{uuid.uuid4().hex[:6]}"
                stats_file = self.work_dir / f"{source}.json"
                spec = WorkerSpec(kind=kind, bus_url=self.bus_url, sink_url=self.sink.url, source=source,
                                  in_flight=a.in_flight, batch=a.batch, fetch_timeout=a.fetch_timeout,
                                  stats_file=str(stats_file), inline=a.trace_inline,
                                  trace_interval=DEFAULT_INTERVAL * VALGRIND_SLOWDOWN if a.instructions else 0.0,
                                  toggle=a.trace_toggle)
                callgrind = self.work_dir / f"{source}.callgrind" if a.instructions else None
                worker = self.worker(spec, callgrind)
                workers[kind] = (worker, EventKey(source, EVENT_NAME), stats_file)
                await worker.start(timeout=300 if a.instructions else 60)
            for worker, key, _ in workers.values():
                await self._burst(worker, key, a.warmup, "warm-up")
                if isinstance(worker, ProcessWorker) and worker.callgrind is not None:
                    await worker.count_instructions()
            self.trace_handled += a.warmup
            if a.trace_toggle:
                workers["engine"] = workers[kinds[0]]
                kinds = ["engine", *kinds]
            for round_no in range(first, last + 1):
                shift = (round_no - 1) % len(kinds)
                bursts: dict[str, Measurement] = {}
                for kind in [*kinds[shift:], *kinds[:shift]]:
                    worker, key, _ = workers[kind]
                    if a.trace_toggle:
                        worker.switch_tracing(kind != "engine")
                    await asyncio.sleep(0.2)
                    bursts[kind] = await self._burst(worker, key, a.trace_events, f"{kind} burst", backlog=True,
                                                     settle=a.trace_settle)
                    self.trace_duplicates += self.sink.duplicates
                self.trace_handled += a.trace_events
                self.trace_rounds.append(TraceRound(round_no, {k: bursts[k] for k in kinds}))
                print(f"  tracing round {round_no}: "
                      + ", ".join(f"{k} {bursts[k].stats.rate:.0f} ev/s {_fmt(bursts[k].sut_cpu_us, 0, 0).strip()} "
                                  f"us/ev" for k in kinds), file=sys.stderr, flush=True)
        finally:
            for worker in {id(w): w for w, _, _ in workers.values()}.values():
                await worker.stop()
            await self.purge()
        for kind, (worker, _, stats_file) in workers.items():
            if a.trace_toggle and kind == "engine":
                continue  # (the traced variant's process: its figures are counted once, under its own name)
            counted = worker.instructions() if isinstance(worker, ProcessWorker) else None
            if counted is not None:
                self.instructions.setdefault(kind, []).append((counted, (last - first + 1) * a.trace_events))
            with contextlib.suppress(OSError, ValueError):
                totals = self.trace_stats.setdefault(kind, {})
                stats = json.loads(stats_file.read_text())
                trace_file = stats_file.with_suffix(".jsonl")
                if trace_file.exists():
                    with trace_file.open("rb") as f:
                        stats["file_lines"] = sum(1 for _ in f)
                    stats["file_bytes"] = trace_file.stat().st_size
                    trace_file.unlink()
                for name, value in stats.items():
                    if isinstance(value, int) and not isinstance(value, bool):
                        totals[name] = totals.get(name, 0) + value


def _median(values: Iterable[float | None]) -> float | None:
    present = [v for v in values if v is not None and v == v]
    return statistics.median(present) if present else None


def _fmt(value: float | None, digits: int = 0, width: int = 8) -> str:
    if value is None or value != value:
        return "-".rjust(width)
    return f"{value:{width}.{digits}f}"


def table_rows(bench: Bench) -> dict[str, dict[str, float | None]]:
    rows: dict[str, dict[str, float | None]] = {}
    for kind in KINDS:
        results = bench.results.get(kind)
        if not results:
            continue
        rows[kind] = {
            "rate": _median(r.burst.stats.rate for r in results),
            "p50": _median(r.burst.stats.p50_ms for r in results),
            "p99": _median(r.burst.stats.p99_ms for r in results),
            "pp50": _median(r.paced.stats.p50_ms if r.paced else None for r in results),
            "pp99": _median(r.paced.stats.p99_ms if r.paced else None for r in results),
            "qp50": _median(r.paced2.stats.p50_ms if r.paced2 else None for r in results),
            "qp99": _median(r.paced2.stats.p99_ms if r.paced2 else None for r in results),
            "cpu": _median(r.burst.sut_cpu_us for r in results),
            "hcpu": _median(r.burst.harness_cpu_us for r in results),
            "util": _median(r.burst.harness_util for r in results),
            "lost": float(sum(r.burst.stats.sent - r.burst.stats.received
                              + (r.paced.stats.sent - r.paced.stats.received if r.paced else 0)
                              + (r.paced2.stats.sent - r.paced2.stats.received if r.paced2 else 0)
                              for r in results)),
            "dup": float(sum(r.duplicates for r in results)),
        }
    return rows


def _load() -> str:
    try:
        return " ".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def print_table(bench: Bench) -> None:
    a = bench.args
    where = "in the harness's event loop (--in-process)" if a.in_process else "each in its own process"
    print(f"\nsensorium bench.engine: burst of {a.events} events, {a.in_flight} in flight, fetch batch {a.batch}; "
          f"paced {a.paced_events} events at {a.rate:g}/s and at {a.rate2:g}/s; {a.rounds} round(s), medians; "
          f"SUT {where}; "
          f"CPUs={os.cpu_count()}, python {sys.version.split()[0]}, load average {_load()}")
    print(f"{'':{LABEL_WIDTH}s}|{'burst':^27s}|{f'paced {a.rate:g}/s':^19s}|{f'paced {a.rate2:g}/s':^19s}|"
          f"{'SUT CPU':^8s}|{'harness CPU':^14s}|")
    print(f"{'variant':{LABEL_WIDTH}s}|{'ev/s':>7s} {'p50 ms':>9s} {'p99 ms':>9s} |{'p50 ms':>9s}{'p99 ms':>9s} |"
          f"{'p50 ms':>9s}{'p99 ms':>9s} |"
          f"{'us/ev':>7s} |{'us/ev':>7s}{'util':>6s} |{'lost/dup':>9s}")
    rows = table_rows(bench)
    for kind in KINDS:
        row = rows.get(kind)
        if row is None:
            if bench.failures.get(kind):
                print(f"{LABELS[kind]:{LABEL_WIDTH}s}| FAILED ({bench.failures[kind]} of {a.rounds} rounds)")
            continue
        lost_dup = f"{row['lost']:.0f}/{row['dup']:.0f}"
        print(f"{LABELS[kind]:{LABEL_WIDTH}s}|{_fmt(row['rate'], 0, 7)} {_fmt(row['p50'], 1, 9)} "
              f"{_fmt(row['p99'], 1, 9)} |"
              f"{_fmt(row['pp50'], 1, 9)}{_fmt(row['pp99'], 1, 9)} |"
              f"{_fmt(row['qp50'], 1, 9)}{_fmt(row['qp99'], 1, 9)} |{_fmt(row['cpu'], 0, 7)} |"
              f"{_fmt(row['hcpu'], 0, 7)}{_fmt(row['util'], 2, 6)} |{lost_dup:>9s}")
    for mine_kind in ("engine", "engine-inline"):
        engine = rows.get(mine_kind)
        for base in (*BARE_KINDS, "engine"):
            bare = rows.get(base)
            if engine is None or bare is None or base == mine_kind:
                continue
            parts = []
            for key, name in (("rate", "ev/s"), ("cpu", "SUT CPU/event"), ("pp50", f"p50 at {a.rate:g}/s"),
                              ("pp99", f"p99 at {a.rate:g}/s"), ("qp50", f"p50 at {a.rate2:g}/s"),
                              ("qp99", f"p99 at {a.rate2:g}/s")):
                mine, theirs = engine[key], bare[key]
                if mine and theirs:
                    parts.append(f"{name} x{mine / theirs:.2f}")
            print(f"{LABELS[mine_kind]} / {LABELS[base]}: {', '.join(parts)}")
    counted = {kind: sum(n for n, _ in runs) / sum(e for _, e in runs)
               for kind, runs in bench.burst_instructions.items() if sum(e for _, e in runs)}
    if counted:
        print("instructions per event in the bursts (callgrind, from the first publish to the last arrival; "
              "events/s and CPU above are valgrind's): "
              + ", ".join(f"{LABELS[kind]} {per_event / 1e6:.3f} M" for kind, per_event in counted.items()))
        for mine_kind in ("engine", "engine-inline"):
            for base in BARE_KINDS:
                if mine_kind in counted and base in counted:
                    print(f"{LABELS[mine_kind]} / {LABELS[base]}: instructions per event "
                          f"x{counted[mine_kind] / counted[base]:.2f}")
    ceiling = rows.get("ceiling")
    if ceiling is not None and ceiling["rate"] and ceiling["hcpu"]:
        others = [r["rate"] or 0.0 for k, r in rows.items() if k != "ceiling"]
        fastest = f"; fastest variant {max(others):.0f} ev/s" if others else ""
        if a.in_process:
            cost = "client and sink share one process"
        else:
            cost = (f"at {ceiling['hcpu']:.0f} us sink CPU per request, i.e. ~{1e6 / ceiling['hcpu']:.0f} req/s "
                    "per core")
        print(f"sink ceiling: absorbed {ceiling['rate']:.0f} req/s from one plain aiohttp client ({a.in_flight} in "
              f"flight; client-bound), {cost}{fastest}")
    print("SUT CPU = the system under test's process CPU (user+sys) per event during the burst; "
          "harness = sink + publisher process")


@dataclass
class TraceRound:
    """One round of the tracing comparison: the burst of each variant (tracing off included), in turn."""

    round_no: int
    bursts: dict[str, Measurement]


def _drop(base: float | None, mine: float | None) -> float | None:
    return 1 - mine / base if base and mine else None


def _extra(base: float | None, mine: float | None) -> float | None:
    return mine / base - 1 if base and mine else None


def print_tracing_cost(bench: Bench) -> None:
    """The cost of each tracing variant against tracing off, from the alternating bursts of `Bench.tracing`:
    events/s and SUT CPU per event (medians over rounds) and the medians of the per-round drops and extras (each
    round's bursts ran back to back, so they share the machine's state: the steadier figures)."""
    rounds = bench.trace_rounds
    if not rounds:
        return
    a = bench.args
    if a.trace_inline:
        print("\n(--trace-inline: every engine of the tracing comparison evaluates its stage on the loop, as "
              "engine-inline)")
    where = ("in one process, its tracing switched off and on between bursts (--trace-toggle)" if a.trace_toggle
             else "running side by side (idle but for their own burst)")
    print(f"\ntracing cost: tracing off and each tracing variant {where}, {len(rounds)} rounds of one "
          f"{a.trace_events}-event burst each, back to back in a rotating order; load average {_load()}")
    print(f"{'variant':{LABEL_WIDTH}s}|{'ev/s':>7s} {'drop':>7s} {'(per round median)':>19s} |"
          f"{'CPU us/ev':>10s} {'extra':>7s} {'(per round median)':>19s} |{'lost/dup':>9s}")
    kinds = list(rounds[0].bursts)
    for kind in kinds:
        rates = [r.bursts[kind].stats.rate for r in rounds if kind in r.bursts]
        cpus = [r.bursts[kind].sut_cpu_us for r in rounds if kind in r.bursts]
        rate, cpu = _median(rates), _median(cpus)
        lost = sum(r.bursts[kind].stats.sent - r.bursts[kind].stats.received for r in rounds if kind in r.bursts)
        drop = extra = paired = paired_cpu = ""
        if kind != "engine":
            base_rate = _median(r.bursts["engine"].stats.rate for r in rounds)
            base_cpu = _median(r.bursts["engine"].sut_cpu_us for r in rounds)
            d = _drop(base_rate, rate)
            drop = f"{100 * d:+.1f}%" if d is not None else "-"
            per_round = _median(_drop(r.bursts["engine"].stats.rate, r.bursts[kind].stats.rate)
                                for r in rounds if kind in r.bursts)
            paired = f"{100 * per_round:+.1f}%" if per_round is not None else "-"
            extra = f"{100 * (cpu / base_cpu - 1):+.1f}%" if cpu and base_cpu else "-"
            cpu_round = _median(_extra(r.bursts["engine"].sut_cpu_us, r.bursts[kind].sut_cpu_us)
                                for r in rounds if kind in r.bursts)
            paired_cpu = f"{100 * cpu_round:+.1f}%" if cpu_round is not None else "-"
        print(f"{LABELS[kind]:{LABEL_WIDTH}s}|{_fmt(rate, 0, 7)} {drop:>7s} {paired:>19s} |{_fmt(cpu, 0, 10)} "
              f"{extra:>7s} {paired_cpu:>19s} |{f'{lost}/{bench.trace_duplicates}':>9s}")
    for kind in kinds[1:]:
        drops = [_drop(r.bursts["engine"].stats.rate, r.bursts[kind].stats.rate) for r in rounds]
        print(f"  {LABELS[kind]}: drop per round "
              + ", ".join("-" if d is None else f"{100 * d:+.1f}%" for d in drops))
    counted = {kind: sum(n for n, _ in runs) / sum(e for _, e in runs)
               for kind, runs in bench.instructions.items() if sum(e for _, e in runs)}
    if counted:
        print("  instructions per event (callgrind, counted from the first burst after warm-up to exit; events/s "
              "and CPU above are valgrind's, not the engine's):")
        base = counted.get("engine")
        for kind, per_event in counted.items():
            extra = f" ({100 * (per_event / base - 1):+.1f}% against tracing off)" if base and kind != "engine" else ""
            print(f"    {LABELS[kind]}: {per_event / 1e6:.3f} M{extra}")
    for kind, stats in bench.trace_stats.items():
        if not stats:
            continue
        written = stats.get("written", 0)
        text = (f"  {LABELS[kind]}: {written} trace records written "
                f"({written / max(1, bench.trace_handled):.1f} per event, "
                f"{written / max(1, stats.get('batches', 0)):.0f} per batch), "
                f"{stats.get('dropped', 0)} dropped, {stats.get('sink_errors', 0)} sink errors")
        lines = int(stats.get("file_lines", 0))
        if lines:
            text += f"; trace file {lines} lines, {int(stats.get('file_bytes', 0)) / lines:.0f} bytes per line"
        print(text)


# ------------------------------------------------------------------------------------------------ main


async def bench_main(args: argparse.Namespace) -> None:
    from sensorium.buses.embedded import EmbeddedNats
    from sensorium.buses.jetstream.bus import JetStreamBus
    from sensorium.buses.jetstream.stream import STREAM

    selected = [k for k in KINDS if k in args.only] if args.only else list(KINDS)
    kinds = [k for k in selected if k in TABLE_KINDS]
    variants = [k for k in selected if k in TRACE_VARIANTS]
    profile_dir = Path(args.profile).resolve() if args.profile else None
    if profile_dir is not None:
        profile_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="sensorium-bench-nats-") as tmp:
        nats_server = EmbeddedNats(Path(tmp))
        await nats_server.start()
        sink = Sink()
        await sink.start()
        bus = JetStreamBus(nats_server.url)
        try:
            await bus.start()
            js = bus.js

            async def purge() -> None:
                await js.purge_stream(STREAM)
                for info in await js.consumers_info(STREAM):
                    with contextlib.suppress(Exception):
                        await js.delete_consumer(STREAM, info.name)

            bench = Bench(args, nats_server.url, sink, bus, purge, profile_dir, Path(tmp))
            print(f"load average before: {_load()}", file=sys.stderr, flush=True)
            for round_no in range(1, args.rounds + 1 if kinds else 1):
                # Each round starts one variant later, so no variant always runs first or right after another.
                shift = (round_no - 1) % len(kinds)
                for kind in kinds[shift:] + kinds[:shift]:
                    started = time.monotonic()
                    try:
                        result = await bench.phase(kind, round_no)
                    except (PhaseFailed, RuntimeError, TimeoutError) as exc:
                        bench.failures[kind] = bench.failures.get(kind, 0) + 1
                        print(f"  round {round_no} {LABELS[kind]}: FAILED: {exc}", file=sys.stderr, flush=True)
                        continue
                    print(f"  round {round_no} {LABELS[kind]}: {result.burst.stats.rate:.0f} ev/s, SUT CPU "
                          f"{_fmt(result.burst.sut_cpu_us, 0, 0).strip()} us/ev, "
                          f"{time.monotonic() - started:.1f}s", file=sys.stderr, flush=True)
            if kinds:
                print_table(bench)
            if variants and args.trace_rounds > 0:
                await bench.tracing(variants)
                print_tracing_cost(bench)
        finally:
            await bus.close()
            await sink.stop()
            await nats_server.stop()
    if profile_dir is not None:
        print(f"profiles (pyinstrument, 1 ms sampling of each SUT process from READY to exit): "
              f"{profile_dir}/<variant>.txt")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.engine", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=10000, help="events per burst (default 10000)")
    parser.add_argument("--in-flight", type=int, default=50,
                        help="firings / POSTs in flight (engine: RunnerSettings.max_in_flight; default 50)")
    parser.add_argument("--batch", type=int, default=64, help="JetStream fetch batch (default 64, the engine's)")
    parser.add_argument("--fetch-timeout", type=float, default=1.0, help="fetch timeout, s (default 1.0)")
    parser.add_argument("--warmup", type=int, default=500, help="warm-up events per phase (default 500)")
    parser.add_argument("--chunk", type=int, default=1000, help="events per publish_many call (default 1000)")
    parser.add_argument("--live-bursts", action="store_true",
                        help="publish each burst while the SUT runs (before 2026-12-06: the harness's publishing "
                             "then shares the window); by default the SUT drains a backlog published while stopped")
    parser.add_argument("--paced-events", type=int, default=600, help="events of the paced run (0: skip)")
    parser.add_argument("--rate", type=float, default=200.0, help="events/s of the paced run (default 200)")
    parser.add_argument("--rate2", type=float, default=1000.0,
                        help="events/s of a second paced run after the first (default 1000; 0: skip it)")
    parser.add_argument("--rounds", type=int, default=1, help="interleaved rounds; the table shows medians")
    parser.add_argument("--trace-rounds", type=int, default=48,
                        help="rounds of the tracing comparison (0: skip it; default 48)")
    parser.add_argument("--trace-events", type=int, default=600,
                        help="events per burst of the tracing comparison (default 600)")
    parser.add_argument("--trace-settle", type=float, default=0.3,
                        help="seconds after a burst's last arrival in the tracing comparison that the process's CPU "
                             "is still counted: its last trace batch (written every 0.1 s) and acks are the "
                             "burst's (default 0.3; 0 ends the window at the last arrival, as before 2026-12-07)")
    parser.add_argument("--trace-restart", type=int, default=4,
                        help="start new processes for the tracing comparison every this many rounds (default 4)")
    parser.add_argument("--trace-inline", action="store_true",
                        help="run every engine of the tracing comparison with the stage inline (engine-inline)")
    parser.add_argument("--trace-toggle", action="store_true",
                        help="tracing off and each tracing variant in ONE process, its tracing switched off and on "
                             "between bursts (SIGUSR1/SIGUSR2): no two processes differ in memory layout or hash "
                             "seed; e.g. --only engine-trace-bus --trace-toggle")
    parser.add_argument("--instructions", action="store_true",
                        help="run the tracing comparison's processes under valgrind (callgrind) and report the "
                             "instructions each spent per event: steady where times are not, but slow; e.g. "
                             "--only engine-trace-json --instructions --trace-rounds 2 --trace-events 400")
    parser.add_argument("--timeout", type=float, default=120.0, help="max wait for one load's arrivals, s")
    parser.add_argument("--stall", type=float, default=20.0,
                        help="give up on a load after this many seconds without an arrival (default 20)")
    parser.add_argument("--only", type=lambda s: [k.strip() for k in s.split(",") if k.strip()], default=None,
                        help=f"comma-separated subset of {','.join(KINDS)}")
    parser.add_argument("--in-process", action="store_true",
                        help="run each SUT in the harness's event loop instead of a child process")
    parser.add_argument("--profile", metavar="DIR",
                        help="profile each SUT process with pyinstrument (pip install pyinstrument)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.only and (bad := set(args.only) - set(KINDS)):
        parser.error(f"--only: unknown variant(s) {', '.join(sorted(bad))}")
    if args.instructions:
        if args.in_process or args.profile:
            parser.error("--instructions counts the SUT child processes; not with --in-process or --profile")
        args.stall, args.timeout = max(args.stall, 300.0), max(args.timeout, 3600.0)  # ~50x slower under valgrind
    if args.trace_toggle and (args.in_process or not args.only or args.only != ["engine-trace-bus"]):
        parser.error("--trace-toggle switches the run's default bus trace in a child process: --only "
                     "engine-trace-bus, not with --in-process")
    if args.profile and args.in_process:
        parser.error("--profile profiles the SUT child processes; it cannot be combined with --in-process")
    if min(args.events, args.in_flight, args.batch, args.chunk, args.rounds, args.trace_events,
           args.trace_restart) < 1 or args.warmup < 0 or not 0 <= args.trace_settle <= 60:
        parser.error("--events, --in-flight, --batch, --chunk and --rounds must be positive, --trace-settle at "
                     "most 60 seconds and not negative")
    return args


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.worker:
        spec = WorkerSpec(**json.loads(args.worker))
        # Every variant runs on the standard asyncio loop but "engine-uvloop", on the loop `sensorium run` picks.
        from sensorium.engine.eventloop import loop_factory, run

        factory = loop_factory()[1] if spec.kind == "engine-uvloop" else None
        run(worker_main(spec, Path(args.profile) if args.profile else None), factory)
        return
    asyncio.run(bench_main(args))


if __name__ == "__main__":
    main()

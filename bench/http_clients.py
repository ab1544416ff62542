"""Benchmark: which async HTTP client should the HTTP trigger use?

One process run measures the same load through every client: N POSTs of a ~300-byte JSON body with C requests
in flight, against a local aiohttp sink running in a separate process (so client and sink do not share a
core). Clients: (a) httpx.AsyncClient with its default transport (httpcore), (b) httpx with
httpx_aiohttp.AiohttpTransport, (c) plain aiohttp.ClientSession, plus (ceiling) a raw asyncio keep-alive
HTTP/1.1 client that does almost no work, which approximates the sink's own ceiling. Rounds are interleaved
and the best round per client is reported.

    python bench/http_clients.py [--requests 5000] [--concurrency 50] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

BODY = json.dumps({
    "context": {"id": "6b1c9a8f0e2d4c5b9a7f3e1d2c4b6a8f", "source": "webhook", "specversion": "1.0",
                "type": "webhook", "datacontenttype": "application/json", "subject": "example",
                "time": "2026-01-01T00:00:00Z"},
    "data": {"user": "alice", "action": "push", "repo": "org/repo", "ref": "refs/heads/main",
             "commits": [{"id": "a1b2c3d4", "message": "fix: the thing"}], "n": 42},
}, separators=(",", ":")).encode()
HEADERS = {"Content-Type": "application/json"}

Runner = Callable[[str, int, int], Coroutine[Any, Any, None]]


def run_sink(port: int) -> None:
    from aiohttp import web

    async def handle(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(status=200)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def _drive(n: int, concurrency: int, one: Callable[[], Awaitable[None]]) -> None:
    remaining = n

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            await one()

    await asyncio.gather(*(worker() for _ in range(concurrency)))


async def bench_aiohttp(url: str, n: int, concurrency: int) -> None:
    import aiohttp

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as session:
        timeout = aiohttp.ClientTimeout(total=60)

        async def one() -> None:
            async with session.post(url, data=BODY, headers=HEADERS, timeout=timeout) as resp:
                await resp.read()
                assert resp.status == 200

        await _drive(n, concurrency, one)


async def bench_httpx(url: str, n: int, concurrency: int) -> None:
    import httpx

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits) as client:
        async def one() -> None:
            resp = await client.post(url, content=BODY, headers=HEADERS, timeout=60)
            assert resp.status_code == 200

        await _drive(n, concurrency, one)


async def bench_httpx_aiohttp(url: str, n: int, concurrency: int) -> None:
    import httpx
    from httpx_aiohttp import AiohttpTransport

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(transport=AiohttpTransport(limits=limits)) as client:
        async def one() -> None:
            resp = await client.post(url, content=BODY, headers=HEADERS, timeout=60)
            assert resp.status_code == 200

        await _drive(n, concurrency, one)


async def bench_raw(url: str, n: int, concurrency: int) -> None:
    host, _, rest = url.removeprefix("http://").partition(":")
    port = int(rest.split("/", 1)[0])
    request = (f"POST /bench HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
               f"Content-Length: {len(BODY)}\r\n\r\n").encode() + BODY
    remaining = n

    async def conn() -> None:
        nonlocal remaining
        reader, writer = await asyncio.open_connection(host, port)
        while remaining > 0:
            remaining -= 1
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            if length:
                await reader.readexactly(length)
            assert head.startswith(b"HTTP/1.1 200")
        writer.close()

    await asyncio.gather(*(conn() for _ in range(concurrency)))


CLIENTS: dict[str, Runner] = {
    "httpx (default transport)": bench_httpx,
    "httpx + AiohttpTransport": bench_httpx_aiohttp,
    "aiohttp.ClientSession": bench_aiohttp,
    "raw asyncio (sink ceiling)": bench_raw,
}


def measure(runner: Runner, url: str, n: int, concurrency: int) -> float:
    asyncio.run(runner(url, min(n // 10, 500), concurrency))  # warm-up, fresh loop
    start = time.perf_counter()
    asyncio.run(runner(url, n, concurrency))
    return n / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--sink", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.sink:
        run_sink(args.sink)
        return
    port = free_port()
    sink = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--sink", str(port)])
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        url = f"http://127.0.0.1:{port}/bench"
        results: dict[str, list[float]] = {name: [] for name in CLIENTS}
        for _ in range(args.rounds):
            for name, runner in CLIENTS.items():
                results[name].append(measure(runner, url, args.requests, args.concurrency))
        print(f"{args.requests} POSTs of {len(BODY)} B, {args.concurrency} in flight, "
              f"{args.rounds} rounds, sink in a separate process, CPUs={os.cpu_count()}, "
              f"python {sys.version.split()[0]}")
        base = max(results["aiohttp.ClientSession"])
        for name, rates in results.items():
            best = max(rates)
            print(f"  {name:28s} best {best:8.0f} req/s  median {statistics.median(rates):8.0f} req/s  "
                  f"x{best / base:.2f} vs aiohttp")
    finally:
        sink.terminate()
        sink.wait(timeout=10)


if __name__ == "__main__":
    main()

"""How fast the `postgres` source moves row changes onto a real JetStream bus (`python -m bench.postgres_source`).

Starts a private PostgreSQL server (tests/fixtures_postgres.py: wal2json, `wal_level=logical`) and an embedded
nats-server, then runs `sources.postgres.PostgresSource` publishing through the engine's own `publish_event`
(one JetStream publish, awaited PubAck, per change):

- backlog: `--rows` single-row INSERT transactions committed while the source is stopped, then the source starts;
  changes/s from its start until the last event is stored;
- one transaction: `--rows` rows in one INSERT ... SELECT, read while the source runs;
- latency: `--paced` single-row INSERTs, one every 50 ms, with `pollingInterval` 100ms: commit to stored on the bus
  (median and max; the poll interval bounds it from above).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

import psycopg

from sensorium.buses.embedded import EmbeddedNats
from sensorium.buses.jetstream.bus import JetStreamBus
from sensorium.engine.app import publish_event
from sensorium.engine.core.cloudevent import CloudEvent
from sensorium.engine.core.secrets import Secrets
from sensorium.sources.postgres import PostgresContext, PostgresSource
from tests.fixtures_postgres import PostgresServer  # the tests' private server (run from the repository root)


async def main(rows: int, paced: int) -> None:
    server = PostgresServer()
    nats = EmbeddedNats(Path(tempfile.mkdtemp(prefix="bench-pg-nats-")))
    server.init()
    server.start()
    await nats.start()
    bus = JetStreamBus(nats.url)
    await bus.start()
    try:
        db = server.new_database()
        db.execute("CREATE TABLE orders (order_id integer PRIMARY KEY, customer text, amount numeric(10,2))")
        stored: dict[int, float] = {}

        async def publish(event: CloudEvent) -> None:
            await publish_event(bus, event)
            stored[len(stored)] = time.monotonic()

        spec = PostgresContext.model_validate({
            "host": db.host, "port": db.port, "database": db.name, "username": db.user, "password": db.password,
            "table": "orders", "pollingInterval": "100ms", "slotName": "bench"})

        async def until(count: int) -> None:
            while len(stored) < count:
                await asyncio.sleep(0.005)

        source = PostgresSource([("bench", "orders", spec)], publish, Secrets())
        await source.start()  # creates the slot
        await source.stop()
        with psycopg.connect(db.dsn, autocommit=True) as conn:
            for n in range(rows):
                conn.execute("INSERT INTO orders VALUES (%s, 'ada', 12.50)", (n,))
        source = PostgresSource([("bench", "orders", spec)], publish, Secrets())
        started = time.monotonic()
        await source.start()
        await until(rows)
        took = time.monotonic() - started
        print(f"backlog of {rows} single-row transactions: {took:.2f} s, {rows / took:,.0f} changes/s")

        base = len(stored)
        started = time.monotonic()
        db.execute(f"INSERT INTO orders SELECT n, 'bob', 1 FROM generate_series({rows}, {2 * rows - 1}) n")
        await until(base + rows)
        took = time.monotonic() - started
        print(f"one transaction of {rows} rows: {took:.2f} s from commit, {rows / took:,.0f} changes/s")

        latencies = []
        with psycopg.connect(db.dsn, autocommit=True) as conn:
            for n in range(paced):
                before = len(stored)
                conn.execute("INSERT INTO orders VALUES (%s, 'cy', 3)", (3 * rows + n,))
                committed = time.monotonic()
                await until(before + 1)
                latencies.append(stored[before] - committed)
                await asyncio.sleep(0.05)
        print(f"latency commit -> stored over {paced} paced inserts (pollingInterval 100ms): median "
              f"{statistics.median(latencies) * 1000:.0f} ms, max {max(latencies) * 1000:.0f} ms")
        await source.stop()
    finally:
        await bus.close()
        await nats.stop()
        server.cleanup()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=5000)
    parser.add_argument("--paced", type=int, default=50)
    args = parser.parse_args()
    asyncio.run(main(args.rows, args.paced))

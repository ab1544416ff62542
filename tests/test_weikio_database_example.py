"""examples/weikio-database: the seed's Weik.io `database` EventSource, as written, against a real PostgreSQL server
(wal2json), a real nats-server and a real HTTP sink: an insert and an update of an order reach the sink with the
EventSource's EventType as the CloudEvent type, the producer it declares and the order id from its variable."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from pathlib import Path

import psycopg
import pytest

from tests.engine_harness import Engine
from tests.fixtures_http import HttpSink
from tests.fixtures_postgres import Database, PostgresServer

pytestmark = [pytest.mark.integration, pytest.mark.nats]

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "weikio-database"


async def test_an_insert_and_an_update_arrive_typed_as_the_eventtype(
        nats_url: str, tmp_path: Path, http_sink: HttpSink, postgres_server: PostgresServer,
        monkeypatch: pytest.MonkeyPatch) -> None:
    done = subprocess.run([str(postgres_server.bin / "psql"), "-v", "ON_ERROR_STOP=1", "-q", "-f",
                           str(EXAMPLE / "schema.sql"), postgres_server.admin_dsn()], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    # the example as written, but for the server's port (the test server listens on a free one, not 5432)
    example = tmp_path / "example"
    shutil.copytree(EXAMPLE, example)
    source = (example / "eventsource.yaml").read_text()
    assert source.count('Port: "5432"') == 1
    (example / "eventsource.yaml").write_text(source.replace('Port: "5432"', f'Port: "{postgres_server.port}"'))
    monkeypatch.setenv("SINK_PORT", str(http_sink.port))
    shop = Database("127.0.0.1", postgres_server.port, "shop", "shop", "s3cret-shop")
    try:
        async with Engine(example, nats_url, secrets_dir=example / "secrets", data_dir=tmp_path / "data"):
            shop.execute("INSERT INTO orders VALUES (1041, 'ada', 'new', 250.50)",
                         "UPDATE orders SET status = 'paid' WHERE order_id = 1041",
                         "DELETE FROM orders")  # TrackDeletes: "false"
            got = await http_sink.wait_for(2, timeout=30)
            await asyncio.sleep(1.0)  # the DELETE, read in the same poll, is not published
    finally:
        with psycopg.connect(postgres_server.admin_dsn(), autocommit=True) as admin:
            admin.execute("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
                          "WHERE database = 'shop'")
            admin.execute("DROP DATABASE shop")
            admin.execute("DROP ROLE shop")
    assert [(r.method, r.path, r.json()) for r in http_sink.requests] == [
        ("POST", "/orders", {"orderId": "1041", "operation": op, "type": "com.example.orders.changed",
                             "source": "orders-database"}) for op in ("INSERT", "UPDATE")]
    assert len(got) == 2

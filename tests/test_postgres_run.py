"""The postgres source in a running engine: a real PostgreSQL server (wal2json, `wal_level=logical`), a real
nats-server and a real HTTP sink. Row changes become events with the right rows; changes made while the engine is
stopped, or after `kill -9` of `sensorium run`, arrive at the next start, each once; a dropped connection and a
restarted server are survived; an unreachable server does not stop the other sources; the password never
appears in any output."""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
from pathlib import Path
from typing import Any

import nats
import psycopg
import pytest

from tests.engine_harness import Engine, EngineProcess, unique, write_config
from tests.fixtures_http import HttpSink
from tests.fixtures_postgres import Database, PostgresServer

pytestmark = [pytest.mark.integration, pytest.mark.nats]

SOURCE = """\
apiVersion: argoproj.io/v1alpha1
kind: EventSource
metadata: {name: %(source)s}
spec:
  postgres:
    orders:
      host: 127.0.0.1
      port: %(port)s
      database: %(database)s
      username: %(user)s
      password: {name: db, key: password}
      table: orders
      pollingInterval: 200ms
      variables:
        - {sourceColumn: order_id, targetVariable: OrderId}
"""

SENSOR = """\
apiVersion: argoproj.io/v1alpha1
kind: Sensor
metadata: {name: %(source)s-sensor}
spec:
  dependencies: [{name: d, eventSourceName: %(source)s, eventName: orders}]
  triggers:
    - template:
        name: post
        http:
          url: %(sink)s/change
          method: POST
          payload:
            - {src: {dependencyName: d, dataKey: operation}, dest: op}
            - {src: {dependencyName: d, dataKey: variables.OrderId}, dest: orderId}
            - {src: {dependencyName: d, dataKey: row, useRawData: true}, dest: row}
            - {src: {dependencyName: d, dataKey: oldRow, useRawData: true, value: "none"}, dest: old}
"""

TABLE = "CREATE TABLE orders (order_id integer PRIMARY KEY, status text NOT NULL, amount numeric(10,2))"


def configure(tmp_path: Path, db: Database, sink: HttpSink, **overrides: Any) -> tuple[Path, Path, str]:
    source = unique("pg")
    values = {"source": source, "port": db.port, "database": db.name, "user": db.user, "sink": sink.url,
              **overrides}
    folder = write_config(tmp_path / "cfg", SOURCE % values, SENSOR % values)
    secrets = tmp_path / "secrets"
    (secrets / "db").mkdir(parents=True, exist_ok=True)
    (secrets / "db" / "password").write_text(db.password + "\n")
    return folder, secrets, source


def bodies(sink: HttpSink) -> list[Any]:
    return [r.json() for r in sink.requests]


async def stored(nats_url: str, source: str) -> int:
    """How many events of `source`'s `orders` the bus's stream holds (duplicates dropped by its window)."""
    nc = await nats.connect(nats_url)
    try:
        subject = f"default.{source}.orders"
        info = await nc.jetstream().stream_info("default", subjects_filter=subject)
        return int((info.state.subjects or {}).get(subject, 0))
    finally:
        await nc.close()


async def settle(sink: HttpSink, db: Database, marker: int, nats_url: str, source: str) -> list[Any]:
    """Insert a marker row and wait for its event: changes are published in commit order, so every change made
    before it (and any copy of one) is on the bus by then. Then wait until the sink got a request for as many
    distinct changes as the bus stored (a firing may also come twice: see the kill test). The requests other than
    the marker's."""
    db.execute(f"INSERT INTO orders VALUES ({marker}, 'marker', 0)")
    async with asyncio.timeout(30):
        while not any(b.get("orderId") == str(marker) for b in bodies(sink)):
            await asyncio.sleep(0.05)
        count = await stored(nats_url, source)
        while len({json.dumps(b, sort_keys=True) for b in bodies(sink)}) < count:
            await asyncio.sleep(0.05)
    return [b for b in bodies(sink) if b.get("orderId") != str(marker)]


async def test_inserts_updates_and_deletes_become_events_with_their_rows(
        nats_url: str, tmp_path: Path, http_sink: HttpSink, postgres_db: Database,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    postgres_db.execute(TABLE, "ALTER TABLE orders REPLICA IDENTITY FULL", "CREATE TABLE other (x int)")
    folder, secrets, source = configure(tmp_path, postgres_db, http_sink)
    async with Engine(folder, nats_url, secrets_dir=secrets):
        postgres_db.execute("INSERT INTO orders VALUES (1, 'new', 12.50)", "INSERT INTO other VALUES (7)")
        postgres_db.transaction("UPDATE orders SET status = 'paid' WHERE order_id = 1",
                                "INSERT INTO orders VALUES (2, 'new', 3)")
        postgres_db.execute("DELETE FROM orders WHERE order_id = 2")
        await http_sink.wait_for(4, timeout=30)
        got = await settle(http_sink, postgres_db, 99, nats_url, source)
    assert await stored(nats_url, source) == 5 and len(http_sink.requests) == 5
    assert got == [
        {"op": "INSERT", "orderId": "1", "row": {"order_id": 1, "status": "new", "amount": 12.50}, "old": "none"},
        {"op": "UPDATE", "orderId": "1", "row": {"order_id": 1, "status": "paid", "amount": 12.50},
         "old": {"order_id": 1, "status": "new", "amount": 12.50}},
        {"op": "INSERT", "orderId": "2", "row": {"order_id": 2, "status": "new", "amount": 3.00}, "old": "none"},
        {"op": "DELETE", "orderId": "2", "row": {"order_id": 2, "status": "new", "amount": 3.00},
         "old": {"order_id": 2, "status": "new", "amount": 3.00}},
    ]
    assert b'"amount":12.50' in http_sink.requests[0].body  # numeric digits kept exactly
    assert postgres_db.password not in caplog.text


async def test_untracked_operations_and_default_replica_identity(nats_url: str, tmp_path: Path, http_sink: HttpSink,
                                                                postgres_db: Database) -> None:
    """trackInserts: false publishes no INSERT; with the default replica identity the old row is the key only."""
    postgres_db.execute(TABLE)
    folder, secrets, _ = configure(tmp_path, postgres_db, http_sink)
    source_file = folder / "doc0.yaml"
    source_file.write_text(source_file.read_text().replace("pollingInterval: 200ms",
                                                           "pollingInterval: 200ms\n      trackInserts: false"))
    async with Engine(folder, nats_url, secrets_dir=secrets):
        postgres_db.execute("INSERT INTO orders VALUES (5, 'new', 1)", "UPDATE orders SET status = 'paid'",
                            "DELETE FROM orders")
        got = await http_sink.wait_for(2, timeout=30)
        postgres_db.execute("INSERT INTO orders VALUES (6, 'new', 1)", "DELETE FROM orders WHERE order_id = 6")
        await http_sink.wait_for(3, timeout=30)
    got = bodies(http_sink)
    assert [(b["op"], b["orderId"]) for b in got] == [("UPDATE", "5"), ("DELETE", "5"), ("DELETE", "6")]
    assert got[0]["old"] == {"order_id": 5} and got[0]["row"]["status"] == "paid"
    assert got[1]["old"] == {"order_id": 5} and got[1]["row"] == {"order_id": 5}


async def test_changes_made_while_stopped_or_killed_arrive_once(nats_url: str, tmp_path: Path, http_sink: HttpSink,
                                                               postgres_db: Database) -> None:
    postgres_db.execute(TABLE)
    folder, secrets, source = configure(tmp_path, postgres_db, http_sink)
    async with Engine(folder, nats_url, secrets_dir=secrets):
        postgres_db.execute("INSERT INTO orders VALUES (1, 'a', 1)")
        await http_sink.wait_for(1, timeout=30)
    postgres_db.execute("INSERT INTO orders VALUES (2, 'b', 2)", "UPDATE orders SET status = 'c' WHERE order_id = 1")
    engine = EngineProcess(folder, nats_url, "--secrets-dir", str(secrets), "--ack-wait", "3")
    await engine.start()
    output = engine.output
    try:
        await http_sink.wait_for(3, timeout=30)
        for n in range(3, 23):  # the kill lands while these are being read and published
            postgres_db.execute(f"INSERT INTO orders VALUES ({n}, 'k', {n})")
        await http_sink.wait_for(5, timeout=30)
    finally:
        await engine.kill()
    postgres_db.execute("DELETE FROM orders WHERE order_id = 2")
    engine = EngineProcess(folder, nats_url, "--secrets-dir", str(secrets), "--ack-wait", "3")
    await engine.start()
    try:
        got = await settle(http_sink, postgres_db, 99, nats_url, source)
    finally:
        assert await engine.terminate() == 0
    seen = [(b["op"], b["orderId"]) for b in got]
    expected = [("INSERT", "1"), ("INSERT", "2"), ("UPDATE", "1"), *[("INSERT", str(n)) for n in range(3, 23)],
                ("DELETE", "2")]
    # Each change is stored on the bus once (a change read again after the kill has the same event id, which the
    # stream's duplicate window drops) and none is lost. A firing the kill interrupted before its ack is fired
    # again by the restarted engine (the sensors' at-least-once, as for any source), so the sink may see one twice.
    assert await stored(nats_url, source) == len(expected) + 1
    assert sorted(set(seen)) == sorted(expected)
    assert seen[:3] == expected[:3]
    assert postgres_db.password not in "".join(output + engine.output)


async def test_a_dropped_connection_and_a_restarted_server_are_survived(
        nats_url: str, tmp_path: Path, http_sink: HttpSink, postgres_db: Database,
        postgres_server: PostgresServer, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="sensorium")
    postgres_db.execute(TABLE)
    folder, secrets, _ = configure(tmp_path, postgres_db, http_sink)
    async with Engine(folder, nats_url, secrets_dir=secrets):
        postgres_db.execute("INSERT INTO orders VALUES (1, 'a', 1)")
        await http_sink.wait_for(1, timeout=30)
        with psycopg.connect(postgres_server.admin_dsn(), autocommit=True) as admin:
            killed = admin.execute("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                                   "WHERE application_name LIKE 'sensorium %%' AND datname = %s",
                                   (postgres_db.name,)).fetchone()
        assert killed == (1,)
        postgres_db.execute("INSERT INTO orders VALUES (2, 'b', 2)")
        await http_sink.wait_for(2, timeout=30)
        pid = postgres_server.proc.pid if postgres_server.proc else None
        await asyncio.to_thread(postgres_server.restart, 1.0)
        assert postgres_server.proc is not None and postgres_server.proc.pid != pid
        postgres_db.execute("INSERT INTO orders VALUES (3, 'c', 3)")
        await http_sink.wait_for(3, timeout=60)
    assert [b["orderId"] for b in bodies(http_sink)] == ["1", "2", "3"]
    failures = [r.getMessage() for r in caplog.records if "reconnecting in" in r.getMessage()]
    assert len(failures) >= 2 and all(r.startswith("postgres postgres.") for r in failures)
    assert postgres_db.password not in caplog.text


async def test_an_unreachable_server_or_a_wrong_password_does_not_stop_the_other_sources(
        nats_url: str, tmp_path: Path, http_sink: HttpSink, postgres_db: Database,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="sensorium")
    postgres_db.execute(TABLE)
    folder, secrets, source = configure(tmp_path, postgres_db, http_sink)
    broken = (SOURCE % {"source": f"{source}-down", "port": 1, "database": "x", "user": "x"}
              ).replace("pollingInterval: 200ms", "pollingInterval: 100ms")
    (secrets / "bad").mkdir()
    (secrets / "bad" / "password").write_text("wr0ng-Passw0rd")
    refused = (SOURCE % {"source": f"{source}-refused", "port": postgres_db.port, "database": postgres_db.name,
                         "user": postgres_db.user}).replace("name: db,", "name: bad,")
    write_config(folder / "more", broken, refused)
    async with Engine(folder, nats_url, secrets_dir=secrets):
        postgres_db.execute("INSERT INTO orders VALUES (1, 'a', 1)")
        await http_sink.wait_for(1, timeout=30)
        async with asyncio.timeout(30):
            while sum("password authentication failed" in r.getMessage() for r in caplog.records) < 1:
                await asyncio.sleep(0.1)
    lines = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    down = [line for line in lines if f"{source}-down" in line]
    assert down and "Connection refused" in down[0] and "reconnecting in 0.1s" in down[0]
    assert any(f"{source}-refused" in line and "password authentication failed" in line for line in lines)
    assert "wr0ng-Passw0rd" not in caplog.text and postgres_db.password not in caplog.text
    assert [b["orderId"] for b in bodies(http_sink)] == ["1"]


async def test_the_example_as_the_readme_runs_it(nats_url: str, tmp_path: Path, http_sink: HttpSink,
                                                 postgres_server: PostgresServer,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """examples/postgres: schema.sql through psql, the folder run as written (its secrets directory), an order
    inserted, paid and deleted: the two requests the README shows."""
    example = Path(__file__).resolve().parents[1] / "examples" / "postgres"
    done = subprocess.run([str(postgres_server.bin / "psql"), "-v", "ON_ERROR_STOP=1", "-q", "-f",
                           str(example / "schema.sql"), postgres_server.admin_dsn()], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    shop = Database("127.0.0.1", postgres_server.port, "shop", "shop", "s3cret-shop")
    monkeypatch.setenv("SHOP_DB_PORT", str(postgres_server.port))
    monkeypatch.setenv("SINK_PORT", str(http_sink.port))
    try:
        async with Engine(example, nats_url, secrets_dir=example / "secrets", data_dir=tmp_path):
            shop.execute("INSERT INTO orders VALUES (1041, 'ada', 'new', 250.50)",
                         "UPDATE orders SET status = 'paid' WHERE order_id = 1041", "DELETE FROM orders")
            got = await http_sink.wait_for(2, timeout=30)
    finally:
        with psycopg.connect(postgres_server.admin_dsn(), autocommit=True) as admin:
            admin.execute("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
                          "WHERE database = 'shop'")
            admin.execute("DROP DATABASE shop")
            admin.execute("DROP ROLE shop")
    assert [(r.path, r.json()) for r in got] == [("/fulfil", {"orderId": "1041", "amount": "250.5"}),
                                                 ("/audit", {"orderId": "1041", "what": "DELETE"})]

"""The postgres source against a real PostgreSQL server, publishing into a list (no bus): the slot does not advance
while the bus refuses an event, one engine at a time reads a slot (the other takes over when it stops), a table
that does not exist yet is waited for, and the replica identity hint."""

from __future__ import annotations

import json
import logging
from typing import Any

import psycopg
import pytest

from sensorium.engine.core.cloudevent import CloudEvent
from sensorium.engine.core.errors import BusError
from sensorium.engine.core.secrets import Secrets
from sensorium.sources.postgres import PostgresContext, PostgresSource
from tests.collected import until
from tests.fixtures_postgres import Database, PostgresServer

pytestmark = pytest.mark.integration

TABLE = "CREATE TABLE orders (order_id integer PRIMARY KEY, status text)"


def spec(db: Database, **fields: Any) -> PostgresContext:
    return PostgresContext.model_validate({"host": db.host, "port": db.port, "database": db.name,
                                           "username": db.user, "password": db.password, "table": "orders",
                                           "pollingInterval": "100ms", "slotName": "orders_slot", **fields})


class Published:
    """A publish callback recording events; it refuses (BusError) while `refusing` is set."""

    def __init__(self) -> None:
        self.events: list[CloudEvent] = []
        self.refused = 0
        self.refusing = False

    async def __call__(self, event: CloudEvent) -> None:
        if self.refusing:
            self.refused += 1
            raise BusError("bus down (test)")
        self.events.append(event)

    def ids(self) -> list[Any]:
        return [json.loads(e.data or b"")["row"]["order_id"] for e in self.events]



def confirmed(db: Database) -> str:
    with psycopg.connect(db.dsn) as conn:
        row = conn.execute("SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = %s",
                           ("orders_slot",)).fetchone()
    assert row is not None
    return str(row[0])


async def test_the_slot_waits_while_the_bus_refuses(postgres_db: Database) -> None:
    postgres_db.execute(TABLE)
    published = Published()
    source = PostgresSource([("shop", "orders", spec(postgres_db))], published, Secrets())
    await source.start()
    try:
        before = confirmed(postgres_db)
        published.refusing = True
        postgres_db.execute("INSERT INTO orders VALUES (1, 'a')")
        await until(lambda: published.refused >= 3)
        assert confirmed(postgres_db) == before and published.events == []
        published.refusing = False
        await until(lambda: published.ids() == [1])
        await until(lambda: confirmed(postgres_db) != before)
    finally:
        await source.stop()


async def test_one_reader_per_slot_and_the_other_takes_over(postgres_db: Database,
                                                            caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="sensorium")
    postgres_db.execute(TABLE)
    first, second = Published(), Published()
    one = PostgresSource([("shop", "orders", spec(postgres_db))], first, Secrets())
    two = PostgresSource([("shop", "orders", spec(postgres_db))], second, Secrets())
    await one.start()
    await two.start()
    try:
        await until(lambda: "slot orders_slot is read by another engine" in caplog.text)
        for n in range(1, 11):
            postgres_db.execute(f"INSERT INTO orders VALUES ({n}, 'x')")
        await until(lambda: first.ids() == list(range(1, 11)))
        await one.stop()
        for n in range(11, 16):
            postgres_db.execute(f"INSERT INTO orders VALUES ({n}, 'y')")
        await until(lambda: second.ids() == list(range(11, 16)))
        assert first.ids() == list(range(1, 11))
    finally:
        await one.stop()
        await two.stop()


async def test_a_table_created_later_is_waited_for_and_the_identity_hint(postgres_db: Database,
                                                                         caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="sensorium")
    published = Published()
    source = PostgresSource([("shop", "orders", spec(postgres_db))], published, Secrets())
    await source.start()
    try:
        assert source.errors == {"postgres.shop.orders": f"table public.orders not found (or not visible to "
                                                         f"{postgres_db.user})"}
        postgres_db.execute(TABLE)
        await until(lambda: "has REPLICA IDENTITY DEFAULT: oldRow holds the key columns only" in caplog.text)
        postgres_db.execute("INSERT INTO orders VALUES (3, 'z')")
        await until(lambda: published.ids() == [3])
        assert source.errors == {}
    finally:
        await source.stop()


async def test_a_slot_of_another_plugin_and_a_role_without_replication_are_clear_errors(
        postgres_db: Database, postgres_server: PostgresServer) -> None:
    postgres_db.execute(TABLE, "SELECT pg_create_logical_replication_slot('taken', 'test_decoding')")
    postgres_server.admin(f"CREATE ROLE {postgres_db.name}_ro LOGIN PASSWORD 'ro-pass'",
                          f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {postgres_db.name}_ro",
                          dbname=postgres_db.name)
    taken = spec(postgres_db, slotName="taken")
    no_replication = spec(postgres_db, username=f"{postgres_db.name}_ro", password="ro-pass", slotName="ro_slot")
    source = PostgresSource([("shop", "taken", taken), ("shop", "readonly", no_replication)], Published(),
                            Secrets())
    await source.start()
    try:
        await until(lambda: len(source.errors) == 2)
        assert source.errors["postgres.shop.taken"] == (
            f"replication slot taken exists but is a logical slot of plugin test_decoding on database "
            f"{postgres_db.name}; set another slotName")
        assert "must be superuser or replication role" in source.errors["postgres.shop.readonly"]
        assert "ro-pass" not in source.errors["postgres.shop.readonly"]
    finally:
        await source.stop()

"""The postgres source kind without a server: its spec (load errors at FILE:LINE), slot names, wal2json messages
read into changes, the event data and ids, and Weik.io's `database` Parameters (`from_weik`, the seed's
`orders-db` example included)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from sensorium.engine.assemble import load_checked
from sensorium.engine.located import ConfigErrors
from sensorium.sources.postgres import PostgresContext, _wal2json_table, default_slot_name, from_weik
from sensorium.sources.postgres_changes import (
    TRUNCATED_VALUE,
    Change,
    Commit,
    MessageError,
    MessageReader,
    event_data,
    event_id,
    read_messages,
    rfc3339,
)
from sensorium.sources.postgres_weik import WeikParameterError
from tests.seed import ORDERS_DB


def entry(**fields: Any) -> PostgresContext:
    return PostgresContext.model_validate({"database": "shop", "username": "shop", "table": "orders", **fields})


# ---- the spec -----------------------------------------------------------------------------------------------------

def test_defaults_and_the_tracked_actions() -> None:
    spec = entry()
    assert (spec.host, spec.port, spec.schema_name, spec.interval(), spec.password) == ("localhost", 5432, "public",
                                                                                        5.0, None)
    assert spec.actions() == "insert,update,delete"
    assert entry(trackInserts=False, trackDeletes=False).actions() == "update"
    with pytest.raises(ValueError, match="all false: nothing to publish"):
        entry(trackInserts=False, trackUpdates=False, trackDeletes=False)
    assert entry(password="literal").password == "literal"
    assert entry(password={"name": "db", "key": "pw"}).password.key == "pw"  # type: ignore[union-attr]


def test_invalid_entries_are_refused_at_their_lines(tmp_path: Path) -> None:
    (tmp_path / "es.yaml").write_text("""\
apiVersion: argoproj.io/v1alpha1
kind: EventSource
metadata: {name: shop-db}
spec:
  postgres:
    orders:
      database: shop
      username: shop
      password: {name: db}
      slotName: Not-A-Slot
      pollingInterval: 10ms
      port: 70000
      trackInserts: maybe
      sslMode: sometimes
""")
    with pytest.raises(ConfigErrors) as caught:
        load_checked([tmp_path])
    lines = sorted(caught.value.render().splitlines())
    path = f"{tmp_path / 'es.yaml'}"
    assert lines == sorted([
        f"{path}:6: spec.postgres.orders.table: required field is missing",
        f"{path}:9: spec.postgres.orders.password.secret.key: required field is missing",
        f"{path}:10: spec.postgres.orders.slotName: slotName must be 1-63 characters of a-z, 0-9 and _",
        f"{path}:11: spec.postgres.orders.pollingInterval: pollingInterval must be at least 100ms, got '10ms'",
        f"{path}:12: spec.postgres.orders.port: input should be less than or equal to 65535",
        f"{path}:13: spec.postgres.orders.trackInserts: input should be a valid boolean, unable to interpret input",
        f"{path}:14: spec.postgres.orders.sslMode: input should be 'disable', 'allow', 'prefer', 'require', "
        "'verify-ca' or 'verify-full'",
    ])


def test_the_example_loads() -> None:
    checked = load_checked([Path(__file__).resolve().parents[1] / "examples" / "postgres"])
    assert [(e.kind, e.event_source, e.event_name) for e in checked.entries] == [("postgres", "shop-db", "orders")]


def test_slot_names_are_valid_distinct_and_stable() -> None:
    assert default_slot_name("shop-db", "orders") == "sensorium_shop_db_orders_" + default_slot_name(
        "shop-db", "orders")[-8:]
    assert default_slot_name("a-b", "c") != default_slot_name("a", "b-c")
    long = default_slot_name("x" * 200, "Événement")
    assert len(long) == 63 and entry(slotName=long).slot_name == long


def test_table_names_are_escaped_for_wal2json() -> None:
    assert _wal2json_table("public", "orders") == "public.orders"
    assert _wal2json_table("my schema", "a.b,c*") == r"my\ schema.a\.b\,c\*"


# ---- wal2json messages, event data and ids ------------------------------------------------------------------------

def rows(*messages: dict[str, Any], xid: int = 729, lsn: str = "0/1928120") -> list[tuple[str, str, str]]:
    return [(lsn, str(xid), json.dumps(m)) for m in messages]


def col(name: str, kind: str, value: Any) -> dict[str, Any]:
    return {"name": name, "type": kind, "value": value}


def test_messages_become_changes_and_commits() -> None:
    stamp = "2026-12-06 14:21:05.653701+00"
    got = list(read_messages([
        *rows({"action": "B", "timestamp": stamp}),
        ("0/1928130", "729", '{"action":"U","timestamp":"' + stamp + '","schema":"public","table":"orders",'
         '"columns":[{"name":"id","type":"integer","value":1},{"name":"amount","type":"numeric(10,2)","value":12.50},'
         '{"name":"meta","type":"jsonb","value":"{\\"a\\": [1, 2]}"},{"name":"bad","type":"json","value":"{"}],'
         '"identity":[{"name":"id","type":"integer","value":1}]}'),
        ("0/1928140", "729", json.dumps({"action": "D", "schema": "public", "table": "orders",
                                         "identity": [col("id", "integer", 2)]})),
        ("0/1928150", "729", json.dumps({"action": "T", "schema": "public", "table": "orders"})),
        ("0/19281F0", "729", json.dumps({"action": "C", "timestamp": stamp})),
    ]))
    update, delete, commit = got
    assert isinstance(update, Change) and isinstance(delete, Change)
    assert (update.operation, update.index, update.lsn, update.xid) == ("UPDATE", 0, "0/1928130", 729)
    assert dict(update.row) == {"id": 1, "amount": json.loads("12.50", parse_float=__import__("decimal").Decimal),
                                "meta": {"a": [1, 2]}, "bad": "{"}
    assert update.old_row == {"id": 1} and update.commit_time == "2026-12-06T14:21:05.653701Z"
    assert (delete.operation, delete.index, dict(delete.row), delete.old_row) == ("DELETE", 1, {"id": 2}, {"id": 2})
    assert commit == Commit("0/19281F0", 729)


def test_a_transaction_split_across_chunks_keeps_its_indexes() -> None:
    messages = rows({"action": "B"}, *({"action": "I", "schema": "s", "table": "t", "columns": [col("id", "int", n)]}
                                       for n in range(5)), {"action": "C"})
    whole = list(read_messages(messages))
    reader = MessageReader()
    chunked = [m for start in range(0, len(messages), 2) for m in reader.read(messages[start:start + 2])]
    assert chunked == whole and [m.index for m in whole if isinstance(m, Change)] == [0, 1, 2, 3, 4]


def test_a_json_column_nested_too_deep_for_the_sensors_stays_text() -> None:
    deep, shallow = "[" * 300 + "]" * 300, "[" * 250 + "]" * 250
    message = {"action": "I", "schema": "s", "table": "t",
               "columns": [col("deep", "jsonb", deep), col("shallow", "json", shallow)]}
    (got,) = list(read_messages(rows(message)))
    assert isinstance(got, Change) and got.row["deep"] == deep and isinstance(got.row["shallow"], list)


def test_a_message_that_is_not_wal2json_is_an_error_without_its_content() -> None:
    with pytest.raises(MessageError, match=r"^the message at 0/1 is not JSON$"):
        list(read_messages([("0/1", "1", "secret-row-value {")]))
    with pytest.raises(MessageError, match="not an object"):
        list(read_messages([("0/1", "1", "[1]")]))


def change(**fields: Any) -> Change:
    base: dict[str, Any] = {"operation": "INSERT", "schema": "public", "table": "orders", "row": {"order_id": 7},
                            "old_row": None, "lsn": "0/10", "xid": 5, "index": 0,
                            "commit_time": "2026-12-06T14:21:05.645791Z"}
    return Change(**{**base, **fields})


def test_event_data_holds_the_change_and_the_variables() -> None:
    data, dropped = event_data(change(), [("order_id", "OrderId"), ("missing", "Gone")], 10_000)
    assert dropped == []
    assert json.loads(data) == {"operation": "INSERT", "schema": "public", "table": "orders",
                                "row": {"order_id": 7}, "variables": {"OrderId": 7},
                                "commitTime": "2026-12-06T14:21:05.645791Z", "lsn": "0/10", "xid": 5}
    data, _ = event_data(change(operation="UPDATE", old_row=None), [], 10_000)
    assert json.loads(data)["oldRow"] is None


def test_an_oversized_change_drops_its_big_values_and_says_which() -> None:
    big = "x" * (TRUNCATED_VALUE + 1)
    data, dropped = event_data(change(operation="UPDATE", row={"id": 1, "doc": big, "note": big},
                                      old_row={"id": 1, "doc": big}), [("id", "Id")], 2048)
    doc = json.loads(data)
    assert dropped == ["doc", "note"] and doc["truncated"] == ["doc", "note"]
    assert doc["row"] == {"id": 1, "doc": None, "note": None} and doc["oldRow"] == {"id": 1, "doc": None}
    assert doc["variables"] == {"Id": 1}
    many = {f"c{i}": "y" * 100 for i in range(100)}
    data, dropped = event_data(change(row=many), [], 2048)
    assert dropped == ["*"] and json.loads(data)["row"] is None and len(data) <= 2048


def test_event_ids_are_stable_per_change_and_distinct_across_entries_and_changes() -> None:
    one = event_id("postgres.a.orders", "slot_a", change())
    assert one == event_id("postgres.a.orders", "slot_a", change(row={"other": 1}))  # read again: same id
    assert len({one, event_id("postgres.b.orders", "slot_b", change()),
                event_id("postgres.a.orders", "slot_a", change(index=1)),
                event_id("postgres.a.orders", "slot_a", change(xid=6)),
                event_id("postgres.a.orders", "slot_a", change(lsn="0/11"))}) == 5


def test_rfc3339() -> None:
    assert rfc3339("2026-12-06 14:21:05.645791+00") == "2026-12-06T14:21:05.645791Z"
    assert rfc3339("2026-12-06 15:21:05+01") == "2026-12-06T14:21:05.000000Z"
    assert rfc3339("not a time") == "not a time"


# ---- Weik.io's database Parameters --------------------------------------------------------------------------------

def test_the_seed_orders_db_parameters_map_onto_a_valid_entry() -> None:
    doc = yaml.safe_load(ORDERS_DB)["spec"]
    spec = from_weik(doc["Parameters"], doc["Variables"])
    assert spec == {"host": "127.0.0.1", "port": 5432, "database": "shop", "username": "shop",
                    "password": {"name": "orders-db-password", "key": "password"}, "schema": "public",
                    "table": "orders", "trackInserts": True, "trackUpdates": True, "trackDeletes": False,
                    "pollingInterval": "5s", "variables": [{"sourceColumn": "order_id", "targetVariable": "OrderId"}]}
    parsed = PostgresContext.model_validate(spec)
    assert parsed.actions() == "insert,update" and parsed.interval() == 5.0


def test_from_weik_takes_a_literal_password_and_a_secret_reference_of_the_callers_choice() -> None:
    params = {"DatabaseType": "PostgreSQL", "Database": "d", "Username": "u", "Table": "t", "PollingInterval": "0.5"}
    assert from_weik({**params, "Password": "pl@in"})["password"] == "pl@in"
    spec = from_weik({**params, "Password": "${db-pw}"}, None, secret_ref=lambda n: {"name": "weik", "key": n})
    assert spec["password"] == {"name": "weik", "key": "db-pw"}
    assert spec["pollingInterval"] == "500ms" and PostgresContext.model_validate(spec).interval() == 0.5
    assert from_weik({**params, "PollingInterval": "2.25"})["pollingInterval"] == "2250ms"
    assert from_weik({**params, "PollingInterval": "60"})["pollingInterval"] == "60s"


@pytest.mark.parametrize(("parameters", "variables", "where", "message"), [
    ({"DatabaseType": "mysql"}, None, "DatabaseType", "database type 'mysql' is not supported"),
    ({"DatabaseType": "sqlserver"}, None, "DatabaseType", "'sqlserver'"),
    ({"Table": ""}, None, "Table", "required"),
    ({"Port": "54x"}, None, "Port", "want a port number 1-65535, got '54x'"),
    ({"Port": "0"}, None, "Port", "want a port number"),
    ({"TrackDeletes": "yes"}, None, "TrackDeletes", "want \"true\" or \"false\""),
    ({"PollingInterval": "5s"}, None, "PollingInterval", "want seconds"),
    ({"PollingInterval": "0"}, None, "PollingInterval", "want seconds"),
    ({"PollingInterval": "1e3"}, None, "PollingInterval", "want seconds"),
    ({"PollingInterval": "nan"}, None, "PollingInterval", "want seconds"),
    ({"Tabel": "orders"}, None, "Tabel", "unknown parameter"),
    ({}, [{"SourceColumn": "a"}], "Variables[0].TargetVariable", "required"),
    ({}, [{"SourceColumn": "a", "TargetVariable": "A", "Type": "int"}], "Variables[0].Type", "unknown field"),
])
def test_from_weik_refuses_what_it_cannot_use_naming_the_parameter(parameters: dict[str, str],
                                                                   variables: list[dict[str, str]] | None,
                                                                   where: str, message: str) -> None:
    base = {"DatabaseType": "postgresql", "Database": "d", "Username": "u", "Table": "t"}
    with pytest.raises(WeikParameterError) as caught:
        from_weik({**base, **parameters}, variables)
    assert caught.value.parameter == where and message in str(caught.value)
    assert str(caught.value).startswith(f"{where}: ")

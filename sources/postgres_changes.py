"""Row changes of the `postgres` source kind: wal2json's output read into changes, and a change's event data (pure).

The source reads its replication slot with `pg_logical_slot_peek_changes(..., 'format-version', '2', ...)`: one
row per message, `(lsn, xid, data)`, where `data` is one wal2json JSON object: `{"action": "B"}` (begin), `"C"`
(commit; its `lsn` is the end of the commit record, the position to advance the slot to once the transaction's
events are stored), or `"I"`/`"U"`/`"D"` with `schema`, `table`, `columns` (the new row: `name`, `type`, `value`)
and, for updates and deletes, `identity` (the old row: its replica identity columns; every column with REPLICA
IDENTITY FULL). `include-timestamp` adds the commit time to each message.

The event data of one change (JSON), documented in the README ("PostgreSQL changes"):

    {"operation": "UPDATE", "schema": "public", "table": "orders",
     "row": {"order_id": 7, "status": "paid"},          # the row after the change; for a DELETE, the old row
     "oldRow": {"order_id": 7},                          # UPDATE and DELETE only: the replica identity's values
     "variables": {"OrderId": 7},                        # sourceColumn -> targetVariable, read from `row`
                                                         # (sources.eventshape.with_variables: a column not in
                                                         # the row is left out)
     "commitTime": "2026-12-06T14:21:05.645791Z", "lsn": "0/1928120", "xid": 729}

Column values are wal2json's: numbers stay exact (a `numeric` keeps its digits), booleans and NULL are JSON's,
`json`/`jsonb` columns are parsed into JSON values (kept as their text when not JSON or nested so deep that the
data would be deeper than the webhook's MAX_JSON_DEPTH, which the sensors can read), everything else is
PostgreSQL's text form (timestamps, `bytea` as hex, arrays as `{1,2}`).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import msgspec

from sensorium.sources.eventshape import with_variables
from sensorium.sources.webhook import MAX_JSON_DEPTH, json_depth_exceeds

__all__ = ["OPERATIONS", "Change", "Commit", "MessageReader", "event_data", "event_id", "read_messages",
           "rfc3339"]

OPERATIONS = {"I": "INSERT", "U": "UPDATE", "D": "DELETE"}
_JSON_TYPES = ("json", "jsonb")
_NAMESPACE = uuid.UUID("5d0c2a4e-3f6b-4c8e-9b1a-7e2f4d6c8a10")  # event ids: uuid5 of entry/slot/xid/lsn/index
TRUNCATED_VALUE = 1024
"""When a change's data is over the size limit, values whose JSON is longer than this many bytes become null."""

_JSON_COLUMN_DEPTH = MAX_JSON_DEPTH - 2  # a column's value sits two levels down in the data (`row.<column>`)
_decoder = msgspec.json.Decoder(float_hook=Decimal)  # exact numerics: 12.50 stays 12.50
_encoder = msgspec.json.Encoder(decimal_format="number")


@dataclass(frozen=True)
class Change:
    """One row change: `index` counts the changes of its transaction (0, 1, ...) in commit order."""

    operation: str
    schema: str
    table: str
    row: Mapping[str, Any]
    old_row: Mapping[str, Any] | None
    lsn: str
    xid: int
    index: int
    commit_time: str


@dataclass(frozen=True)
class Commit:
    """The end of a transaction: once its changes are stored, the slot may advance to `lsn`."""

    lsn: str
    xid: int


class MessageError(ValueError):
    """A wal2json message this reader does not understand (the message says which, without row values)."""


def rfc3339(timestamp: str) -> str:
    """wal2json's `2026-12-06 14:21:05.645791+00` as RFC 3339 UTC (`2026-12-06T14:21:05.645791Z`); the input when
    it does not parse."""
    try:
        moment = datetime.fromisoformat(timestamp)
    except ValueError:
        return timestamp
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _columns(items: Any) -> dict[str, Any]:
    if not isinstance(items, list):
        return {}
    row: dict[str, Any] = {}
    for column in items:
        if not isinstance(column, dict) or not isinstance(column.get("name"), str):
            continue
        value = column.get("value")
        if (isinstance(value, str) and column.get("type") in _JSON_TYPES
                and not json_depth_exceeds(value.encode(), _JSON_COLUMN_DEPTH)):
            try:
                value = _decoder.decode(value)
            except (msgspec.DecodeError, RecursionError):
                pass  # kept as its text
        row[column["name"]] = value
    return row


class MessageReader:
    """Reads peeked `(lsn, xid, data)` rows into changes and commits, in order, across any number of `read`
    calls (the rows of one query come in chunks; a transaction may span two): a change's index counts from its
    transaction's begin message, whatever the chunking, so a change read again has the same event id."""

    def __init__(self) -> None:
        self.index = 0
        self.commit_time = ""

    def read(self, rows: Iterable[tuple[str, str | int, str]]) -> Iterator[Change | Commit]:
        """MessageError on a row that is not a wal2json format-version 2 object."""
        for lsn, xid_text, data in rows:
            try:
                message = _decoder.decode(data)
            except msgspec.DecodeError:
                raise MessageError(f"the message at {lsn} is not JSON") from None
            if not isinstance(message, dict):
                raise MessageError(f"the message at {lsn} is not an object")
            action = message.get("action")
            xid = int(xid_text)
            if isinstance(message.get("timestamp"), str):
                self.commit_time = rfc3339(message["timestamp"])
            if action == "B":
                self.index = 0
            elif action == "C":
                yield Commit(lsn, xid)
            elif action in OPERATIONS:
                operation = OPERATIONS[action]
                new = _columns(message.get("columns"))
                old = _columns(message.get("identity")) if action != "I" else None
                yield Change(operation, str(message.get("schema", "")), str(message.get("table", "")),
                             old if operation == "DELETE" and old is not None else new, old, lsn, xid, self.index,
                             self.commit_time)
                self.index += 1
            # other actions (M: logical messages, T: truncate) are not row changes


def read_messages(rows: Iterable[tuple[str, str | int, str]]) -> Iterator[Change | Commit]:
    """The changes and commits of one query's rows read at once (MessageReader)."""
    return MessageReader().read(rows)


def event_data(change: Change, variables: Sequence[tuple[str, str]], max_size: int) -> tuple[bytes, list[str]]:
    """The event data of `change` (module docstring) and the columns whose values were dropped to keep it under
    `max_size` bytes: values over TRUNCATED_VALUE bytes become null and are listed in `truncated` (in the data
    too); if that is not enough, `row` and `oldRow` become null (`truncated: ["*"]`)."""
    doc: dict[str, Any] = {"operation": change.operation, "schema": change.schema, "table": change.table,
                           "row": dict(change.row)}
    if change.operation != "INSERT":
        doc["oldRow"] = dict(change.old_row) if change.old_row is not None else None
    doc = with_variables(doc, {target: change.row[source] for source, target in variables if source in change.row})
    doc.update(commitTime=change.commit_time, lsn=change.lsn, xid=change.xid)
    body = _encoder.encode(doc)
    if len(body) <= max_size:
        return body, []
    dropped: list[str] = []
    for key in ("row", "oldRow"):
        values = doc.get(key)
        if isinstance(values, dict):
            for column, value in values.items():
                if len(_encoder.encode(value)) > TRUNCATED_VALUE:
                    values[column] = None
                    if column not in dropped:
                        dropped.append(column)
    doc["truncated"] = dropped
    body = _encoder.encode(doc)
    if len(body) > max_size:
        doc["row"] = None
        if "oldRow" in doc:
            doc["oldRow"] = None
        doc["truncated"] = dropped = ["*"]
        body = _encoder.encode(doc)
    return body, dropped


def event_id(entry: str, slot: str, change: Change) -> str:
    """The event id of a change: the same for the same change read again (after a crash, before the slot
    advanced), so the bus's duplicate detection drops the second copy; unique per entry, slot, transaction,
    position and index."""
    return str(uuid.uuid5(_NAMESPACE, f"{entry}/{slot}/{change.xid}/{change.lsn}/{change.index}"))

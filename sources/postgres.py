"""The `postgres` event source (a Sensorium kind; Weik.io's `database` with DatabaseType postgresql): one event per
row change of one table, read from a logical replication slot.

Written under an Argo-style EventSource as `spec.postgres.<eventName>` (Argo has no such kind; the key is ours).

**How changes are read, and why.** Each entry owns a logical replication slot (`slotName`, by default derived from
the EventSource and event names), created with the `wal2json` output plugin when missing. Every `pollingInterval`
the source runs `pg_logical_slot_peek_changes` (wal2json format-version 2, filtered to `schema.table` and the
tracked operations, at most `batchSize` messages, whole transactions), publishes one event per row change, in
commit order, and only when the bus stored all of a transaction's events advances the slot past its commit
(`pg_replication_slot_advance`). So the slot is the durable position: a change made while the engine is stopped
or killed is read at the next start, and a change is never skipped. Chosen over the alternatives:
- SQL polling rather than the streaming replication protocol: psycopg 3 has no replication protocol, and a poll
  at `pollingInterval` is what Weik.io's `database` source promises anyway;
- peek then advance rather than `pg_logical_slot_get_changes`: `get` consumes the changes when the query returns,
  before the bus stored their events (a crash in between would lose them);
- wal2json rather than the built-in `test_decoding` (a text format meant for tests, with quoting to undo) or
  `pgoutput` (binary, and it needs a PUBLICATION on the user's table): wal2json's JSON names each column with its
  type and value, and needs nothing added to the user's database beyond the slot;
- no triggers and no extra tables on the user's database.

A transaction read again (the engine died after publishing some of its events, before the slot advanced) yields
the same event ids (derived from the slot, the transaction id, the change's LSN and its index in the
transaction), so the bus's duplicate detection (JetStream's window, 5 minutes here) drops the copies.

**What the database must allow.** `wal_level = logical` (a server restart), a free `max_replication_slots`, and a
role with the `REPLICATION` attribute (or superuser) that can read the table's database. Old values of non-key
columns for updates and deletes need `ALTER TABLE ... REPLICA IDENTITY FULL`; otherwise `oldRow` holds the
primary key only. A slot keeps the server's WAL until it advances: drop the slot
(`SELECT pg_drop_replication_slot('<slotName>')`) when removing an entry for good.

**Failures.** An unreachable server, a dropped connection, refused credentials or a missing privilege, plugin or
table are one log line each (the password never appears: it is passed apart from the connection string and
masked in every message), then a reconnection after a delay doubling from `pollingInterval` up to MAX_BACKOFF;
other sources and the sensors go on. A bus that refuses an event is retried (the slot does not advance
meanwhile). Only one engine reads a slot at a time (a session advisory lock on the slot's name): with `run
--workers N`, or two engines on one database, the others wait and take over when it goes away.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import logging
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import Discriminator, Field, Tag, field_validator, model_validator

from sensorium.engine.core.cloudevent import CloudEvent
from sensorium.engine.core.errors import SensoriumError
from sensorium.engine.core.secrets import Secrets
from sensorium.engine.core.specbase import ArgoModel, KeySelector
from sensorium.engine.goport.duration import parse_duration
from sensorium.sources.base import EntryTasks, publish_retrying
from sensorium.sources.eventshape import CloudEventAttributes, dress
from sensorium.sources.postgres_changes import Change, Commit, MessageReader, event_data, event_id
from sensorium.sources.postgres_weik import WeikParameterError, from_weik

if TYPE_CHECKING:
    import psycopg  # imported when a source connects: it costs every CLI command 0.1-0.2 s otherwise

__all__ = ["MAX_BACKOFF", "PLUGIN", "PostgresContext", "PostgresError", "PostgresSource", "PostgresVariable",
           "WeikParameterError", "default_slot_name", "from_weik"]

log = logging.getLogger("sensorium.sources.postgres")

PLUGIN = "wal2json"
MAX_BACKOFF = 300.0  # seconds: the longest wait between reconnections (unless pollingInterval is longer)
DEFAULT_MAX_EVENT = 512 * 1024  # bytes of event data: under NATS's default 1 MiB message limit with the envelope
START_WAIT = 15.0  # seconds start() waits for the entries' slots (then they go on connecting in the background)
_SLOT = re.compile(r"[a-z0-9_]{1,63}")
_IDENTITY = {"d": "DEFAULT", "n": "NOTHING", "i": "USING INDEX", "f": "FULL"}
_FETCH = 200  # peeked rows fetched from the server at a time (client memory stays bounded)


class PostgresError(SensoriumError):
    """A failed connection or poll of one entry: the message is the log line's reason (never the password)."""


class PostgresVariable(ArgoModel):
    """A column lifted into the event's `data.variables` under another name (Weik.io's Variables)."""

    source_column: str = Field(min_length=1, description="Column of the changed row.")
    target_variable: str = Field(min_length=1, description="Key under data.variables (e.g. OrderId).")


def _password_form(value: Any) -> str:
    """Which form a written password has: a mapping is a secret selector, anything else a literal (so an error
    names one form's problem, not both)."""
    return "secret" if isinstance(value, dict | KeySelector) else "literal"


class PostgresContext(ArgoModel):
    """One `spec.postgres.<eventName>` entry: the row changes of one table, one event each."""

    host: str = Field(default="localhost", min_length=1, description="Server host name or address.")
    port: int = Field(default=5432, ge=1, le=65535, description="Server port.")
    database: str = Field(min_length=1, description="Database holding the table.")
    username: str = Field(min_length=1, description="Role to connect as: REPLICATION attribute (or superuser).")
    password: Annotated[Annotated[KeySelector, Tag("secret")] | Annotated[str, Tag("literal")],
                        Discriminator(_password_form)] | None = Field(
        default=None, description="Password: a secret {name, key} (read at each connection) or a literal; never "
        "logged.")
    ssl_mode: Literal["disable", "allow", "prefer", "require", "verify-ca", "verify-full"] = Field(
        default="prefer", description="libpq sslmode.")
    schema_name: str = Field(default="public", alias="schema", min_length=1, description="Schema of the table.")
    table: str = Field(min_length=1, description="Table whose row changes become events.")
    track_inserts: bool = Field(default=True, description="Publish INSERTs.")
    track_updates: bool = Field(default=True, description="Publish UPDATEs.")
    track_deletes: bool = Field(default=True, description="Publish DELETEs.")
    polling_interval: str = Field(default="5s", description="Go duration between polls of the slot (>= 100ms).")
    variables: list[PostgresVariable] | None = Field(
        default=None, max_length=100, description="Columns copied into data.variables under new names.")
    cloud_event: CloudEventAttributes | None = Field(
        default=None, description="Sensorium extension: the CloudEvent type (and origin source/subject) of these "
                                  "events (a Weik.io database EventSource's EventType, EventSource, Subject).")
    slot_name: str | None = Field(
        default=None, description="Replication slot (a-z, 0-9, _; at most 63); default derived from the "
        "EventSource and event names. Created when missing.")
    batch_size: int = Field(default=1000, ge=1, le=100_000,
                            description="Most wal2json messages read per query (whole transactions are read).")
    max_event_size: int = Field(default=DEFAULT_MAX_EVENT, ge=1024, le=16 * 1024 * 1024,
                                description="Largest event data in bytes; larger values are dropped (truncated).")
    connect_timeout: int = Field(default=10, ge=1, le=300, description="Seconds allowed to connect.")

    @field_validator("polling_interval")
    @classmethod
    def _interval(cls, v: str) -> str:
        if parse_duration(v) < 100_000_000:
            raise ValueError(f"pollingInterval must be at least 100ms, got {v!r}")
        return v

    @field_validator("slot_name")
    @classmethod
    def _slot(cls, v: str | None) -> str | None:
        if v is not None and not _SLOT.fullmatch(v):
            raise ValueError("slotName must be 1-63 characters of a-z, 0-9 and _")
        return v

    @field_validator("host", "database", "username", "schema_name", "table")
    @classmethod
    def _text(cls, v: str) -> str:
        if "\x00" in v or len(v) > 255:
            raise ValueError("must be at most 255 characters without NUL")
        return v

    @model_validator(mode="after")
    def _tracks_something(self) -> PostgresContext:
        if not self.actions():
            raise ValueError("trackInserts, trackUpdates and trackDeletes are all false: nothing to publish")
        return self

    def interval(self) -> float:
        """`pollingInterval` in seconds."""
        return parse_duration(self.polling_interval) / 1e9

    def actions(self) -> str:
        """wal2json's `actions` option for the tracked operations (empty: none tracked)."""
        return ",".join(name for name, on in (("insert", self.track_inserts), ("update", self.track_updates),
                                              ("delete", self.track_deletes)) if on)


def default_slot_name(event_source: str, event_name: str) -> str:
    """`sensorium_<source>_<event>_<hash>`: lower case, other characters as `_`, cut to 63 characters; the hash
    (of the exact names) keeps names that clean up alike apart."""
    digest = hashlib.sha256(f"{event_source}/{event_name}".encode()).hexdigest()[:8]
    cleaned = re.sub(r"[^a-z0-9_]", "_", f"{event_source}_{event_name}".lower())
    return f"sensorium_{cleaned}"[: 63 - 9] + "_" + digest


def _wal2json_table(schema: str, table: str) -> str:
    """`schema.table` for wal2json's `add-tables`, where `,`, `.`, `*` and `\\` (and spaces) must be escaped."""
    def escape(name: str) -> str:
        return re.sub(r"([^A-Za-z0-9_])", r"\\\1", name)
    return f"{escape(schema)}.{escape(table)}"


@dataclass(frozen=True)
class _Entry:
    event_source: str
    event_name: str
    spec: PostgresContext

    @property
    def key(self) -> str:
        return f"postgres.{self.event_source}.{self.event_name}"

    @property
    def slot(self) -> str:
        return self.spec.slot_name or default_slot_name(self.event_source, self.event_name)

    @property
    def where(self) -> str:
        """The server, database and table, for log lines."""
        return f"{self.spec.host}:{self.spec.port}/{self.spec.database} {self.spec.schema_name}.{self.spec.table}"


class _NoStore:
    async def close(self) -> None:
        return None


_PEEK = ("SELECT lsn::text, xid::text, data FROM pg_logical_slot_peek_changes(%s, NULL, %s, 'format-version', '2', "
         "'include-timestamp', 'true', 'include-transaction', 'true', 'add-tables', %s, 'actions', %s)")


class PostgresSource:
    """Every postgres entry, one task and one connection each."""

    def __init__(self, entries: Sequence[tuple[str, str, PostgresContext]],
                 publish: Callable[[CloudEvent], Awaitable[None]], secrets: Secrets) -> None:
        self.entries = [_Entry(*e) for e in entries]
        self.publish, self.secrets = publish, secrets
        self._running: EntryTasks[_NoStore] = EntryTasks()
        self.errors: dict[str, str] = {}  # entry key -> the last failure's reason, until a poll succeeds
        self._hinted: set[str] = set()  # entries whose replica identity hint was logged (once per run)

    async def start(self) -> None:
        """Start every entry's task, then wait (at most START_WAIT seconds) until each has its slot or failed once:
        an engine that says it is running then records every change made from then on (a slot sees only the
        changes made after it was created), and an unreachable server does not hold the engine up."""
        ready = [asyncio.Event() for _ in self.entries]
        for entry, event in zip(self.entries, ready, strict=True):
            await self._running.spawn(entry.key, None, functools.partial(self._run, entry, event))
        if ready:
            waiting = [asyncio.ensure_future(event.wait()) for event in ready]
            _, pending = await asyncio.wait(waiting, timeout=START_WAIT)
            for future in pending:
                future.cancel()

    async def stop(self) -> None:
        await self._running.stop()

    # ---- connection --------------------------------------------------------------------------------------------

    def _password(self, entry: _Entry) -> str | None:
        written = entry.spec.password
        if isinstance(written, KeySelector):
            try:
                return self.secrets.get(written.name, written.key)
            except SensoriumError:
                raise PostgresError(f"secret {written.name}/{written.key} for the password not found") from None
        return written

    def _reason(self, exc: BaseException, password: str | None) -> str:
        """One line saying why, with the password masked (libpq never echoes it; this makes sure)."""
        text = " ".join(str(exc).split())[:400] or type(exc).__name__
        if password:
            text = text.replace(password, "***")
        return text if isinstance(exc, PostgresError) else f"{type(exc).__name__}: {text}"

    async def _connect(self, entry: _Entry, password: str | None) -> psycopg.AsyncConnection[Any]:
        spec = entry.spec
        params: dict[str, Any] = {"host": spec.host, "port": spec.port, "dbname": spec.database,
                                  "user": spec.username, "sslmode": spec.ssl_mode,
                                  "connect_timeout": spec.connect_timeout,
                                  "application_name": f"sensorium {entry.slot}"[:63],
                                  # a server that vanished without closing the connection is noticed within a
                                  # minute (TCP keepalives, unacknowledged data), not at the kernel's default
                                  "keepalives": 1, "keepalives_idle": 30, "keepalives_interval": 10,
                                  "keepalives_count": 3, "tcp_user_timeout": 60_000}
        if password is not None:
            params["password"] = password
        import psycopg

        return await psycopg.AsyncConnection.connect(autocommit=True, **params)

    async def _prepare(self, conn: psycopg.AsyncConnection[Any], entry: _Entry, ready: asyncio.Event) -> None:
        """Take the slot's advisory lock (waiting while another engine holds it: `ready` is set then, that engine
        has the slot), make sure the slot exists (`_ensure_slot`), then check the table. PostgresError when the
        table is missing or the slot is another's."""
        lock = f"sensorium.postgres.slot.{entry.slot}"
        waiting = False
        while True:
            row = await (await conn.execute("SELECT pg_try_advisory_lock(hashtextextended(%s, 0))", (lock,))
                         ).fetchone()
            if row is not None and row[0]:
                break
            if not waiting:
                ready.set()
                log.info("postgres %s: slot %s is read by another engine; waiting for it", entry.key, entry.slot)
                waiting = True
            await asyncio.sleep(min(entry.spec.interval(), 5.0))
        await self._ensure_slot(conn, entry)
        table = await (await conn.execute(
            "SELECT c.relreplident FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = %s AND c.relname = %s AND c.relkind IN ('r', 'p')",
            (entry.spec.schema_name, entry.spec.table))).fetchone()
        if table is None:
            raise PostgresError(f"table {entry.spec.schema_name}.{entry.spec.table} not found (or not visible to "
                                f"{entry.spec.username})")
        if table[0] != "f" and (entry.spec.track_updates or entry.spec.track_deletes) and entry.key not in self._hinted:
            self._hinted.add(entry.key)
            log.info("postgres %s: %s.%s has REPLICA IDENTITY %s: oldRow holds %s; ALTER TABLE ... REPLICA IDENTITY "
                     "FULL for every column's old value", entry.key, entry.spec.schema_name, entry.spec.table,
                     _IDENTITY.get(table[0], table[0]), "no values" if table[0] == "n" else "the key columns only")

    async def _ensure_slot(self, conn: psycopg.AsyncConnection[Any], entry: _Entry) -> None:
        """The entry's slot exists for wal2json in this database (created when missing). It is made before the
        table is even checked, so a table created later loses no change made before the source sees it."""
        row = await (await conn.execute(
            "SELECT plugin, database, slot_type FROM pg_replication_slots WHERE slot_name = %s", (entry.slot,)
        )).fetchone()
        if row is None:
            from psycopg.errors import DuplicateObject

            try:
                await conn.execute("SELECT pg_create_logical_replication_slot(%s, %s)", (entry.slot, PLUGIN))
                log.info("postgres %s: created replication slot %s (%s) on %s", entry.key, entry.slot, PLUGIN,
                         entry.where)
            except DuplicateObject:
                pass  # created meanwhile by another engine: checked at the next connection
            return
        plugin, database, slot_type = row
        if slot_type != "logical" or plugin != PLUGIN or database != entry.spec.database:
            raise PostgresError(f"replication slot {entry.slot} exists but is a {slot_type} slot of plugin "
                                f"{plugin} on database {database}; set another slotName")

    # ---- polling -----------------------------------------------------------------------------------------------

    async def _run(self, entry: _Entry, ready: asyncio.Event, _: _NoStore | None) -> None:
        interval = entry.spec.interval()
        delay = interval
        while True:
            password: str | None = None
            try:
                password = self._password(entry)
                async with await self._connect(entry, password) as conn:
                    await self._prepare(conn, entry, ready)
                    ready.set()
                    log.info("postgres %s: reading slot %s on %s", entry.key, entry.slot, entry.where)
                    while True:
                        while await self._poll(conn, entry):
                            pass  # a full batch: more may be waiting
                        self.errors.pop(entry.key, None)
                        delay = interval
                        await asyncio.sleep(interval)
            except Exception as exc:  # psycopg.Error, OSError, PostgresError; anything else must not end the entry
                reason = self._reason(exc, password)
                self.errors[entry.key] = reason
                ready.set()
                log.error("postgres %s: %s: %s; reconnecting in %gs", entry.key, entry.where, reason, delay,
                          extra={"source": entry.event_source, "event": entry.event_name, "error": reason,
                                 "retry_in": delay})
                await asyncio.sleep(delay)
                delay = min(delay * 2, max(MAX_BACKOFF, interval))

    async def _poll(self, conn: psycopg.AsyncConnection[Any], entry: _Entry) -> bool:
        """Publish the changes waiting in the slot, then advance it past the last transaction whose events are
        all stored. True when the batch was full (more may be waiting)."""
        spec = entry.spec
        variables = [(v.source_column, v.target_variable) for v in spec.variables or ()]
        peeked = 0
        advance_to: str | None = None
        published = 0
        reader = MessageReader()
        async with conn.transaction(), conn.cursor(name=f"peek_{entry.slot}") as cur:
            await cur.execute(_PEEK, (entry.slot, spec.batch_size, _wal2json_table(spec.schema_name, spec.table),
                                      spec.actions()))
            while rows := await cur.fetchmany(_FETCH):
                peeked += len(rows)
                try:
                    for message in reader.read(rows):
                        if isinstance(message, Commit):
                            advance_to = message.lsn
                        elif isinstance(message, Change):
                            await self._publish(entry, message, variables)
                            published += 1
                except ValueError as exc:
                    raise PostgresError(str(exc)) from None
        if advance_to is not None:
            await conn.execute("SELECT pg_replication_slot_advance(%s, %s::pg_lsn)", (entry.slot, advance_to))
        if published:
            log.info("postgres %s: %d change(s) published, slot %s at %s", entry.key, published, entry.slot,
                     advance_to)
        return peeked >= spec.batch_size

    async def _publish(self, entry: _Entry, change: Change, variables: Sequence[tuple[str, str]]) -> None:
        """Store one change's event on the bus, retrying while the bus refuses it (the slot waits)."""
        data, dropped = event_data(change, variables, entry.spec.max_event_size)
        if dropped:
            log.warning("postgres %s: the %s at %s is over maxEventSize (%d bytes); values dropped: %s", entry.key,
                        change.operation, change.lsn, entry.spec.max_event_size, ", ".join(dropped)[:300])
        event = CloudEvent(id=event_id(entry.key, entry.slot, change), source=entry.event_source, type="postgres",
                           subject=entry.event_name, datacontenttype="application/json", time=change.commit_time,
                           data=data)
        if entry.spec.cloud_event is not None:
            event = dress(event, entry.spec.cloud_event)
        await publish_retrying(self.publish, event, f"postgres {entry.key}: change at {change.lsn}", log, MAX_BACKOFF)

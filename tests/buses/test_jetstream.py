"""JetStream-specific behaviour: Argo wire compatibility, stream settings, durable naming, the embedded
server, connection failures and outages. Always against a real nats-server."""

from __future__ import annotations

import asyncio
import logging
import socket
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from nats.aio.client import Client as NATS
from nats.js import api

from sensorium.buses import spec as bus_spec
from sensorium.buses.base import ConsumerSpec, Delivery, EventKey, Health
from sensorium.buses.embedded import EmbeddedNats, free_port
from sensorium.buses.jetstream.bus import JetStreamBus
from sensorium.buses.jetstream.connection import printable_url
from sensorium.buses.jetstream.stream import STREAM, StreamSettings, durable_name, parse_go_duration
from sensorium.engine.core.errors import BusError, ConfigError
from sensorium.engine.core.secrets import Secrets, env_name
from sensorium.engine.core.specbase import KeySelector

pytestmark = pytest.mark.nats


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


@pytest.fixture
async def raw_js(nats_url: str) -> AsyncIterator[NATS]:
    nc = NATS()
    await nc.connect(nats_url)
    yield nc
    await nc.close()


async def started(url: str, **kwargs: object) -> JetStreamBus:
    bus = JetStreamBus(url, **kwargs)  # type: ignore[arg-type]
    await bus.start()
    return bus


# -- stream settings ---------------------------------------------------------------------------------------

def test_go_durations() -> None:
    assert parse_go_duration("72h") == 72 * 3600
    assert parse_go_duration("1h30m") == 5400
    assert parse_go_duration("1.5s") == 1.5
    assert parse_go_duration("250ms") == pytest.approx(0.25)
    assert parse_go_duration(300) == pytest.approx(300e-9)  # viper: a bare number is nanoseconds
    assert parse_go_duration("0") == 0
    for bad in ("abc", "1d", "", "5 m", True):
        with pytest.raises(ValueError):
            parse_go_duration(bad)


def test_stream_config_yaml() -> None:
    s = StreamSettings.from_yaml("maxAge: 72h\nMAXMSGS: 10\nduplicates: 2m\nretention: 2\ndiscard: 1\n"
                                 "maxBytes: 4096")
    assert (s.max_age, s.max_msgs, s.duplicates, s.retention, s.discard, s.max_bytes) == (
        72 * 3600, 10, 120, 2, 1, 4096)
    assert StreamSettings.from_yaml(None) == StreamSettings() == StreamSettings.from_yaml("")
    for bad, where in (("maxAgee: 1h", "streamConfig.maxAgee"), ("retention: 3", "streamConfig.retention"),
                       ("maxMsgs: lots", "streamConfig.maxMsgs"), ("[1, 2]", "streamConfig"),
                       ("discard: 2", "streamConfig.discard"), ("maxAge: forever", "streamConfig.maxAge")):
        with pytest.raises(ConfigError) as err:
            StreamSettings.from_yaml(bad)
        assert err.value.field == where


async def test_stream_created_with_argo_defaults(fresh_nats: EmbeddedNats) -> None:
    bus = await started(fresh_nats.url)
    try:
        cfg = (await bus.js.stream_info(STREAM)).config
    finally:
        await bus.close()
    assert cfg.name == "default" and cfg.subjects == ["default.*.*"]
    assert cfg.storage == api.StorageType.FILE
    assert (cfg.max_msgs, cfg.max_bytes, cfg.num_replicas) == (50000, -1, 1)
    assert (cfg.max_age, cfg.duplicate_window) == (168 * 3600, 300)
    assert (cfg.retention, cfg.discard) == (api.RetentionPolicy.LIMITS, api.DiscardPolicy.OLD)


async def test_stream_config_applied_on_creation_only(fresh_nats: EmbeddedNats) -> None:
    yaml_text = "maxMsgs: 1000\nmaxAge: 72h\nmaxBytes: 1048576\nduplicates: 2m\nretention: 1\ndiscard: 1\n"
    bus = await started(fresh_nats.url, stream_config_yaml=yaml_text)
    other = await started(fresh_nats.url, stream_config_yaml="maxMsgs: 5")  # exists: left as it is (Argo)
    try:
        cfg = (await other.js.stream_info(STREAM)).config
    finally:
        await bus.close()
        await other.close()
    assert (cfg.max_msgs, cfg.max_age, cfg.max_bytes, cfg.duplicate_window) == (1000, 72 * 3600, 1048576, 120)
    assert (cfg.retention, cfg.discard) == (api.RetentionPolicy.INTEREST, api.DiscardPolicy.NEW)


async def test_argo_replicas_3_fail_clearly_on_one_server(fresh_nats: EmbeddedNats) -> None:
    bus = JetStreamBus(fresh_nats.url, stream_config_yaml="replicas: 3")
    with pytest.raises(BusError, match=r"cannot set up stream 'default'.*replica"):
        await bus.start()
    assert bus.health is Health.CLOSED


# -- wire format -------------------------------------------------------------------------------------------

async def test_publish_wire_format_and_dedup(nats_url: str, raw_js: NATS) -> None:
    bus = await started(nats_url)
    key = EventKey(unique("webhook"), "example")
    consumer = await bus.consumer(ConsumerSpec(name=unique("s"), keys=[key]))
    event_id = uuid.uuid4().hex
    body = b'{"specversion":"1.0","id":"' + event_id.encode() + b'","source":"x","type":"webhook"}'
    await bus.publish(key, event_id, body)
    await bus.publish(key, event_id, body)  # same Nats-Msg-Id within the duplicates window: dropped
    await bus.publish_many([(key, event_id, body), (key, "other-id", b"2")])
    got: list[Delivery] = []
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline and len(got) < 2:
        got += await consumer.fetch(10, 0.3)
    got += await consumer.fetch(10, 0.3)  # nothing more: the duplicates were dropped
    await bus.close()
    assert [d.body for d in got] == [body, b"2"]
    first = got[0]
    assert first.headers["Nats-Msg-Id"] == event_id
    subject, _, seq = first.position.partition(" seq ")
    assert subject == f"default.{key.source}.example"
    stored = await raw_js.jetstream().get_msg(STREAM, int(seq))
    assert (stored.subject, stored.data) == (subject, body)
    assert stored.headers is not None and stored.headers["Nats-Msg-Id"] == event_id


async def test_a_message_in_the_consumers_inbox_that_is_no_delivery_is_ignored_and_said(
        nats_url: str, raw_js: NATS, caplog: pytest.LogCaptureFixture) -> None:
    """The consumer's pull requests are answered in an inbox anyone on the server could publish to: a message
    there whose reply subject is not a JetStream ack subject has nothing to settle it with; it must not stop the
    fetch of the real ones."""
    bus = await started(nats_url)
    key = EventKey(unique("webhook"), "example")
    consumer = await bus.consumer(ConsumerSpec(name=unique("s"), keys=[key]))
    assert await consumer.fetch(10, 0.2) == []  # (binds it)
    inbox = consumer._puller._inbox  # type: ignore[attr-defined]
    # (the server refuses a client's reply subjects under $JS.ACK, so forged ones look like these)
    for reply in ("not.jetstream", "JS.ACK.stream.durable.1.2.3.4.5"):
        await raw_js.publish(f"{inbox}.7", b"forged", reply=reply)
    await raw_js.flush()
    await bus.publish(key, "real", b"real")
    got: list[Delivery] = []
    deadline = time.monotonic() + 3
    with caplog.at_level(logging.WARNING, logger="buses.jetstream.bus"):
        while time.monotonic() < deadline and not got:
            got += await consumer.fetch(10, 0.3)
    await bus.close()
    assert [d.body for d in got] == [b"real"]
    ignored = [r.getMessage() for r in caplog.records if "is not a JetStream delivery" in r.getMessage()]
    assert len(ignored) == 2, ignored


async def test_names_that_break_the_subject_scheme_are_refused(nats_url: str) -> None:
    bus = await started(nats_url)
    try:
        for key in (EventKey("a.b", "c"), EventKey("a", "*"), EventKey("a", ""), EventKey("a b", "c")):
            with pytest.raises(BusError, match="eventSourceName and eventName"):
                await bus.publish(key, "id", b"x")
    finally:
        await bus.close()


async def test_publish_is_pipelined(nats_url: str) -> None:
    bus = await started(nats_url)
    key = EventKey(unique("bulk"), "ev")
    items = [(key, uuid.uuid4().hex, b"x" * 200) for _ in range(3000)]
    t0 = time.monotonic()
    await bus.publish_many(items[:2000])
    await asyncio.gather(*(bus.publish(*item) for item in items[2000:]))
    elapsed = time.monotonic() - t0
    info = await bus.js.stream_info(STREAM, subjects_filter=f"default.{key.source}.ev")
    await bus.close()
    assert info.state.subjects == {f"default.{key.source}.ev": 3000}
    assert elapsed < 3.0, f"3000 publishes took {elapsed:.2f}s: not pipelined"


# -- durable consumers -------------------------------------------------------------------------------------

def test_durable_name_is_stable_and_valid() -> None:
    assert durable_name("sensorium-webhook_sensor") == "sensorium-webhook_sensor"
    assert durable_name("team.a/x") == "team_a_x-319fc032"  # pinned: a renamed durable loses its position
    odd = durable_name("team.a/webhook sensor*")
    assert odd == durable_name("team.a/webhook sensor*")
    assert not set(odd) & set(".*> /\\\t")
    assert durable_name("a.b") != durable_name("a_b") == "a_b"
    assert len(durable_name("x" * 500)) <= 200


async def test_consumer_config_on_server(nats_url: str) -> None:
    bus = await started(nats_url)
    keys = [EventKey(unique("src"), "a"), EventKey(unique("src"), "b")]
    name = unique("team.sensor")
    await bus.consumer(ConsumerSpec(name=name, keys=keys, ack_wait=12.0, max_in_flight=7))
    info = await bus.js.consumer_info(STREAM, durable_name(name))
    await bus.close()
    cfg = info.config
    assert cfg.durable_name == durable_name(name)
    assert cfg.deliver_policy == api.DeliverPolicy.NEW and cfg.ack_policy == api.AckPolicy.EXPLICIT
    assert sorted(cfg.filter_subjects or []) == sorted(f"default.{k.source}.{k.name}" for k in keys)
    assert (cfg.ack_wait, cfg.max_ack_pending) == (12.0, 7)
    assert cfg.deliver_subject is None  # pull consumer


async def test_changed_keys_update_the_durable_and_keep_its_position(nats_url: str) -> None:
    a, b, name = EventKey(unique("src"), "a"), EventKey(unique("src"), "b"), unique("sensor")
    bus = await started(nats_url)
    first = await bus.consumer(ConsumerSpec(name=name, keys=[a]))
    await first.close()
    await bus.publish(a, uuid.uuid4().hex, b"a-while-away")
    second = await bus.consumer(ConsumerSpec(name=name, keys=[a, b]))
    await bus.publish(b, uuid.uuid4().hex, b"b-new")
    got: list[bytes] = []
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline and len(got) < 2:
        for d in await second.fetch(10, 0.3):
            got.append(d.body)
            await d.ack()
    info = await bus.js.consumer_info(STREAM, durable_name(name))
    await bus.close()
    assert got == [b"a-while-away", b"b-new"]
    assert info.config.deliver_policy == api.DeliverPolicy.NEW
    assert sorted(info.config.filter_subjects or []) == sorted([f"default.{a.source}.a",
                                                               f"default.{b.source}.b"])


_WORKER = textwrap.dedent("""
    import asyncio, sys
    from sensorium.buses.base import ConsumerSpec, EventKey
    from sensorium.buses.jetstream.bus import JetStreamBus

    async def main(url, name, source):
        bus = JetStreamBus(url)
        await bus.start()
        consumer = await bus.consumer(ConsumerSpec(name=name, keys=[EventKey(source, "ev")]))
        print("ready", flush=True)
        loop = asyncio.get_running_loop()
        stop = loop.run_in_executor(None, sys.stdin.read)
        while not stop.done():
            for d in await consumer.fetch(1, 0.2):
                await d.ack()
                print(d.body.decode(), flush=True)
                await asyncio.sleep(0.01)  # as slow as the test's own reader: neither takes every message
        await bus.close()

    asyncio.run(main(*sys.argv[1:]))
""")


async def test_two_processes_share_one_durable(nats_url: str) -> None:
    name, source = unique("shared"), unique("src")
    key = EventKey(source, "ev")
    worker = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _WORKER, nats_url, name, source, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        cwd=Path(__file__).resolve().parents[2])
    assert worker.stdout is not None and worker.stdin is not None
    try:
        assert await asyncio.wait_for(worker.stdout.readline(), 10) == b"ready\n"
        bus = await started(nats_url)
        consumer = await bus.consumer(ConsumerSpec(name=name, keys=[key]))
        sent = [f"m{i}" for i in range(40)]
        mine: list[str] = []
        theirs: list[str] = []

        async def read_theirs() -> None:
            assert worker.stdout is not None
            while line := await worker.stdout.readline():
                theirs.append(line.decode().strip())

        reader = asyncio.create_task(read_theirs())
        await bus.publish_many([(key, uuid.uuid4().hex, m.encode()) for m in sent])
        deadline = time.monotonic() + 6
        while len(mine) + len(theirs) < len(sent) and time.monotonic() < deadline:
            for d in await consumer.fetch(1, 0.2):
                await d.ack()
                mine.append(d.body.decode())
                await asyncio.sleep(0.01)
        await bus.close()
        worker.stdin.close()
        await asyncio.wait_for(reader, 5)
    finally:
        if worker.returncode is None:
            worker.stdin.close()
            await asyncio.wait_for(worker.wait(), 5)
    assert sorted(mine + theirs) == sorted(sent)  # each message went to exactly one process
    assert mine and theirs


# -- embedded server ---------------------------------------------------------------------------------------

def _accepts(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


async def test_embedded_start_stop_restart_keeps_data(tmp_path: Path) -> None:
    server = EmbeddedNats(tmp_path / "nats")
    async with server:
        assert server.running and _accepts(server.port)
        assert server.url == f"nats://127.0.0.1:{server.port}"
        bus = await started(server.url)
        await bus.publish(EventKey("kept", "ev"), "id-1", b"kept")
        await bus.close()
        await server.restart()
        bus = await started(server.url)
        info = await bus.js.stream_info(STREAM)
        await bus.close()
        assert info.state.messages == 1
    assert not server.running and not _accepts(server.port)
    assert (tmp_path / "nats" / "jetstream").is_dir()


async def test_embedded_start_failure_raises_with_server_log(nats_server: EmbeddedNats,
                                                              tmp_path: Path) -> None:
    clash = EmbeddedNats(tmp_path / "clash", port=nats_server.port, startup_timeout=5)
    with pytest.raises(BusError, match=r"(?s)exited with status.*address already in use"):
        await clash.start()
    assert not clash.running


# -- connection failures, auth, outages --------------------------------------------------------------------

async def test_unreachable_server_is_a_clear_bus_error() -> None:
    port = free_port()
    bus = JetStreamBus(f"nats://alice:s3cr3t@127.0.0.1:{port}")
    t0 = time.monotonic()
    with pytest.raises(BusError) as err:
        await bus.start()
    assert time.monotonic() - t0 < 3
    message = str(err.value)
    assert message.startswith(f"cannot reach NATS at nats://127.0.0.1:{port}: ")
    assert "s3cr3t" not in message and "alice" not in message
    assert "refused" in message.lower()
    assert printable_url(f"nats://alice:s3cr3t@127.0.0.1:{port}") == f"nats://127.0.0.1:{port}"


@pytest.mark.parametrize("server_args, credentials", [
    (["--auth", "tok-3xyz"], "tok-3xyz"),
    (["--user", "alice", "--pass", "pw-9q"], "alice:pw-9q"),
])
async def test_credentials(tmp_path: Path, server_args: list[str], credentials: str) -> None:
    async with EmbeddedNats(tmp_path / "auth", extra_args=server_args) as server:
        ok = await started(server.url, credentials=credentials)
        assert ok.health is Health.CONNECTED
        await ok.close()
        wrong = JetStreamBus(server.url, credentials="nobody:wrong-pw", connect_attempts=1)
        with pytest.raises(BusError, match=r"cannot reach NATS at .*[Aa]uthorization") as err:
            await wrong.start()
        assert "wrong-pw" not in str(err.value)
        selector = KeySelector(name="nats", key="auth")
        secrets = Secrets(environ={env_name("nats", "auth"): credentials})
        document = bus_spec.JetStreamBus(access_secret=selector)
        from_spec = JetStreamBus.from_spec(document, secrets, url=server.url)
        await from_spec.start()
        await from_spec.close()


async def test_outage_keeps_fetch_quiet_and_logs_each_state_change_once(
        fresh_nats: EmbeddedNats, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="buses.jetstream.bus")
    bus = await started(fresh_nats.url)
    key = EventKey(unique("src"), "ev")
    consumer = await bus.consumer(ConsumerSpec(name=unique("s"), keys=[key]))
    await fresh_nats.stop()
    for _ in range(4):  # several fetches during the outage: [] after the timeout, never an exception
        t0 = time.monotonic()
        assert await consumer.fetch(5, 0.3) == []
        assert time.monotonic() - t0 < 1.0
    assert bus.health.value == "disconnected"
    pending = asyncio.create_task(bus.publish(key, "during-outage", b"buffered"))
    await asyncio.sleep(0.3)
    await fresh_nats.start()
    await pending  # delivered once the client is back
    got: list[Delivery] = []
    deadline = time.monotonic() + 5
    while not got and time.monotonic() < deadline:
        got = await consumer.fetch(5, 0.5)
    assert [d.body for d in got] == [b"buffered"]
    assert bus.health is Health.CONNECTED
    await bus.close()
    assert bus.closed
    lines = [r.getMessage() for r in caplog.records if r.name == "buses.jetstream.bus"]
    assert sum("lost connection to NATS at " + fresh_nats.url in m for m in lines) == 1
    assert sum("reconnected to NATS at " + fresh_nats.url in m for m in lines) == 1


# -- the trace stream --------------------------------------------------------------------------------------

async def test_trace_stream_limits_and_the_old_message_limit_raised(fresh_nats: EmbeddedNats) -> None:
    """Created with a million messages as its limit (many sensors with few events each write many small
    messages: the 256 MiB and the hour bound the history); one created with the old 100,000 is raised on first
    use, and one whose limits someone changed is left as it is."""
    from sensorium.buses.jetstream.trace import MAX_BYTES, RETENTION_S, TRACE_STREAM, ensure_trace_stream

    nc = NATS()
    await nc.connect(fresh_nats.url)
    js = nc.jetstream()
    try:
        await ensure_trace_stream(js)
        cfg = (await js.stream_info(TRACE_STREAM)).config
        assert (cfg.max_msgs, cfg.max_bytes, cfg.max_age) == (1_000_000, MAX_BYTES, RETENTION_S)
        assert (cfg.storage, cfg.discard) == (api.StorageType.FILE, api.DiscardPolicy.OLD)

        cfg.max_msgs = 100_000  # as engines before 2026-12-07 created it
        await js.update_stream(cfg)
        await ensure_trace_stream(js)
        assert (await js.stream_info(TRACE_STREAM)).config.max_msgs == 1_000_000

        cfg = (await js.stream_info(TRACE_STREAM)).config
        cfg.max_msgs, cfg.max_bytes = 100_000, 64 * 1024 * 1024  # someone's own limits
        await js.update_stream(cfg)
        await ensure_trace_stream(js)
        assert (await js.stream_info(TRACE_STREAM)).config.max_msgs == 100_000
    finally:
        await nc.close()


async def test_trace_stream_whose_limit_cannot_be_raised_is_used_as_it_is(tmp_path: Path,
                                                                         caplog: pytest.LogCaptureFixture) -> None:
    """A user who may publish traces but not update streams: the old limit stays, one warning says so, and the
    trace channel still publishes (a failed raise must not cost the trace)."""
    from sensorium.buses.jetstream.connection import JetStreamConnection
    from sensorium.buses.jetstream.trace import TRACE_STREAM, JetStreamTraceChannel, ensure_trace_stream

    conf = tmp_path / "nats.conf"
    conf.write_text(textwrap.dedent("""
        authorization {
          users = [
            {user: admin, password: admin-pw}
            {user: tracer, password: tracer-pw, permissions: {publish: {deny: ["$JS.API.STREAM.UPDATE.>"]}}}
          ]
        }
    """))
    server = EmbeddedNats(tmp_path / "data", extra_args=["-c", str(conf)])
    await server.start()
    admin, tracer = NATS(), NATS()
    try:
        await admin.connect(f"nats://admin:admin-pw@{server.host}:{server.port}")
        await ensure_trace_stream(admin.jetstream())
        cfg = (await admin.jetstream().stream_info(TRACE_STREAM)).config
        cfg.max_msgs = 100_000  # as engines before 2026-12-07 created it
        await admin.jetstream().update_stream(cfg)

        url = f"nats://tracer:tracer-pw@{server.host}:{server.port}"
        await tracer.connect(url, error_cb=_quiet)
        with caplog.at_level(logging.WARNING, logger="sensorium.trace"):
            await ensure_trace_stream(tracer.jetstream(timeout=1.0))
        assert (await admin.jetstream().stream_info(TRACE_STREAM)).config.max_msgs == 100_000
        assert any("message limit stays 100000" in r.getMessage() for r in caplog.records), caplog.text
        assert "tracer-pw" not in caplog.text

        connection = JetStreamConnection(url)  # the engine's: its requests wait 5 s for the denied update
        await connection.start()
        try:
            await JetStreamTraceChannel(connection).publish([("s1", b'{"event":"e1"}\n')])
        finally:
            await connection.close()
        assert (await admin.jetstream().stream_info(TRACE_STREAM)).state.messages == 1
    finally:
        await tracer.close()
        await admin.close()
        await server.stop()


async def _quiet(exc: Exception) -> None:  # the denied request's permissions violation, reported by the server
    return None

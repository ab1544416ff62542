"""`sensorium replay` without a broker: the range flags, the CLI's plain sentences (exit 2), the progress display,
and a replay on the memory bus against a real local HTTP sink (marks, counts, dry run, rate, interruption)."""

from __future__ import annotations

import asyncio
import io
import json
import time
from pathlib import Path

import pytest

from sensorium.buses.base import ALL_PARTITIONS, EventKey, ReplayRange
from sensorium.buses.memory import MemoryBroker, MemoryBus
from sensorium.engine.assemble import load_checked
from sensorium.engine.cli import main
from sensorium.engine.core.cloudevent import encode_structured
from sensorium.engine.core.errors import ConfigError
from sensorium.engine.core.secrets import Secrets
from sensorium.engine.progress import Progress
from sensorium.engine.replay import ReplayHttpClient, SensorReplay, find_sensor
from sensorium.engine.replayrange import replay_range
from sensorium.engine.trace.records import Received, RecordingTracer
from tests.engine_harness import event, write_config
from tests.fixtures_http import HttpSink
from tests.test_replay import sensor_yaml

NOW = 1_800_000_000.0


# ---- the range flags ------------------------------------------------------------------------------------------

def test_range_from_each_start_flag() -> None:
    assert replay_range("24h", None, None, None, None, NOW) == ReplayRange(since=NOW - 86400)
    assert replay_range(None, "2027-01-15T06:00:00Z", None, None, "1h", NOW) == ReplayRange(
        since=NOW - 7200, until=NOW - 3600)
    assert replay_range(None, "2027-01-15T08:00:00+01:00", None, None, None, NOW).since == NOW - 3600
    assert replay_range(None, "2027-01-15T07:00:00", None, None, None, NOW).since == NOW - 3600  # no zone: UTC
    assert replay_range(None, None, "42", None, None, NOW) == ReplayRange(sequence=42)
    assert replay_range(None, None, None, "120", None, NOW) == ReplayRange(offsets={ALL_PARTITIONS: 120})
    assert replay_range(None, None, None, "0:120,2:75", None, NOW) == ReplayRange(offsets={0: 120, 2: 75})
    assert replay_range("2h", None, None, None, "30m", NOW) == ReplayRange(since=NOW - 7200, until=NOW - 1800)
    assert replay_range("2h", None, None, None, "2027-01-15T07:30:00Z", NOW).until == NOW - 1800


@pytest.mark.parametrize(("flags", "message"), [
    ((None, None, None, None, None), "say where the replay starts: --since DURATION, --from-time TIME, "
                                     "--from-sequence N (JetStream) or --from-offset P (Kafka)"),
    (("1h", "2027-01-01T00:00:00Z", None, None, None), "--since and --from-time conflict: give one start"),
    (("1h", None, "5", "7", None), "--since and --from-sequence and --from-offset conflict: give one start"),
    (("yesterday", None, None, None, None), "--since 'yesterday' is not a duration such as 90s, 10m, 24h or 1h30m"),
    (("-1h", None, None, None, None), "--since must be a positive duration, not '-1h'"),
    ((None, "soon", None, None, None), "--from-time 'soon' is not a time such as 2026-12-06T10:00:00Z"),
    ((None, None, "0", None, None), "--from-sequence '0' is not a stream sequence (1 or more)"),
    ((None, None, None, "p1:2", None), "--from-offset 'p1:2' is not OFFSET or PARTITION:OFFSET[,PARTITION:OFFSET] "
                                       "(e.g. 120 or 0:120,2:75)"),
    (("1h", None, None, None, "2h"), "the range is empty: it starts at 2027-01-15T07:00:00Z and ends at "
                                     "2027-01-15T06:00:00Z"),
    ((None, "2030-01-01T00:00:00Z", None, None, None), "the range starts at 2030-01-01T00:00:00Z, in the future: "
                                                       "nothing to replay"),
])
def test_range_refusals_are_one_sentence(flags: tuple[str | None, ...], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        replay_range(*flags, NOW)
    assert caught.value.render() == message


def test_until_in_the_future_means_up_to_now() -> None:
    assert replay_range("1h", None, None, None, "2030-01-01T00:00:00Z", NOW) == ReplayRange(since=NOW - 3600)


# ---- the command line -----------------------------------------------------------------------------------------

@pytest.fixture
def config_dir(tmp_path: Path) -> Path:
    return write_config(tmp_path / "config", sensor_yaml("orders", "shop", "http://127.0.0.1:9"))


@pytest.mark.parametrize(("args", "message"), [
    (["--sensor", "orders", "--subscription", "orders", "--since", "1h"],
     "--sensor and --subscription conflict: give one (a subscription is a sensor of its name)"),
    (["--since", "1h"], "say which sensor to replay to: --sensor NAME or --subscription NAME"),
    (["--sensor", "orders", "--since", "1h", "--from-sequence", "3"],
     "--since and --from-sequence conflict: give one start"),
    (["--sensor", "orders", "--since", "1h", "--rate", "0"], "--rate '0' is not a positive number of events per "
                                                             "second"),
    (["--sensor", "ordres", "--since", "1h"],
     "--sensor 'ordres': no sensor or subscription of that name is loaded; did you mean 'orders'?"),
    (["--subscription", "zzz", "--since", "1h"],
     "--subscription 'zzz': no sensor or subscription of that name is loaded (loaded: orders)"),
    (["--sensor", "orders", "--since", "1h", "--data-dir", "/nonexistent"],
     "no bus: pass --bus nats://HOST:PORT or kafka://HOST:PORT, give the EventBus document, or run it where "
     "`sensorium run` wrote /nonexistent/bus.url"),
])
def test_cli_refusals_exit_2_with_one_sentence(config_dir: Path, capsys: pytest.CaptureFixture[str],
                                               args: list[str], message: str) -> None:
    assert main(["replay", str(config_dir), *args]) == 2
    captured = capsys.readouterr()
    assert captured.err == message + "\n" and captured.out == ""


def test_cli_invalid_config_is_file_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = write_config(tmp_path / "bad", sensor_yaml("orders", "shop", "http://127.0.0.1:9").replace(
        "conditions: order", "conditions: ordr"))
    assert main(["replay", str(config), "--sensor", "orders", "--since", "1h", "--bus", "nats://127.0.0.1:9"]) == 2
    assert capsys.readouterr().err.startswith(f"{config}/doc0.yaml:")


# ---- progress -------------------------------------------------------------------------------------------------

def test_progress_redraws_a_bar_on_a_terminal_and_prints_lines_otherwise() -> None:
    clock = iter([0.0, 0.05, 0.2, 0.3]).__next__
    tty = io.StringIO()
    bar = Progress(tty, "replay orders", 8, tty=True, clock=clock)
    bar.update(1, "read")  # within 0.1 s of the start: not drawn
    bar.update(4, "read, 2 matched")
    bar.close()
    assert tty.getvalue() == ("\r\x1b[2Kreplay orders [############------------] 4/8 read, 2 matched"
                              "\r\x1b[2K")
    plain = io.StringIO()
    lines = Progress(plain, "replay orders", 8, tty=False, plain_every=5.0, clock=iter([0.0, 1.0, 6.0]).__next__)
    lines.update(1, "read")
    lines.update(3, "read")
    lines.close()
    assert plain.getvalue() == "replay orders: 3/8 read\n"


# ---- a replay on the memory bus -------------------------------------------------------------------------------

async def _replay(config_dir: Path, bus: MemoryBus, span: ReplayRange, *, dry_run: bool = False,
                  rate: float | None = None, stop: asyncio.Event | None = None,
                  tracer: RecordingTracer | None = None) -> tuple[SensorReplay, str]:
    config = load_checked([config_dir])
    out = io.StringIO()
    async with ReplayHttpClient("r-0000test") as client:
        replay = SensorReplay(find_sensor(config, "orders"), bus, client, Secrets(), config.registry,
                              replay_id="r-0000test", dry_run=dry_run, rate=rate, out=out,
                              tracer=tracer or RecordingTracer())
        await replay.run(span, stop or asyncio.Event())
    return replay, out.getvalue()


async def _stored(bus: MemoryBus, kinds: list[str]) -> list[str]:
    events = [event("shop", "orders", json.dumps({"n": i, "kind": k}).encode()) for i, k in enumerate(kinds)]
    other = event("shop", "refunds", b'{"n":99,"kind":"paid"}')
    await bus.publish_many([(EventKey(e.source, e.subject), e.id, encode_structured(e)) for e in [*events, other]])
    return [e.id for e in events]


async def test_memory_replay_marks_fires_and_counts(tmp_path: Path, http_sink: HttpSink) -> None:
    config = write_config(tmp_path / "c", sensor_yaml("orders", "shop", http_sink.url))
    bus = MemoryBus(MemoryBroker())
    await bus.start()
    ids = await _stored(bus, ["paid", "draft", "paid"])
    tracer = RecordingTracer()
    replay, _ = await _replay(config, bus, ReplayRange(sequence=1), tracer=tracer)
    counts = replay.report.counts
    assert (counts.read, counts.matched, counts.firings, counts.failed, counts.skipped) == (3, 2, 4, 0, 0)
    assert sorted((r.path, r.json()["n"]) for r in http_sink.requests) == [
        ("/audit", 0), ("/audit", 2), ("/orders", 0), ("/orders", 2)]
    assert {r.header("X-Sensorium-Replay") for r in http_sink.requests} == {"r-0000test"}
    received = [r for r in tracer.records if isinstance(r, Received)]
    assert [r.event for r in received] == ids
    assert all(r.attributes["sensoriumreplay"] == "true" and r.attributes["sensoriumreplayid"] == "r-0000test"
               for r in received)
    assert replay.report.summary() == ("replayed r-0000test to sensor orders: 3 event(s) read, 2 matched, "
                                       "4 firing(s) fired")


async def test_memory_replay_dry_run_and_range_end(tmp_path: Path, http_sink: HttpSink) -> None:
    config = write_config(tmp_path / "c", sensor_yaml("orders", "shop", http_sink.url))
    bus = MemoryBus(MemoryBroker())
    await bus.start()
    first = await _stored(bus, ["paid"])
    cut = time.time()
    await asyncio.sleep(0.01)
    await _stored(bus, ["paid"])
    replay, out = await _replay(config, bus, ReplayRange(since=cut - 60, until=cut), dry_run=True)
    assert http_sink.requests == []
    assert out.splitlines() == [
        f"would fire {t} for event {first[0]} at default.shop.orders seq 1: POST {http_sink.url}/{p} (7 bytes, "
        "X-Sensorium-Replay: r-0000test)" for t, p in (("notify", "orders"), ("audit", "audit"))]
    assert replay.report.summary() == ("dry run r-0000test to sensor orders: 1 event(s) read, 1 matched, "
                                       "2 firing(s) would fire")


async def test_memory_replay_rate_paces_and_stop_says_where_to_continue(tmp_path: Path, http_sink: HttpSink) -> None:
    config = write_config(tmp_path / "c", sensor_yaml("orders", "shop", http_sink.url))
    bus = MemoryBus(MemoryBroker())
    await bus.start()
    await _stored(bus, ["paid"] * 5)
    stop = asyncio.Event()
    asyncio.get_running_loop().call_later(0.25, stop.set)
    started = time.monotonic()
    replay, _ = await _replay(config, bus, ReplayRange(sequence=1), rate=10.0, stop=stop)
    elapsed = time.monotonic() - started
    report = replay.report
    read = report.counts.read  # 3 on an idle machine: at 0, 0.1 and 0.2 s
    assert report.interrupted and 1 <= read < 5 and elapsed >= (read - 1) / 10.0
    assert len(http_sink.requests) == 2 * read
    assert report.summary().endswith(f"; continue with --from-sequence {read + 1}")


async def test_memory_replay_refuses_kafka_offsets(tmp_path: Path) -> None:
    bus = MemoryBus(MemoryBroker())
    await bus.start()
    with pytest.raises(ConfigError, match="--from-offset is for a Kafka bus"):
        await bus.replay_reader([EventKey("shop", "orders")], ReplayRange(offsets={0: 1}))


async def test_memory_replay_skips_a_message_that_is_not_a_cloudevent(tmp_path: Path, http_sink: HttpSink,
                                                                      caplog: pytest.LogCaptureFixture) -> None:
    config = write_config(tmp_path / "c", sensor_yaml("orders", "shop", http_sink.url))
    bus = MemoryBus(MemoryBroker())
    await bus.start()
    await bus.publish(EventKey("shop", "orders"), "junk-1", b"\xff not json")
    await _stored(bus, ["paid"])
    tracer = RecordingTracer()
    replay, _ = await _replay(config, bus, ReplayRange(sequence=1), tracer=tracer)
    assert replay.report.summary() == ("replayed r-0000test to sensor orders: 2 event(s) read, 1 matched, "
                                       "2 firing(s) fired, 1 skipped (not a CloudEvent, or the stage failed)")
    assert [r.json()["n"] for r in http_sink.requests if r.path == "/orders"] == [0]
    assert "message at default.shop.orders seq 1 skipped: not a CloudEvent: not UTF-8" in caplog.text
    errors = [r.error for r in tracer.records if isinstance(r, Received)]
    assert errors[0] is not None and errors[0].startswith("not UTF-8") and errors[1] is None

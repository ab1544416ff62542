"""`sensorium replay` on the command line: its arguments, and what the command does with them (the flags and
files checked, the bus opened, the replay run with Ctrl-C handled, the summary printed, the exit code). The
replay itself is `engine.replay`; the range flags `engine.replayrange`."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path

from sensorium.engine.core.errors import ConfigError


def add_replay_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser], epilog: Callable[..., str],
                      log_options: Callable[[argparse.ArgumentParser, str], None]) -> None:
    """The `replay` subcommand's arguments (`epilog` and `log_options`: the CLI's shared help ending and log
    flags)."""
    replay = sub.add_parser(
        "replay", help="re-deliver stored events from the bus to one sensor or subscription, marked as replays",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Read a range of stored events again through a temporary reader (the live consumer keeps its\n"
                    "position; nothing is acknowledged or committed) and run them through one sensor's filters,\n"
                    "conditions and triggers. Replayed events carry the CloudEvent extensions\n"
                    "`sensoriumreplay: \"true\"` and `sensoriumreplayid` (the replay's id), and every HTTP request\n"
                    "the header `X-Sensorium-Replay: <the replay's id>`.",
        epilog=epilog(["sensorium replay sensors/ --sensor orders --since 24h",
                        "sensorium replay sensors/ --sensor orders --from-time 2026-12-05T08:00:00Z --until 2h",
                        "sensorium replay config.d/ --subscription mail --from-sequence 1200 --rate 50",
                        "sensorium replay sensors/ eventbus-kafka.yaml --sensor orders --from-offset 0:120,2:75",
                        "sensorium replay sensors/ --sensor orders --since 1h --dry-run"],
                       {0: "the range was replayed and every firing succeeded (or: the dry run ran)",
                        1: "a firing failed after its retries, or the bus could not be read",
                        2: "invalid arguments or files, an empty range, or a range past the bus's retention",
                        130: "interrupted (Ctrl-C): a summary and the flag to continue are printed"}))
    replay.add_argument("paths", nargs="+", metavar="CONFIG", help="the files or directories `run` is given")
    replay.add_argument("--sensor", metavar="NAME", help="the sensor to replay to")
    replay.add_argument("--subscription", metavar="NAME",
                        help="the same as --sensor: a translated subscription is a sensor of its name")
    replay.add_argument("--since", metavar="DURATION", help="start DURATION ago (e.g. 90m, 24h)")
    replay.add_argument("--from-time", metavar="TIME", help="start at TIME (RFC 3339; UTC when no zone is given)")
    replay.add_argument("--from-sequence", metavar="N", help="JetStream: start at stream sequence N")
    replay.add_argument("--from-offset", metavar="P",
                        help="Kafka: start every partition at offset P, or PARTITION:OFFSET[,...] (only those)")
    replay.add_argument("--until", metavar="DURATION|TIME",
                        help="end at TIME, or DURATION ago (default: the last event stored when the replay starts)")
    replay.add_argument("--rate", metavar="R", help="at most R events per second (default: as fast as they run)")
    replay.add_argument("--dry-run", action="store_true",
                        help="print each request that would be sent; send nothing")
    replay.add_argument("--secrets-dir", type=Path, help="secrets laid out as <name>/<key> files")
    replay.add_argument("--no-bus-trace", action="store_true",
                        help="do not publish the replay's trace records on the bus")
    replay.add_argument("--bus", metavar="URL", help="bus URL: nats://HOST:PORT or kafka://HOST:PORT[,HOST:PORT]")
    replay.add_argument("--data-dir", type=Path, default=Path(".sensorium"),
                        help="where a running engine's embedded bus wrote its URL (default: .sensorium)")
    log_options(replay, "WARNING")


def _replay_rate(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        rate = float(text)
    except ValueError:
        rate = math.nan
    if not math.isfinite(rate) or rate <= 0:
        raise ConfigError(f"--rate {text[:50]!r} is not a positive number of events per second")
    return rate


def replay_command(args: argparse.Namespace) -> int:
    """`sensorium replay`: check the flags and files, open the bus, replay, print the summary; the exit code."""
    from sensorium.engine.assemble import load_checked  # imported here: building the CLI's parser stays cheap
    from sensorium.engine.busconfig import default_bus_url, from_url
    from sensorium.engine.core.secrets import Secrets
    from sensorium.engine.progress import Progress
    from sensorium.engine.replay import (
        REPLAY_HEADER,
        ReplayHttpClient,
        SensorReplay,
        find_sensor,
        keys_text,
        new_replay_id,
    )
    from sensorium.engine.replayrange import replay_range
    from sensorium.engine.trace.hub import TraceHub
    from sensorium.triggers.pools import Pools

    if args.sensor is not None and args.subscription is not None:
        raise ConfigError("--sensor and --subscription conflict: give one (a subscription is a sensor of its name)")
    if args.sensor is None and args.subscription is None:
        raise ConfigError("say which sensor to replay to: --sensor NAME or --subscription NAME")
    name, flag = (args.sensor, "--sensor") if args.sensor is not None else (args.subscription, "--subscription")
    rate = _replay_rate(args.rate)
    span = replay_range(args.since, args.from_time, args.from_sequence, args.from_offset, args.until, time.time())
    config = load_checked(args.paths)
    compiled = find_sensor(config, name, flag)
    url = args.bus or (None if config.bus is not None else default_bus_url(args.data_dir))
    if url is None and config.bus is None:
        raise ConfigError("no bus: pass --bus nats://HOST:PORT or kafka://HOST:PORT, give the EventBus document, "
                          f"or run it where `sensorium run` wrote {args.data_dir}/bus.url")
    secrets = Secrets(args.secrets_dir)
    replay_id = new_replay_id()

    async def go() -> tuple[SensorReplay, bool]:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()

        def interrupted() -> None:  # the first Ctrl-C stops cleanly; a second one is the default (exit 130)
            stop.set()
            loop.remove_signal_handler(signal.SIGINT)

        loop.add_signal_handler(signal.SIGINT, interrupted)
        hub = TraceHub(bus_trace=not args.no_bus_trace)
        opening = (contextlib.nullcontext(from_url(url)) if url is not None
                   else config.registry.open_bus(config.bus.spec if config.bus else None, secrets, args.data_dir))
        try:
            marked = Pools(headers={REPLAY_HEADER: replay_id})  # the same mark on NATS and Kafka messages
            async with ReplayHttpClient(replay_id) as client, marked as pools, opening as bus:
                try:
                    await bus.start()
                    hub.attach_bus(bus)
                    replay = SensorReplay(compiled, bus, client, secrets, config.registry, replay_id=replay_id,
                                          rate=rate, dry_run=args.dry_run, tracer=hub, out=sys.stdout,
                                          progress=lambda total: Progress(sys.stderr, f"replay {name}", total),
                                          pools=pools)
                    await replay.run(span, stop)
                finally:
                    await hub.close()
                    await bus.close()
        finally:
            with contextlib.suppress(Exception):
                loop.remove_signal_handler(signal.SIGINT)
        return replay, stop.is_set()

    replay, stopped = asyncio.run(go())
    report = replay.report
    if not stopped and report.counts.read == 0:
        raise ConfigError(f"the range holds no event for sensor {compiled.name} (it listens to "
                          f"{keys_text(compiled)}): nothing to replay")
    print(report.summary())
    if stopped:
        return 130
    return 1 if report.counts.failed else 0

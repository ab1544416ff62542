"""The `sensorium` command line. Configuration problems exit 2 with `FILE:LINE: field: message`, no traceback."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from engine.core.errors import ConfigError, SensoriumError

if TYPE_CHECKING:
    from engine.trace.hub import TraceHub

EXIT_CONFIG = 2


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--bus", metavar="URL", help="bus URL: nats://HOST:PORT or kafka://HOST:PORT[,HOST:PORT]")
    parser.add_argument("--data-dir", type=Path, default=Path(".sensorium"),
                        help="where the embedded bus keeps its data (default: .sensorium)")
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sensorium", description="Argo Events sensors without Kubernetes.")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run EventSources and Sensors from YAML files or directories")
    run.add_argument("paths", nargs="+", metavar="PATH")
    run.add_argument("--secrets-dir", type=Path, help="secrets laid out as <name>/<key> files")
    run.add_argument("--webhook-host", default="0.0.0.0", help="address webhooks listen on")
    run.add_argument("--ack-wait", type=float, default=30.0, metavar="SECONDS",
                     help="redelivery deadline of an unsettled event; heartbeats extend it while triggers run")
    run.add_argument("--event-timeout", type=float, default=1.0, metavar="SECONDS",
                     help="time one event may spend in a sensor's filters, transforms and scripts (default 1)")
    run.add_argument("--health-port", type=int, metavar="PORT",
                     help="serve GET /healthz on 127.0.0.1:PORT: 200 when connected to the bus, 503 with the cause")
    run.add_argument("--sink", type=int, metavar="PORT",
                     help="also run a request sink on 127.0.0.1:PORT that prints every request it receives")
    run.add_argument("--trace", action="store_true",
                     help="print a trace record for every step each event takes (human lines on stdout)")
    run.add_argument("--trace-format", choices=["human", "json"],
                     help="trace as human lines (default) or JSON Lines; implies --trace")
    run.add_argument("--trace-file", type=Path, metavar="PATH",
                     help="write the trace to PATH instead of stdout; implies --trace")
    run.add_argument("--no-bus-trace", action="store_true",
                     help="do not publish trace records on the bus (where `sensorium trace` reads them)")
    _common(run)

    publish = sub.add_parser("publish", help="publish structured-mode CloudEvent JSON files (or JSON lines on stdin)")
    publish.add_argument("files", nargs="*", metavar="FILE")
    _common(publish)

    trace = sub.add_parser("trace", help="print the trace records running engines published on the bus")
    trace.add_argument("--sensor", metavar="NAME", help="only this sensor's records")
    trace.add_argument("--event", metavar="ID", help="only this event's records (and its firings')")
    trace.add_argument("--since", metavar="DURATION", help="only records of the last DURATION (e.g. 10m, 1h)")
    trace.add_argument("--follow", "-f", action="store_true", help="keep printing new records")
    trace.add_argument("--format", choices=["human", "json"], default="human", dest="trace_format",
                       help="human lines (default) or JSON Lines")
    _common(trace)

    test = sub.add_parser("test", help="evaluate a Sensor against CloudEvent files; sends nothing, needs no bus")
    test.add_argument("sensor_file", metavar="SENSOR_FILE")
    test.add_argument("--event", action="append", required=True, metavar="EVENT_FILE", dest="events",
                      help="a CloudEvent JSON file (one event, or JSON Lines); repeat for more, read in order")
    test.add_argument("--output", choices=["text", "json"], default="text", help="human trace or JSON")
    test.add_argument("--sensor", metavar="NAME", help="which Sensor, when the file holds several")
    test.add_argument("--secrets-dir", type=Path, help="secrets laid out as <name>/<key> files")
    test.add_argument("--log-level", default="WARNING", choices=["DEBUG", "INFO", "WARNING", "ERROR"])

    validate = sub.add_parser("validate", help="check documents without connecting to anything")
    validate.add_argument("paths", nargs="+", metavar="PATH")
    validate.add_argument("--log-level", default="WARNING", choices=["DEBUG", "INFO", "WARNING", "ERROR"])

    schema = sub.add_parser("schema", help="print the JSON Schema of Sensor, EventSource and EventBus documents")
    schema.add_argument("--kind", choices=["Sensor", "EventSource", "EventBus"], help="only this kind")
    schema.add_argument("--log-level", default="WARNING", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    return parser


def _setup_logging(level: str) -> None:
    logging.basicConfig(level=getattr(logging, level), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)


def _config_error(exc: ConfigError) -> int:
    print(exc.render(), file=sys.stderr)
    return EXIT_CONFIG


def cmd_run(args: argparse.Namespace) -> int:
    from engine.app import EngineOptions, run_engine
    from engine.assemble import check_document
    from engine.config import load
    from engine.runner import RunnerSettings

    config = load(args.paths, checks=[check_document])
    if not config.sensors and not config.sources:
        raise ConfigError("no Sensor or EventSource documents found", args.paths[0], 0)
    hub = _trace_hub(args)
    options = EngineOptions(bus_url=args.bus, secrets_dir=args.secrets_dir, data_dir=args.data_dir,
                            webhook_host=args.webhook_host, sink_port=args.sink,
                            health_port=args.health_port,
                            runner=RunnerSettings(ack_wait=args.ack_wait, event_timeout=args.event_timeout), tracer=hub)

    async def go() -> None:
        try:
            await run_engine(config, options)
        finally:
            await hub.close()

    asyncio.run(go())
    return 0


def _trace_hub(args: argparse.Namespace) -> TraceHub:
    """The run's tracer: the --trace sink (if any) and, unless --no-bus-trace, the bus."""
    from engine.trace.fmt import StreamSink, use_color
    from engine.trace.hub import TraceHub

    sinks = []
    if args.trace or args.trace_format or args.trace_file:
        fmt = args.trace_format or "human"
        if args.trace_file is not None:
            try:
                stream = open(args.trace_file, "w", encoding="utf-8")  # the sink closes it
            except OSError as exc:
                raise ConfigError(f"--trace-file: cannot write: {exc.strerror or exc}", str(args.trace_file),
                                  0) from None
            sinks.append(StreamSink(stream, fmt, owns=True))
        else:
            sinks.append(StreamSink(sys.stdout, fmt, color=fmt == "human" and use_color(sys.stdout)))
    return TraceHub(sinks, bus_trace=not args.no_bus_trace)


def read_events(files: Sequence[str]) -> list[tuple[str, int, bytes]]:
    """(file, line, JSON text) per event: a file holds one JSON event or JSON lines; no files means stdin."""
    sources = [(f, Path(f).read_text() if f != "-" else sys.stdin.read()) for f in files] or [
        ("<stdin>", sys.stdin.read())]
    out: list[tuple[str, int, bytes]] = []
    for name, text in sources:
        stripped = text.strip()
        try:
            json.loads(stripped)
            out.append((name, 1, stripped.encode()))
            continue
        except ValueError:
            pass
        for number, line in enumerate(text.splitlines(), 1):
            if line.strip():
                out.append((name, number, line.encode()))
    return out


def cmd_publish(args: argparse.Namespace) -> int:
    from buses.base import EventKey
    from engine.busconfig import default_bus_url, describe, from_url
    from engine.core.cloudevent import DecodeError, decode_structured, encode_structured

    items = []
    for name, line, raw in read_events(args.files):
        try:
            event = decode_structured(raw)
        except DecodeError as exc:
            raise ConfigError(f"not a CloudEvent: {exc}", name, line) from None
        if not event.subject:
            raise ConfigError("event has no subject (the Argo event name it is published under)", name, line)
        items.append((EventKey(event.source, event.subject), event.id, encode_structured(event)))
    url = args.bus or default_bus_url(args.data_dir)
    if url is None:
        raise ConfigError("no bus: pass --bus nats://HOST:PORT or kafka://HOST:PORT, or start `sensorium run` "
                          f"with the embedded bus in this directory (it writes {args.data_dir}/bus.url)")

    async def go() -> None:
        bus = from_url(url)
        await bus.start()
        try:
            await bus.publish_many(items)
        finally:
            await bus.close()

    asyncio.run(go())
    print(f"published {len(items)} event(s) to {describe(url)}")
    return 0


def _bus_url(args: argparse.Namespace) -> str:
    from engine.busconfig import default_bus_url

    url: str | None = args.bus or default_bus_url(args.data_dir)
    if url is None:
        raise ConfigError("no bus: pass --bus nats://HOST:PORT or kafka://HOST:PORT, or start `sensorium run` "
                          f"with the embedded bus in this directory (it writes {args.data_dir}/bus.url)")
    return url


def cmd_trace(args: argparse.Namespace) -> int:
    from engine.busconfig import describe
    from engine.goport.duration import parse_duration
    from engine.trace.bus import read_traces
    from engine.trace.fmt import HumanFormat, json_line, use_color

    url = _bus_url(args)
    since = None
    if args.since:
        try:
            since = parse_duration(args.since) / 1e9
        except ValueError as exc:
            raise ConfigError(f"--since: {exc} (want a duration such as 90s, 10m or 1h)") from None
    human = HumanFormat(color=use_color(sys.stdout))
    firings: set[str] = set()
    shown = 0

    async def go() -> None:
        nonlocal shown
        async for record in read_traces(url, sensor=args.sensor, since=since, follow=args.follow):
            if args.event:
                if record.get("step") == "firing" and args.event in (record.get("events") or {}).values():
                    firings.add(str(record.get("firing")))
                if record.get("event") != args.event and record.get("firing") not in firings:
                    continue
            sys.stdout.write(json_line(record) if args.trace_format == "json" else human.lines([record]))
            sys.stdout.flush()
            shown += 1

    asyncio.run(go())
    if not shown:
        print(f"sensorium: no trace records on {describe(url)} match", file=sys.stderr)
    return 0


def cmd_test(args: argparse.Namespace) -> int:
    from engine.core.secrets import Secrets
    from engine.dryrun import dry_run, load_events, load_sensor, render_json, render_text
    from engine.trace.fmt import use_color

    sensor = load_sensor(args.sensor_file, args.sensor)
    events = load_events(args.events)
    run = dry_run(sensor, events, Secrets(args.secrets_dir))
    if args.output == "json":
        sys.stdout.write(render_json(run))
    else:
        sys.stdout.write(render_text(run, color=use_color(sys.stdout)))
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    from engine.validate import validate

    result = validate(args.paths)
    if result.errors:
        for error in result.errors:
            print(error.render(), file=sys.stderr)
        print(f"{len(result.errors)} problem{'s' if len(result.errors) != 1 else ''} found", file=sys.stderr)
        return EXIT_CONFIG
    print(result.summary())
    return 0


def cmd_schema(args: argparse.Namespace) -> int:
    from engine.schema import document_schema

    print(json.dumps(document_schema(args.kind), indent=2, ensure_ascii=False))
    return 0


COMMANDS = {"run": cmd_run, "publish": cmd_publish, "trace": cmd_trace, "test": cmd_test,
            "validate": cmd_validate, "schema": cmd_schema}


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _setup_logging(args.log_level)
    try:
        return COMMANDS[args.command](args)
    except ConfigError as exc:
        return _config_error(exc)
    except SensoriumError as exc:
        print(f"sensorium: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `sensorium trace | head`: the reader left; not an error
        with contextlib.suppress(OSError):
            sys.stdout = open(os.devnull, "w")  # keeps the interpreter's final flush quiet
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())

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

from sensorium.engine.core.errors import ConfigError, SensoriumError

if TYPE_CHECKING:
    from sensorium.engine.assemble import Checked
    from sensorium.engine.trace.hub import TraceHub

EXIT_CONFIG = 2
EXIT_CODES = {0: "success", 1: "a runtime failure (the bus refused, a port is taken, ...)",
              2: "invalid input (FILE:LINE: message) or invalid arguments", 130: "interrupted (Ctrl-C)"}


def version() -> str:
    """The installed distribution's version, else the one in the checkout's pyproject.toml."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as dist_version

    try:
        return dist_version("sensorium")
    except PackageNotFoundError:
        import tomllib

        pyproject = Path(__file__).resolve().parent.parent / "pyproject.toml"
        try:
            return str(tomllib.loads(pyproject.read_text())["project"]["version"])
        except (OSError, KeyError, tomllib.TOMLDecodeError):
            return "unknown"


def _epilog(examples: Sequence[str], codes: dict[int, str] | None = None) -> str:
    """The end of a --help text: examples, then the exit codes (`codes` override the common ones)."""
    merged = {**EXIT_CODES, **(codes or {})}
    lines = ["examples:", *(f"  {e}" for e in examples), "", "exit codes:"]
    lines += [f"  {code:<4} {text}" for code, text in sorted(merged.items())]
    return "\n".join(lines)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--bus", metavar="URL", help="bus URL: nats://HOST:PORT or kafka://HOST:PORT[,HOST:PORT]")
    parser.add_argument("--data-dir", type=Path, default=Path(".sensorium"),
                        help="where the embedded bus keeps its data (default: .sensorium)")
    _log_options(parser, "INFO")


def _log_options(parser: argparse.ArgumentParser, level: str) -> None:
    """--log-level and --log-format: every command logs on stderr only (engine.logs)."""
    parser.add_argument("--log-level", default=level, choices=["DEBUG", "INFO", "WARNING", "ERROR"],
                        help=f"least severe log lines shown (default {level})")
    parser.add_argument("--log-format", default="text", choices=["text", "json"],
                        help="log lines on stderr as text (default) or JSON Lines: time, level, logger, message "
                             "and fields such as sensor, trigger, event_id, status")


def build_parser() -> argparse.ArgumentParser:
    from sensorium.engine.trace.records import DETAILS

    parser = argparse.ArgumentParser(
        prog="sensorium", description="Argo Events sensors without Kubernetes.",
        epilog=_epilog(["sensorium run examples/quickstart --sink 9000",
                        "sensorium validate sensors/",
                        "sensorium test examples/two-dependencies/tests.yaml",
                        "sensorium trace --follow",
                        "sensorium <command> --help"], {1: "a runtime failure, or `test`: an expectation failed"}),
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"sensorium {version()}")
    sub = parser.add_subparsers(dest="command", required=True)
    raw = argparse.RawDescriptionHelpFormatter

    run = sub.add_parser(
        "run", help="run EventSources and Sensors from YAML files or directories", formatter_class=raw,
        epilog=_epilog(["sensorium run examples/quickstart --sink 9000",
                        "sensorium run sensors/ --bus nats://127.0.0.1:4222 --secrets-dir /etc/sensorium/secrets",
                        "sensorium run examples/quickstart examples/buses/eventbus-kafka.yaml --trace",
                        "sensorium run sensors/ --trace-format json --trace-file trace.jsonl",
                        "sensorium run sensors/ --watch          # or: kill -HUP <pid> to reload"],
                       {0: "stopped cleanly", 1: "a runtime failure (a webhook port is taken, ...)"}))
    run.add_argument("paths", nargs="+", metavar="PATH")
    run.add_argument("--secrets-dir", type=Path, help="secrets laid out as <name>/<key> files")
    run.add_argument("--webhook-host", default="0.0.0.0", help="address webhooks listen on")
    run.add_argument("--bus-port", type=int, metavar="PORT",
                     help="port of the embedded nats-server (started when neither --bus nor an EventBus names a "
                          "bus; default: a free port, written to DATA_DIR/bus.url)")
    run.add_argument("--watch", action="store_true",
                     help="reload the configuration when a file under PATH changes (SIGHUP always reloads); an "
                          "invalid new configuration is refused and the running one kept")
    run.add_argument("--workers", type=int, default=1, metavar="N",
                     help="run N engine processes sharing the work through the bus (JetStream durable consumers, "
                          "Kafka consumer group); a parent restarts a crashed one and stops them all on SIGTERM")
    run.add_argument("--max-in-flight", type=int, metavar="N",
                     help="bound on firings in flight across every sensor of a process (default 4096; each sensor "
                          "also has its own 256)")
    run.add_argument("--group", default="sensorium-intake", metavar="NAME",  # engine.intake.DEFAULT_GROUP
                     help="name of the deployment's shared intake: its durable JetStream consumer or Kafka consumer "
                          "group (default sensorium-intake); give two deployments on one bus different names")
    run.add_argument("--worker-id", type=int, help=argparse.SUPPRESS)  # set by the --workers parent
    run.add_argument("--ack-wait", type=float, default=30.0, metavar="SECONDS",
                     help="redelivery deadline of an unsettled event; heartbeats extend it while triggers run")
    run.add_argument("--event-timeout", type=float, default=1.0, metavar="SECONDS",
                     help="time one event may spend in a sensor's filters, transforms and scripts (default 1)")
    run.add_argument("--ops-port", "--health-port", type=int, metavar="PORT", dest="ops_port",
                     help="operations port: GET /metrics (Prometheus), /livez, /readyz (alias /healthz: 200 when "
                          "connected to the bus and every sensor consumes, 503 naming the cause); metrics are "
                          "counted only with this port")
    run.add_argument("--ops-host", default="127.0.0.1", metavar="ADDRESS",
                     help="address the operations port listens on (default 127.0.0.1; 0.0.0.0 for a remote "
                          "Prometheus)")
    run.add_argument("--otlp-endpoint", metavar="URL",
                     help="export OpenTelemetry spans (event, firing, attempt) over OTLP/HTTP to URL/v1/traces; "
                          "default: OTEL_EXPORTER_OTLP_TRACES_ENDPOINT or OTEL_EXPORTER_OTLP_ENDPOINT, else off")
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
    run.add_argument("--trace-detail", choices=DETAILS,
                     help="decisions (default without --trace): every step of an event that did not go as it "
                          "should, and of one that did what the other records do not imply; all (default with "
                          "--trace, --trace-format or --trace-file): every step, check and parameter (about 7%% "
                          "more instructions per event)")
    run.add_argument("--no-uvloop", action="store_true",
                     help="run on the standard asyncio loop instead of uvloop (also SENSORIUM_LOOP=asyncio)")
    _common(run)

    publish = sub.add_parser(
        "publish", help="publish structured-mode CloudEvent JSON files (or JSON lines on stdin)", formatter_class=raw,
        epilog=_epilog(["sensorium publish examples/two-dependencies/events/1-order.json",
                        "sensorium publish --bus kafka://127.0.0.1:9092 events.jsonl",
                        "cat events.jsonl | sensorium publish --bus nats://127.0.0.1:4222"],
                       {0: "every event stored on the bus", 1: "the bus could not be reached or refused",
                        2: "an event file is not a CloudEvent (FILE:LINE: message), or no bus is known"}))
    publish.add_argument("files", nargs="*", metavar="FILE")
    _common(publish)

    trace = sub.add_parser(
        "trace", help="print the trace records running engines published on the bus", formatter_class=raw,
        epilog=_epilog(["sensorium trace",
                        "sensorium trace --bus nats://host:4222 --sensor webhook --since 10m",
                        "sensorium trace --bus kafka://host:9092 --event 6a1f0c2e... --format json",
                        "sensorium trace --follow"],
                       {0: "records printed (or none matched: said on stderr)", 1: "the bus could not be read",
                        2: "invalid arguments, or no bus is known"}))
    trace.add_argument("--sensor", metavar="NAME", help="only this sensor's records")
    trace.add_argument("--event", metavar="ID", help="only this event's records (and its firings')")
    trace.add_argument("--since", metavar="DURATION",
                       help="only records of the last DURATION (e.g. 10m, 1h); with --follow, reach back this far")
    trace.add_argument("--follow", "-f", action="store_true",
                       help="keep printing new records, from now on (add --since to start earlier)")
    trace.add_argument("--format", choices=["human", "json"], default="human", dest="trace_format",
                       help="human lines (default) or JSON Lines")
    _common(trace)

    test = sub.add_parser(
        "test", help="check a Sensor against test cases (or CloudEvent files); sends nothing, needs no bus",
        description="Run test cases: `sensorium test CASES.yaml...` feeds each case's events (CloudEvents or raw\n"
                    "webhook requests) to a fresh dry run of the Sensor and checks its expectations: which\n"
                    "triggers fire, with which request, which filter rejected an event. PASS or FAIL per case,\n"
                    "with a diff for each failed expectation.\n\n"
                    "Or evaluate one Sensor against CloudEvent files, without expectations:\n"
                    "`sensorium test SENSOR.yaml --event FILE...`. Nothing is sent and no bus is needed.",
        epilog=_epilog(
            ["sensorium test examples/two-dependencies/tests.yaml",
             "sensorium test examples/*/tests.yaml --junit report.xml",
             "sensorium test cases.yaml --sensor-file sensor.yaml --output json",
             "sensorium test sensor.yaml --event events/1.json --event events/2.jsonl"],
            {0: "every case passed (or: the sensor and events loaded)", 1: "an expectation failed",
             2: "invalid input: FILE:LINE: message"}),
        formatter_class=argparse.RawDescriptionHelpFormatter)
    test.add_argument("files", nargs="+", metavar="FILE",
                      help="cases files (YAML with `cases:`), or one Sensor file with --event")
    test.add_argument("--event", action="append", metavar="EVENT_FILE", dest="events",
                      help="a CloudEvent JSON file (one event, or JSON Lines); repeat for more, read in order")
    test.add_argument("--output", choices=["text", "json"], default="text", help="human output or JSON")
    test.add_argument("--sensor", metavar="NAME", help="which Sensor, when the file holds several")
    test.add_argument("--sensor-file", metavar="SENSOR_FILE",
                      help="the Sensor file for the cases (instead of the cases file's `sensor:`)")
    test.add_argument("--secrets-dir", type=Path, help="secrets laid out as <name>/<key> files")
    test.add_argument("--junit", type=Path, metavar="FILE", help="also write a JUnit XML report of the cases")
    _log_options(test, "WARNING")

    validate = sub.add_parser(
        "validate", help="check documents without connecting to anything", formatter_class=raw,
        epilog=_epilog(["sensorium validate examples/quickstart",
                        "sensorium validate sensor.yaml eventsource.yaml",
                        "sensorium validate --format github sensors/   # annotations in a GitHub Actions job"],
                       {0: "every document is valid (a summary is printed; warnings, if any, are marked)",
                        2: "errors found, one FILE:LINE: field: message line each"}))
    validate.add_argument("paths", nargs="+", metavar="PATH")
    validate.add_argument("--format", choices=["text", "json", "github"], default="text",
                          help="text (FILE:LINE: field: message), json (a list of {file, line, path, severity, "
                               "message}) or github (::error/::warning annotations)")
    _log_options(validate, "WARNING")

    schema = sub.add_parser(
        "schema", help="print the JSON Schema of Sensor, EventSource and EventBus documents", formatter_class=raw,
        epilog=_epilog(["sensorium schema --out sensorium.schema.json", "sensorium schema --kind Sensor"],
                       {0: "the schema was printed (or written)", 2: "--out cannot be written"}))
    schema.add_argument("--kind", choices=["Sensor", "EventSource", "EventBus"], help="only this kind")
    schema.add_argument("--out", type=Path, metavar="FILE", help="write the schema to FILE instead of printing it")
    _log_options(schema, "WARNING")

    convert = sub.add_parser(
        "convert", help="print the Argo documents that files of any supported format mean", formatter_class=raw,
        epilog=_epilog(["sensorium convert config.d/", "sensorium convert weik-sources.yaml > argo.yaml"],
                       {0: "the documents were printed", 2: "a file is invalid (FILE:LINE: field: message)"}))
    convert.add_argument("paths", nargs="+", metavar="PATH")
    _log_options(convert, "WARNING")
    from sensorium.engine.replaycmd import add_replay_parser

    add_replay_parser(sub, _epilog, _log_options)
    return parser


def _config_error(exc: ConfigError, json_logs: bool = False) -> int:
    """Print the problems (`ConfigErrors` renders one line each); with JSON logs, one ERROR log line each."""
    if not json_logs:
        print(exc.render(), file=sys.stderr)
        return EXIT_CONFIG
    config_log = logging.getLogger("sensorium.config")
    for problem in getattr(exc, "errors", None) or [exc]:
        config_log.error("%s", problem.render(), extra=_where(problem))
    return EXIT_CONFIG


def _where(problem: ConfigError) -> dict[str, object]:
    return {"file": problem.file, "line": problem.line, "path": problem.field}


def cmd_run(args: argparse.Namespace) -> int:
    from sensorium.engine import collector

    collector.hold()  # no automatic collection while the configuration loads and the engine starts
    try:
        return _cmd_run(args)
    finally:
        collector.release()  # the engine released it once started (engine.app); any other way out, here


def _cmd_run(args: argparse.Namespace) -> int:
    from sensorium.engine.app import EngineOptions, run_engine
    from sensorium.engine.assemble import load_checked
    from sensorium.engine.eventloop import loop_factory, run
    from sensorium.engine.otel import otlp_traces_url
    from sensorium.engine.runner import RunnerSettings

    if args.workers > 1:  # the parent checks the files as its workers will read them (engine.workers)
        from sensorium.engine.workers import WORKER_ENV

        os.environ.setdefault(WORKER_ENV, "0")
    try:
        loop_name, factory = loop_factory(args.no_uvloop)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    config = load_checked(args.paths)  # what checking compiled is what runs
    for warning in config.warnings:  # likely mistakes that still run (engine.crosscheck)
        logging.getLogger("sensorium.config").warning("%s", warning.render(), extra=_where(warning))
    if not config.sensors and not config.sources:
        raise ConfigError("no Sensor or EventSource documents found", args.paths[0], 0)
    if args.workers < 1 or (args.max_in_flight is not None and args.max_in_flight < 1):
        raise ConfigError("--workers and --max-in-flight must be at least 1", field="--workers")
    if not args.group.strip() or len(args.group) > 200:
        raise ConfigError("--group must be a name of 1 to 200 characters", field="--group")
    if args.workers > 1:
        return _run_parent(args, config)
    worker = args.worker_id is not None
    if worker:  # the parent runs the sink and the bus; each worker its own operations port, PORT + id
        args.sink, args.bus_port = None, None
        args.ops_port = args.ops_port + args.worker_id if args.ops_port is not None else None
    hub = _trace_hub(args)
    options = EngineOptions(bus_url=args.bus, secrets_dir=args.secrets_dir, data_dir=args.data_dir,
                            webhook_host=args.webhook_host, sink_port=args.sink,
                            ops_port=args.ops_port, ops_host=args.ops_host, bus_port=args.bus_port,
                            runner=RunnerSettings(ack_wait=args.ack_wait, event_timeout=args.event_timeout), tracer=hub,
                            otlp_traces_url=otlp_traces_url(args.otlp_endpoint),
                            reload=lambda: load_checked(args.paths),
                            watch=[Path(p) for p in args.paths] if args.watch else (),
                            max_in_flight=args.max_in_flight, reuse_port=worker, intake_group=args.group)

    async def go() -> None:
        try:
            await run_engine(config, options)
        finally:
            await hub.close()

    logging.getLogger("sensorium.engine").debug("event loop: %s", loop_name)
    run(go(), factory)
    return 0


def _run_parent(args: argparse.Namespace, config: Checked) -> int:
    """`run --workers N`: the parent (engine.workers); it starts the embedded bus when none is configured."""
    from sensorium.engine import collector
    from sensorium.engine.core.secrets import Secrets
    from sensorium.engine.sink import PrintingSink
    from sensorium.engine.workers import run_workers

    async def go() -> None:
        stop = asyncio.Event()
        sink = PrintingSink(args.sink) if args.sink else None
        if sink is not None:
            await sink.start()
        try:
            if args.bus is not None or config.bus is not None:
                await run_workers(args.workers, args.argv, None, stop)
                return
            args.data_dir.mkdir(parents=True, exist_ok=True)
            async with config.registry.open_bus(None, Secrets(args.secrets_dir), args.data_dir,
                                                args.bus_port) as bus:
                await run_workers(args.workers, args.argv, bus.url, stop)
        finally:
            if sink is not None:
                await sink.stop()

    collector.release()  # the parent starts no engine of its own
    asyncio.run(go())
    return 0


def _trace_hub(args: argparse.Namespace) -> TraceHub:
    """The run's tracer: the --trace sink (if any) and, unless --no-bus-trace, the bus."""
    from sensorium.engine.trace.fmt import StreamSink, use_color
    from sensorium.engine.trace.hub import TraceHub

    sinks = []
    local = bool(args.trace or args.trace_format or args.trace_file)  # a debugging run: every record by default
    detail = args.trace_detail or ("all" if local else "decisions")
    if local:
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
    return TraceHub(sinks, bus_trace=not args.no_bus_trace, detail=detail)


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
    from sensorium.buses.base import EventKey
    from sensorium.engine.busconfig import default_bus_url, describe, from_url
    from sensorium.engine.core.cloudevent import DecodeError, decode_structured, encode_structured

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
    from sensorium.engine.busconfig import default_bus_url

    url: str | None = args.bus or default_bus_url(args.data_dir)
    if url is None:
        raise ConfigError("no bus: pass --bus nats://HOST:PORT or kafka://HOST:PORT, or start `sensorium run` "
                          f"with the embedded bus in this directory (it writes {args.data_dir}/bus.url)")
    return url


def cmd_trace(args: argparse.Namespace) -> int:
    from sensorium.engine.busconfig import describe
    from sensorium.engine.goport.duration import parse_duration
    from sensorium.engine.trace.bus import read_traces
    from sensorium.engine.trace.fmt import HumanFormat, json_line, use_color

    url = _bus_url(args)
    since = None
    if args.since:
        try:
            since = parse_duration(args.since) / 1e9
        except ValueError as exc:
            raise ConfigError(f"--since: {exc} (want a duration such as 90s, 10m or 1h)") from None
    if args.follow and since is None:
        since = 0.0  # --follow starts at now; --since reaches back
    human = HumanFormat(color=use_color(sys.stdout))
    firings: set[str] = set()
    shown = 0

    async def go() -> None:
        nonlocal shown
        async for record in read_traces(url, sensor=args.sensor, since=since, follow=args.follow, event=args.event):
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
    from sensorium.engine.core.secrets import Secrets
    from sensorium.engine.dryrun import dry_run, load_events, load_sensor, render_json, render_text
    from sensorium.engine.testcases import is_cases_file
    from sensorium.engine.trace.fmt import use_color

    if args.events:
        if len(args.files) != 1:
            raise ConfigError(f"--event takes one Sensor file, not {len(args.files)} files")
        if args.junit is not None or args.sensor_file is not None:
            raise ConfigError("--junit and --sensor-file are for cases files, not with --event")
        sensor = load_sensor(args.files[0], args.sensor)
        events = load_events(args.events)
        run = dry_run(sensor, events, Secrets(args.secrets_dir))
        if args.output == "json":
            sys.stdout.write(render_json(run))
        else:
            sys.stdout.write(render_text(run, color=use_color(sys.stdout)))
        return 0
    for file in args.files:
        if not Path(file).is_file():
            raise ConfigError("no such file", file, 0)
        if not is_cases_file(file):
            raise ConfigError("not a cases file (a YAML mapping with `cases:`); to evaluate a Sensor file give "
                              "its events with --event FILE", file, 1)
    return _run_cases(args)


def _run_cases(args: argparse.Namespace) -> int:
    from sensorium.engine.config import ConfigErrors
    from sensorium.engine.core.secrets import Secrets
    from sensorium.engine.testcases import CaseFile, load_cases
    from sensorium.engine.testreport import junit_xml, render_suite_text, run_cases, suite_json
    from sensorium.engine.trace.fmt import use_color

    loaded: list[CaseFile] = []
    errors: list[ConfigError] = []
    for file in args.files:
        try:
            loaded.append(load_cases(file, args.sensor_file, args.sensor, args.secrets_dir))
        except ConfigError as exc:
            errors.extend(getattr(exc, "errors", [exc]))
    if errors:
        raise ConfigErrors(errors)
    suites = [run_cases(cases, Secrets(cases.secrets_dir)) for cases in loaded]
    if args.output == "json":
        report = [suite_json(s) for s in suites]
        print(json.dumps({"passed": all(s.failed == 0 for s in suites), "suites": report}, indent=2,
                         ensure_ascii=False))
    else:
        color = use_color(sys.stdout)
        sys.stdout.write("\n".join(render_suite_text(s, color=color) for s in suites))
    if args.junit is not None:
        try:
            args.junit.write_bytes(junit_xml(suites))
        except OSError as exc:
            raise ConfigError(f"--junit: cannot write: {exc.strerror or exc}", str(args.junit), 0) from None
    return 1 if any(s.failed for s in suites) else 0


def cmd_validate(args: argparse.Namespace) -> int:
    from sensorium.engine.validate import render, validate

    result = validate(args.paths)
    out, err = render(result, args.format)
    sys.stdout.write(out)
    sys.stderr.write(err)
    return EXIT_CONFIG if result.errors else 0


def cmd_schema(args: argparse.Namespace) -> int:
    from sensorium.engine.schema import document_schema

    text = json.dumps(document_schema(args.kind), indent=2, ensure_ascii=False) + "\n"
    if args.out is None:
        sys.stdout.write(text)
        return 0
    try:
        args.out.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"--out: cannot write: {exc.strerror or exc}", str(args.out), 0) from None
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


def cmd_convert(args: argparse.Namespace) -> int:
    from sensorium.engine.convert import convert

    sys.stdout.write(convert(args.paths))
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    from sensorium.engine.replaycmd import replay_command

    return replay_command(args)


COMMANDS = {"run": cmd_run, "publish": cmd_publish, "trace": cmd_trace, "test": cmd_test,
            "validate": cmd_validate, "schema": cmd_schema,
            "replay": cmd_replay,
            "convert": cmd_convert}


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # what `run --workers` passes on to its workers
    from sensorium.engine.logs import setup_logging

    setup_logging(args.log_level, args.log_format)
    try:
        return COMMANDS[args.command](args)
    except ConfigError as exc:
        return _config_error(exc, json_logs=args.command == "run" and getattr(args, "log_format", "") == "json")
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

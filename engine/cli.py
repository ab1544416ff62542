"""The `sensorium` command line. Configuration problems exit 2 with `FILE:LINE: field: message`, no traceback."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from engine.errors import ConfigError, SensoriumError

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
    run.add_argument("--health-port", type=int, metavar="PORT",
                     help="serve GET /healthz on 127.0.0.1:PORT: 200 when connected to the bus, 503 with the cause")
    run.add_argument("--sink", type=int, metavar="PORT",
                     help="also run a request sink on 127.0.0.1:PORT that prints every request it receives")
    _common(run)

    publish = sub.add_parser("publish", help="publish structured-mode CloudEvent JSON files (or JSON lines on stdin)")
    publish.add_argument("files", nargs="*", metavar="FILE")
    _common(publish)
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
    options = EngineOptions(bus_url=args.bus, secrets_dir=args.secrets_dir, data_dir=args.data_dir,
                            webhook_host=args.webhook_host, sink_port=args.sink,
                            health_port=args.health_port,
                            runner=RunnerSettings(ack_wait=args.ack_wait))
    asyncio.run(run_engine(config, options))
    return 0


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
    from engine.cloudevent import DecodeError, decode_structured, encode_structured

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


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _setup_logging(args.log_level)
    try:
        if args.command == "run":
            return cmd_run(args)
        if args.command == "publish":
            return cmd_publish(args)
    except ConfigError as exc:
        return _config_error(exc)
    except SensoriumError as exc:
        print(f"sensorium: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())

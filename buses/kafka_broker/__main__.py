"""`python -m sensorium.buses.kafka_broker --port 19092 --data-dir /tmp/k`: run one Kafka node until Ctrl-C."""

from __future__ import annotations

import argparse
import signal
import sys
import threading

from sensorium.buses.kafka_broker import KAFKA_VERSION, BrokerError, KafkaBroker, resolve_classpath


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sensorium.buses.kafka_broker",
                                     description=f"Run Apache Kafka {KAFKA_VERSION} (KRaft, one node).")
    parser.add_argument("--port", type=int, default=9092, help="PLAINTEXT client port (default 9092)")
    parser.add_argument("--data-dir", default=".kafka-data", help="data directory, kept across runs")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on and advertise")
    parser.add_argument("--controller-port", type=int, default=None, help="KRaft controller port")
    parser.add_argument("--sasl-port", type=int, default=None, help="SASL_PLAINTEXT port (with --user)")
    parser.add_argument("--user", action="append", default=[], metavar="NAME=PASSWORD",
                        help="SASL user for PLAIN and SCRAM (set when the data directory is first formatted)")
    parser.add_argument("--heap", default="512m", help="JVM maximum heap (default 512m)")
    parser.add_argument("--resolve-only", action="store_true", help="fetch the jars into the cache and exit")
    args = parser.parse_args(argv)
    try:
        if args.resolve_only:
            print(f"Kafka {KAFKA_VERSION}: {len(resolve_classpath())} jars ready")
            return 0
        users = dict(u.split("=", 1) for u in args.user)
        broker = KafkaBroker(args.port, args.data_dir, host=args.host, controller_port=args.controller_port,
                             sasl_port=args.sasl_port, users=users, heap=args.heap)
        broker.start()
    except BrokerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    sasl = f", SASL_PLAINTEXT on {broker.sasl_bootstrap}" if broker.sasl_port else ""
    print(f"Kafka {KAFKA_VERSION} ready on {broker.bootstrap}{sasl} in {broker.startup_seconds:.1f}s "
          f"(data {broker.data_dir}, log {broker.log_file}); Ctrl-C stops it", flush=True)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    while not stop.wait(1.0):
        if not broker.running:
            print(f"error: Kafka exited:\n{broker.log_tail()}", file=sys.stderr)
            return 1
    broker.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())

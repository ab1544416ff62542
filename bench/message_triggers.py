"""Benchmark: what one firing of a message-queue trigger costs, against the http trigger in the same run.

    python -m bench.message_triggers [--firings 3000] [--in-flight 64] [--rounds 5] [--kafka]

In this process: the http trigger POSTing to `bench.fastsink` (a process of its own), the nats trigger
publishing to an embedded nats-server, and with --kafka the kafka trigger producing to a broker started by
`buses.kafka_broker` (a topic of 12 partitions, `requiredAcks: 1`). Each round fires --firings firings of each
variant, --in-flight at a time (as the engine's runner does), in an order that alternates, and reads this
process's CPU time (`time.process_time`) and the wall time around each. Every firing must succeed, and the
receiving end must have them all: the sink's arrivals, nats-server's `in_msgs` (/varz), the topic's end offsets.
Prints per variant the medians of CPU microseconds per firing and of firings per second, and each variant
against the http trigger (ratios of the medians).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
import urllib.request
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

from bench.fastsink import ProcessSink
from sensorium.buses.embedded import EmbeddedNats
from sensorium.engine.core.cloudevent import CloudEvent
from sensorium.engine.core.secrets import Secrets
from sensorium.triggers.http import HttpClient, HttpTrigger
from sensorium.triggers.kafka import KafkaProducers, KafkaTrigger
from sensorium.triggers.nats import NatsClients, NatsTrigger
from sensorium.triggers.outcome import Fireable
from sensorium.triggers.spec import Trigger

PAYLOAD = [{"src": {"dependencyName": "d", "dataKey": "id"}, "dest": "id"},
           {"src": {"dependencyName": "d", "dataKey": "ts", "useRawData": True}, "dest": "ts"}]
TOPIC = "bench-trigger"


def trigger(kind: str, spec: dict[str, Any]) -> Trigger:
    return Trigger.model_validate({"template": {"name": kind, kind: {**spec, "payload": PAYLOAD}}})


def events(tag: str, count: int) -> list[dict[str, CloudEvent]]:
    now = time.time_ns()
    return [{"d": CloudEvent(id=f"{tag}-{i}", source="bench", type="t", subject="e",
                             datacontenttype="application/json",
                             data=json.dumps({"id": f"{tag}-{i}", "ts": now}).encode())} for i in range(count)]


async def fire_all(fireable: Fireable, batch: list[dict[str, CloudEvent]], in_flight: int) -> tuple[float, float]:
    """(CPU seconds, wall seconds) of firing every event set of `batch`, `in_flight` at a time."""
    gate = asyncio.Semaphore(in_flight)
    failed: list[str] = []

    async def one(events: dict[str, CloudEvent]) -> None:
        async with gate:
            outcome = await fireable.fire(events)
            if not outcome.success:
                failed.append(outcome.error)

    cpu, wall = time.process_time(), time.perf_counter()
    await asyncio.gather(*(one(e) for e in batch))
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    if failed:
        raise RuntimeError(f"{len(failed)} firings failed, e.g. {failed[0]}")
    return cpu, wall


def in_msgs(nats: EmbeddedNats) -> int:
    with urllib.request.urlopen(f"http://{nats.host}:{nats.monitor_port}/varz", timeout=5) as reply:
        return int(json.loads(reply.read())["in_msgs"])


async def kafka_total(bootstrap: str) -> int:
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        parts = [TopicPartition(TOPIC, p) for p in (consumer.partitions_for_topic(TOPIC) or range(12))]
        return sum((await consumer.end_offsets(parts)).values())
    finally:
        await consumer.stop()


async def main_async(args: argparse.Namespace) -> None:
    secrets = Secrets(environ={})
    with tempfile.TemporaryDirectory(prefix="sensorium-bench-mq-") as name:
        tmp = Path(name)
        nats = EmbeddedNats(tmp / "nats")
        await nats.start()
        sink = ProcessSink()
        await sink.start()
        broker = None
        try:
            async with HttpClient() as client, NatsClients() as clients, KafkaProducers() as producers:
                variants: dict[str, tuple[Fireable, Callable[[], Awaitable[int]]]] = {}
                variants["http"] = (HttpTrigger(trigger("http", {"url": f"{sink.url}/bench"}), client, secrets),
                                    _sink_count(sink))
                variants["nats"] = (NatsTrigger(trigger("nats", {"url": nats.url, "subject": "bench.out"}),
                                                clients, secrets), _async(lambda: in_msgs(nats)))
                if args.kafka:
                    broker = await _broker(tmp)
                    bootstrap = broker.bootstrap
                    variants["kafka"] = (KafkaTrigger(trigger("kafka", {"url": bootstrap, "topic": TOPIC,
                                                                        "requiredAcks": 1}), producers, secrets),
                                         lambda: kafka_total(bootstrap))
                for fireable, _ in variants.values():  # warm-up: connections made, code paths loaded
                    await fire_all(fireable, events("warm", 200), args.in_flight)
                results: dict[str, list[tuple[float, float]]] = {k: [] for k in variants}
                for number in range(args.rounds):
                    order = list(variants) if number % 2 == 0 else list(variants)[::-1]
                    for kind in order:
                        fireable, count = variants[kind]
                        before = await count()
                        batch = events(f"r{number}-{kind}", args.firings)
                        cpu, wall = await fire_all(fireable, batch, args.in_flight)
                        arrived = await _settled(count, before + args.firings)
                        if arrived - before != args.firings:
                            raise RuntimeError(f"{kind}: {arrived - before} of {args.firings} arrived")
                        results[kind].append((cpu, wall))
                        print(f"  round {number + 1} {kind}: {cpu / args.firings * 1e6:.1f} us CPU per firing, "
                              f"{args.firings / wall:.0f}/s", file=sys.stderr, flush=True)
        finally:
            await sink.stop()
            await nats.stop()
            if broker is not None:
                await asyncio.to_thread(broker.stop)
    report(results, args)


def _sink_count(sink: ProcessSink) -> Callable[[], Awaitable[int]]:
    async def count() -> int:
        await sink.collect()
        return len(sink.arrivals)
    return count


def _async(read: Callable[[], int]) -> Callable[[], Awaitable[int]]:
    async def count() -> int:
        return await asyncio.to_thread(read)
    return count


async def _settled(count: Callable[[], Awaitable[int]], wanted: int) -> int:
    """The receiving end's count once it reached `wanted` (or stopped growing for 2 s)."""
    last, since = -1, time.monotonic()
    while True:
        now = await count()
        if now >= wanted:
            return now
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since > 2:
            return now
        await asyncio.sleep(0.05)


async def _broker(tmp: Path) -> Any:
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    from sensorium.buses.kafka_broker import KafkaBroker, free_port

    broker = KafkaBroker(free_port(), tmp / "kafka")
    await asyncio.to_thread(broker.start)
    admin = AIOKafkaAdminClient(bootstrap_servers=broker.bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(TOPIC, num_partitions=12, replication_factor=1)])
    finally:
        await admin.close()
    return broker


def report(results: dict[str, list[tuple[float, float]]], args: argparse.Namespace) -> None:
    print(f"\nsensorium bench.message_triggers: {args.firings} firings x {args.rounds} rounds per trigger, "
          f"{args.in_flight} in flight (medians)")
    base = results["http"]
    base_cpu = statistics.median(c for c, _ in base) / args.firings
    base_rate = statistics.median(args.firings / w for _, w in base)
    for kind, rows in results.items():
        cpu = statistics.median(c for c, _ in rows) / args.firings
        rate = statistics.median(args.firings / w for _, w in rows)
        print(f"{kind:6s} {cpu * 1e6:8.1f} us CPU per firing (x{cpu / base_cpu:.2f} of http)  "
              f"{rate:8.0f} firings/s (x{rate / base_rate:.2f})")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.message_triggers", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--firings", type=int, default=3000)
    parser.add_argument("--in-flight", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--kafka", action="store_true", help="also the kafka trigger (starts a broker, ~20 s)")
    asyncio.run(main_async(parser.parse_args(argv)))


if __name__ == "__main__":
    main()

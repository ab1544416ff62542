"""No poison message (issue 11): whatever a delivery holds or raises, the sensor's loop dead-letters it onto the
bus, acknowledges it and goes on. Runs the real runner and sensor stage on the in-memory bus."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import pytest

from sensorium.buses.base import Consumer, ConsumerSpec, Delivery, EventKey
from sensorium.buses.memory import MemoryBroker, MemoryBus
from sensorium.engine.core.cloudevent import CloudEvent, encode_structured
from sensorium.engine.runner import RunnerSettings, SensorRunner
from sensorium.engine.trace.records import Acknowledged, Received
from sensorium.sensors.spec import Sensor
from sensorium.sensors.stage import SensorStage
from tests.sensors.builders import dep, event
from tests.trace_log import TraceLog

KEY = EventKey("webhook", "example")


class Fired:
    """A trigger that records the events it fired with (success always)."""

    success, error = True, None

    def __init__(self) -> None:
        self.ids: list[str] = []

    async def fire(self, events: Mapping[str, CloudEvent]) -> Fired:
        self.ids.extend(e.id for e in events.values())
        return self


class BuggyStage:
    """The real stage, with a bug for events whose id starts with `bug`."""

    def __init__(self, stage: SensorStage) -> None:
        self.stage = stage

    def evaluate(self, ev: CloudEvent) -> Any:
        if ev.id.startswith("bug"):
            raise KeyError("a bug in the stage")
        return self.stage.evaluate(ev)

    def decide(self, ev: CloudEvent, verdicts: Any, now: datetime) -> Any:
        return self.stage.decide(ev, verdicts, now)


def sensor_stage() -> SensorStage:
    return SensorStage(Sensor.model_validate({
        "apiVersion": "argoproj.io/v1alpha1", "kind": "Sensor", "metadata": {"name": "poisoned"},
        "spec": {"dependencies": [dep("d", filters={"data": [{"path": "ok", "type": "bool", "value": ["true"]}]})],
                 "triggers": [{"template": {"name": "t", "log": {}}}]}}))


async def run_until(runner: SensorRunner, done: Any, timeout: float = 10.0) -> None:
    stop = asyncio.Event()
    task = asyncio.create_task(runner.run(stop))
    try:
        async with asyncio.timeout(timeout):
            while not done():
                assert not task.done(), task.exception()
                await asyncio.sleep(0.02)
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)


def valid(n: int, ok: bool = True) -> bytes:
    return encode_structured(event({"ok": ok}, event_id=f"good-{n}"))


DEEP = b'{"specversion":"1.0","id":"d","source":"s","type":"t","data":' + b"[" * 10_000 + b"]" * 10_000 + b"}"
POISON = [b"\xff\xfe random", DEEP, b'{"specversion":"1.0","id":7}',
          b'{"specversion":"1.0","id":"x","source":"s","type":"t","data":NaN}']


async def test_poison_is_dead_lettered_and_valid_events_fire(caplog: pytest.LogCaptureFixture) -> None:
    broker = MemoryBroker()
    bus = MemoryBus(broker)
    await bus.start()
    fired, tracer = Fired(), TraceLog()
    runner = SensorRunner("poisoned", [KEY], BuggyStage(sensor_stage()), {"t": fired}, bus,
                          RunnerSettings(fetch_timeout=0.05), tracer=tracer)
    await runner.prepare()
    items = []
    for n, poison in enumerate(POISON):
        items += [(KEY, f"p{n}", poison), (KEY, f"g{n}", valid(n))]
    bug = encode_structured(event({"ok": True}, event_id="bug-1"))
    items += [(KEY, "bug", bug), (KEY, "last", valid(99))]
    await bus.publish_many(items)
    with caplog.at_level(logging.WARNING, "sensorium.engine"):
        await run_until(runner, lambda: len(broker.dead_letters) == 5 and len(fired.ids) == 5)
    assert fired.ids == ["good-0", "good-1", "good-2", "good-3", "good-99"]
    letters = {a["dlqsequence"]: (a, body) for _, a, body in broker.dead_letters}
    assert sorted(letters, key=int) == ["1", "3", "5", "7", "9"]
    attrs, body = letters["3"]
    assert body == DEEP  # the original bytes
    assert attrs["dlqreason"] == "undecodable" and attrs["dlqsensor"] == "poisoned"
    assert attrs["dlqerror"].startswith("not a CloudEvent: not JSON: nested deeper than 512 levels")
    assert (attrs["dlqsubject"], attrs["dlqstream"], attrs["dlqposition"]) == (
        "default.webhook.example", "default", "default.webhook.example seq 3")
    assert (attrs["specversion"], attrs["type"], attrs["source"], attrs["subject"]) == (
        "1.0", "io.sensorium.deadletter", "sensorium/poisoned", "default.webhook.example")
    buggy, body = letters["9"]
    assert body == bug and buggy["dlqreason"] == "unprocessable" and buggy["dlqevent"] == "bug-1"
    assert buggy["dlqerror"] == "the sensor stage failed: KeyError: 'a bug in the stage'"
    warnings = [r.getMessage() for r in caplog.records if "dead-lettered" in r.getMessage()]
    assert len(warnings) == 5  # once per message
    assert "sensor poisoned: message at default.webhook.example seq 1 dead-lettered to sensorium-dlq: " \
           "not a CloudEvent: not UTF-8" in warnings[0]
    group = next(iter(broker.groups.values()))
    assert group.pending == {}  # every delivery settled
    acks = [r for r in tracer.records if isinstance(r, Acknowledged) and "dead-lettered" in r.reason]
    assert len(acks) == 5 and all(a.action == "ack" for a in acks)
    assert acks[0].reason.startswith("dead-lettered to sensorium-dlq (undecodable): not a CloudEvent: not UTF-8")
    received = [r for r in tracer.records if isinstance(r, Received) and r.error]
    assert [r.position for r in received] == [f"default.webhook.example seq {n}" for n in (1, 3, 5, 7)]


@pytest.mark.slow  # waits for redeliveries after naks
async def test_dead_letter_not_stored_means_nak_and_retry(caplog: pytest.LogCaptureFixture,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sensorium.engine.runner.DEAD_LETTER_RETRY", 0.3)
    broker = MemoryBroker()
    broker.refuse_dead_letters = True
    bus = MemoryBus(broker)
    await bus.start()
    fired = Fired()
    runner = SensorRunner("poisoned", [KEY], sensor_stage(), {"t": fired}, bus, RunnerSettings(fetch_timeout=0.05))
    await runner.prepare()
    await bus.publish_many([(KEY, "p", b"garbage"), (KEY, "g", valid(1))])
    group = broker.groups["sensorium-poisoned"]
    stop = asyncio.Event()
    task = asyncio.create_task(runner.run(stop))
    with caplog.at_level(logging.DEBUG, "sensorium.engine"):
        async with asyncio.timeout(10):
            while group.deliveries.get(0, 0) < 3:  # redelivered after each refusal
                await asyncio.sleep(0.02)
        assert fired.ids == ["good-1"] and list(group.pending) == [0]  # not acked, the valid one went on
        broker.refuse_dead_letters = False
        async with asyncio.timeout(10):
            while group.pending:
                await asyncio.sleep(0.02)
    stop.set()
    await asyncio.wait_for(task, 10)
    assert len(broker.dead_letters) == 1
    assert broker.dead_letters[0][1]["dlqdelivery"] == str(group.deliveries[0])
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and "could not be dead-lettered" in errors[0].getMessage()  # once, not per retry
    stored = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("dead letters are stored again" in m for m in stored)
    assert sum("dead-lettered to sensorium-dlq" in m for m in stored) == 1


class Exploding:
    success, error = True, None

    async def fire(self, events: Mapping[str, CloudEvent]) -> Exploding:
        raise RuntimeError("trigger bug")


async def test_a_trigger_that_raises_dead_letters_its_event() -> None:
    broker = MemoryBroker()
    bus = MemoryBus(broker)
    await bus.start()
    runner = SensorRunner("poisoned", [KEY], sensor_stage(), {"t": Exploding()}, bus,
                          RunnerSettings(fetch_timeout=0.05))
    await runner.prepare()
    await bus.publish_many([(KEY, "a", valid(1)), (KEY, "b", valid(2))])
    await run_until(runner, lambda: len(broker.dead_letters) == 2)
    assert [a["dlqerror"] for _, a, _ in broker.dead_letters] == ["firing failed: RuntimeError: trigger bug"] * 2
    assert broker.groups["sensorium-poisoned"].pending == {}


DEEP_DATA = b'{"a":' + b"[" * 510 + b"1" + b"]" * 510 + b',"b":"x"}'  # within the decoder's 512 levels


def deep_event() -> CloudEvent:
    from sensorium.engine.core.cloudevent import decode_structured

    return decode_structured(b'{"specversion":"1.0","id":"deep","source":"webhook","type":"t","subject":"example",'
                             b'"datacontenttype":"application/json","data":' + DEEP_DATA + b"}")


@pytest.mark.parametrize("spec,error", [
    ({"filters": {"data": [{"path": "b", "type": "string", "value": ["x"]}]}}, "data filter error"),
    ({"filters": {"exprs": [{"expr": "a == 1", "fields": [{"name": "a", "path": "a"}]}]}}, "expr filter error"),
    ({"filters": {"data": [{"path": "b", "type": "string", "value": ["x"], "template": "{{ .Input }}"}]}},
     "data filter error"),
    ({"transform": {"jq": ".b"}}, "jq transform error (the event data is nested too deeply)"),
])
def test_deep_data_that_passes_the_decoder_is_a_filter_error(spec: dict[str, Any], error: str) -> None:
    stage = SensorStage(Sensor.model_validate({
        "apiVersion": "argoproj.io/v1alpha1", "kind": "Sensor", "metadata": {"name": "deep"},
        "spec": {"dependencies": [dep("d", **spec)], "triggers": [{"template": {"name": "t", "log": {}}}]}}))
    result = stage.process(deep_event(), datetime.now())
    [verdict] = result.dependencies
    assert not verdict.passed and verdict.error is not None and error in verdict.error
    assert result.firings == ()


@pytest.mark.parametrize("source", [{"dataKey": "b"}, {"jsonPath": "$.b"}, {"jmesPath": "b"}])
def test_deep_data_that_passes_the_decoder_is_a_parameter_error(source: dict[str, str]) -> None:
    from sensorium.triggers.params import ParamError, construct_payload
    from sensorium.triggers.spec import TriggerParameter

    param = TriggerParameter.model_validate({"src": {"dependencyName": "d", **source}, "dest": "x"})
    with pytest.raises(ParamError, match="JSON nested too deeply"):
        construct_payload({"d": deep_event()}, [param])


class BuggyConsumer(Consumer):
    """A consumer whose fetch raises a plain exception (a bug, not a BusError) while `bus.failures` lasts."""

    def __init__(self, inner: Consumer, bus: BuggyBus) -> None:
        self.inner, self.bus = inner, bus

    async def fetch(self, max_messages: int, timeout: float) -> list[Delivery]:
        if self.bus.failures > 0:
            self.bus.failures -= 1
            raise ZeroDivisionError("a bug in fetch")
        return await self.inner.fetch(max_messages, timeout)

    async def close(self) -> None:
        await self.inner.close()


class BuggyBus(MemoryBus):
    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures

    async def consumer(self, spec: ConsumerSpec) -> Consumer:
        return BuggyConsumer(await super().consumer(spec), self)


@pytest.mark.slow  # waits out the loop restart backoff (0.5, 1, 2 s)
async def test_health_names_a_failing_loop_and_recovers() -> None:
    import aiohttp

    from sensorium.engine.app import supervise
    from sensorium.engine.health import HealthServer
    from tests.engine_harness import free_port

    bus = BuggyBus(failures=0)
    await bus.start()
    fired = Fired()
    runner = SensorRunner("flaky", [KEY], sensor_stage(), {"t": fired}, bus, RunnerSettings(fetch_timeout=0.05))
    health = HealthServer(free_port())
    await health.start()
    health.watch(bus)
    health.watch_loops([runner])
    await runner.prepare()  # as the engine does: the consumer exists before events are published
    stop = asyncio.Event()
    task = asyncio.create_task(supervise(runner, stop))
    seen: list[tuple[int, Any]] = []
    try:
        async with aiohttp.ClientSession() as session, asyncio.timeout(20):
            await bus.publish_many([(KEY, "v1", valid(1))])
            while not fired.ids:
                await asyncio.sleep(0.05)
            bus.failures = 3  # the loop fails and restarts after 0.5, 1 and 2 s
            while not seen or seen[-1][0] != 200 or bus.failures:
                async with session.get(f"http://127.0.0.1:{health.port}/healthz") as resp:
                    seen.append((resp.status, await resp.json()))
                await asyncio.sleep(0.1)
            await bus.publish_many([(KEY, "v2", valid(2))])  # the restarted loop evaluates events again
            while len(fired.ids) < 2:
                await asyncio.sleep(0.05)
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
        await health.stop()
    failing = [body for status, body in seen if status == 503]
    assert failing, seen
    assert failing[0]["failing"][0]["sensor"] == "flaky"
    assert failing[0]["failing"][0]["error"].startswith("loop failed: ZeroDivisionError: a bug in fetch; restarting in")
    assert failing[0]["causes"][0].startswith("sensor flaky: loop failed: ZeroDivisionError: a bug in fetch")
    assert seen[-1] == (200, {"status": "ok", "causes": [], "bus": {"url": "memory://", "health": "connected"},
                              "sensors": ["flaky"]})
    assert fired.ids == ["good-1", "good-2"] and bus.broker.dead_letters == []


def test_dry_run_event_file_nested_too_deeply_is_one_error(tmp_path: Any) -> None:
    from sensorium.engine.config import ConfigErrors
    from sensorium.engine.dryrun import load_events

    path = tmp_path / "deep.json"
    path.write_bytes(b'{"specversion":"1.0","id":"1","source":"s","type":"t","data":' + b"[" * 5000 + b"]" * 5000
                     + b"}")
    with pytest.raises(ConfigErrors) as info:
        load_events([str(path)])
    assert [str(e) for e in info.value.errors] == [f"{path}:1: not JSON: JSON nested too deeply"]

"""The shared intake's settlement on the in-memory bus: a message is acked once every sensor's share is settled,
nak'ed if any asked for a redelivery, and its redelivery goes only to the sensors that had not finished it; a full
inbox refuses a share (redelivered later to that sensor alone); a non-CloudEvent is dead-lettered once; a sensor
added later does not get older messages. Real runners, stages and memory bus."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping

import pytest

from sensorium.buses.base import Delivery, EventKey
from sensorium.buses.memory import MemoryBroker, MemoryBus
from sensorium.engine.core.cloudevent import CloudEvent, encode_structured
from sensorium.engine.intake import DEFAULT_GROUP, Intake, IntakeSettings
from sensorium.engine.intake_join import Finished, Join, Share
from sensorium.engine.runner import RunnerSettings, SensorRunner
from sensorium.sensors.spec import Sensor
from sensorium.sensors.stage import SensorStage
from tests.sensors.builders import dep, event

KEY = EventKey("webhook", "example")


class Recorded(Delivery):
    def __init__(self) -> None:
        super().__init__(b"{}", {}, "default.webhook.example seq 1")
        self.settlements: list[tuple[str, float]] = []

    async def _ack(self) -> None:
        self.settlements.append(("ack", 0.0))

    async def _nak(self, delay: float) -> None:
        self.settlements.append(("nak", delay))


async def test_the_join_acks_after_the_last_share() -> None:
    delivery, finished = Recorded(), Finished()
    join = Join(delivery, finished)
    shares = [join.share(s, None) for s in ("a", "b", "c")]
    await shares[0].ack()
    await shares[2].ack()
    assert delivery.settlements == []
    await shares[1].ack()
    await shares[1].nak()  # settled once: later calls are no-ops
    assert delivery.settlements == [("ack", 0.0)]


async def test_the_join_naks_when_one_share_asks_and_remembers_who_finished() -> None:
    delivery, finished = Recorded(), Finished()
    join = Join(delivery, finished)
    a, b, c = (join.share(s, None) for s in ("a", "b", "c"))
    await a.ack()
    await b.nak(1.0)
    await c.nak(5.0)
    assert delivery.settlements == [("nak", 5.0)]
    assert finished.done(delivery.position) == {"a"}


def stage(name: str, customer: str | None = None) -> SensorStage:
    filters = {"data": [{"path": "c", "type": "string", "value": [f"^{customer}$"]}]} if customer else None
    return SensorStage(Sensor.model_validate({
        "apiVersion": "argoproj.io/v1alpha1", "kind": "Sensor", "metadata": {"name": name},
        "spec": {"dependencies": [dep("d", filters=filters) if filters else dep("d")],
                 "triggers": [{"template": {"name": "t", "log": {}}}]}}))


class Fired:
    success, error = True, None

    def __init__(self) -> None:
        self.ids: list[str] = []

    async def fire(self, events: Mapping[str, CloudEvent]) -> Fired:
        self.ids.extend(e.id for e in events.values())
        return self


def runner(intake: Intake, bus: MemoryBus, name: str, customer: str | None = None) -> tuple[SensorRunner, Fired]:
    st, fired = stage(name, customer), Fired()
    sensor = st.sensor
    return SensorRunner(name, [KEY], st, {"t": fired}, bus, RunnerSettings(fetch_timeout=0.05),
                        inbox=intake.inbox(name), dependencies=sensor.spec.dependencies), fired


async def intake_on(broker: MemoryBroker, inbox: int = 256) -> tuple[MemoryBus, Intake]:
    bus = MemoryBus(broker)
    await bus.start()
    return bus, Intake(bus, IntakeSettings(fetch_timeout=0.05, inbox=inbox))


async def fetch(intake: Intake) -> list[Delivery]:
    assert intake._consumer is not None
    return await intake._consumer.fetch(64, 0.05)


async def test_a_redelivery_goes_only_to_the_sensors_that_had_not_finished() -> None:
    broker = MemoryBroker()
    bus, intake = await intake_on(broker)
    a, _ = runner(intake, bus, "a")
    b, _ = runner(intake, bus, "b")
    await intake.sync([a, b])
    await bus.publish(KEY, "e1", encode_structured(event({"c": 1}, event_id="e1")))
    for delivery in await fetch(intake):
        await intake.dispatch(delivery)
    share_a = (await intake.inboxes["a"].fetch(10, 0))[0]
    share_b = (await intake.inboxes["b"].fetch(10, 0))[0]
    await share_a.ack()
    await share_b.nak()
    again = await fetch(intake)
    assert len(again) == 1 and getattr(again[0], "delivery_count", 0) == 2
    await intake.dispatch(again[0])
    assert len(intake.inboxes["a"]) == 0 and len(intake.inboxes["b"]) == 1
    await (await intake.inboxes["b"].fetch(10, 0))[0].ack()
    assert broker.groups[DEFAULT_GROUP].pending == {}
    assert len(intake.finished) == 0


@pytest.mark.slow  # waits out the redelivery delay of a refused share (1 s)
async def test_a_full_inbox_refuses_a_share_and_only_that_sensor_gets_it_again() -> None:
    broker = MemoryBroker()
    bus, intake = await intake_on(broker, inbox=1)
    slow, _ = runner(intake, bus, "slow")
    other, _ = runner(intake, bus, "other")
    await intake.sync([slow, other])
    await bus.publish_many([(KEY, f"e{n}", encode_structured(event({"n": n}, event_id=f"e{n}"))) for n in range(2)])
    first, second = await fetch(intake)
    await intake.dispatch(first)
    await (await intake.inboxes["other"].fetch(10, 0))[0].ack()
    await intake.dispatch(second)  # `slow` still holds the first: its inbox (1) is full
    assert len(intake.inboxes["slow"]) == 1 and len(intake.inboxes["other"]) == 1
    await (await intake.inboxes["other"].fetch(10, 0))[0].ack()  # the second is nak'ed for `slow` alone
    assert intake.finished.done(second.position) == {"other"}
    await (await intake.inboxes["slow"].fetch(10, 0))[0].ack()
    async with asyncio.timeout(5):
        while not (again := await fetch(intake)):
            pass
    assert [d.position for d in again] == [second.position]
    await intake.dispatch(again[0])
    assert len(intake.inboxes["slow"]) == 1 and len(intake.inboxes["other"]) == 0
    await (await intake.inboxes["slow"].fetch(10, 0))[0].ack()
    assert broker.groups[DEFAULT_GROUP].pending == {}


async def test_exact_filters_route_events_and_sensors_run_their_stage() -> None:
    broker = MemoryBroker()
    bus, intake = await intake_on(broker)
    runners = [runner(intake, bus, f"s{i}", f"c{i}") for i in range(50)]
    await intake.sync([r for r, _ in runners])
    stop = asyncio.Event()
    tasks = [asyncio.create_task(r.run(stop)) for r, _ in runners]
    intake.launch()
    try:
        await bus.publish_many([(KEY, f"e{n}", encode_structured(event({"c": f"c{n % 60}"}, event_id=f"e{n}")))
                                for n in range(120)])
        async with asyncio.timeout(10):
            while broker.groups[DEFAULT_GROUP].pending or broker.groups[DEFAULT_GROUP].cursor < 120:
                await asyncio.sleep(0.02)
    finally:
        stop.set()
        await asyncio.gather(*tasks)
        await intake.close()
    for i, (r, fired) in enumerate(runners):
        assert fired.ids == [f"e{i}", f"e{i + 60}"], r.sensor


async def test_not_a_cloudevent_is_dead_lettered_once_naming_every_listener() -> None:
    broker = MemoryBroker()
    bus, intake = await intake_on(broker)
    pairs = [runner(intake, bus, n) for n in ("x", "y")]
    await intake.sync([r for r, _ in pairs])
    stop = asyncio.Event()
    tasks = [asyncio.create_task(r.run(stop)) for r, _ in pairs]
    intake.launch()
    try:
        await bus.publish(KEY, "junk", b"\xff not json")
        async with asyncio.timeout(10):
            while not broker.dead_letters or broker.groups[DEFAULT_GROUP].pending:
                await asyncio.sleep(0.02)
    finally:
        stop.set()
        await asyncio.gather(*tasks)
        await intake.close()
    assert len(broker.dead_letters) == 1
    sensor, attributes, body = broker.dead_letters[0]
    assert (sensor, attributes["dlqsensors"], attributes["dlqreason"], body) == ("x", "x,y", "undecodable",
                                                                                   b"\xff not json")


async def test_a_sensor_that_appears_later_does_not_get_older_messages() -> None:
    broker = MemoryBroker()
    bus, intake = await intake_on(broker)
    first, _ = runner(intake, bus, "first")
    await intake.sync([first])
    await bus.publish(KEY, "old", encode_structured(event({}, event_id="old")))
    late, _ = runner(intake, bus, "late")
    await intake.sync([first, late])  # the memory bus's log position is late's mark
    await bus.publish(KEY, "new", encode_structured(event({}, event_id="new")))
    for delivery in await fetch(intake):
        await intake.dispatch(delivery)
    got = {name: [s.event.id for s in await intake.inboxes[name].fetch(10, 0)
                  if isinstance(s, Share) and s.event is not None] for name in ("first", "late")}
    assert got == {"first": ["old", "new"], "late": ["new"]}


async def test_a_sensor_removed_and_added_again_is_new_again() -> None:
    broker = MemoryBroker()
    bus, intake = await intake_on(broker)
    first, _ = runner(intake, bus, "first")
    gone, _ = runner(intake, bus, "gone")
    await intake.sync([first, gone])
    await intake.sync([first])
    await bus.publish(KEY, "meanwhile", encode_structured(event({}, event_id="meanwhile")))
    back, _ = runner(intake, bus, "gone")
    await intake.sync([first, back])
    await bus.publish(KEY, "after", encode_structured(event({}, event_id="after")))
    for delivery in await fetch(intake):
        await intake.dispatch(delivery)
    got = [s.event.id for s in await intake.inboxes["gone"].fetch(10, 0) if isinstance(s, Share) and s.event]
    assert got == ["after"]
    raw = broker.states[f"intake.{DEFAULT_GROUP}"]
    assert sorted(json.loads(raw)["marks"]) == ["first", "gone"]


class Buggy:
    """The real stage, raising on every event (a bug in one sensor's stage)."""

    def __init__(self, stage: SensorStage) -> None:
        self.stage = stage

    def evaluate(self, ev: CloudEvent) -> object:
        raise KeyError("a bug in the stage")

    def decide(self, ev: CloudEvent, verdicts: object, now: object) -> object:
        raise AssertionError("never reached")


async def test_a_stage_failure_dead_letters_for_that_sensor_only() -> None:
    broker = MemoryBroker()
    bus, intake = await intake_on(broker)
    good, fired = runner(intake, bus, "good")
    st = stage("bad")
    bad = SensorRunner("bad", [KEY], Buggy(st), {"t": Fired()}, bus,  # type: ignore[arg-type]
                       RunnerSettings(fetch_timeout=0.05), inbox=intake.inbox("bad"),
                       dependencies=st.sensor.spec.dependencies)
    await intake.sync([good, bad])
    stop = asyncio.Event()
    tasks = [asyncio.create_task(r.run(stop)) for r in (good, bad)]
    intake.launch()
    try:
        await bus.publish_many([(KEY, f"e{n}", encode_structured(event({}, event_id=f"e{n}"))) for n in range(3)])
        async with asyncio.timeout(10):
            while len(broker.dead_letters) < 3 or broker.groups[DEFAULT_GROUP].pending or len(fired.ids) < 3:
                await asyncio.sleep(0.02)
    finally:
        stop.set()
        await asyncio.gather(*tasks)
        await intake.close()
    assert fired.ids == ["e0", "e1", "e2"]
    assert [(s, a["dlqsensor"], a["dlqreason"], a["dlqevent"]) for s, a, _ in broker.dead_letters] == [
        ("bad", "bad", "unprocessable", f"e{n}") for n in range(3)]


class SlowFired(Fired):
    async def fire(self, events: Mapping[str, CloudEvent]) -> Fired:
        await asyncio.sleep(0.002)
        return await super().fire(events)


async def test_a_burst_into_a_busy_sensor_waits_on_the_bus_instead_of_being_fetched_again() -> None:
    """The intake fetches no more than the inbox takes: no message is refused, nak'ed and fetched again."""
    broker = MemoryBroker()
    bus, intake = await intake_on(broker, inbox=4)
    st, fired = stage("busy"), SlowFired()
    busy = SensorRunner("busy", [KEY], st, {"t": fired}, bus, RunnerSettings(fetch_timeout=0.05, max_in_flight=2),
                        inbox=intake.inbox("busy"), dependencies=st.sensor.spec.dependencies)
    await intake.sync([busy])
    stop = asyncio.Event()
    task = asyncio.create_task(busy.run(stop))
    intake.launch()
    try:
        await bus.publish_many([(KEY, f"e{n}", encode_structured(event({"n": n}, event_id=f"e{n}")))
                                for n in range(60)])
        async with asyncio.timeout(10):
            while broker.groups[DEFAULT_GROUP].pending or broker.groups[DEFAULT_GROUP].cursor < 60:
                await asyncio.sleep(0.02)
    finally:
        stop.set()
        await task
        await intake.close()
    assert sorted(fired.ids) == sorted(f"e{n}" for n in range(60))
    assert set(broker.groups[DEFAULT_GROUP].deliveries.values()) == {1}


async def test_a_sensor_whose_inbox_stays_full_does_not_stop_the_others() -> None:
    broker = MemoryBroker()
    bus, intake = await intake_on(broker, inbox=2)
    stuck, _ = runner(intake, bus, "stuck")  # never runs: its inbox fills and stays full
    other, fired = runner(intake, bus, "other")
    await intake.sync([stuck, other])
    stop = asyncio.Event()
    task = asyncio.create_task(other.run(stop))
    intake.launch()
    try:
        await bus.publish_many([(KEY, f"e{n}", encode_structured(event({"n": n}, event_id=f"e{n}")))
                                for n in range(20)])
        async with asyncio.timeout(10):
            while len(fired.ids) < 20:
                await asyncio.sleep(0.02)
    finally:
        stop.set()
        await task
        await intake.halt()
    assert fired.ids == [f"e{n}" for n in range(20)]
    assert len(intake.inboxes["stuck"]) == 2

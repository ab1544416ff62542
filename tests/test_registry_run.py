"""The registry of kinds at run time: `sensorium run` compiles each sensor once (checking's result is what runs),
a source kind is one module plus one registry line (shown with a toy `ticker` kind, run by the engine), and bus
kinds open themselves from their EventBus field."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from pydantic import Field

from sensorium.buses.base import Bus
from sensorium.buses.memory import MemoryBus
from sensorium.buses.spec import EventBusSpec
from sensorium.buses.spec import KafkaBus as KafkaSpec
from sensorium.engine.app import EngineOptions, run_engine
from sensorium.engine.assemble import Checked, load_checked
from sensorium.engine.busconfig import open_bus
from sensorium.engine.config import ConfigErrors
from sensorium.engine.core.cloudevent import CloudEvent, new_id, now_rfc3339
from sensorium.engine.core.secrets import Secrets
from sensorium.engine.core.specbase import ArgoModel
from sensorium.engine.registry import REGISTRY, BusKind, Registry, SourceDeps, SourceEntry, SourceKind, kinds_table
from sensorium.engine.runner import RunnerSettings
from sensorium.engine.schema import document_schema
from sensorium.sensors import stage as stage_module
from sensorium.sources.base import Publish, RunningSource
from tests.fixtures_http import HttpSink

# ---- a toy source kind: what its own module would hold -----------------------------------------------------------


class TickerSpec(ArgoModel):
    """Publishes one event when the engine starts."""

    message: str = Field(min_length=1, description="The event data's `message`.")


class Ticker:
    """One event per entry, published once at start."""

    def __init__(self, entries: Sequence[SourceEntry], publish: Publish) -> None:
        self.entries, self.publish = entries, publish
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.task = asyncio.create_task(self._tick())

    async def _tick(self) -> None:
        for entry in self.entries:
            assert isinstance(entry.spec, TickerSpec)
            data = json.dumps({"message": entry.spec.message}).encode()
            await self.publish(CloudEvent(id=new_id(), source=entry.event_source, type="ticker",
                                          subject=entry.event_name, datacontenttype="application/json",
                                          time=now_rfc3339(), data=data))

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task


def ticker(entries: Sequence[SourceEntry], deps: SourceDeps) -> RunningSource:
    return Ticker(entries, deps.publish)


# ---- the one registry line (and, for these tests only, a memory bus reachable as `--bus memory://`) ---------------

MEMORY = BusKind("memory", None, ("memory",), lambda url: MemoryBus(), "in-process")  # a private broker per engine
TICKER = SourceKind("ticker", TickerSpec, ticker, "toy: one event at start")
TOY = REGISTRY.with_bus(MEMORY).with_source(TICKER)

SOURCE = """\
apiVersion: argoproj.io/v1alpha1
kind: EventSource
metadata: {name: clock}
spec:
  ticker:
    tick: %s
"""

SENSOR = """\
apiVersion: argoproj.io/v1alpha1
kind: Sensor
metadata: {name: %(name)s}
spec:
  dependencies:
    - name: d
      eventSourceName: clock
      eventName: tick
      filters: {data: [{path: message, type: string, value: [hello]}]}
  triggers:
    - template:
        name: post
        http:
          url: %(url)s/%(name)s
          method: POST
          payload: [{src: {dependencyName: d, dataKey: message}, dest: said}]
"""


def write(folder: Path, message: str = "{message: hello}", sensors: Sequence[str] = ("s1",),
          url: str = "http://127.0.0.1:9") -> Path:
    folder.mkdir(exist_ok=True)
    (folder / "source.yaml").write_text(SOURCE % message)
    for name in sensors:
        (folder / f"{name}.yaml").write_text(SENSOR % {"name": name, "url": url})
    return folder


@contextlib.asynccontextmanager
async def engine(checked: Checked, data_dir: Path) -> AsyncIterator[None]:
    stop, ready = asyncio.Event(), asyncio.Event()
    options = EngineOptions(bus_url="memory://", data_dir=data_dir, handle_signals=False,
                            runner=RunnerSettings(fetch_timeout=0.2))
    task = asyncio.create_task(run_engine(checked, options, stop, ready))
    try:
        done, _ = await asyncio.wait([task, asyncio.create_task(ready.wait())], timeout=10,
                                     return_when=asyncio.FIRST_COMPLETED)
        if task in done:
            task.result()  # raises what stopped the engine
        assert ready.is_set(), "engine not ready within 10 s"
        yield
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)


@pytest.fixture
def stage_constructions(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The name of each sensor a SensorStage is constructed for, in order."""
    made: list[str] = []
    original = stage_module.SensorStage.__init__

    def counting(self: stage_module.SensorStage, sensor: Any, *args: Any, **kwargs: Any) -> None:
        made.append(sensor.metadata.name)
        original(self, sensor, *args, **kwargs)

    monkeypatch.setattr(stage_module.SensorStage, "__init__", counting)
    yield made


# ---- checking once ----------------------------------------------------------------------------------------------

async def test_run_compiles_each_sensor_exactly_once(tmp_path: Path, http_sink: HttpSink,
                                                     stage_constructions: list[str]) -> None:
    checked = load_checked([write(tmp_path / "docs", sensors=("s1", "s2"), url=http_sink.url)], registry=TOY)
    assert sorted(stage_constructions) == ["s1", "s2"]  # checking compiled them
    async with engine(checked, tmp_path / "data"):
        requests = await http_sink.wait_for(2, timeout=10)
    assert sorted(stage_constructions) == ["s1", "s2"]  # running compiled nothing again
    assert sorted(r.path for r in requests) == ["/s1", "/s2"]


async def test_a_plain_config_is_checked_once_by_the_engine(tmp_path: Path, http_sink: HttpSink,
                                                           stage_constructions: list[str]) -> None:
    from sensorium.engine.config import load

    config = load([write(tmp_path / "docs", url=http_sink.url)])  # no check: nothing compiled
    assert stage_constructions == []
    with pytest.raises(ConfigErrors, match="event source type ticker is not supported"):
        await run_engine(config, EngineOptions(bus_url="memory://", data_dir=tmp_path, handle_signals=False))
    assert stage_constructions == ["s1"]


# ---- a source kind is one module plus one registry line ---------------------------------------------------------

async def test_a_registered_source_kind_runs_and_its_event_fires_a_sensor(tmp_path: Path,
                                                                          http_sink: HttpSink) -> None:
    checked = load_checked([write(tmp_path / "docs", url=http_sink.url)], registry=TOY)
    assert [(e.kind, e.event_source, e.event_name) for e in checked.entries] == [("ticker", "clock", "tick")]
    async with engine(checked, tmp_path / "data"):
        (request,) = await http_sink.wait_for(1, timeout=10)
    assert (request.method, request.path, request.json()) == ("POST", "/s1", {"said": "hello"})


def test_the_default_registry_refuses_the_toy_source_kind(tmp_path: Path) -> None:
    with pytest.raises(ConfigErrors) as caught:
        load_checked([write(tmp_path / "docs")])
    assert [(e.file.endswith("source.yaml"), e.line, e.message) for e in caught.value.errors] == [
        (True, 5, f"event source type ticker is not supported (supported: {', '.join(REGISTRY.sources)})")]
    assert {"webhook", "calendar", "file", "github", "stripe", "httpPoll"} <= set(REGISTRY.sources)


def test_a_registered_source_kind_is_validated_with_its_spec_model(tmp_path: Path) -> None:
    with pytest.raises(ConfigErrors) as caught:
        load_checked([write(tmp_path / "docs", message="{message: ''}")], registry=TOY)
    (error,) = caught.value.errors
    assert (error.line, error.field) == (6, "spec.ticker.tick.message")  # the field's own path and line
    assert "at least 1 character" in error.message


def test_a_registered_source_kind_is_in_the_schema_and_the_kinds_table() -> None:
    assert "TickerSpec" not in document_schema()["$defs"]
    for schema in (document_schema(registry=TOY), document_schema("EventSource", registry=TOY)):
        ticker_field = schema["$defs"]["EventSourceSpec"]["properties"]["ticker"]
        assert ticker_field["anyOf"][0] == {"type": "object", "additionalProperties": {"$ref": "#/$defs/TickerSpec"}}
        assert schema["$defs"]["TickerSpec"]["properties"]["message"]["description"] == "The event data's `message`."
    assert "| source | `ticker` | `tests.test_registry_run.TickerSpec` | toy: one event at start |" in kinds_table(TOY)
    assert "`ticker`" not in kinds_table()


# ---- bus kinds open themselves from their EventBus field ---------------------------------------------------------

class ToyBusSpec(ArgoModel):
    """A toy bus."""

    url: str = Field(default="toy://default", description="Where it is.")


def opener(log: list[str]) -> Any:
    @contextlib.asynccontextmanager
    async def open_memory(written: Any, secrets: Secrets, data_dir: Path) -> AsyncIterator[Bus]:
        log.append(f"open {type(written).__name__} {getattr(written, 'url', '')}")
        yield MemoryBus(url=f"memory://{type(written).__name__}")
        log.append("cleaned up")

    return open_memory


async def test_a_bus_kind_opens_from_its_eventbus_field(tmp_path: Path) -> None:
    log: list[str] = []
    registry = REGISTRY.with_bus(BusKind("kafka", KafkaSpec, (), None, "toy", ("kafka",), opener(log)))
    spec = EventBusSpec.model_validate({"kafka": {"url": "broker:9092"}})
    async with open_bus(spec, None, Secrets(), tmp_path, registry=registry) as bus:
        assert bus.url == "memory://KafkaBus" and log == ["open KafkaBus broker:9092"]
        await bus.publish_many([])  # started: a bus that was not would refuse
    assert log == ["open KafkaBus broker:9092", "cleaned up"]


async def test_without_an_eventbus_the_default_kind_opens_with_its_defaults(tmp_path: Path) -> None:
    log: list[str] = []
    kind = BusKind("toy", ToyBusSpec, (), None, "toy", (), opener(log))
    registry = Registry.of(buses=[kind], default_bus="toy")
    async with open_bus(None, None, Secrets(), tmp_path, registry=registry) as bus:
        assert bus.url == "memory://ToyBusSpec"
    assert log == ["open ToyBusSpec toy://default", "cleaned up"]

"""The registry of kinds (engine.registry): one module plus one registry line add a trigger kind, and every
reader (validation, assembly, dry runs, the JSON Schema, the README's table) sees it."""

from __future__ import annotations

import functools
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import pytest
from pydantic import Field

from sensorium.engine.assemble import assemble_sensor, check_document
from sensorium.engine.config import ConfigErrors, load
from sensorium.engine.core.cloudevent import CloudEvent
from sensorium.engine.core.secrets import Secrets
from sensorium.engine.core.specbase import ArgoModel
from sensorium.engine.dryrun import LoadedEvent, dry_run, to_json
from sensorium.engine.registry import REGISTRY, TriggerDeps, TriggerKind, kinds_table, with_table
from sensorium.engine.schema import document_schema
from sensorium.triggers.http import HttpClient
from sensorium.triggers.httprequest import HttpRequest
from sensorium.triggers.outcome import FiringOutcome
from sensorium.triggers.params import ResolvedParam
from sensorium.triggers.spec import Trigger

ROOT = Path(__file__).resolve().parent.parent


# ---- a toy trigger kind: what its own module would hold ---------------------------------------------------------

class ToySpec(ArgoModel):
    """Posts a message to a toy channel."""

    channel: str = Field(min_length=1, description="Channel to post to.")


class ToyTrigger:
    kind = "slack"

    def __init__(self, trigger: Trigger, deps: TriggerDeps) -> None:
        written = trigger.template.slack or {}
        self.name, self.spec = trigger.name, ToySpec.model_validate(written)
        self.fired: list[Mapping[str, CloudEvent]] = []

    async def fire(self, events: Mapping[str, CloudEvent]) -> FiringOutcome:
        self.fired.append(events)
        return FiringOutcome(self.name, self.kind, True, note=f"posted to {self.spec.channel}")


def toy_request(trigger: Trigger, events: Mapping[str, CloudEvent], secrets: Secrets,
                used: list[ResolvedParam]) -> HttpRequest:
    channel = ToySpec.model_validate(trigger.template.slack or {}).channel
    return HttpRequest("POST", f"http://toy.invalid/{channel}", (), b'{"n":1}')


# ---- the one registry line ----------------------------------------------------------------------------------------

TOY = REGISTRY.with_trigger(TriggerKind("slack", ToySpec, ToyTrigger, request=toy_request, description="toy"))


SENSOR = """\
apiVersion: argoproj.io/v1alpha1
kind: Sensor
metadata: {name: toy}
spec:
  dependencies: [{name: d, eventSourceName: webhook, eventName: example}]
  triggers:
    - template:
        name: t
        slack: %s
"""


def write(tmp_path: Path, slack: str) -> Path:
    path = tmp_path / "sensor.yaml"
    path.write_text(SENSOR % slack)
    return path


def test_the_default_registry_refuses_the_toy_kind(tmp_path: Path) -> None:
    with pytest.raises(ConfigErrors) as caught:
        load([write(tmp_path, "{channel: ops}")], checks=[check_document])
    assert [e.message for e in caught.value.errors] == ["trigger type slack is not supported (trigger 't')"]


def test_a_registered_kind_is_validated_with_its_spec_model(tmp_path: Path) -> None:
    checks = [functools.partial(check_document, registry=TOY)]
    config = load([write(tmp_path, "{channel: ops}")], checks=checks)
    assert [doc.metadata.name for doc, _ in config.sensors] == ["toy"]
    with pytest.raises(ConfigErrors) as caught:
        load([write(tmp_path, "{channel: ''}")], checks=checks)
    (error,) = caught.value.errors
    assert (error.line, error.message) == (9, "slack.channel: String should have at least 1 character")


async def test_a_registered_kind_is_assembled_and_fires(tmp_path: Path) -> None:
    config = load([write(tmp_path, "{channel: ops}")], checks=[functools.partial(check_document, registry=TOY)])
    (sensor, _), = config.sensors
    async with HttpClient() as client:
        assembled = assemble_sensor(sensor, Secrets(), client, registry=TOY)
    executor = assembled.executors["t"]
    assert isinstance(executor, ToyTrigger)
    event = CloudEvent(id="e1", source="webhook", type="webhook", subject="example", data=b"{}")
    outcome = await executor.fire({"d": event})
    assert outcome.success and outcome.note == "posted to ops" and executor.fired == [{"d": event}]


def test_a_registered_kind_is_dry_run(tmp_path: Path) -> None:
    config = load([write(tmp_path, "{channel: ops}")], checks=[functools.partial(check_document, registry=TOY)])
    (sensor, _), = config.sensors
    event = CloudEvent(id="e1", source="webhook", type="webhook", subject="example", data=b"{}")
    run = dry_run(sensor, [LoadedEvent("events.json", 1, event)], registry=TOY)
    (firing,) = to_json(run)["firings"]
    assert firing["request"]["url"] == "http://toy.invalid/ops" and firing["error"] is None


def test_a_registered_kind_is_in_the_schema() -> None:
    assert "ToySpec" not in document_schema()["$defs"]
    for schema in (document_schema(registry=TOY), document_schema("Sensor", registry=TOY)):
        slack = schema["$defs"]["TriggerTemplate"]["properties"]["slack"]
        assert slack["anyOf"][0] == {"$ref": "#/$defs/ToySpec"}
        assert schema["$defs"]["ToySpec"]["properties"]["channel"]["description"] == "Channel to post to."


def test_a_registered_kind_is_in_the_kinds_table() -> None:
    assert "| trigger | `slack` | `tests.test_registry.ToySpec` | toy |" in kinds_table(TOY)
    assert "| trigger | `slack`" not in kinds_table()  # the source kind `slack` is Argo's receive mode


def test_only_template_keys_can_be_trigger_kinds() -> None:
    with pytest.raises(ValueError, match="not a trigger template key"):
        REGISTRY.with_trigger(TriggerKind("toy", ToySpec, ToyTrigger))


def test_the_readme_table_is_generated_from_the_registry() -> None:
    """Regenerate with `python -m sensorium.engine.registry --readme`."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert with_table(readme) == readme, "stale kinds table: run `python -m sensorium.engine.registry --readme`"


@pytest.mark.integration  # runs the regeneration command as a process
def test_the_regeneration_command_writes_the_table(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text("# x\n<!-- kinds:start -->\nold\n<!-- kinds:end -->\ntail\n")
    command = [sys.executable, "-m", "sensorium.engine.registry", "--readme", str(readme)]
    proc = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert readme.read_text() == f"# x\n<!-- kinds:start -->\n{kinds_table()}<!-- kinds:end -->\ntail\n"

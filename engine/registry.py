"""The registry of kinds (composition root): every source, trigger and bus kind Sensorium runs, in one place.

Each kind is listed here, explicitly (nothing registers itself by being imported): its name as written in the
YAML, its spec model, and its constructor. Assembly (`engine.assemble`), validation (`engine.validate`, through
`assemble.check_document`), dry runs (`engine.dryrun`), the JSON Schema (`engine.schema`), the bus choice
(`engine.busconfig`) and the README's table of kinds (`python -m sensorium.engine.registry --readme`) all read it.

Adding a trigger kind: write its module (a spec model and a class with `fire(events) -> FiringOutcome`), then add
one `TriggerKind(...)` line to `REGISTRY` below. Its name must be a trigger template key (Argo's
`triggers.spec.KIND_ORDER`: a kind Argo has, such as `slack` or `kafka`, is one line; a name Argo does not have
also needs its field in `triggers.spec.TriggerTemplate`).
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from sensorium.buses.base import Bus
from sensorium.buses.spec import JETSTREAM_SCHEMES
from sensorium.buses.spec import JetStreamBus as JetStreamSpec
from sensorium.buses.spec import KafkaBus as KafkaSpec
from sensorium.engine.core.cloudevent import CloudEvent
from sensorium.engine.core.errors import ConfigError
from sensorium.engine.core.secrets import Secrets
from sensorium.engine.core.specbase import check_url
from sensorium.sources.spec import WebhookContext
from sensorium.sources.webhook import Endpoint
from sensorium.triggers.deadletter import DeadLettering
from sensorium.triggers.http import HttpClient, HttpTrigger
from sensorium.triggers.httprequest import HttpRequest, build_request, check_http_spec
from sensorium.triggers.log import LogTrigger
from sensorium.triggers.outcome import Fireable
from sensorium.triggers.params import ResolvedParam
from sensorium.triggers.spec import KIND_ORDER, HTTPTrigger, Trigger
from sensorium.triggers.spec import LogTrigger as LogTriggerSpec

__all__ = ["REGISTRY", "BusKind", "Registry", "SourceKind", "TriggerDeps", "TriggerKind", "kinds_table"]


@dataclass(frozen=True)
class TriggerDeps:
    """What running triggers share: the engine's one HTTP connection pool and the secrets."""

    client: HttpClient
    secrets: Secrets


@dataclass(frozen=True)
class TriggerKind:
    """A trigger kind: `name` is its key in a trigger template, `spec` the model of what is written under it.

    `build(trigger, deps)` makes the running trigger (once per trigger, by `sensorium run`); `check(trigger)` is
    the load-time check beyond the spec model, compile-only (ConfigError or ValueError; it builds nothing that
    `build` builds again); `request(trigger, events, secrets, used)` is the request a firing would send, for
    `sensorium test` (None: this kind sends no HTTP request)."""

    name: str
    spec: type[BaseModel]
    build: Callable[[Trigger, TriggerDeps], Fireable]
    check: Callable[[Trigger], None] = lambda trigger: None
    request: Callable[[Trigger, Mapping[str, CloudEvent], Secrets, list[ResolvedParam]], HttpRequest] | None = None
    description: str = ""


@dataclass(frozen=True)
class SourceKind:
    """An event source kind: `name` is its key in an EventSource's `spec`, `spec` the model of one entry under it
    (`spec.<name>.<eventName>`); `build(event_source, event_name, entry)` makes what serves it."""

    name: str
    spec: type[BaseModel]
    build: Callable[[str, str, Any], Any]
    description: str = ""


@dataclass(frozen=True)
class BusKind:
    """A bus kind: `name` is its key in an EventBus's `spec` (None: not configurable in an EventBus document),
    `spec` its model, `schemes` the `--bus URL` schemes that choose it, `from_url(url)` the bus a URL names."""

    name: str
    spec: type[BaseModel] | None
    schemes: tuple[str, ...]
    from_url: Callable[[str], Bus] | None
    description: str = ""


@dataclass(frozen=True)
class Registry:
    """Kinds by name. A registry is a plain value: tests build their own (`with_trigger`)."""

    triggers: Mapping[str, TriggerKind] = field(default_factory=dict)
    sources: Mapping[str, SourceKind] = field(default_factory=dict)
    buses: Mapping[str, BusKind] = field(default_factory=dict)

    @classmethod
    def of(cls, triggers: Iterable[TriggerKind] = (), sources: Iterable[SourceKind] = (),
           buses: Iterable[BusKind] = ()) -> Registry:
        return cls({k.name: k for k in triggers}, {k.name: k for k in sources}, {k.name: k for k in buses})

    def with_trigger(self, kind: TriggerKind) -> Registry:
        """This registry plus (or with a replaced) trigger kind."""
        if kind.name not in TEMPLATE_KEYS:
            raise ValueError(f"trigger kind {kind.name}: not a trigger template key ({', '.join(TEMPLATE_KEYS)})")
        return Registry({**self.triggers, kind.name: kind}, self.sources, self.buses)

    def trigger(self, trigger: Trigger) -> TriggerKind:
        """The kind of `trigger`; ConfigError naming the trigger when none is set or it (or its dlqTrigger's) is
        not registered."""
        return self.triggers[trigger.require_supported(self.triggers)]

    def check_trigger(self, trigger: Trigger) -> None:
        """Everything `build_trigger` would refuse, building nothing: the kinds are registered, what is written
        under a kind whose template field is untyped validates against the kind's spec model, then the kind's
        own compile-only `check`; the same for the dlqTrigger. ConfigError or ValueError."""
        kind = self.trigger(trigger)
        written = getattr(trigger.template, _TEMPLATE_ATTRS[kind.name])
        if not isinstance(written, BaseModel):
            try:
                kind.spec.model_validate(written)
            except ValidationError as exc:
                first = exc.errors()[0]
                where = ".".join(str(part) for part in first["loc"])
                raise ConfigError(f"{kind.name}.{where}: {first['msg']}" if where else first["msg"],
                                  field=f"trigger {trigger.name}") from None
        kind.check(trigger)
        if trigger.dlq_trigger is not None:
            self.check_trigger(trigger.dlq_trigger)

    def build_trigger(self, trigger: Trigger, deps: TriggerDeps) -> Fireable:
        """The running trigger (wrapped with its dlqTrigger, if any)."""
        executor = self.trigger(trigger).build(trigger, deps)
        if trigger.dlq_trigger is not None:
            return DeadLettering(executor, self.build_trigger(trigger.dlq_trigger, deps), trigger.name)
        return executor

    def bus_kind_for_url(self, url: str) -> BusKind | None:
        """The bus kind whose `--bus URL` scheme `url` has (None: no kind has it)."""
        scheme = url.split("://", 1)[0] if "://" in url else ""
        return next((k for k in self.buses.values() if scheme in k.schemes and k.from_url is not None), None)

    def url_forms(self) -> str:
        """The `--bus URL` forms the kinds accept, for messages (`nats://HOST:PORT or kafka://HOST:PORT`)."""
        return " or ".join(f"{k.schemes[0]}://HOST:PORT" for k in self.buses.values() if k.from_url and k.schemes)


TEMPLATE_KEYS = tuple(key for _, key in KIND_ORDER)
_TEMPLATE_ATTRS = {key: attr for attr, key in KIND_ORDER}


# ---- the kinds --------------------------------------------------------------------------------------------------

def _http(trigger: Trigger, deps: TriggerDeps) -> Fireable:
    return HttpTrigger(trigger, deps.client, deps.secrets)


def _http_check(trigger: Trigger) -> None:
    check_http_spec(trigger.template, trigger.parameters)


def _http_request(trigger: Trigger, events: Mapping[str, CloudEvent], secrets: Secrets,
                  used: list[ResolvedParam]) -> HttpRequest:
    return build_request(trigger.template, trigger.parameters, events, secrets, used)


def _log(trigger: Trigger, deps: TriggerDeps) -> Fireable:
    return LogTrigger(trigger)


def _webhook(event_source: str, event_name: str, entry: Any) -> Any:
    return Endpoint(event_source, event_name, entry)


def _jetstream_url(url: str) -> Bus:
    from sensorium.buses.jetstream.bus import JetStreamBus

    try:
        check_url(url, JETSTREAM_SCHEMES)
    except ValueError as exc:
        raise ConfigError(str(exc), field="--bus") from None
    return JetStreamBus(url)


def _kafka_url(url: str) -> Bus:
    from sensorium.buses.kafka.bus import KafkaBus

    return KafkaBus.from_url(url)


REGISTRY = Registry.of(
    triggers=[
        TriggerKind("http", HTTPTrigger, _http, _http_check, _http_request, "HTTP request, status policy, retries"),
        TriggerKind("log", LogTriggerSpec, _log, description="log the events (`intervalSeconds` honoured)"),
    ],
    sources=[
        SourceKind("webhook", WebhookContext, _webhook, "HTTP endpoint; the request body becomes the event data"),
    ],
    buses=[
        BusKind("jetstream", JetStreamSpec, JETSTREAM_SCHEMES, _jetstream_url,
                "NATS JetStream; also `jetstreamExotic`, and the embedded nats-server when none is configured"),
        BusKind("kafka", KafkaSpec, ("kafka",), _kafka_url, "Apache Kafka"),
        BusKind("memory", None, (), None, "in-process, for unit tests (`buses.memory`); no URL, no EventBus"),
    ],
)


# ---- the README table -------------------------------------------------------------------------------------------

START, END = "<!-- kinds:start -->", "<!-- kinds:end -->"


def kinds_table(registry: Registry = REGISTRY) -> str:
    """The Markdown table of supported kinds, generated from `registry`."""
    rows = ["| kind | name | spec model | description |", "|---|---|---|---|"]
    groups: list[tuple[str, Iterable[Any]]] = [("source", registry.sources.values()),
                                              ("trigger", registry.triggers.values()),
                                              ("bus", registry.buses.values())]
    for group, kinds in groups:
        for kind in kinds:
            module = kind.spec.__module__.removeprefix("sensorium.") if kind.spec is not None else ""
            spec = f"`{module}.{kind.spec.__name__}`" if kind.spec is not None else ""
            rows.append(f"| {group} | `{kind.name}` | {spec} | {kind.description} |")
    return "\n".join(rows) + "\n"


def with_table(readme: str, registry: Registry = REGISTRY) -> str:
    """`readme` with the text between the kinds markers replaced by `kinds_table(registry)`."""
    pattern = re.compile(re.escape(START) + r"\n.*?" + re.escape(END), re.S)
    if not pattern.search(readme):
        raise ValueError(f"README has no {START} ... {END} markers")
    return pattern.sub(lambda _: f"{START}\n{kinds_table(registry)}{END}", readme)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sensorium.engine.registry", description=__doc__.splitlines()[0])
    parser.add_argument("--readme", nargs="?", const="README.md", metavar="FILE",
                        help="rewrite the kinds table of FILE (default README.md) in place")
    args = parser.parse_args(argv)
    if args.readme is None:
        sys.stdout.write(kinds_table())
        return 0
    path = Path(args.readme)
    path.write_text(with_table(path.read_text(encoding="utf-8")), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

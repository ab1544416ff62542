"""The registry of kinds (composition root): every source, trigger and bus kind Sensorium runs, in one place.

Each kind is listed here, explicitly (nothing registers itself by being imported): its name as written in the
YAML, its spec model, and its constructor. Assembly (`engine.assemble`), validation (`engine.validate`, through
`assemble.Checker`, whose compiled result `sensorium run` assembles), dry runs (`engine.dryrun`), the JSON
Schema (`engine.schema`), the bus choice (`engine.busconfig`) and the README's table of kinds
(`python -m sensorium.engine.registry --readme`) all read it.

Adding a trigger kind: write its module (a spec model and a class with `fire(events) -> FiringOutcome`), then add
one `TriggerKind(...)` line to `REGISTRY` below. Its name must be a trigger template key (Argo's
`triggers.spec.KIND_ORDER`: a kind Argo has, such as `slack` or `kafka`, is one line; a name Argo does not have
also needs its field in `triggers.spec.TriggerTemplate`).

Adding a source kind: write its module (a spec model for one `spec.<kind>.<eventName>` entry, and a class with
`start()`/`stop()` that publishes its events, `sources.base.RunningSource`), then add one `SourceKind(...)` line.
Adding a bus kind: its module (a `buses.base.Bus`), then one `BusKind(...)` line naming its `EventBusSpec` field and
how it opens from what is written there (and, optionally, from a `--bus URL`).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import random
import re
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from sensorium.buses.base import Bus, StateStore
from sensorium.buses.spec import JETSTREAM_SCHEMES, EventBusSpec
from sensorium.buses.spec import JetStreamBus as JetStreamSpec
from sensorium.buses.spec import KafkaBus as KafkaSpec
from sensorium.engine.core.cloudevent import CloudEvent
from sensorium.engine.core.errors import ConfigError
from sensorium.engine.core.secrets import Secrets
from sensorium.engine.core.specbase import check_url
from sensorium.sources.base import Publish, Report, RunningSource, no_report
from sensorium.sources.bitbucket import BitbucketEventSource, bitbucket_endpoint
from sensorium.sources.bitbucketserver import BitbucketServerEventSource, bitbucketserver_endpoint
from sensorium.sources.calendar import CalendarContext, CalendarSource
from sensorium.sources.cloudevents import CloudEventsContext, CloudEventsServer, cloudevents_endpoints
from sensorium.sources.custom import CustomSource, PythonSourceContext
from sensorium.sources.file import FileContext, FileSource
from sensorium.sources.filewatch import FileWatchContext, FileWatchSource
from sensorium.sources.github import GithubEventSource, github_endpoint
from sensorium.sources.gitlab import GitlabEventSource, gitlab_endpoint
from sensorium.sources.httppoll import HttpPollContext, HttpPollSource
from sensorium.sources.kafka import KafkaSource, KafkaSourceContext
from sensorium.sources.nats import NatsSource, NatsSourceContext
from sensorium.sources.natsstream import NatsStreamContext, NatsStreamSource
from sensorium.sources.postgres import PostgresContext, PostgresSource
from sensorium.sources.slack import SlackEventSource, slack_endpoint
from sensorium.sources.spec import WebhookContext
from sensorium.sources.stripe import StripeEventSource, stripe_endpoint
from sensorium.sources.webhook import Endpoint, Observe, WebhookServer
from sensorium.triggers.deadletter import DeadLettering
from sensorium.triggers.http import HttpClient, HttpTrigger
from sensorium.triggers.httprequest import HttpRequest, build_request, check_http_spec
from sensorium.triggers.log import LogTrigger
from sensorium.triggers.nats import NatsClients, NatsTrigger, build_message, check_nats_spec
from sensorium.triggers.outcome import Fireable
from sensorium.triggers.params import ResolvedParam
from sensorium.triggers.pools import Pools
from sensorium.triggers.spec import KIND_ORDER, HTTPTrigger, Trigger
from sensorium.triggers.spec import KafkaTrigger as KafkaTriggerSpec
from sensorium.triggers.spec import LogTrigger as LogTriggerSpec
from sensorium.triggers.spec import NATSTrigger as NATSTriggerSpec

__all__ = ["REGISTRY", "BusKind", "Registry", "SourceDeps", "SourceEntry", "SourceKind", "TriggerDeps", "TriggerKind",
           "kinds_table"]

EMBEDDED_URL_FILE = "bus.url"
"""Where, in the data directory, a running engine writes its embedded bus's URL (`sensorium publish` reads it)."""


log = logging.getLogger("sensorium.engine")

@dataclass(frozen=True)
class TriggerDeps:
    """What running triggers share: the engine's one HTTP connection pool, the message-queue triggers'
    connections (`pools`) and the secrets."""

    client: HttpClient
    secrets: Secrets
    details: bool = True
    """Whether outcomes keep what only traces read (request summaries, parameters, attempts' start times, the
    previews of successful responses): False when nothing traces (`sensorium run --no-bus-trace`)."""
    pools: Pools | None = None
    """The message-queue triggers' connections, closed by whoever made them (None: each such trigger gets a
    pool of its own, which nothing closes; for tools that build triggers and exit)."""


@dataclass(frozen=True)
class TriggerKind:
    """A trigger kind: `name` is its key in a trigger template, `spec` the model of what is written under it.

    `build(trigger, deps)` makes the running trigger (once per trigger, by `sensorium run`); `check(trigger)` is
    the load-time check beyond the spec model, compile-only (ConfigError or ValueError; it builds nothing that
    `build` builds again); `request(trigger, events, secrets, used)` is the request a firing would send, for
    `sensorium test` (a message kind gives its message in that form: `triggers.nats.as_request`; None: this
    kind sends nothing to show)."""

    name: str
    spec: type[BaseModel]
    build: Callable[[Trigger, TriggerDeps], Fireable]
    check: Callable[[Trigger], None] = lambda trigger: None
    request: Callable[[Trigger, Mapping[str, CloudEvent], Secrets, list[ResolvedParam]], HttpRequest] | None = None
    description: str = ""


@dataclass(frozen=True)
class SourceEntry:
    """One checked `spec.<kind>.<eventName>` entry of an EventSource: its events are CloudEvents with source
    `event_source` and subject `event_name`; `spec` is the entry as its kind's spec model parsed it (once, when
    the document was checked)."""

    kind: str
    event_source: str
    event_name: str
    spec: BaseModel


@dataclass(frozen=True)
class SourceDeps:
    """What running sources share: how to publish an event, the secrets, the host to listen on."""

    publish: Publish
    secrets: Secrets
    host: str = "0.0.0.0"
    observe: Observe | None = None  # the webhook's per-response callback (metrics), when metrics are on
    reuse_port: bool = False  # bind with SO_REUSEPORT: worker processes share a port (`run --workers`)
    state: Callable[[str], Awaitable[StateStore]] | None = None  # the bus's state store of a name (Bus.state_store)
    bus_url: str | None = None  # the bus's URL without credentials (`natsStream` reads a stream there by default)
    report: Report = no_report  # a source's problems, as trace records (engine.sourceproblems)


@dataclass(frozen=True)
class SourceKind:
    """An event source kind: `name` is its key in an EventSource's `spec`, `spec` the model of one entry under it
    (`spec.<name>.<eventName>`); `build(entries, deps)` makes the one running source that serves every entry of
    this kind (all EventSources together: webhooks on one port share a server)."""

    name: str
    spec: type[BaseModel]
    build: Callable[[Sequence[SourceEntry], SourceDeps], RunningSource]
    description: str = ""


BusOpener = Callable[..., AbstractAsyncContextManager[Bus]]
"""`open(written, secrets, data_dir)`; the default kind's opener is also given `port=N` when the user pins the port
of a bus it starts itself (`sensorium run --bus-port`)."""


@dataclass(frozen=True)
class BusKind:
    """A bus kind: `name` is its name, `spec` its model, `schemes` the `--bus URL` schemes that choose it,
    `from_url(url)` the bus a URL names (None: no URL form).

    `fields` are the `buses.spec.EventBusSpec` attributes that choose it (the first one set is used; empty: not
    configurable in an EventBus document); `open(written, secrets, data_dir)` is an async context manager
    yielding the (not yet started) bus for what is written there, and cleaning up whatever it started for it
    on exit. The registry's `default_bus` kind is opened with its spec model's defaults when neither `--bus`
    nor an EventBus names one."""

    name: str
    spec: type[BaseModel] | None
    schemes: tuple[str, ...]
    from_url: Callable[[str], Bus] | None
    description: str = ""
    fields: tuple[str, ...] = ()
    open: BusOpener | None = None


@dataclass(frozen=True)
class Registry:
    """Kinds by name. A registry is a plain value: tests build their own (`with_trigger`)."""

    triggers: Mapping[str, TriggerKind] = field(default_factory=dict)
    sources: Mapping[str, SourceKind] = field(default_factory=dict)
    buses: Mapping[str, BusKind] = field(default_factory=dict)
    default_bus: str = "jetstream"

    @classmethod
    def of(cls, triggers: Iterable[TriggerKind] = (), sources: Iterable[SourceKind] = (),
           buses: Iterable[BusKind] = (), default_bus: str = "jetstream") -> Registry:
        return cls({k.name: k for k in triggers}, {k.name: k for k in sources}, {k.name: k for k in buses},
                   default_bus)

    def with_trigger(self, kind: TriggerKind) -> Registry:
        """This registry plus (or with a replaced) trigger kind."""
        if kind.name not in TEMPLATE_KEYS:
            raise ValueError(f"trigger kind {kind.name}: not a trigger template key ({', '.join(TEMPLATE_KEYS)})")
        return replace(self, triggers={**self.triggers, kind.name: kind})

    def with_source(self, kind: SourceKind) -> Registry:
        """This registry plus (or with a replaced) source kind."""
        return replace(self, sources={**self.sources, kind.name: kind})

    def with_bus(self, kind: BusKind) -> Registry:
        """This registry plus (or with a replaced) bus kind."""
        return replace(self, buses={**self.buses, kind.name: kind})

    def open_bus(self, spec: EventBusSpec | None, secrets: Secrets, data_dir: Path,
                 embedded_port: int | None = None) -> AbstractAsyncContextManager[Bus]:
        """The bus an EventBus `spec` configures, by the first registered kind whose field is set in it; without
        one (no EventBus), the `default_bus` kind with its spec model's defaults, given `port=embedded_port` when
        set (the port of the server it starts, if it starts one). See `BusKind.open`."""
        for kind in self.buses.values():
            written = next((getattr(spec, f) for f in kind.fields if getattr(spec, f, None) is not None), None)
            if written is not None and kind.open is not None:
                return kind.open(written, secrets, data_dir)
        fallback = self.buses[self.default_bus]
        if fallback.open is None or fallback.spec is None:
            raise ConfigError(f"bus kind {fallback.name} cannot be the default: it has no spec model or opener")
        if embedded_port is not None:
            return fallback.open(fallback.spec(), secrets, data_dir, port=embedded_port)
        return fallback.open(fallback.spec(), secrets, data_dir)

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

_JITTER = random.Random()
"""The retry jitter of every http trigger: one generator (seeding one per trigger cost 10 us each at start-up)."""


def _http(trigger: Trigger, deps: TriggerDeps) -> Fireable:
    return HttpTrigger(trigger, deps.client, deps.secrets, rng=_JITTER, details=deps.details)


def _http_check(trigger: Trigger) -> None:
    check_http_spec(trigger.template, trigger.parameters)


def _http_request(trigger: Trigger, events: Mapping[str, CloudEvent], secrets: Secrets,
                  used: list[ResolvedParam]) -> HttpRequest:
    return build_request(trigger.template, trigger.parameters, events, secrets, used)


def _log(trigger: Trigger, deps: TriggerDeps) -> Fireable:
    return LogTrigger(trigger)


def _nats(trigger: Trigger, deps: TriggerDeps) -> Fireable:
    return NatsTrigger(trigger, deps.pools.nats if deps.pools is not None else NatsClients(), deps.secrets,
                       rng=_JITTER, details=deps.details)


def _nats_check(trigger: Trigger) -> None:
    check_nats_spec(trigger.template, trigger.parameters)


def _nats_message(trigger: Trigger, events: Mapping[str, CloudEvent], secrets: Secrets,
                  used: list[ResolvedParam]) -> HttpRequest:
    return build_message(trigger.template, trigger.parameters, events, used)


# (triggers.kafka is imported by the kind's functions: it loads aiokafka, which most commands never need)
def _kafka(trigger: Trigger, deps: TriggerDeps) -> Fireable:
    from sensorium.triggers.kafka import KafkaProducers, KafkaTrigger

    return KafkaTrigger(trigger, deps.pools.kafka if deps.pools is not None else KafkaProducers(), deps.secrets,
                        rng=_JITTER, details=deps.details)


def _kafka_check(trigger: Trigger) -> None:
    from sensorium.triggers.kafka import check_kafka_spec

    check_kafka_spec(trigger.template, trigger.parameters)


def _kafka_record(trigger: Trigger, events: Mapping[str, CloudEvent], secrets: Secrets,
                  used: list[ResolvedParam]) -> HttpRequest:
    from sensorium.triggers.kafka import build_record

    return build_record(trigger.template, trigger.parameters, events, secrets, used)


def _webhook(entries: Sequence[SourceEntry], deps: SourceDeps) -> RunningSource:
    endpoints = [Endpoint(e.event_source, e.event_name, e.spec) for e in entries if isinstance(e.spec, WebhookContext)]
    return WebhookServer(endpoints, deps.publish, deps.secrets, deps.host, observe=deps.observe,
                         reuse_port=deps.reuse_port, report=deps.report)


def _calendar(entries: Sequence[SourceEntry], deps: SourceDeps) -> RunningSource:
    return CalendarSource([(e.event_source, e.event_name, e.spec) for e in entries
                           if isinstance(e.spec, CalendarContext)], deps.publish, deps.state)


def _file(entries: Sequence[SourceEntry], deps: SourceDeps) -> RunningSource:
    return FileSource([(e.event_source, e.event_name, e.spec) for e in entries if isinstance(e.spec, FileContext)],
                      deps.publish, report=deps.report)


def _hooks(spec: type[BaseModel], endpoint: Callable[[str, str, Any], Endpoint]) -> Callable[
        [Sequence[SourceEntry], SourceDeps], RunningSource]:
    """The builder of a git-provider kind: its entries' endpoints (`endpoint(source, event, spec)`) on webhook
    servers."""
    def build(entries: Sequence[SourceEntry], deps: SourceDeps) -> RunningSource:
        endpoints = [endpoint(e.event_source, e.event_name, e.spec) for e in entries if isinstance(e.spec, spec)]
        return WebhookServer(endpoints, deps.publish, deps.secrets, deps.host, observe=deps.observe,
                             reuse_port=deps.reuse_port, report=deps.report)
    return build


def _cloudevents(entries: Sequence[SourceEntry], deps: SourceDeps) -> RunningSource:
    endpoints = [endpoint for e in entries if isinstance(e.spec, CloudEventsContext)
                 for endpoint in cloudevents_endpoints(e.event_source, e.event_name, e.spec)]
    return CloudEventsServer(endpoints, deps.publish, deps.secrets, deps.host, observe=deps.observe,
                             reuse_port=deps.reuse_port)


def _nats_stream(entries: Sequence[SourceEntry], deps: SourceDeps) -> RunningSource:
    return NatsStreamSource([(e.event_source, e.event_name, e.spec) for e in entries
                             if isinstance(e.spec, NatsStreamContext)], deps.publish, deps.bus_url)


def _nats_source(entries: Sequence[SourceEntry], deps: SourceDeps) -> RunningSource:
    return NatsSource([(e.event_source, e.event_name, e.spec) for e in entries
                       if isinstance(e.spec, NatsSourceContext)], deps.publish, deps.secrets, report=deps.report)


def _kafka_source(entries: Sequence[SourceEntry], deps: SourceDeps) -> RunningSource:
    return KafkaSource([(e.event_source, e.event_name, e.spec) for e in entries
                        if isinstance(e.spec, KafkaSourceContext)], deps.publish, deps.secrets, deps.state,
                       report=deps.report)


def _http_poll(entries: Sequence[SourceEntry], deps: SourceDeps) -> RunningSource:
    return HttpPollSource([(e.event_source, e.event_name, e.spec) for e in entries
                           if isinstance(e.spec, HttpPollContext)], deps.publish, deps.secrets, deps.state,
                          report=deps.report)


def _python(entries: Sequence[SourceEntry], deps: SourceDeps) -> RunningSource:
    return CustomSource([(e.event_source, e.event_name, e.spec) for e in entries
                         if isinstance(e.spec, PythonSourceContext)], deps.publish, deps.secrets,
                        report=deps.report)


def _file_watch(entries: Sequence[SourceEntry], deps: SourceDeps) -> RunningSource:
    return FileWatchSource([(e.event_source, e.event_name, e.spec) for e in entries
                            if isinstance(e.spec, FileWatchContext)], deps.publish, report=deps.report)


def _postgres(entries: Sequence[SourceEntry], deps: SourceDeps) -> RunningSource:
    return PostgresSource([(e.event_source, e.event_name, e.spec) for e in entries
                           if isinstance(e.spec, PostgresContext)], deps.publish, deps.secrets)


def _jetstream_url(url: str) -> Bus:
    from sensorium.buses.jetstream.bus import JetStreamBus

    try:
        check_url(url, JETSTREAM_SCHEMES)
    except ValueError as exc:
        raise ConfigError(str(exc), field="--bus") from None
    return JetStreamBus(url)


@contextlib.asynccontextmanager
async def _jetstream_open(spec: JetStreamSpec, secrets: Secrets, data_dir: Path,
                          port: int | None = None) -> AsyncIterator[Bus]:
    """The server `spec.url` names; without a URL, an embedded nats-server with its data in `data_dir` on `port`
    (a free one when None), whose URL is written to `EMBEDDED_URL_FILE` there while it runs."""
    from sensorium.buses.jetstream.bus import JetStreamBus

    if spec.url is not None:
        yield JetStreamBus.from_spec(spec, secrets)
        return
    from sensorium.buses.embedded import EmbeddedNats

    embedded = EmbeddedNats(data_dir=data_dir / "nats", port=port, die_with_parent=True)
    embedded.start_blocking()  # main thread: see EmbeddedNats.start_blocking
    url_file = data_dir / EMBEDDED_URL_FILE
    try:
        url_file.write_text(embedded.url + "\n")
        log.info("embedded event bus at %s", embedded.url, extra={"bus": embedded.url})
        yield JetStreamBus.from_spec(spec, secrets, embedded.url)
    finally:
        await embedded.stop()
        with contextlib.suppress(OSError):
            url_file.unlink()


def _kafka_url(url: str) -> Bus:
    from sensorium.buses.kafka.bus import KafkaBus

    return KafkaBus.from_url(url)


@contextlib.asynccontextmanager
async def _kafka_open(spec: KafkaSpec, secrets: Secrets, data_dir: Path) -> AsyncIterator[Bus]:
    from sensorium.buses.kafka.bus import KafkaBus

    yield KafkaBus.from_spec(spec, secrets)


REGISTRY = Registry.of(
    triggers=[
        TriggerKind("http", HTTPTrigger, _http, _http_check, _http_request, "HTTP request, status policy, retries"),
        TriggerKind("log", LogTriggerSpec, _log, description="log the events (`intervalSeconds` honoured)"),
        TriggerKind("nats", NATSTriggerSpec, _nats, _nats_check, _nats_message,
                    description="publish a message to a NATS subject, confirmed by the server; retries"),
        TriggerKind("kafka", KafkaTriggerSpec, _kafka, _kafka_check, _kafka_record,
                    description="produce a record to a Kafka topic, acknowledged by the brokers; retries"),
    ],
    sources=[
        SourceKind("webhook", WebhookContext, _webhook, "HTTP endpoint; the request body becomes the event data"),
        SourceKind("calendar", CalendarContext, _calendar,
                   "cron `schedule` or `interval` ticks; the last tick is kept on the bus (`persistence.catchup`)"),
        SourceKind("file", FileContext, _file,
                   "changes of a directory's files (`watchPathConfig`, `eventType`); one WRITE per file per 1600 ms"),
        SourceKind("github", GithubEventSource, _hooks(GithubEventSource, github_endpoint),
                   "GitHub deliveries (X-Hub-Signature-256 checked; the hook is configured at GitHub)"),
        SourceKind("gitlab", GitlabEventSource, _hooks(GitlabEventSource, gitlab_endpoint),
                   "GitLab deliveries (X-Gitlab-Token checked; the hook is configured at GitLab)"),
        SourceKind("bitbucket", BitbucketEventSource, _hooks(BitbucketEventSource, bitbucket_endpoint),
                   "Bitbucket Cloud deliveries (the hook is configured at Bitbucket)"),
        SourceKind("bitbucketserver", BitbucketServerEventSource,
                   _hooks(BitbucketServerEventSource, bitbucketserver_endpoint),
                   "Bitbucket Server deliveries (X-Hub-Signature checked; the hook is configured at the server)"),
        SourceKind("stripe", StripeEventSource, _hooks(StripeEventSource, stripe_endpoint),
                   "Stripe events (`webhook.signature` checks Stripe-Signature; the endpoint is configured at Stripe)"),
        SourceKind("httpPoll", HttpPollContext, _http_poll,
                   "Sensorium extension: poll a JSON URL, one event per new item; seen keys kept on the bus"),
        SourceKind("postgres", PostgresContext, _postgres,
                   "Sensorium extension: one event per row change of a PostgreSQL table (wal2json replication slot)"),
        SourceKind("kafka", KafkaSourceContext, _kafka_source,
                   "records of a Kafka topic, as a consumer group or one partition (its offset kept on the bus)"),
        SourceKind("nats", NatsSourceContext, _nats_source,
                   "messages of a core NATS subject (at most once, as in Argo; `queue` groups share them)"),
        SourceKind("natsStream", NatsStreamContext, _nats_stream,
                   "Sensorium extension: an existing JetStream stream's messages (any payload) through a durable "
                   "consumer"),
        SourceKind("cloudevents", CloudEventsContext, _cloudevents,
                   "Sensorium extension: CloudEvents publishing endpoint (structured, binary, batch; Kyma legacy)"),
        SourceKind("slack", SlackEventSource, _hooks(SlackEventSource, slack_endpoint),
                   "Slack Events API, interactions, slash commands (X-Slack-Signature checked; the app is configured "
                   "at Slack)"),
        SourceKind("python", PythonSourceContext, _python,
                   "Sensorium extension (Weik.io `custom`): an async generator in a Python file of yours"),
        SourceKind("fileWatch", FileWatchContext, _file_watch,
                   "Sensorium extension (Weik.io `file-watch`): files matching a glob, Created/Modified/Deleted"),
    ],
    buses=[
        BusKind("jetstream", JetStreamSpec, JETSTREAM_SCHEMES, _jetstream_url,
                "NATS JetStream; also `jetstreamExotic`, and the embedded nats-server when none is configured",
                ("jetstream_exotic", "jetstream"), _jetstream_open),
        BusKind("kafka", KafkaSpec, ("kafka",), _kafka_url, "Apache Kafka", ("kafka",), _kafka_open),
        BusKind("memory", None, (), None, "in-process, for unit tests (`buses.memory`); no URL, no EventBus"),
    ],
    default_bus="jetstream",
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

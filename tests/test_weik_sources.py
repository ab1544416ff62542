"""Weik.io EventSource documents (engine/formats/weik_sources.py): each example loads as the Argo EventSource it
means, `convert` prints documents that load back (with no secret in them), problems are FILE:LINE in Weik.io's
field names; the entry options they translate into (sources/eventshape.py); Slack's url_verification."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest

from sensorium.buses.memory import MemoryBus
from sensorium.engine.app import publish_event
from sensorium.engine.assemble import load_checked
from sensorium.engine.cli import main
from sensorium.engine.config import ConfigErrors, load
from sensorium.engine.convert import render
from sensorium.engine.core.cloudevent import CloudEvent
from sensorium.engine.core.secrets import Secrets
from sensorium.engine.core.yamlread import parse
from sensorium.sources.eventshape import CloudEventAttributes, Transform, TransformError, Variable, dress
from sensorium.sources.slack import SlackEventSource, slack_endpoint
from sensorium.sources.webhook import WebhookServer
from tests.engine_harness import free_port
from tests.seed import ORDERS_DB

ROOT = Path(__file__).resolve().parent.parent
WEIK_FILES = [ROOT / "examples/weikio/eventsources.yaml", ROOT / "examples/custom/eventsource.yaml",
              ROOT / "examples/file-watch/eventsource.yaml"]


def weik_documents() -> list[tuple[Path, int, str]]:
    """(file, document index, name) of every Weik.io document in the examples."""
    found = []
    for file in WEIK_FILES:
        for index, doc in enumerate(parse(file.read_text(), str(file))):
            if str(doc.data.get("apiVersion", "")).startswith("weik.io/"):
                found.append((file, index, doc.data["metadata"]["name"]))
    return found


EXPECTED_KIND = {"orders-hook": "webhook", "prices": "httpPoll", "greenhouse": "python", "invoices": "fileWatch"}


@pytest.mark.parametrize("file,index,name", weik_documents(), ids=lambda v: v if isinstance(v, str) else "")
def test_each_weik_example_loads_as_one_argo_event_named_like_it(file: Path, index: int, name: str,
                                                                 tmp_path: Path) -> None:
    one = tmp_path / "one.yaml"
    one.write_text(file.read_text().split("\n---\n")[index])
    if name == "greenhouse":  # Implementation is relative to the document's file
        (tmp_path / "thermometer.py").write_text((file.parent / "thermometer.py").read_text())
    config = load_checked([one], environ={})
    [(source, _)] = config.sources
    kind = EXPECTED_KIND[name]
    assert source.metadata.name == name
    [entry] = config.entries
    assert (entry.kind, entry.event_source, entry.event_name) == (kind, name, name)
    data = parse(one.read_text(), "x")[0].data["spec"]
    assert entry.spec.cloud_event.type == data["EventType"]  # type: ignore[attr-defined]
    assert entry.spec.cloud_event.source == data["EventSource"]  # type: ignore[attr-defined]


def test_the_webhook_translation_keeps_weiks_meaning() -> None:
    config = load_checked([ROOT / "examples/weikio/eventsources.yaml"], environ={})
    hook = next(e.spec for e in config.entries if e.kind == "webhook")
    assert (hook.endpoint, hook.port, hook.method, hook.body_as_data) == ("/orders", 12000, "POST", True)
    assert hook.signature is not None and hook.signature.type == "hmac"
    assert (hook.signature.header, hook.signature.algorithm, hook.signature.encoding) == ("X-Signature", "sha256",
                                                                                          "hex")
    assert (hook.signature.secret.name, hook.signature.secret.key) == ("orders-hook-secret", "value")
    assert hook.allowed_networks == ["127.0.0.0/8", "10.0.0.0/8", "::1/128"]
    assert [(v.source_column, v.target_variable) for v in hook.variables] == [("id", "OrderId")]
    poll = next(e.spec for e in config.entries if e.kind == "httpPoll")
    assert poll.headers == {"Accept": "application/json"}
    assert [(h.name, h.value_from.secret_key_ref.name) for h in poll.secure_headers] == [("Authorization",
                                                                                          "prices-token")]
    assert (poll.polling_interval, poll.response_path) == ("60s", "$.items")


@pytest.mark.parametrize("folder", ["weikio", "custom", "file-watch"])
def test_convert_prints_argo_documents_that_load_back_without_secrets(folder: str, tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    original = load([Path("examples") / folder], environ={})
    text = render(original)
    assert "weik.io" not in text and "${" not in text
    for secret in (ROOT / "examples" / folder).glob("secrets/*/*"):
        assert secret.read_text().strip() not in text
    out = tmp_path / "converted.yaml"
    out.write_text(text)
    again = load([out], environ={})
    assert [d for d, _ in again.sources] == [d for d, _ in original.sources]




def test_the_seed_database_example_loads_as_a_postgres_entry(tmp_path: Path) -> None:
    """The seed's `orders-db`, unchanged: a `postgres` entry with the Weik.io parameters mapped (sources.postgres
    `from_weik`), the password a secret reference (never resolved at load), the variables lifted and the
    EventType/EventSource/Subject declared on its events."""
    path = tmp_path / "orders-db.yaml"
    path.write_text(ORDERS_DB)
    config = load_checked([path], environ={})
    [entry] = config.entries
    assert (entry.kind, entry.event_source, entry.event_name) == ("postgres", "orders-db", "orders-db")
    spec = entry.spec
    assert (spec.host, spec.port, spec.database, spec.username, spec.schema_name, spec.table) == (
        "127.0.0.1", 5432, "shop", "shop", "public", "orders")
    assert (spec.track_inserts, spec.track_updates, spec.track_deletes) == (True, True, False)
    assert spec.password.name == "orders-db-password" and spec.password.key == "value"
    assert [(v.source_column, v.target_variable) for v in spec.variables] == [("order_id", "OrderId")]
    assert spec.cloud_event is not None and spec.cloud_event.type == "com.example.orders.changed"
    assert (spec.cloud_event.source, spec.cloud_event.subject) == ("orders-database", "/tables/orders")


def problems(tmp_path: Path, text: str, environ: dict[str, str] | None = None) -> list[str]:
    path = tmp_path / "weik.yaml"
    path.write_text(text)
    with pytest.raises(ConfigErrors) as caught:
        load_checked([path], environ=environ or {})
    return [e.render().replace(str(path), "F") for e in caught.value.errors]


def webhook(parameters: str, more: str = "") -> str:
    return ("apiVersion: weik.io/v1\nkind: EventSource\nmetadata:\n  name: hook\nspec:\n  Type: webhook\n"
            "  EventType: t\n  EventSource: s\n  Parameters:\n" + parameters + more)


def test_problems_are_said_in_weiks_field_names_at_their_line(tmp_path: Path) -> None:
    assert problems(tmp_path, webhook("    Pth: /x\n")) == [
        "F:10: spec.Parameters.Pth: unknown parameter; did you mean Path?",
        "F:9: spec.Parameters: Parameters.Path is required for Type webhook"]
    text = webhook("    Path: /x\n").replace("  EventType: t\n", "  EvntType: t\n")
    assert problems(tmp_path, text) == ["F:7: spec.EvntType: unknown field; did you mean EventType?"]


@pytest.mark.parametrize("parameters,expected", [
    ("    Path: /x\n    Secret: hunter2\n    ValidateSignature: \"true\"\n",
     "F:11: spec.Parameters.Secret: Secret must be a secret placeholder ${name} (read from "
     "<secrets-dir>/<name>/value), not a literal: secrets stay out of files"),
    ("    Path: /x\n    ValidateSignature: \"true\"\n",
     "F:11: spec.Parameters.ValidateSignature: ValidateSignature needs Parameters.Secret"),
    ("    Path: /x\n    ValidateSignature: \"yes\"\n",
     "F:11: spec.Parameters.ValidateSignature: ValidateSignature must be \"true\" or \"false\", got 'yes'"),
    ("    Path: ${where}\n",
     "F:10: spec.Parameters.Path: a ${name} secret placeholder can only be the whole value of Secret, Password, "
     "a Headers value or a custom parameter"),
    ("    Path: /x\n    AllowedIPs: 10.0.0.0/33\n",
     "F:11: spec.Parameters.AllowedIPs: AllowedIPs: '10.0.0.0/33' is not a CIDR network (e.g. 10.0.0.0/8)"),
    ("    Path: /x\n    TransformPayload: \"def transform(p) return 1\"\n",
     "F:11: spec.Parameters.TransformPayload: TransformPayload: line 1: expected ':'"),
    ("    Path: /x\n    TransformPayload: \"def other(p): return 1\"\n",
     "F:11: spec.Parameters.TransformPayload: TransformPayload: defines no function transform(payload)"),
    ("    Path: /x\n    AllowedIPs: \" , \"\n",
     "F:11: spec.Parameters.AllowedIPs: AllowedIPs is empty (it would refuse every client): list CIDR networks, or "
     "leave it out to allow any"),
    ("    Path: /x\n    Method: TRACE\n",
     "F:11: spec.Parameters.Method: Method must be one of GET, POST, PUT, PATCH, DELETE, got 'TRACE'"),
    ("    Path: /x\n    Port: \"70000\"\n",
     "F:11: spec.Parameters.Port: Port must be a TCP port 1-65535, got '70000'"),
    ("    Path: \"{{sys:WEIK_TEST_UNSET}}\"\n",
     "F:10: spec.Parameters.Path: environment variable WEIK_TEST_UNSET of {{sys:WEIK_TEST_UNSET}} is not set"),
])
def test_invalid_parameters_are_refused_at_their_line(tmp_path: Path, parameters: str, expected: str,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WEIK_TEST_UNSET", raising=False)
    assert problems(tmp_path, webhook(parameters)) == [expected]


def poll(parameters: str) -> str:
    return ("apiVersion: weik.io/v1\nkind: EventSource\nmetadata:\n  name: poll\nspec:\n  Type: http-poll\n"
            "  EventType: t\n  EventSource: s\n  Parameters:\n" + parameters)


@pytest.mark.parametrize("parameters,expected", [
    ("    Url: ftp://x/y\n", "F:10: spec.Parameters.Url: Url must be an http:// or https:// URL with a host, got "
     "'ftp://x/y'"),
    ("    Url: http://x/y\n    PollingInterval: \"0.01\"\n",
     "F:11: spec.Parameters.PollingInterval: PollingInterval must be at least 0.1 seconds, got 0.01"),
    ("    Url: http://x/y\n    PollingInterval: soon\n",
     "F:11: spec.Parameters.PollingInterval: PollingInterval must be a positive number of seconds, got 'soon'"),
    ("    Url: http://x/y\n    Headers: '{\"Authorization\": \"Bearer ${token}\"}'\n",
     "F:11: spec.Parameters.Headers: Headers.Authorization: a ${name} secret must be the whole header value (put "
     "'Bearer ...' in the secret)"),
    ("    Url: http://x/y\n    Headers: '[1]'\n",
     "F:11: spec.Parameters.Headers: Headers must be a JSON object of strings, e.g. '{\"Accept\": "
     "\"application/json\"}'"),
])
def test_invalid_poll_parameters_are_refused_at_their_line(tmp_path: Path, parameters: str, expected: str) -> None:
    assert problems(tmp_path, poll(parameters)) == [expected]


def test_validate_runs_no_transform_code(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    code = f"open({str(marker)!r}, 'w').close()\ndef transform(p):\n    return p\n"
    path = tmp_path / "weik.yaml"
    path.write_text(webhook("    Path: /x\n    TransformPayload: " + json.dumps(code) + "\n"))
    [entry] = load_checked([path], environ={}).entries
    assert entry.spec.transform_payload == code  # type: ignore[attr-defined]
    assert not marker.exists()


def test_sys_placeholders_read_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WEIK_HOOK_PATH", "/from-env")
    path = tmp_path / "weik.yaml"
    path.write_text(webhook("    Path: \"{{sys:WEIK_HOOK_PATH}}\"\n"))
    [entry] = load_checked([path], environ={}).entries
    assert entry.spec.endpoint == "/from-env"  # type: ignore[attr-defined]


def test_argo_documents_in_the_same_file_keep_their_environment_rules(tmp_path: Path) -> None:
    argo = ("apiVersion: argoproj.io/v1alpha1\nkind: EventSource\nmetadata:\n  name: plain\nspec:\n  webhook:\n"
            "    e:\n      endpoint: ${HOOK_PATH}\n      port: \"12001\"\n")
    path = tmp_path / "mixed.yaml"
    path.write_text(argo + "---\n" + webhook("    Path: /x\n    Secret: ${hook-secret}\n"))
    config = load_checked([path], environ={"HOOK_PATH": "/env"})
    assert sorted((e.event_source, e.spec.endpoint) for e in config.entries) == [("hook", "/x"),
                                                                                              ("plain", "/env")]
    with pytest.raises(ConfigErrors) as caught:
        load([path], environ={})
    assert [e.render() for e in caught.value.errors] == [f"{path}:8: environment variable ${{HOOK_PATH}} is not set"]
    path.write_text(argo.replace("${HOOK_PATH}", "${orders-db-password}"))
    with pytest.raises(ConfigErrors) as caught:
        load([path], environ={})
    assert "malformed '${orders-db-password}'" in caught.value.errors[0].message


CUSTOM = """\
apiVersion: weik.io/v1
kind: EventSource
metadata:
  name: sensor-feed
spec:
  Type: custom
  EventType: com.example.readings
  EventSource: lab
  Parameters:
    Implementation: feed.py
    DeviceId: d-1
    ApiKey: ${feed-key}
  Requirements:
    pyserial-not-installed-here: ">=3.5"
"""


def test_a_missing_requirement_exits_2_naming_the_package_and_the_pip_command(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "feed.py").write_text("async def events(params):\n    yield {}\n")
    path = tmp_path / "custom.yaml"
    path.write_text(CUSTOM)
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert (f"{path}:14: spec.Requirements.pyserial-not-installed-here: requirement "
            "pyserial-not-installed-here>=3.5 is not installed: run pip install 'pyserial-not-installed-here>=3.5'"
            ) in err
    assert "Traceback" not in err


def test_a_custom_source_translates_with_secret_parameters(tmp_path: Path) -> None:
    (tmp_path / "feed.py").write_text("async def events(params):\n    yield {}\n")
    path = tmp_path / "custom.yaml"
    path.write_text(CUSTOM.replace("    pyserial-not-installed-here: \">=3.5\"\n", "    pydantic: \">=2\"\n"))
    [entry] = load_checked([path], environ={}).entries
    spec: Any = entry.spec
    assert (entry.kind, spec.implementation, spec.parameters) == ("python", str(tmp_path / "feed.py"),
                                                                  {"DeviceId": "d-1"})
    assert {k: (v.name, v.key) for k, v in spec.secret_parameters.items()} == {"ApiKey": ("feed-key", "value")}
    assert spec.requirements == {"pydantic": ">=2"}


@pytest.mark.parametrize("source,message", [
    ("async def other(params):\n    yield 1\n", "defines no function events(params)"),
    ("async def events(params)\n    yield 1\n", ":1: expected ':'"),
])
def test_a_bad_implementation_is_refused_at_load(tmp_path: Path, source: str, message: str) -> None:
    (tmp_path / "feed.py").write_text(source)
    text = CUSTOM.replace("  Requirements:\n    pyserial-not-installed-here: \">=3.5\"\n", "")
    [problem] = problems(tmp_path, text)
    assert problem.startswith("F:10: spec.Parameters.Implementation: implementation ") and message in problem


# ---- the entry options (sources/eventshape.py) ----------------------------------------------------------------

def test_dress_sets_the_type_the_origin_extensions_and_lifts_variables() -> None:
    event = CloudEvent(id="1", source="orders-hook", type="webhook", subject="orders-hook",
                       datacontenttype="application/json", data=b'{"order":{"id":7},"n":1}')
    dressed = dress(event, CloudEventAttributes(type="com.x.created", source="shop", subject="/orders"),
                    [Variable(source_column="order.id", target_variable="OrderId"),
                     Variable(source_column="missing", target_variable="Gone")])
    assert (dressed.source, dressed.subject, dressed.type) == ("orders-hook", "orders-hook", "com.x.created")
    assert dressed.extensions == {"originsource": "shop", "originsubject": "/orders"}
    assert json.loads(dressed.data or b"") == {"order": {"id": 7}, "n": 1, "variables": {"OrderId": 7}}


async def test_a_transform_that_raises_or_hangs_fails_only_its_event() -> None:
    raising = Transform("def transform(p):\n    raise KeyError('total')\n")
    with pytest.raises(TransformError, match="transform raised KeyError"):
        await raising({})
    hanging = Transform("import time\ndef transform(p):\n    time.sleep(0.5)\n    return p\n", timeout=0.1)
    started = time.monotonic()
    with pytest.raises(TransformError, match=r"did not return within 0\.1s"):
        await hanging({})
    assert time.monotonic() - started < 0.4
    not_json = Transform("def transform(p):\n    return {1, 2}\n")
    with pytest.raises(TransformError, match="not JSON"):
        await not_json({})
    good = Transform("def transform(p):\n    return {'n': p['n'] * 2}\n")
    assert await good({"n": 2}) == b'{"n":4}'
    for t in (raising, hanging, not_json, good):
        t.close()


# ---- Argo's slack kind, served by a real webhook server on a memory bus ----------------------------------------

SLACK_SECRET = "slack-signing-secret"


@asynccontextmanager
async def slack_server() -> AsyncIterator[tuple[str, list[CloudEvent]]]:
    port = free_port()
    bus = MemoryBus()
    await bus.start()
    published: list[CloudEvent] = []

    async def publish(event: CloudEvent) -> None:
        await publish_event(bus, event)
        published.append(event)

    spec = SlackEventSource.model_validate({"webhook": {"endpoint": "/slack", "port": port},
                                            "signingSecret": {"name": "slack", "key": "signingSecret"}})
    secrets = Secrets(None, {"SENSORIUM_SECRET_SLACK_SIGNINGSECRET": SLACK_SECRET})
    server = WebhookServer([slack_endpoint("slack", "chat", spec)], publish, secrets, "127.0.0.1")
    await server.start()
    try:
        yield f"http://127.0.0.1:{port}/slack", published
    finally:
        await server.stop()
        await bus.close()


def slack_signed(body: bytes, content_type: str = "application/json") -> dict[str, str]:
    stamp = str(int(time.time()))
    mac = hmac.new(SLACK_SECRET.encode(), b"v0:" + stamp.encode() + b":" + body, hashlib.sha256).hexdigest()
    return {"Content-Type": content_type, "X-Slack-Request-Timestamp": stamp, "X-Slack-Signature": "v0=" + mac}


async def post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, str]:
    async with aiohttp.ClientSession() as session, session.post(url, data=body, headers=headers) as response:
        return response.status, await response.text()


async def test_slack_answers_the_challenge_and_publishes_the_inner_event() -> None:
    async with slack_server() as (url, published):
        challenge = b'{"token":"x","challenge":"3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P",' \
                    b'"type":"url_verification"}'
        assert await post(url, challenge, slack_signed(challenge)) == (
            200, "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P")
        callback = json.dumps({"type": "event_callback", "team_id": "T1", "event": {
            "type": "message", "channel": "C0OPS", "user": "U0ADA", "text": "deploy api", "ts": "1.2"}}).encode()
        assert await post(url, callback, slack_signed(callback)) == (200, "success")
        assert await post(url, callback.replace(b"deploy", b"delete"), slack_signed(callback)) == (
            401, "unauthorized\n")
        assert (await post(url, callback, {"Content-Type": "application/json"}))[0] == 401
        limited = b'{"type":"app_rate_limited","minute_rate_limited":1518467820}'
        assert await post(url, limited, slack_signed(limited)) == (200, "success")  # not published, as Argo
        interaction = b"payload=" + quote(json.dumps({"type": "block_actions", "user": {"id": "U0ADA"},
                                                      "actions": [{"action_id": "approve"}]})).encode()
        assert await post(url, interaction, slack_signed(interaction, "application/x-www-form-urlencoded")) == (
            200, "success")
        command = b"command=%2Fdeploy&text=api+v2&user_id=U0ADA"
        assert await post(url, command, slack_signed(command, "application/x-www-form-urlencoded")) == (
            200, "success")
    assert [(e.type, e.subject, json.loads(e.data or b"")) for e in published] == [
        ("slack", "chat", {"type": "message", "Data": {"type": "message", "channel": "C0OPS", "user": "U0ADA",
                                                        "text": "deploy api", "ts": "1.2"}}),
        ("slack", "chat", {"type": "block_actions", "user": {"id": "U0ADA"}, "actions": [{"action_id": "approve"}]}),
        ("slack", "chat", {"command": "/deploy", "text": "api v2", "user_id": "U0ADA"})]


def test_the_slack_example_loads_with_its_hook_warning(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    config = load_checked([Path("examples/slack")], environ={})
    assert [(e.kind, e.event_source, e.event_name) for e in config.entries] == [("slack", "slack", "chat")]




def test_only_weik_eventsource_documents_keep_their_placeholders() -> None:
    from sensorium.engine import formats
    from sensorium.engine.config import substitute_env

    text = ("apiVersion: weik.io/v1\nkind: EventSource\nspec: {Parameters: {Secret: ${hook-secret}}}\n---\n"
            "kind: EventSubscription\napiVersion: weik.io/v1alpha1\nspec: {url: ${TARGET_URL}}\n---\n"
            "apiVersion: argoproj.io/v1alpha1\nkind: EventSource\nspec: {url: ${TARGET_URL}}\n")
    out = substitute_env(text, "f.yaml", {"TARGET_URL": "http://t"}, formats.raw_spans(text))
    assert out.count("${hook-secret}") == 1 and out.count("url: http://t") == 2 and "${TARGET_URL}" not in out


def test_placeholders_of_many_documents_are_kept_in_linear_time() -> None:
    """A hostile file of tens of thousands of tiny Weik.io documents (refused later by the document limit) costs
    a linear scan before parsing, not documents x placeholders."""
    from sensorium.engine import formats
    from sensorium.engine.config import substitute_env

    text = "---\napiVersion: weik.io/v1\nkind: EventSource\na: ${x-y}\n" * 60000
    started = time.process_time()
    assert substitute_env(text, "f.yaml", {}, formats.raw_spans(text)) == text
    assert time.process_time() - started < 3  # measured 0.2 s; quadratic would be minutes

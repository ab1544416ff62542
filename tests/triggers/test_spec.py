from __future__ import annotations

from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from sensorium.engine.core.errors import ConfigError
from sensorium.triggers.spec import KIND_ORDER, RetryStrategy, Trigger, TriggerParameterSource

FULL = """
template:
  name: t1
  conditions: "dep1 && (dep2 || dep3)"
  conditionsReset:
    - byTime: {cron: "59 23 * * *", timezone: "America/Los_Angeles"}
  http:
    url: http://host:8090/hello
    method: PUT
    payload:
      - src: {dependencyName: dep1, dataKey: body.a}
        dest: a
      - src: {dependencyName: dep1}
    parameters:
      - src: {dependencyName: dep1, contextKey: subject}
        dest: url
        operation: append
    timeout: 5
    headers: {Content-Type: application/json}
    dynamicHeaders:
      - src: {dependencyName: dep1, jsonPath: "$.id"}
        dest: X-Id
    secureHeaders:
      - name: X-Token
        valueFrom: {secretKeyRef: {name: tok, key: value}}
    basicAuth:
      username: {name: creds, key: user}
      password: {name: creds, key: pass}
    tls: {caCertSecret: {name: tls, key: ca}, insecureSkipVerify: true}
    host: virtual.example
parameters:
  - src: {dependencyName: dep1, dataKey: url, value: "http://fallback"}
    dest: http.url
policy: {status: {allow: [200, "300-399"]}, k8s: {labels: {a: b}}}
retryStrategy: {steps: 3, duration: 10ms, factor: 2.0, jitter: 0.5}
rateLimit: {unit: Minute, requestsPerUnit: 20}
atLeastOnce: true
dlqTrigger:
  template: {name: dlq, log: {intervalSeconds: 20}}
"""


def load(doc: str | dict[str, Any]) -> Trigger:
    return Trigger.model_validate(yaml.safe_load(doc) if isinstance(doc, str) else doc)


def test_full_trigger_parses_with_argo_field_names() -> None:
    t = load(FULL)
    http = t.template.http
    assert http is not None and t.kind() == "http" and t.name == "t1"
    assert http.method == "PUT" and http.timeout == 5 and http.host == "virtual.example"
    assert http.secure_headers is not None and http.secure_headers[0].value_from.secret_key_ref is not None
    assert http.tls is not None and http.tls.insecure_skip_verify
    assert http.payload is not None and http.payload[1].dest == ""
    assert t.policy is not None and t.policy.status is not None and t.policy.status.allow == [200, "300-399"]
    assert t.rate_limit is not None and t.rate_limit.requests_per_unit == 20
    assert t.dlq_trigger is not None and t.dlq_trigger.kind() == "log"
    assert t.backoff().steps == 3 and t.backoff().duration_ns == 10_000_000


def test_defaults() -> None:
    t = load({"template": {"name": "t", "http": {"url": "http://x"}}})
    assert t.template.http is not None
    assert (t.template.http.method, t.template.http.timeout) == ("POST", 60)
    assert t.backoff().steps == 1 and not t.at_least_once


WRITTEN: dict[str, dict[str, Any]] = {"http": {"url": "http://x"},
                                      "nats": {"url": "nats://x", "subject": "s", "payload": []},
                                      "kafka": {"url": "k:9092", "topic": "t", "payload": []}}
"""The least that a kind Sensorium runs needs written under it."""


@pytest.mark.parametrize("kinds,expected", [
    (["log", "http"], "http"), (["email", "log"], "log"), (["k8s", "http"], "k8s"),
    (["custom", "openWhisk"], "openWhisk"), (["azureServiceBus", "kafka"], "azureServiceBus"),
    (["pulsar", "nats"], "pulsar"), (["slack", "custom"], "slack"),
])
def test_kind_resolution_follows_argo_order(kinds: list[str], expected: str) -> None:
    """Two kinds are refused at load; a template rewritten by parameters at run time resolves them as Argo."""
    template: dict[str, Any] = {"name": "t"}
    for kind in kinds:
        template[kind] = WRITTEN.get(kind, {})
    assert Trigger.model_validate({"template": template}, context={"runtime": True}).kind() == expected
    with pytest.raises(ValidationError, match="exactly one trigger type"):
        load({"template": template})


def test_every_argo_kind_parses() -> None:
    for _, key in KIND_ORDER:
        assert load({"template": {"name": "t", key: WRITTEN.get(key, {})}}).kind() == key


def test_unsupported_kind_is_rejected_naming_the_trigger() -> None:
    with pytest.raises(ConfigError, match=r"trigger wf: trigger type argoWorkflow is not supported"):
        load({"template": {"name": "wf", "argoWorkflow": {"operation": "submit"}}}).require_supported(
            ["http", "log"])
    with pytest.raises(ConfigError, match="invalid trigger none, could not find an implementation"):
        load({"template": {"name": "none"}}).require_supported(["http", "log"])
    t = load({"template": {"name": "ok", "http": {"url": "http://u"}},
              "dlqTrigger": {"template": {"name": "d", "slack": {}}}})
    with pytest.raises(ConfigError, match="trigger d: trigger type slack"):
        t.require_supported(["http", "log"])
    assert load({"template": {"name": "ok", "log": {}}}).require_supported(["http", "log"]) == "log"


@pytest.mark.parametrize("bad", [
    {"template": {"name": "t", "http": {"url": "http://u", "method": "HEAD"}}},
    {"template": {"name": "t", "http": {}}},
    {"template": {"http": {"url": "u"}}},
    {"template": {"name": "t", "http": {"url": "http://u", "parameters": [{"src": {"dependencyName": "d"}}]}}},
    {"template": {"name": "t", "http": {"url": "http://u", "dynamicHeaders": [{"src": {"dependencyName": "d"}}]}}},
    {"template": {"name": "t"}, "parameters": [{"src": {"dependencyName": "d"}, "dest": ""}]},
    {"template": {"name": "t"}, "parameters": [{"src": {"dependencyName": "d"}, "dest": "a",
                                                "operation": "merge"}]},
    {"template": {"name": "t"}, "parameters": [{"src": {"value": "v"}, "dest": "a"}]},
    {"template": {"name": "t"}, "policy": {"status": {}}},
    {"template": {"name": "t"}, "policy": {"status": {"allow": ["2xx"]}}},
    {"template": {"name": "t"}, "policy": {"status": {"allow": ["299-200"]}}},
    {"template": {"name": "t"}, "policy": {"status": {"allow": ["200"]}}},
    {"template": {"name": "t"}, "policy": {"status": {"allow": [True]}}},
    {"template": {"name": "t"}, "policy": {"status": {"allow": [42]}}},
    {"template": {"name": "t"}, "retryStrategy": {"duration": "10"}},
    {"template": {"name": "t"}, "retryStrategy": {"duration": "1x"}},
    {"template": {"name": "t"}, "retryStrategy": {"factor": "2"}},
    {"template": {"name": "t"}, "retryStrategy": {"jitter": "0.5"}},
    {"template": {"name": "t"}, "rateLimit": {"requestsPerUnit": 0}},
    {"template": {"name": "t", "conditionsReset": [{}]}},
    {"template": {"name": "t", "unknownKind": {}}},
    {"template": {"name": "t", "http": {"url": "http://u", "secureHeaders": [
        {"name": "X", "valueFrom": {}}]}}},
    {"template": {"name": "t", "http": {"url": "http://u", "timeout": 1.5}}},
])
def test_invalid_documents_are_rejected(bad: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        load(bad)


def test_payload_parameters_may_have_empty_dest() -> None:
    t = load({"template": {"name": "t", "http": {"url": "http://u", "payload": [{"src": {"dependencyName": "d"}}]}}})
    assert t.template.http is not None and t.template.http.payload is not None


def test_only_one_data_selector() -> None:
    with pytest.raises(ValidationError, match="only one of dataKey, jsonPath and jmesPath"):
        TriggerParameterSource.model_validate({"dependencyName": "d", "dataKey": "a", "jmesPath": "a"})
    src = TriggerParameterSource.model_validate({"dependencyName": "d", "contextKey": "id", "jsonPath": "$.a"})
    assert src.json_path == "$.a"


def test_templates_parse_so_files_load() -> None:
    src = TriggerParameterSource.model_validate({"dependencyName": "d", "dataTemplate": "{{ .Input.a }}"})
    assert src.data_template


@pytest.mark.parametrize("fields,steps,duration_ns,factor,jitter", [
    ({}, 5, 1_000_000_000, 1.0, 1.0),
    ({"steps": 0}, 5, 1_000_000_000, 1.0, 1.0),
    ({"steps": 3, "duration": "1.5s"}, 3, 1_500_000_000, 1.0, 1.0),
    ({"duration": 2_000}, 5, 2_000, 1.0, 1.0),
    ({"duration": "1h2m3s4ms5us6ns"}, 5, 3_723_004_005_006, 1.0, 1.0),
    ({"factor": 2, "jitter": 0}, 5, 1_000_000_000, 2.0, 0.0),
])
def test_retry_strategy_defaults(fields: dict[str, Any], steps: int, duration_ns: int, factor: float,
                                 jitter: float) -> None:
    b = RetryStrategy.model_validate(fields).to_backoff()
    assert (b.steps, b.duration_ns, b.factor, b.jitter) == (steps, duration_ns, factor, jitter)


def test_runtime_context_skips_load_time_checks() -> None:
    doc = {"template": {"name": "t", "http": {"url": "http://u", "method": "HEAD"}}}
    t = Trigger.model_validate(doc, context={"runtime": True})
    assert t.template.http is not None and t.template.http.method == "HEAD"


NATS = {"url": "nats://127.0.0.1:4222", "subject": "orders.created",
        "payload": [{"src": {"dependencyName": "d", "dataKey": "id"}, "dest": "id"}]}


def problems(kind: str, written: dict[str, Any], **changes: Any) -> list[str]:
    """What loading a `kind` trigger of `written` with `changes` (None: the key removed) refuses, as
    `field.path: message` lines."""
    spec = {key: value for key, value in {**written, **changes}.items() if value is not None}
    try:
        load({"template": {"name": "t", kind: spec}})
    except ValidationError as exc:
        return [f"{'.'.join(map(str, e['loc']))}: {e['msg'].removeprefix('Value error, ')}"
                for e in exc.errors(include_url=False)]
    return []


def nats_problems(**changes: Any) -> list[str]:
    return problems("nats", NATS, **changes)


def test_a_nats_trigger_as_argo_writes_it_loads() -> None:
    assert nats_problems() == []
    assert nats_problems(url="nats://a:4222, tls://b:4443", parameters=[
        {"src": {"dependencyName": "d", "dataKey": "kind"}, "dest": "subject"}]) == []
    t = load({"template": {"name": "t", "nats": {**NATS, "auth": {"token": {"name": "s", "key": "k"}}}}})
    assert t.kind() == "nats" and t.template.nats is not None and t.template.nats.subject == "orders.created"
    for auth in ({"nkey": {"name": "n", "key": "seed"}}, {"credential": {"name": "c", "key": "creds"}},
                 {"basic": {"username": {"name": "b", "key": "u"}, "password": {"name": "b", "key": "p"}}}):
        assert nats_problems(auth=auth) == []


@pytest.mark.parametrize(("changes", "wanted"), [
    ({"url": ""}, "nats server url can't be empty"),
    ({"url": "http://host:4222"}, "URL scheme 'http' is not supported (want nats:// or tls://)"),
    ({"url": "nats://a:4222,nats://"}, "URL has no host"),
    ({"subject": ""}, "nats subject can't be empty"),
    ({"subject": "orders.*"}, "subject 'orders.*' has a wildcard token '*': a message is published to one subject"),
    ({"subject": "orders.>"}, "wildcard token '>'"),
    ({"subject": "a..b"}, "subject 'a..b' has an empty token"),
    ({"subject": "a b"}, "contains whitespace"),
    ({"payload": None}, "payload can't be nil"),
    ({"payload": [{"src": {"dependencyName": "d", "dataKey": "id"}}]},
     "payload[0]: parameter destination can't be empty"),
])
def test_a_nats_trigger_argo_would_refuse_or_sensorium_cannot_run_is_refused(changes: dict[str, Any],
                                                                             wanted: str) -> None:
    problems = nats_problems(**changes)
    assert len(problems) == 1 and wanted in problems[0], problems


KAFKA = {"url": "k1:9092,k2", "topic": "orders",
         "payload": [{"src": {"dependencyName": "d", "dataKey": "id"}, "dest": "id"}]}


def kafka_problems(**changes: Any) -> list[str]:
    return problems("kafka", KAFKA, **changes)


def test_a_kafka_trigger_as_argo_writes_it_loads() -> None:
    assert kafka_problems() == []
    assert kafka_problems(requiredAcks=1, compress=True, flushFrequency=500, partitioningKey="k", version="2.5.0",
                          partition=3, headers={"a": "b"},
                          sasl={"mechanism": "PLAIN", "userSecret": {"name": "s", "key": "u"},
                                "passwordSecret": {"name": "s", "key": "p"}}) == []


@pytest.mark.parametrize(("changes", "wanted"), [
    ({"url": ""}, "broker url must not be empty"),
    ({"url": "k1:99999"}, "kafka broker address 'k1:99999': port 99999 is out of range"),
    ({"topic": ""}, "topic must not be empty"),
    ({"topic": "a/b"}, "topic 'a/b' is not a valid Kafka topic name"),
    ({"payload": None}, "payload must not be empty"),
    ({"requiredAcks": 2}, "requiredAcks must be -1, 0 or 1, got 2"),
    ({"schemaRegistry": {"url": "http://sr", "schemaId": 1}}, "schemaRegistry (Avro) is not supported"),
    ({"payload": [{"src": {"dependencyName": "d", "dataKey": "id"}}]},
     "payload[0]: parameter destination can't be empty"),
])
def test_a_kafka_trigger_argo_would_refuse_or_sensorium_cannot_run_is_refused(changes: dict[str, Any],
                                                                              wanted: str) -> None:
    problems = kafka_problems(**changes)
    assert len(problems) == 1 and wanted in problems[0], problems

"""Kyma Subscriptions (engine/formats/kyma.py): validated in Kyma's words, translated into one Sensor each."""

from __future__ import annotations

from pathlib import Path

import pytest

from sensorium.engine.cli import main
from sensorium.engine.config import ConfigErrors, load
from sensorium.engine.convert import render
from sensorium.engine.core.errors import ConfigError

V1 = """\
apiVersion: eventing.kyma-project.io/v1alpha1
kind: Subscription
metadata: {name: order-created, namespace: shop}
spec:
  filter:
    filters:
      - eventSource: {property: source, type: exact, value: ""}
        eventType: {property: type, type: exact, value: sap.kyma.custom.commerce.order.created.v1}
  protocol: ""
  protocolsettings: {}
  sink: http://orders.shop.svc.cluster.local/hook
"""
V2 = """\
apiVersion: eventing.kyma-project.io/v1alpha2
kind: Subscription
metadata: {name: accounts, namespace: shop}
spec:
  sink: https://accounts.example/in
  source: my-app
  types: [Account.Root.Created.v1, order.created.v1, order.created.v1]
  config: {maxInFlightMessages: "3"}
"""
V2_EXACT = """\
apiVersion: eventing.kyma-project.io/v1alpha2
kind: Subscription
metadata: {name: exact}
spec:
  sink: http://127.0.0.1:9/x
  source: billing
  typeMatching: exact
  types: [com.example.invoice.paid]
"""
ARGO_KYMA = """\
apiVersion: argoproj.io/v1alpha1
kind: EventSource
metadata: {name: kyma}
spec:
  webhook:
    publisher: {port: "12999", endpoint: /publish}
"""



def test_v1alpha1_becomes_a_sensor_with_its_own_consumer_and_a_binary_cloudevent_trigger(tmp_path: Path) -> None:
    config = load([_write(tmp_path, V1)], environ={})
    (sensor, origin), = config.sensors
    assert origin.line == 1
    assert sensor.model_dump(mode="json", by_alias=True, exclude_unset=True)["spec"] == {
        "consumer": {"name": "kyma-order-created", "maxInFlight": 10, "deadLetter": True},
        "dependencies": [{"name": "type", "eventSourceName": "kyma", "eventName": "publisher",
                          "filters": {"context": {"type": "sap.kyma.custom.commerce.order.created.v1"}}}],
        "triggers": [{"template": {"name": "sink", "http": {"url": "http://orders.shop.svc.cluster.local/hook",
                                                            "method": "POST", "cloudEvent": {"mode": "binary"}}},
                      "policy": {"status": {"allow": ["200-299"], "retry": ["100-599"]}},
                      "retryStrategy": {"steps": 8, "duration": "1s", "factor": 2.0, "jitter": 0.1}}],
    }
    assert sensor.metadata.name == "order-created"


def test_v1alpha1_content_mode_structured_is_honoured_and_other_settings_ignored(tmp_path: Path) -> None:
    text = V1.replace("protocolsettings: {}", "protocolsettings: {contentMode: STRUCTURED, exemptHandshake: true, "
                                              "qos: AT_LEAST_ONCE, webhookAuth: {type: oauth2}}")
    (sensor, _), = load([_write(tmp_path, text)], environ={}).sensors
    http = sensor.spec.triggers[0].template.http
    assert http is not None and http.cloud_event is not None and http.cloud_event.mode == "structured"
    with pytest.raises(ConfigErrors, match=r"protocolsettings\.contentMode: input should be 'BINARY' or"):
        load([_write(tmp_path, V1.replace("protocolsettings: {}", "protocolsettings: {contentMode: RAW}"))],
             environ={})


def test_v1alpha2_standard_applies_kymas_type_rules_and_max_in_flight(tmp_path: Path) -> None:
    config = load([_write(tmp_path, V2)], environ={})
    (sensor, _), = config.sensors
    spec = sensor.spec
    assert spec.consumer is not None and (spec.consumer.name, spec.consumer.max_in_flight) == ("kyma-accounts", 3)
    assert [(d.name, d.filters.context.type, d.filters.context.extensions) for d in spec.dependencies
            if d.filters and d.filters.context] == [
        ("type0", "sap.kyma.custom.myapp.AccountRoot.Created.v1", {}),  # legacy events, prefixed CloudEvents
        ("type1", "Account.Root.Created.v1", {"originsource": "my-app"}),  # as the workload publishes it
        ("type2", "sap.kyma.custom.myapp.order.created.v1", {}),
        ("type3", "order.created.v1", {"originsource": "my-app"})]  # duplicates dropped
    assert spec.triggers[0].template.conditions == "type0 || type1 || type2 || type3"


def test_v1alpha2_exact_uses_types_as_written_and_filters_the_producers_source(tmp_path: Path) -> None:
    (sensor, _), = load([_write(tmp_path, V2_EXACT)], environ={}).sensors
    (dep,) = sensor.spec.dependencies
    context = dep.filters.context if dep.filters else None
    assert context is not None
    assert (context.type, context.extensions) == ("com.example.invoice.paid", {"originsource": "billing"})
    prefixed = V2.replace("types: [Account.Root.Created.v1, order.created.v1, order.created.v1]",
                          "types: [sap.kyma.custom.myapp.order.created.v1]")
    (sensor, _), = load([_write(tmp_path, prefixed)], environ={}).sensors
    assert [d.name for d in sensor.spec.dependencies] == ["type"]  # already in the full form: one filter


def test_the_kyma_publisher_is_added_once_unless_one_is_loaded(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KYMA_PUBLISHER_PORT", "18080")
    config = load([_write(tmp_path, V1, V2)], environ={})
    (source, _), = config.sources
    assert source.metadata.name == "kyma"
    assert source.spec.model_extra == {"cloudevents": {"publisher": {"port": "18080", "endpoint": "/publish"}}}
    own = load([_write(tmp_path, V1, ARGO_KYMA)], environ={})
    (kept, _), = own.sources
    assert kept.spec.webhook is not None  # the user's own, nothing added


def test_convert_output_loads_back_to_the_same_documents(tmp_path: Path) -> None:
    original = load([_write(tmp_path, V1, V2, V2_EXACT)], environ={})
    out = tmp_path / "converted.yaml"
    out.write_text(render(original))
    again = load([out], environ={})
    assert [d for d, _ in again.sensors] == [d for d, _ in original.sensors]
    assert [d for d, _ in again.sources] == [d for d, _ in original.sources]


BAD = """\
apiVersion: eventing.kyma-project.io/v1alpha1
kind: Subscription
metadata: {name: bad1}
spec:
  filter:
    filters:
      - eventSource: {property: source, type: exact, value: ""}
        eventType: {property: type, type: prefix, value: sap.kyma.custom.commerce.order.created.v1}
      - eventSource: {property: source, type: exact, value: "commerce"}
        eventType: {property: type, type: exact, value: sap.kyma.custom.commerce.order.created.v1}
  sink: ftp://x
  sinc: 1
---
apiVersion: eventing.kyma-project.io/v1alpha2
kind: Subscription
metadata: {name: bad2}
spec:
  sink: http://x
  source: app
  types:
    - order
    - "!!!.x.v1"
  typeMatching: exact-ish
  config: {maxInFlightMessages: "0", foo: "1"}
---
apiVersion: eventing.kyma-project.io/v1alpha2
kind: Subscription
metadata: {name: bad3}
spec:
  sink: http://x
  types: [a.b.v1]
  config: {maxInFlightMessages: "ten", foo: "1"}
---
apiVersion: eventing.kyma-project.io/v9
kind: Subscription
metadata: {name: bad4}
spec: {}
"""


def test_mistakes_are_file_line_in_kymas_field_names(tmp_path: Path) -> None:
    path = _write(tmp_path, BAD)
    with pytest.raises(ConfigErrors) as caught:
        load([path], environ={})
    got = {e.render().replace(f"{path}:", "") for e in caught.value.errors}
    assert got >= {
        "8: spec.filter.filters[0].eventType.type: filter type 'prefix' is not supported: Kyma's NATS backend "
        "matches only `exact`",
        '9: spec.filter.filters[1].eventSource.value: must be "" on the NATS backend (it filters on the event '
        "type only; the application is part of the type)",
        "11: spec.sink: URL scheme 'ftp' is not supported (want http:// or https://)",
        "12: spec.sinc: unknown field; did you mean sink?",
        "23: spec.typeMatching: input should be 'standard' or 'exact'",
        "29: spec.source: required with typeMatching: standard (the application name Kyma puts into the event "
        "type)",
        "32: spec.config.maxInFlightMessages: must be a positive integer up to 100000, as a string, got 'ten'",
        "32: spec.config.foo: unknown config key (known: maxInFlightMessages)",
        "34: apiVersion: unknown Kyma Subscription version 'eventing.kyma-project.io/v9' (want "
        "eventing.kyma-project.io/v1alpha1 or eventing.kyma-project.io/v1alpha2)",
    }, got


def test_standard_type_problems_name_the_item(tmp_path: Path) -> None:
    bad = V2.replace("types: [Account.Root.Created.v1, order.created.v1, order.created.v1]",
                     'types: [order, "!!!.x.v1"]')
    with pytest.raises(ConfigErrors) as caught:
        load([_write(tmp_path, bad)], environ={})
    assert [e.render().split(": ", 1)[1] for e in caught.value.errors] == [
        "spec.types[0]: type 'order' must be <event>.<version>, e.g. order.created.v1 (typeMatching: standard)",
        "spec.types[1]: event '!!!.x' has a segment with no letter or digit (typeMatching: standard)"]


def test_cli_convert_and_validate_exit_2_without_traceback(tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    path = _write(tmp_path, BAD)
    assert main(["convert", str(path)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and f"{path}:8: spec.filter.filters[0].eventType.type" in err


def _write(tmp_path: Path, *docs: str) -> Path:
    path = tmp_path / "subs.yaml"
    path.write_text("---\n".join(docs))
    return path


def test_sensorium_test_reads_a_subscription_file_like_a_sensor_file() -> None:
    from sensorium.engine.dryrun import load_sensor

    sensor = load_sensor("examples/kyma/subscriptions.yaml", "accounts")
    assert sensor.spec.consumer is not None and sensor.spec.consumer.max_in_flight == 5
    with pytest.raises(ConfigError, match="2 Sensor documents"):
        load_sensor("examples/kyma/subscriptions.yaml")


def test_the_delivery_schedule_variables_are_checked_at_the_subscription(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _write(tmp_path, V1)
    monkeypatch.setenv("SENSORIUM_DELIVERY_ATTEMPTS", "3")
    monkeypatch.setenv("SENSORIUM_DELIVERY_BACKOFF", "250ms")
    trigger = load([path], environ={}).sensors[0][0].spec.triggers[0]
    assert trigger.retry_strategy is not None and (trigger.retry_strategy.steps, trigger.retry_strategy.duration) == (
        3, "250ms")
    monkeypatch.setenv("SENSORIUM_DELIVERY_ATTEMPTS", "0")
    monkeypatch.setenv("SENSORIUM_DELIVERY_BACKOFF", "soon")
    with pytest.raises(ConfigErrors) as caught:
        load([path], environ={})
    assert [e.render() for e in caught.value.errors] == [
        f"{path}:1: $SENSORIUM_DELIVERY_ATTEMPTS must be a whole number of attempts from 1 to 30, got '0'"]
    monkeypatch.setenv("SENSORIUM_DELIVERY_ATTEMPTS", "2")
    with pytest.raises(ConfigErrors) as caught:
        load([path], environ={})
    assert [e.render() for e in caught.value.errors] == [
        f"{path}:1: $SENSORIUM_DELIVERY_BACKOFF must be a Go duration from 1ms to 1h (e.g. 500ms, 2s), got 'soon'"]

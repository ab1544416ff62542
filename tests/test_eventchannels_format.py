"""Weik.io EventChannel and EventSubscription (engine/formats/eventchannels.py): references across files, errors
in Weik.io's words, one Sensor with its own consumer per subscription."""

from __future__ import annotations

from pathlib import Path

import pytest

from sensorium.engine.config import ConfigErrors, load
from sensorium.engine.convert import render

SOURCE = """\
apiVersion: argoproj.io/v1alpha1
kind: EventSource
metadata: {name: orders-db}
spec:
  webhook:
    orders-db: {port: "12345", endpoint: /orders}
"""
TWO_EVENTS = """\
apiVersion: argoproj.io/v1alpha1
kind: EventSource
metadata: {name: shop}
spec:
  webhook:
    a: {port: "12346", endpoint: /a}
    b: {port: "12346", endpoint: /b}
"""
CHANNELS = """\
apiVersion: weik.io/v1alpha1
kind: EventChannel
metadata: {name: ops-hook}
spec: {type: http, parameters: {url: "https://ops.example/hook", method: POST}}
---
apiVersion: weik.io/v1alpha1
kind: EventChannel
metadata: {name: audit}
spec:
  type: http
  parameters: {url: "http://audit.internal/in", method: put, cloudEventMode: binary}
"""
SUBSCRIPTIONS = """\
apiVersion: weik.io/v1alpha1
kind: EventSubscription
metadata: {name: orders-to-ops}
spec: {source: orders-db, channel: ops-hook}
---
apiVersion: weik.io/v1alpha1
kind: EventSubscription
metadata: {name: orders-to-audit}
spec: {source: orders-db, channel: audit}
"""


def write(folder: Path, name: str, *docs: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text("---\n".join(docs))
    return path


def test_each_subscription_is_a_sensor_with_its_own_consumer_across_files(tmp_path: Path) -> None:
    # the subscriptions come first (file order): channels and sources are resolved after every file was read
    write(tmp_path, "a-subscriptions.yaml", SUBSCRIPTIONS)
    write(tmp_path, "b-channels.yaml", CHANNELS)
    write(tmp_path, "c-source.yaml", SOURCE)
    config = load([tmp_path], environ={})
    specs = {s.metadata.name: s.model_dump(mode="json", by_alias=True, exclude_unset=True)["spec"]
             for s, _ in config.sensors}
    assert specs["orders-to-ops"] == {
        "consumer": {"name": "weikio-orders-to-ops", "deadLetter": True},
        "dependencies": [{"name": "event", "eventSourceName": "orders-db", "eventName": "orders-db"}],
        "triggers": [{"template": {"name": "channel", "http": {"url": "https://ops.example/hook", "method": "POST",
                                                               "cloudEvent": {"mode": "structured"}}},
                      "policy": {"status": {"allow": ["200-299"], "retry": ["100-599"]}},
                      "retryStrategy": {"steps": 8, "duration": "1s", "factor": 2.0, "jitter": 0.1}}],
    }
    audit = specs["orders-to-audit"]
    assert audit["consumer"] == {"name": "weikio-orders-to-audit", "deadLetter": True}
    assert audit["triggers"][0]["template"]["http"] == {"url": "http://audit.internal/in", "method": "PUT",
                                                        "cloudEvent": {"mode": "binary"}}
    origins = {s.metadata.name: (Path(o.file).name, o.line) for s, o in config.sensors}
    assert origins == {"orders-to-ops": ("a-subscriptions.yaml", 1), "orders-to-audit": ("a-subscriptions.yaml", 6)}


def test_convert_output_loads_back(tmp_path: Path) -> None:
    original = load([write(tmp_path / "in", "all.yaml", SOURCE, CHANNELS, SUBSCRIPTIONS)], environ={})
    out = tmp_path / "converted.yaml"
    out.write_text(render(original))
    again = load([out], environ={})
    assert [d for d, _ in again.sensors] == [d for d, _ in original.sensors]
    assert len(again.sensors) == 2


BAD = """\
apiVersion: weik.io/v1alpha1
kind: EventChannel
metadata: {name: kafka-out}
spec: {type: kafka, parameters: {topic: x}}
---
apiVersion: weik.io/v1alpha1
kind: EventChannel
metadata: {name: bad-http}
spec:
  type: http
  parameters:
    ur: "https://ops.example/hook"
    method: GET
---
apiVersion: weik.io/v1alpha1
kind: EventSubscription
metadata: {name: typo}
spec:
  source: order-db
  channel: ops-hok
---
apiVersion: weik.io/v1alpha1
kind: EventSubscription
metadata: {name: to-kafka}
spec: {source: orders-db, channel: kafka-out}
---
apiVersion: weik.io/v1alpha1
kind: EventSubscription
metadata: {name: two}
spec:
  source: shop
  channel: ops-hook
  Filter: x
---
apiVersion: weik.io/v1alpha1
kind: EventChannel
metadata: {name: ops-hook}
spec: {type: http, parameters: {url: "ftp://ops.example/hook"}}
"""


def test_mistakes_are_file_line_with_did_you_mean(tmp_path: Path) -> None:
    path = write(tmp_path, "bad.yaml", BAD)
    with pytest.raises(ConfigErrors) as caught:
        load([path, write(tmp_path / "more", "sources.yaml", SOURCE, TWO_EVENTS)], environ={})
    got = [e.render().replace(f"{path}:", "") for e in caught.value.errors]
    assert got == [
        "4: spec.type: channel type 'kafka' is not implemented by Sensorium (implemented: http)",
        "13: spec.parameters.method: input should be 'POST', 'PUT' or 'PATCH'",
        "12: spec.parameters.ur: unknown field; did you mean url?",
        "33: spec.Filter: unknown field",
        "38: spec.parameters.url: URL scheme 'ftp' is not supported (want http:// or https://)",
        "20: spec.channel: no EventChannel named 'ops-hok' is loaded (loaded: bad-http, kafka-out, ops-hook); "
        "did you mean ops-hook?",
        "19: spec.source: no EventSource named 'order-db' is loaded (loaded: orders-db, shop); did you mean "
        "orders-db?",
    ]


def test_a_source_with_several_events_is_refused(tmp_path: Path) -> None:
    sub = SUBSCRIPTIONS.split("---\n")[0].replace("source: orders-db", "source: shop")
    with pytest.raises(ConfigErrors) as caught:
        load([write(tmp_path, "x.yaml", TWO_EVENTS, CHANNELS, sub)], environ={})
    assert [e.render().split(": ", 1)[1] for e in caught.value.errors] == [
        "spec.source: EventSource 'shop' has 2 events (a, b); a subscription needs a source with exactly one"]


def test_a_second_channel_of_one_name_is_refused_at_its_name(tmp_path: Path) -> None:
    first = write(tmp_path, "a.yaml", CHANNELS)
    second = write(tmp_path, "b.yaml", CHANNELS.split("---\n")[0])
    with pytest.raises(ConfigErrors) as caught:
        load([first, second, write(tmp_path, "c.yaml", SOURCE)], environ={})
    assert [e.render() for e in caught.value.errors] == [
        f"{second}:3: metadata.name: duplicate EventChannel name 'ops-hook' (first at {first}:1)"]

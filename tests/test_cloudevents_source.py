"""The `cloudevents` source (a CloudEvents publishing endpoint) in a running engine on a real nats-server, with a
real HTTP sink as the trigger's target: binary, structured, batch and Kyma legacy requests reach a sensor that
filters on an extension attribute, and the trigger's request shows the attributes kept; invalid requests are
answered 400 naming the attribute and publish nothing. The modes run on JetStream and on Kafka."""

from __future__ import annotations

import json
from pathlib import Path

import aiohttp
import pytest

from sensorium.engine.config import ConfigErrors, load
from sensorium.sources.cloudevents import PublishError, binary_event, legacy_event, rfc3339, structured_events
from tests.engine_harness import Engine, free_port, unique, write_config
from tests.fixtures_http import HttpSink

SOURCE = """\
apiVersion: argoproj.io/v1alpha1
kind: EventSource
metadata: {name: %(source)s}
spec:
  cloudevents:
    publisher: {port: %(port)d}
"""

SENSOR = """\
apiVersion: argoproj.io/v1alpha1
kind: Sensor
metadata: {name: %(source)s-sensor}
spec:
  dependencies:
    - name: d
      eventSourceName: %(source)s
      eventName: publisher
      filters: {context: {extensions: {tenant: acme}}}
    - name: legacy
      eventSourceName: %(source)s
      eventName: publisher
      filters: {context: {type: sap.kyma.custom.commerce.order.created.v1}}
  triggers:
    - template:
        name: post
        conditions: d || legacy
        http:
          url: %(sink)s/got
          method: POST
          payload:
            - {src: {dependencyName: d, contextKey: id}, dest: id}
            - {src: {dependencyName: d, contextKey: type}, dest: type}
            - {src: {dependencyName: d, contextKey: time}, dest: time}
            - {src: {dependencyName: d, contextKey: extensions.tenant}, dest: tenant}
            - {src: {dependencyName: d, contextKey: extensions.originsource}, dest: origin}
            - {src: {dependencyName: d, dataKey: "@this", useRawData: true}, dest: data}
            - {src: {dependencyName: legacy, contextKey: id}, dest: id}
            - {src: {dependencyName: legacy, contextKey: type}, dest: type}
            - {src: {dependencyName: legacy, dataKey: "@this", useRawData: true}, dest: data}
"""


def structured(event_id: str, tenant: str = "acme", **more: object) -> dict[str, object]:
    return {"specversion": "1.0", "id": event_id, "source": "shop", "type": "order.created", "tenant": tenant,
            "time": "2026-12-06T10:00:00Z", "datacontenttype": "application/json", "data": {"n": event_id},
            **more}


@pytest.mark.integration
async def test_every_mode_reaches_a_sensor_filtering_on_an_extension(bus_url: str, tmp_path: Path,
                                                                     http_sink: HttpSink) -> None:
    values = {"source": unique("ce"), "port": free_port(), "sink": http_sink.url}
    folder = write_config(tmp_path / "cfg", SOURCE % values, SENSOR % values)
    url = f"http://127.0.0.1:{values['port']}"
    async with Engine(folder, bus_url), aiohttp.ClientSession() as client:
        binary = {"ce-specversion": "1.0", "ce-id": "b-1", "ce-source": "shop", "ce-type": "order.created",
                  "ce-time": "2026-12-06T10:00:00Z", "ce-tenant": "acme", "Content-Type": "application/json"}
        async with client.post(url + "/publish", data=b'{"n": 1,  "x":[1.50]}', headers=binary) as r:
            assert r.status == 204, await r.text()
        async with client.post(url + "/publish", data=json.dumps(structured("s-1")),
                               headers={"Content-Type": "application/cloudevents+json"}) as r:
            assert r.status == 204, await r.text()
        batch = [structured("m-1"), structured("m-2", tenant="globex"), structured("m-3")]
        async with client.post(url + "/publish", data=json.dumps(batch),
                               headers={"Content-Type": "application/cloudevents-batch+json"}) as r:
            assert r.status == 204, await r.text()
        legacy = {"event-type": "order.created", "event-type-version": "v1", "event-time": "2026-01-02T03:04:05Z",
                  "event-id": "l-1", "data": {"order": 7}}
        async with client.post(url + "/commerce/v1/events", json=legacy) as r:
            assert r.status == 200 and await r.json() == {"event-id": "l-1", "status": 200}
        got = await http_sink.wait_for(5, timeout=15)
    bodies = sorted((r.json() for r in got), key=lambda b: b["id"])
    assert bodies == [
        {"id": "b-1", "type": "order.created", "time": "2026-12-06T10:00:00Z", "tenant": "acme", "origin": "shop",
         "data": {"n": 1, "x": [1.50]}},
        {"id": "l-1", "type": "sap.kyma.custom.commerce.order.created.v1", "data": {"order": 7}},
        {"id": "m-1", "type": "order.created", "time": "2026-12-06T10:00:00Z", "tenant": "acme", "origin": "shop",
         "data": {"n": "m-1"}},
        {"id": "m-3", "type": "order.created", "time": "2026-12-06T10:00:00Z", "tenant": "acme", "origin": "shop",
         "data": {"n": "m-3"}},
        {"id": "s-1", "type": "order.created", "time": "2026-12-06T10:00:00Z", "tenant": "acme", "origin": "shop",
         "data": {"n": "s-1"}},
    ]
    binary_body = next(r.body for r in got if r.json()["id"] == "b-1")
    assert b'"data":{"n": 1,  "x":[1.50]}' in binary_body  # the binary body byte for byte


@pytest.mark.integration
async def test_invalid_requests_get_400_naming_the_attribute_and_publish_nothing(
        nats_url: str, tmp_path: Path, http_sink: HttpSink) -> None:
    values = {"source": unique("ce"), "port": free_port(), "sink": http_sink.url}
    folder = write_config(tmp_path / "cfg", SOURCE % values, SENSOR % values)
    url = f"http://127.0.0.1:{values['port']}"
    structured_type = {"Content-Type": "application/cloudevents+json"}
    cases: list[tuple[str, bytes, dict[str, str], str]] = [
        ("/publish", json.dumps({k: v for k, v in structured("x").items() if k != "id"}).encode(), structured_type,
         "missing required attribute 'id'"),
        ("/publish", json.dumps({k: v for k, v in structured("x").items() if k != "specversion"}).encode(),
         structured_type, "missing required attribute 'specversion'"),
        ("/publish", json.dumps(structured("x", time="yesterday")).encode(), structured_type,
         "attribute 'time' is not an RFC 3339 timestamp"),
        ("/publish", b"{}", {"ce-specversion": "1.0", "ce-id": "1", "ce-type": "t"},
         "missing required attribute 'source' (header ce-source)"),
        ("/publish", json.dumps([structured("ok"), structured("bad", specversion="0.3")]).encode(),
         {"Content-Type": "application/cloudevents-batch+json"}, "event [1]: unsupported specversion '0.3'"),
        ("/publish", b'{"a": 1}', {"Content-Type": "application/json"}, "not a CloudEvent"),
        ("/commerce/v1/events", json.dumps({"event-type": "order.created", "event-type-version": "v1",
                                            "event-time": "2026-13-40T00:00:00Z", "data": {}}).encode(),
         {"Content-Type": "application/json"}, "field 'event-time' is not an RFC 3339 timestamp"),
    ]
    async with Engine(folder, nats_url), aiohttp.ClientSession() as client:
        for path, body, headers, message in cases:
            async with client.post(url + path, data=body, headers=headers) as r:
                assert r.status == 400, (path, message)
                assert message in await r.text()
        async with client.get(url + "/publish") as r:
            assert r.status == 405
        async with client.post(url + "/publish", data=b"x" * (1024 * 1024 + 1), headers=structured_type) as r:
            assert r.status == 413
        async with client.post(url + "/publish", data=json.dumps(structured("after")), headers=structured_type) as r:
            assert r.status == 204
        got = await http_sink.wait_for(1, timeout=15)
    assert [r.json()["id"] for r in got] == ["after"]  # none of the refused ones (the batch's valid one neither)


def test_decoding_rules() -> None:
    assert rfc3339("2026-01-02T03:04:05.123+01:00") and not rfc3339("2026-02-30T00:00:00Z")
    assert not rfc3339("2026-01-02 03:04:05Z")
    with pytest.raises(PublishError, match="lowercase letters and digits"):
        structured_events(json.dumps(structured("x", **{"Tenant-Id": "a"})).encode(), batch=False)
    event = binary_event({"ce-specversion": "1.0", "ce-id": "1", "ce-source": "a%20b", "ce-type": "t",
                          "ce-note": "caf%C3%A9", "Content-Type": "text/plain"}, b"hi")
    assert (event.source, event.extensions, event.datacontenttype, event.data) == ("a b", {"note": "café"},
                                                                                  "text/plain", b"hi")
    legacy = legacy_event("my-app", b'{"event-type":"Account.Root.Created","event-type-version":"v2",'
                                    b'"event-time":"2026-01-02T03:04:05Z","data":{"a": 1}}')
    assert (legacy.type, legacy.source, legacy.data) == ("sap.kyma.custom.myapp.AccountRoot.Created.v2", "my-app",
                                                         b'{"a": 1}')
    with pytest.raises(PublishError, match="missing required field 'event-type-version'"):
        legacy_event("app", b'{"event-type":"a.b","event-time":"2026-01-02T03:04:05Z"}')


def test_a_port_serves_one_kind_and_a_path_one_entry(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(
        "apiVersion: argoproj.io/v1alpha1\nkind: EventSource\nmetadata: {name: kyma}\nspec:\n"
        "  cloudevents:\n"
        "    publisher: {port: 12977}\n"
        "    other: {port: 12977, endpoint: /other, legacy: false}\n"   # another path on the same port: fine
        "    third: {port: 12977, endpoint: /other, legacy: false}\n"
        "---\n"
        "apiVersion: argoproj.io/v1alpha1\nkind: EventSource\nmetadata: {name: hook}\nspec:\n"
        "  webhook:\n"
        "    x: {port: '12977', endpoint: /x}\n")
    with pytest.raises(ConfigErrors) as caught:
        load([tmp_path])
    assert caught.value.render().replace(str(tmp_path) + "/", "").splitlines() == [
        "a.yaml:8: spec.cloudevents.third: port 12977 path /other is already served by the cloudevents entry "
        "'kyma/other'",
        "a.yaml:15: spec.webhook.x: port 12977 is already served by the cloudevents entry 'kyma/publisher' "
        "(a.yaml:6); each source kind needs ports of its own",
    ]

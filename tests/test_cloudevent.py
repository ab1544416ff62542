"""The CloudEvent codec and the webhook's event data: the bytes Argo Events would produce and keep."""

from __future__ import annotations

import json

import pytest

from sensorium.engine.core.cloudevent import DecodeError, decode_binary, decode_structured, encode_structured
from sensorium.sources.spec import WebhookContext
from sensorium.sources.webhook import Endpoint, canonical_header, event_from_request

ENVELOPE = ('{"specversion":"1.0","id":"5f3c","source":"webhook","type":"webhook","subject":"example",'
            '"datacontenttype":"application/json","time":"2024-07-15T10:00:00.123456789Z","data":%s}')


@pytest.mark.parametrize("data", [
    '{"amount":12.50,"big":1e3,"s":"x\\u003cy"}',
    '{"nested":{"data":{"data":1}},"list":[1,2]}',
    '"a string"',
    '[1, 2 , 3]',
])
def test_structured_data_is_kept_byte_for_byte(data: str) -> None:
    event = decode_structured((ENVELOPE % data).encode())
    assert event.data == data.encode()
    assert event.time == "2024-07-15T10:00:00.123456789Z"  # nanoseconds kept
    assert encode_structured(event) == (ENVELOPE % data).encode()


def test_data_not_last_member_is_still_kept() -> None:
    raw = '{"data": {"a" : 1.0},"specversion":"1.0","id":"1","source":"s","type":"t"}'
    assert decode_structured(raw).data == b'{"a" : 1.0}'


def test_extensions_and_binary_mode() -> None:
    event = decode_structured(b'{"specversion":"1.0","id":"1","source":"s","type":"t","my_ext":"v","n":3}')
    assert dict(event.extensions) == {"my_ext": "v", "n": "3"}
    binary = decode_binary({"ce_specversion": "1.0", "ce_id": "2", "ce_source": "s", "ce_type": "t",
                            "content-type": "application/json"}, b'{"a":1}')
    assert (binary.id, binary.datacontenttype, binary.data) == ("2", "application/json", b'{"a":1}')


@pytest.mark.parametrize("raw,reason", [
    (b"not json", "not JSON"),
    (b"[1]", "must be a JSON object"),
    (b'{"specversion":"1.0","id":"1","type":"t"}', "missing required attribute 'source'"),
    (b'{"specversion":"0.3","id":"1","source":"s","type":"t"}', "unsupported specversion"),
])
def test_not_a_cloudevent(raw: bytes, reason: str) -> None:
    with pytest.raises(DecodeError, match=reason):
        decode_structured(raw)


def _webhook(headers: list[tuple[str, str]], body: bytes, method: str = "POST", query: str = "",
             **context: object) -> dict[str, object]:
    endpoint = Endpoint("hooks", "push", WebhookContext.model_validate({"endpoint": "/push", "port": "1", **context}))
    event = event_from_request(endpoint, method, headers, body, query)
    assert (event.source, event.subject, event.type, event.datacontenttype) == (
        "hooks", "push", "webhook", "application/json")
    assert event.data is not None and len(event.id) == 32
    return {"raw": event.data.decode(), "parsed": json.loads(event.data)}


def test_webhook_data_is_argo_shaped_and_go_encoded() -> None:
    got = _webhook([("x-github-event", "push"), ("Content-Type", "application/json")],
                   b'{ "amount" : 12.50, "note": "a<b" }', metadata={"team": "t1"})
    assert got["raw"] == ('{"header":{"Content-Type":["application/json"],"X-Github-Event":["push"]},'
                          '"body":{"amount":12.50,"note":"a\\u003cb"},"metadata":{"team":"t1"}}')


def test_webhook_non_json_get_and_form_bodies() -> None:
    assert _webhook([], b"plain <text>")["parsed"]["body"] == "plain <text>"  # type: ignore[index]
    assert _webhook([], b"", method="GET", query="a=1&a=2&b=")["parsed"]["body"] == {  # type: ignore[index]
        "a": ["1", "2"], "b": [""]}
    form = _webhook([("Content-Type", "application/x-www-form-urlencoded")], b"x=1&y=two")
    assert form["parsed"]["body"] == {"x": ["1"], "y": ["two"]}  # type: ignore[index]
    assert _webhook([], b"")["parsed"]["body"] is None  # type: ignore[index]


def test_canonical_header_names_like_go() -> None:
    assert [canonical_header(h) for h in ("x-github-event", "CONTENT-TYPE", "x_under", "a b")] == [
        "X-Github-Event", "Content-Type", "X_under", "a b"]

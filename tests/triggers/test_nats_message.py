"""The NATS trigger's message, without a server: what a firing would publish (as `sensorium test` shows it),
parameters applied as Argo applies them (the subject honoured), and server URLs shown without credentials."""

from __future__ import annotations

from typing import Any

import pytest

from sensorium.engine.core.errors import TriggerError
from sensorium.triggers.nats import build_message, printable_url
from sensorium.triggers.spec import Trigger

from .helpers import event

EVENTS = {"d": event(b'{"id":"o-1","kind":"refund","total":9.5}')}


def trigger(nats: dict[str, Any] | None = None, **extra: Any) -> Trigger:
    spec = {"url": "nats://127.0.0.1:4222", "subject": "orders.created",
            "payload": [{"src": {"dependencyName": "d", "dataKey": "id"}, "dest": "id"},
                        {"src": {"dependencyName": "d", "dataKey": "total", "useRawData": True}, "dest": "total"}],
            **(nats or {})}
    return Trigger.model_validate({"template": {"name": "t", "nats": spec}, **extra})


def message(t: Trigger) -> tuple[str, str, bytes]:
    request = build_message(t.template, t.parameters, EVENTS)
    return request.method, request.url, request.body


def test_the_message_a_firing_publishes() -> None:
    assert message(trigger()) == ("PUB", "nats://127.0.0.1:4222/orders.created", b'{"id":"o-1","total":9.5}')


def test_nats_parameters_change_the_subject() -> None:
    t = trigger({"parameters": [{"src": {"dependencyName": "d", "dataKey": "kind"}, "dest": "subject",
                                 "operation": "append"}], "subject": "orders."})
    assert message(t)[1] == "nats://127.0.0.1:4222/orders.refund"


def test_trigger_parameters_rewrite_the_template() -> None:
    t = trigger(parameters=[{"src": {"dependencyName": "d", "dataKey": "kind"}, "dest": "nats.subject"}])
    assert message(t)[1] == "nats://127.0.0.1:4222/refund"


@pytest.mark.parametrize("value", ["a.*", "", "a b", "a..b"])
def test_a_subject_parameters_make_invalid_fails_the_firing(value: str) -> None:
    t = trigger({"parameters": [{"src": {"dependencyName": "d", "value": value}, "dest": "subject"}]})
    with pytest.raises(TriggerError) as caught:
        build_message(t.template, t.parameters, EVENTS)
    assert not caught.value.retryable


def test_server_urls_are_shown_without_credentials() -> None:
    assert printable_url("nats://s3cr3t-token@host:4222") == "nats://host:4222"
    assert printable_url("nats://alice:pa55@a:4222, tls://b") == "nats://a:4222,tls://b"
    assert "pa55" not in message(trigger({"url": "nats://alice:pa55@a:4222"}))[1]

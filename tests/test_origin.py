"""engine.core.origin: the one rule for the producer's `source`/`subject` of a routed event, as the CloudEvents
endpoint, the `cloudEvent:` declaration (Weik.io sources) and the http trigger's `cloudEvent` option apply it."""

from __future__ import annotations

from sensorium.engine.core.cloudevent import CloudEvent
from sensorium.engine.core.origin import declare, published, route
from sensorium.sources.cloudevents import routed
from sensorium.sources.eventshape import CloudEventAttributes, dress
from sensorium.triggers.cloudevent_body import apply


def test_routing_keeps_the_producer_and_delivery_restores_it() -> None:
    sent = CloudEvent(id="1", source="commerce", type="order.created.v1", subject="orders/7",
                      extensions={"tenant": "acme", "originsubject": "forged"})
    stored = routed(sent, "kyma", "publisher")
    assert (stored.source, stored.subject) == ("kyma", "publisher")
    assert dict(stored.extensions) == {"tenant": "acme", "originsource": "commerce", "originsubject": "orders/7"}
    assert published(stored) == CloudEvent(id="1", source="commerce", type="order.created.v1", subject="orders/7",
                                           extensions={"tenant": "acme"})
    no_subject = route(CloudEvent(id="2", source="app", type="t", extensions={"originsubject": "x"}), "kyma", "p")
    assert dict(no_subject.extensions) == {"originsource": "app"}
    assert (published(no_subject).source, published(no_subject).subject) == ("app", "")


def test_a_declaration_follows_the_same_rule() -> None:
    event = CloudEvent(id="3", source="orders-db", type="postgres", subject="orders-db")
    only_subject = dress(event, CloudEventAttributes(subject="/orders"))
    assert dict(only_subject.extensions) == {"originsource": "orders-db", "originsubject": "/orders"}
    assert dress(event, CloudEventAttributes(type="x")).extensions == {}
    both = declare(event, "shop", "/orders")
    headers, _ = apply("binary", both, [])
    assert [h for h in headers if h[0] in ("ce-source", "ce-subject")] == [("ce-source", "shop"),
                                                                           ("ce-subject", "/orders")]
    assert not [h for h in headers if h[0].startswith("ce-origin")]
    assert published(event) is event

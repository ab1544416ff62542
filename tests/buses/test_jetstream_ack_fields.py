"""`ack_fields` reads a JetStream message's stream, stream sequence and delivery count from its reply subject
itself (cheaper than nats-py's `Msg.metadata`); here it must agree with nats-py on every reply nats-py reads."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from nats.aio.msg import Msg
from nats.errors import NotJSMessageError

from sensorium.buses.jetstream.consumer import JetStreamDelivery, ack_fields

TOKEN = st.text(st.characters(codec="ascii", exclude_characters=". *>\r\n\t"), min_size=1, max_size=12)
NUMBER = st.integers(min_value=0, max_value=2**63 - 1).map(str)


def message(reply: str) -> Msg:
    return Msg(_client=None, subject="default.src.evt", reply=reply, data=b"{}", headers=None)  # type: ignore[arg-type]


def expected(reply: str) -> tuple[str, int, int]:
    metadata = message(reply).metadata
    return metadata.stream, metadata.sequence.stream, metadata.num_delivered


@pytest.mark.parametrize("reply", [
    "$JS.ACK.sensorium.sensorium-intake.1.12345.12000.1733500000000000000.55",  # without a domain
    "$JS.ACK._.ACCHASH.sensorium.sensorium-intake.3.77.70.1733500000000000000.0.XyZ",  # no domain ("_"), 12
    "$JS.ACK.hub.ACCHASH.orders.durable.2.9.8.1733500000000000000.4",  # a domain, 11 tokens
    "$JS.ACK.hub.ACCHASH.orders.durable.2.9.8.1733500000000000000.4.r.extra",  # more tokens: still read
])
def test_it_reads_what_nats_py_reads(reply: str) -> None:
    assert ack_fields(message(reply)) == expected(reply)


@given(st.lists(TOKEN, min_size=2, max_size=2), st.lists(NUMBER, min_size=5, max_size=5), st.booleans())
def test_it_agrees_with_nats_py_on_generated_replies(names: list[str], numbers: list[str], domain: bool) -> None:
    stream, consumer = names
    delivered, sseq, cseq, when, pending = numbers
    tail = [stream, consumer, delivered, sseq, cseq, when, pending]
    reply = ".".join(["$JS", "ACK", *(["_", "HASH"] if domain else []), *tail, *(["rnd"] if domain else [])])
    assert ack_fields(message(reply)) == expected(reply)


@pytest.mark.parametrize("reply", ["_INBOX.abc.def", "$JS.ACK.too.short", "$JS.NAK.a.b.1.2.3.4.5",
                                   "$JS.ACK.a.b.c.d.e.f.g.h"])
def test_a_reply_that_is_not_jetstreams_is_refused_as_nats_py_refuses_it(reply: str) -> None:
    with pytest.raises(NotJSMessageError):
        expected(reply)
    with pytest.raises(NotJSMessageError):
        ack_fields(message(reply))


def test_a_delivery_carries_the_fields() -> None:
    delivery = JetStreamDelivery(message("$JS.ACK.sensorium.intake.2.41.40.1733500000000000000.0"))
    assert (delivery.order, delivery.delivery_count, delivery.position) == (41, 2, "default.src.evt seq 41")
    assert delivery.origin == {"subject": "default.src.evt", "stream": "sensorium", "sequence": "41"}

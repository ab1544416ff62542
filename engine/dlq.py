"""Dead letters of the bus: what a sensor does with a message it cannot decode or process (issue 11), or, when its
`spec.consumer.deadLetter` is true, one whose firing failed after the last retry (reason `undeliverable`).

Not the trigger DLQ (`dlqTrigger`, triggers/deadletter.py), which fires another trigger after a trigger failed.
A poison message is stored on the bus's dead-letter subject/topic `sensorium-dlq` (`Bus.publish_dead_letter`)
as a binary-mode CloudEvent whose data is the original message bytes, then acknowledged, so the sensor moves on.

Its attributes (CloudEvents extension names: lowercase letters, at most 20 characters; in the spirit of
Knative's `knativeerrorcode` / `knativeerrordata`):

| attribute | value |
|---|---|
| `id` | derived from the sensor and the bus position: a redelivered poison message keeps its id (JetStream dedup) |
| `source`, `type` | `sensorium/<sensor>`, `io.sensorium.deadletter` |
| `subject` | the original subject (JetStream) or record key (Kafka) |
| `datacontenttype` | `application/octet-stream` (the original bytes, whatever they are) |
| `dlqsensor` | the sensor that gave up on the message |
| `dlqreason` | `undecodable` (not a CloudEvent), `unprocessable` (handling it raised), `undeliverable` (below) |
| `dlqerror` | the one-line error |
| `dlqposition` | the bus position as logs and traces print it: `<subject> seq <n>` / `<topic>[<partition>]@<offset>` |
| `dlqsubject`, `dlqstream`, `dlqsequence` | JetStream: where the message was |
| `dlqkey`, `dlqtopic`, `dlqpartition`, `dlqoffset` | Kafka: where the record was |
| `dlqdelivery` | how many times the bus had delivered it (when the bus says) |
| `dlqevent` | the event's id, when it decoded |
| `dlqtruncated` | the original size, when the body had to be cut to the bus's message limit |
"""

from __future__ import annotations

import re
import uuid

from sensorium.buses.base import Delivery
from sensorium.engine.core.cloudevent import now_rfc3339

UNDECODABLE = "undecodable"
UNPROCESSABLE = "unprocessable"
UNDELIVERABLE = "undeliverable"  # a sensor with `spec.consumer.deadLetter`: its firings failed after the last retry
DEAD_LETTER_TYPE = "io.sensorium.deadletter"
MAX_VALUE = 1024  # characters of one attribute value
_NAMESPACE = uuid.UUID("5e7b0f7c-3c1e-4d59-9c0e-6c2f1d6c0a11")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")


def one_line(text: str, limit: int = MAX_VALUE) -> str:
    """`text` as a header value: control characters (CR, LF, ...) as one space, non-ASCII escaped, at most
    `limit` characters."""
    flat = _CONTROL.sub(" ", text).encode("ascii", "backslashreplace").decode("ascii")
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def dead_letter_id(sensor: str, position: str) -> str:
    return uuid.uuid5(_NAMESPACE, f"{sensor}\n{position}").hex


def dead_letter_attributes(sensor: str, delivery: Delivery, reason: str, error: str,
                           event_id: str | None = None) -> dict[str, str]:
    """The dead letter's CloudEvent attributes for `delivery` (see the module's table)."""
    origin = delivery.origin
    attrs = {"specversion": "1.0", "id": dead_letter_id(sensor, delivery.position),
             "source": f"sensorium/{sensor}", "type": DEAD_LETTER_TYPE,
             "subject": origin.get("subject") or origin.get("key") or "",
             "datacontenttype": "application/octet-stream", "time": now_rfc3339(),
             "dlqsensor": sensor, "dlqreason": reason, "dlqerror": error, "dlqposition": delivery.position}
    attrs.update({f"dlq{name}": value for name, value in origin.items()})
    count = getattr(delivery, "delivery_count", None)
    if isinstance(count, int):
        attrs["dlqdelivery"] = str(count)
    if event_id:
        attrs["dlqevent"] = event_id
    return {name: one_line(value) for name, value in attrs.items() if value != ""}

"""Argo's `stripe` EventSource kind, in receive mode (parts layer): a webhook whose body is a Stripe event, published
as `{"event": <the event>, "metadata": ...}` (Argo's `StripeEventData`).

Argo checks no signature for Stripe; set `webhook.signature` (`type: stripe`, the endpoint's signing secret) to
require `Stripe-Signature` (401 otherwise). `eventFilter` lists the event types published: another type is
answered 200 and not published (Argo answers it 400, which makes Stripe retry it for days). `createWebhook` and
`apiKey` (registration through Stripe's API) are accepted and ignored. The event is the JSON Stripe sent, compacted;
Argo re-encodes it through stripe-go's `Event` struct, which drops fields the struct does not know."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import Field

from sensorium.engine.core.cloudevent import CloudEvent, new_id, now_rfc3339
from sensorium.engine.core.specbase import ArgoModel, KeySelector
from sensorium.engine.goport.jsonenc import marshal, unmarshal
from sensorium.sources.hookdata import HOOK_FIELD, hook_endpoint
from sensorium.sources.spec import WebhookContext
from sensorium.sources.webhook import BodyError, Endpoint, Shape, json_body

__all__ = ["StripeEventSource", "stripe_endpoint"]


class StripeEventSource(ArgoModel):
    """One `spec.stripe.<eventName>` entry (Argo's StripeEventSource), served in receive mode."""

    webhook: WebhookContext = Field(description="Where Stripe delivers: endpoint, port, method, TLS, signature.")
    event_filter: list[str] | None = Field(default=None, description="Stripe event types published (`type`); "
                                           "unset: all.")
    metadata: dict[str, str] | None = Field(default=None, description="Copied into the event data as `metadata`.")
    create_webhook: bool | None = Field(default=None, description=HOOK_FIELD)
    api_key: KeySelector | None = Field(default=None, description=HOOK_FIELD)
    filter: dict[str, Any] | None = Field(default=None, description="Not supported yet; filter in the sensor.")


def _shape(spec: StripeEventSource) -> Shape:
    def shape(endpoint: Endpoint, method: str, headers: Sequence[tuple[str, str]], raw: bytes,
              query: str) -> CloudEvent | None:
        body = json_body(raw)
        if body is None:
            raise BodyError("failed to parse the event: not JSON")
        event, _ = unmarshal(body)
        if not isinstance(event, dict):
            raise BodyError("failed to parse the event: not a JSON object")
        if spec.event_filter is not None and event.get("type") not in spec.event_filter:
            return None
        data = '{"event":' + body
        if spec.metadata:
            data += ',"metadata":' + marshal(spec.metadata)
        return CloudEvent(id=new_id(), source=endpoint.source, type="stripe", subject=endpoint.event,
                          datacontenttype="application/json", time=now_rfc3339(), data=(data + "}").encode())
    return shape


def stripe_endpoint(source: str, event: str, spec: StripeEventSource) -> Endpoint:
    """The webhook endpoint serving one stripe entry."""
    return hook_endpoint("stripe", source, event, spec.webhook, None, _shape(spec))

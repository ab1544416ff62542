"""What Argo's git-provider sources (github, gitlab, bitbucket, bitbucketserver) share, in receive mode (parts
layer): their event data `{"headers": <request headers, as Go's r.Header>, "body": <the payload>, "metadata":
<the entry's metadata, when set>}`, and the one line saying the hook must be configured at the provider."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

from sensorium.engine.core.cloudevent import CloudEvent, new_id, now_rfc3339
from sensorium.engine.goport.jsonenc import marshal
from sensorium.sources.spec import SignatureSpec, WebhookContext
from sensorium.sources.webhook import BodyError, Endpoint, Shape, go_header, json_body

__all__ = ["HOOK_FIELD", "hook_endpoint", "hook_event", "raw_body_shape"]

log = logging.getLogger("sensorium.webhook")


def hook_event(endpoint: Endpoint, kind: str, headers: Sequence[tuple[str, str]], body: str,
               metadata: Mapping[str, str] | None) -> CloudEvent:
    """The CloudEvent of type `kind` whose data is `{"headers", "body" (JSON text), "metadata"}`."""
    data = '{"headers":' + marshal(go_header(headers)) + ',"body":' + body
    if metadata:
        data += ',"metadata":' + marshal(dict(metadata))
    return CloudEvent(id=new_id(), source=endpoint.source, type=kind, subject=endpoint.event,
                      datacontenttype="application/json", time=now_rfc3339(), data=(data + "}").encode())


def raw_body_shape(kind: str, metadata: Mapping[str, str] | None) -> Shape:
    """The shape of a source whose body is the payload as sent (Go's json.RawMessage: compacted, numbers kept);
    a body that is not JSON is refused (400), as Argo's marshalling fails on it."""
    def shape(endpoint: Endpoint, method: str, headers: Sequence[tuple[str, str]], raw: bytes,
              query: str) -> CloudEvent | None:
        body = json_body(raw)
        if body is None:
            raise BodyError(f"{kind} payload is not JSON")
        return hook_event(endpoint, kind, headers, body, metadata)
    return shape


def hook_endpoint(kind: str, source: str, event: str, webhook: WebhookContext, signature: SignatureSpec | None,
                  shape: Shape) -> Endpoint:
    """The webhook endpoint serving one provider entry (its `signature`, when set, replacing the webhook's), and
    the one log line saying Sensorium does not register the hook."""
    context = webhook if signature is None else webhook.model_copy(update={"signature": signature})
    log.warning("%s %s/%s: Sensorium does not register hooks: configure the webhook at the provider to deliver to "
                "port %d, path %s (content type application/json%s)", kind, source, event, context.port,
                context.endpoint, ", signed with the configured secret" if context.signature else "")
    return Endpoint(source, event, context, shape)


HOOK_FIELD = "Registration at the provider only; accepted and ignored (configure the hook at the provider)."
"""The description of the fields Argo uses to register a hook through the provider's API."""

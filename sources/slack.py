"""Argo's `slack` EventSource kind, in receive mode (parts layer): Slack's Events API, interactive components and
slash commands delivered to a webhook.

With `signingSecret` set, every request must carry Slack's `X-Slack-Signature` (`v0=` hex HMAC-SHA256 of
`v0:<X-Slack-Request-Timestamp>:<body>`, timestamp within 300 s; `sources.signature`'s `slack` type), else 401 and
nothing published. What is published, as Argo's slack source does:

- an Events API `url_verification` request is answered with its `challenge` (text/plain) and not published;
- an Events API `event_callback`: the data is Argo's `{"type": <the inner event's type>, "Data": <the inner
  event>}` (slack-go's `EventsAPIInnerEvent`; Argo re-encodes the inner event through slack-go's struct of its
  type, which drops fields the struct lacks: Sensorium keeps it as Slack sent it, compacted);
- another Events API request type (`app_rate_limited`, ...): answered 200, nothing published (as Argo);
- an interactive component (form field `payload`): the data is that JSON payload as sent (Argo re-encodes it
  through slack-go's `InteractionCallback`);
- a slash command (form fields `command`, `text`, ...): the data is the form's fields as a JSON object of strings
  (Argo marshals slack-go's `SlashCommand`, whose JSON names are the form's).

`token` (Slack's deprecated verification token) is accepted and ignored: the signing secret is the check. Setting
up the app at Slack is out of reach here: configure its Request URL to this endpoint (logged once at start).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import parse_qs

from pydantic import Field

from sensorium.engine.core.cloudevent import CloudEvent, new_id, now_rfc3339
from sensorium.engine.core.specbase import ArgoModel, KeySelector
from sensorium.engine.goport.jsonenc import marshal, unmarshal
from sensorium.sources.hookdata import HOOK_FIELD, hook_endpoint
from sensorium.sources.spec import SignatureSpec, WebhookContext
from sensorium.sources.webhook import Answer, BodyError, Endpoint, Shape, json_body

__all__ = ["SlackEventSource", "slack_endpoint"]


class SlackEventSource(ArgoModel):
    """One `spec.slack.<eventName>` entry (Argo's SlackEventSource), served in receive mode."""

    webhook: WebhookContext = Field(description="Where Slack delivers: endpoint, port, method, TLS.")
    signing_secret: KeySelector | None = Field(
        default=None, description="The app's signing secret: every request must carry a valid X-Slack-Signature "
        "(401 otherwise). Unset: requests are not authenticated.")
    token: KeySelector | None = Field(default=None, description=HOOK_FIELD)
    metadata: dict[str, str] | None = Field(default=None, description="Accepted; Argo's slack data carries none.")
    filter: dict[str, Any] | None = Field(default=None, description="Not supported yet; filter in the sensor.")


def _event(endpoint: Endpoint, data: str) -> CloudEvent:
    return CloudEvent(id=new_id(), source=endpoint.source, type="slack", subject=endpoint.event,
                      datacontenttype="application/json", time=now_rfc3339(), data=data.encode())


def _form(raw: bytes) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(raw.decode("utf-8", "replace"), keep_blank_values=True).items()}


def _shape() -> Shape:
    def shape(endpoint: Endpoint, method: str, headers: Sequence[tuple[str, str]], raw: bytes,
              query: str) -> CloudEvent | None:
        content_type = next((v for k, v in headers if k.lower() == "content-type"), "")
        if content_type.startswith("application/x-www-form-urlencoded"):
            form = _form(raw)
            if "payload" in form:  # an interactive component
                payload = json_body(form["payload"].encode())
                if payload is None:
                    raise BodyError("slack interaction payload is not JSON")
                return _event(endpoint, payload)
            if "command" in form:  # a slash command
                return _event(endpoint, marshal(form))
            raise BodyError("slack form is neither an interaction (payload) nor a slash command (command)")
        body = json_body(raw)
        if body is None:
            raise BodyError("slack payload is not JSON")
        outer, _ = unmarshal(body)
        if not isinstance(outer, dict):
            raise BodyError("slack payload is not a JSON object")
        if outer.get("type") == "url_verification":
            challenge = outer.get("challenge")
            if not isinstance(challenge, str):
                raise BodyError("url_verification without a challenge")
            raise Answer(challenge)
        if outer.get("type") == "event_callback":
            inner = outer.get("event")
            if not isinstance(inner, dict):
                raise BodyError("event_callback without an event object")
            return _event(endpoint, marshal({"type": inner.get("type", ""), "Data": inner}))
        return None
    return shape


def slack_endpoint(source: str, event: str, spec: SlackEventSource) -> Endpoint:
    """The webhook endpoint serving one slack entry (checking X-Slack-Signature when `signingSecret` is set)."""
    signature = None if spec.signing_secret is None else SignatureSpec(type="slack", secret=spec.signing_secret)
    return hook_endpoint("slack", source, event, spec.webhook, signature, _shape())

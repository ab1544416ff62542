"""Argo's `github` EventSource kind, in receive mode (parts layer): a webhook whose requests must carry GitHub's
`X-Hub-Signature-256` (when `webhookSecret` is set) and whose event data is Argo's `GithubEventData`:
`{"headers": <request headers>, "body": <payload + X-GitHub-Event + X-GitHub-Delivery>, "metadata": ...}`.

Registering the hook through GitHub's API (`owner`, `repository`, `repositories`, `organizations`, `apiToken`,
`githubApp`, ...) is out of reach here: those fields are accepted and ignored, and the engine logs once at start
that the hook must be configured at GitHub. `events` filters locally: a delivery whose `X-GitHub-Event` is not
listed (and `*` is not) is answered 200 and not published.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import Field

from sensorium.engine.core.cloudevent import CloudEvent
from sensorium.engine.core.specbase import ArgoModel, KeySelector
from sensorium.engine.goport.jsonenc import marshal, unmarshal
from sensorium.sources.hookdata import hook_endpoint, hook_event
from sensorium.sources.spec import SignatureSpec, WebhookContext
from sensorium.sources.webhook import MAX_JSON_DEPTH, BodyError, Endpoint, Shape, json_depth_exceeds

__all__ = ["GithubEventSource", "github_endpoint"]

_HOOK_FIELDS = "Registration at GitHub only; accepted and ignored (configure the hook at GitHub)."


class GithubEventSource(ArgoModel):
    """One `spec.github.<eventName>` entry (Argo's GithubEventSource), served in receive mode."""

    webhook: WebhookContext = Field(description="Where GitHub delivers: endpoint, port, method, TLS.")
    webhook_secret: KeySelector | None = Field(
        default=None, description="The hook's secret: every delivery must carry its X-Hub-Signature-256 (401 "
        "otherwise). Unset: deliveries are not authenticated.")
    events: list[str] = Field(default_factory=list, description="GitHub event names published (`X-GitHub-Event`); "
                              "`*` or empty: all.")
    metadata: dict[str, str] | None = Field(default=None, description="Copied into the event data as `metadata`.")
    id: int | None = Field(default=None, description=_HOOK_FIELDS)
    owner: str | None = Field(default=None, description=_HOOK_FIELDS)
    repository: str | None = Field(default=None, description=_HOOK_FIELDS)
    repositories: list[dict[str, Any]] | None = Field(default=None, description=_HOOK_FIELDS)
    organizations: list[str] | None = Field(default=None, description=_HOOK_FIELDS)
    api_token: KeySelector | None = Field(default=None, description=_HOOK_FIELDS)
    github_app: dict[str, Any] | None = Field(default=None, description=_HOOK_FIELDS)
    active: bool | None = Field(default=None, description=_HOOK_FIELDS)
    insecure: bool | None = Field(default=None, description=_HOOK_FIELDS)
    content_type: str | None = Field(default=None, description=_HOOK_FIELDS)
    delete_hook_on_finish: bool | None = Field(default=None, description=_HOOK_FIELDS)
    github_base_url: str | None = Field(default=None, alias="githubBaseURL", description=_HOOK_FIELDS)
    github_upload_url: str | None = Field(default=None, alias="githubUploadURL", description=_HOOK_FIELDS)
    filter: dict[str, Any] | None = Field(default=None, description="Event source filter: not supported yet; "
                                          "filter in the sensor.")


def _shape(spec: GithubEventSource) -> Shape:
    wanted = set(spec.events)

    def shape(endpoint: Endpoint, method: str, headers: Sequence[tuple[str, str]], raw: bytes,
              query: str) -> CloudEvent | None:
        first = {k.lower(): v for k, v in reversed(headers)}
        kind = first.get("x-github-event", "")
        if wanted and "*" not in wanted and kind not in wanted:
            return None
        if json_depth_exceeds(raw, MAX_JSON_DEPTH):
            raise BodyError(f"JSON body nested deeper than {MAX_JSON_DEPTH} levels")
        try:
            payload, bad = unmarshal(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            raise BodyError("GitHub payload is not JSON (set the hook's content type to application/json)") from None
        if bad is not None:
            raise BodyError(str(bad))
        if not isinstance(payload, dict):
            raise BodyError("GitHub payload is not a JSON object")
        payload["X-GitHub-Event"] = kind
        payload["X-GitHub-Delivery"] = first.get("x-github-delivery", "")
        return hook_event(endpoint, "github", headers, marshal(payload), spec.metadata)

    return shape


def github_endpoint(source: str, event: str, spec: GithubEventSource) -> Endpoint:
    """The webhook endpoint serving one github entry (checking X-Hub-Signature-256 when `webhookSecret` is set)."""
    signature = None if spec.webhook_secret is None else SignatureSpec(type="github", secret=spec.webhook_secret)
    return hook_endpoint("github", source, event, spec.webhook, signature, _shape(spec))

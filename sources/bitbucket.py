"""Argo's `bitbucket` (Bitbucket Cloud) EventSource kind, in receive mode (parts layer): a webhook whose event data
is `{"headers", "body": <the payload as sent>, "metadata"}`. Argo checks no signature for Bitbucket Cloud; set
`webhook.signature` (`type: bitbucket`, X-Hub-Signature) to require one. Hook registration fields are accepted and
ignored (`sources.hookdata`)."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from sensorium.engine.core.specbase import ArgoModel
from sensorium.sources.hookdata import HOOK_FIELD, hook_endpoint, raw_body_shape
from sensorium.sources.spec import WebhookContext
from sensorium.sources.webhook import Endpoint

__all__ = ["BitbucketEventSource", "bitbucket_endpoint"]


class BitbucketEventSource(ArgoModel):
    """One `spec.bitbucket.<eventName>` entry (Argo's BitbucketEventSource), served in receive mode."""

    webhook: WebhookContext = Field(description="Where Bitbucket delivers: endpoint, port, method, TLS, signature.")
    metadata: dict[str, str] | None = Field(default=None, description="Copied into the event data as `metadata`.")
    auth: dict[str, Any] | None = Field(default=None, description=HOOK_FIELD)
    owner: str | None = Field(default=None, description=HOOK_FIELD)
    project_key: str | None = Field(default=None, description=HOOK_FIELD)
    repository_slug: str | None = Field(default=None, description=HOOK_FIELD)
    repositories: list[dict[str, Any]] | None = Field(default=None, description=HOOK_FIELD)
    events: list[str] | None = Field(default=None, description=HOOK_FIELD)
    delete_hook_on_finish: bool | None = Field(default=None, description=HOOK_FIELD)
    filter: dict[str, Any] | None = Field(default=None, description="Not supported yet; filter in the sensor.")


def bitbucket_endpoint(source: str, event: str, spec: BitbucketEventSource) -> Endpoint:
    """The webhook endpoint serving one bitbucket entry."""
    return hook_endpoint("bitbucket", source, event, spec.webhook, None, raw_body_shape("bitbucket", spec.metadata))

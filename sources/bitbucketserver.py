"""Argo's `bitbucketserver` EventSource kind, in receive mode (parts layer): a webhook whose deliveries must carry
Bitbucket Server's `X-Hub-Signature` (`sha256=` hex HMAC of the body with `webhookSecret`, when set; 401
otherwise) and whose event data is `{"headers", "body": <the payload as sent>, "metadata"}`. Hook registration
fields are accepted and ignored (`sources.hookdata`); Argo's `oneEventPerChange` splitting is not done."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from sensorium.engine.core.specbase import ArgoModel, KeySelector
from sensorium.sources.hookdata import HOOK_FIELD, hook_endpoint, raw_body_shape
from sensorium.sources.spec import SignatureSpec, WebhookContext
from sensorium.sources.webhook import Endpoint

__all__ = ["BitbucketServerEventSource", "bitbucketserver_endpoint"]

_ONE_EVENT = "Accepted and ignored: each delivery is one event."


class BitbucketServerEventSource(ArgoModel):
    """One `spec.bitbucketserver.<eventName>` entry (Argo's BitbucketServerEventSource), served in receive mode."""

    webhook: WebhookContext = Field(description="Where Bitbucket Server delivers: endpoint, port, method, TLS.")
    webhook_secret: KeySelector | None = Field(default=None, description="The hook's secret: every delivery must "
                                               "carry its X-Hub-Signature (401 otherwise).")
    metadata: dict[str, str] | None = Field(default=None, description="Copied into the event data as `metadata`.")
    project_key: str | None = Field(default=None, description=HOOK_FIELD)
    repository_slug: str | None = Field(default=None, description=HOOK_FIELD)
    projects: list[str] | None = Field(default=None, description=HOOK_FIELD)
    repositories: list[dict[str, Any]] | None = Field(default=None, description=HOOK_FIELD)
    events: list[str] | None = Field(default=None, description=HOOK_FIELD)
    skip_branch_refs_changed_on_open_pr: bool | None = Field(default=None, alias="skipBranchRefsChangedOnOpenPR",
                                                             description=_ONE_EVENT)
    one_event_per_change: bool | None = Field(default=None, description=_ONE_EVENT)
    check_interval: str | None = Field(default=None, description=HOOK_FIELD)
    access_token: KeySelector | None = Field(default=None, description=HOOK_FIELD)
    bitbucketserver_base_url: str | None = Field(default=None, alias="bitbucketserverBaseURL", description=HOOK_FIELD)
    delete_hook_on_finish: bool | None = Field(default=None, description=HOOK_FIELD)
    tls: dict[str, Any] | None = Field(default=None, description=HOOK_FIELD)
    filter: dict[str, Any] | None = Field(default=None, description="Not supported yet; filter in the sensor.")


def bitbucketserver_endpoint(source: str, event: str, spec: BitbucketServerEventSource) -> Endpoint:
    """The webhook endpoint serving one bitbucketserver entry."""
    signature = None if spec.webhook_secret is None else SignatureSpec(type="bitbucket", secret=spec.webhook_secret)
    return hook_endpoint("bitbucketserver", source, event, spec.webhook, signature,
                         raw_body_shape("bitbucketserver", spec.metadata))

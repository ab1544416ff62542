"""Argo's `gitlab` EventSource kind, in receive mode (parts layer): a webhook whose deliveries must carry
`X-Gitlab-Token` equal to `secretToken` (when set; 401 otherwise) and whose event data is Argo's
`GitLabEventData`: `{"headers", "body": <the payload as sent>, "metadata"}`. Hook registration fields are accepted
and ignored (`sources.hookdata`)."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from sensorium.engine.core.specbase import ArgoModel, KeySelector
from sensorium.sources.hookdata import HOOK_FIELD, hook_endpoint, raw_body_shape
from sensorium.sources.spec import SignatureSpec, WebhookContext
from sensorium.sources.webhook import Endpoint

__all__ = ["GitlabEventSource", "gitlab_endpoint"]


class GitlabEventSource(ArgoModel):
    """One `spec.gitlab.<eventName>` entry (Argo's GitlabEventSource), served in receive mode."""

    webhook: WebhookContext = Field(description="Where GitLab delivers: endpoint, port, method, TLS.")
    secret_token: KeySelector | None = Field(default=None, description="The hook's secret token: every delivery "
                                             "must carry it as X-Gitlab-Token (401 otherwise).")
    metadata: dict[str, str] | None = Field(default=None, description="Copied into the event data as `metadata`.")
    project_id: str | None = Field(default=None, alias="projectID", description=HOOK_FIELD)
    projects: list[str] | None = Field(default=None, description=HOOK_FIELD)
    groups: list[str] | None = Field(default=None, description=HOOK_FIELD)
    events: list[str] | None = Field(default=None, description=HOOK_FIELD)
    access_token: KeySelector | None = Field(default=None, description=HOOK_FIELD)
    enable_ssl_verification: bool | None = Field(default=None, alias="enableSSLVerification", description=HOOK_FIELD)
    gitlab_base_url: str | None = Field(default=None, alias="gitlabBaseURL", description=HOOK_FIELD)
    delete_hook_on_finish: bool | None = Field(default=None, description=HOOK_FIELD)
    filter: dict[str, Any] | None = Field(default=None, description="Not supported yet; filter in the sensor.")


def gitlab_endpoint(source: str, event: str, spec: GitlabEventSource) -> Endpoint:
    """The webhook endpoint serving one gitlab entry."""
    signature = None if spec.secret_token is None else SignatureSpec(type="gitlab", secret=spec.secret_token)
    return hook_endpoint("gitlab", source, event, spec.webhook, signature, raw_body_shape("gitlab", spec.metadata))

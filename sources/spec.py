"""The Argo `EventSource` document (YAML boundary). Only `webhook` sources run; other kinds parse and are refused."""

from __future__ import annotations

from typing import Any

from pydantic import Field, field_validator

from sensorium.engine.core.specbase import ArgoModel, KeySelector, check_port

DEFAULT_MAX_PAYLOAD = 1_048_576


class WebhookContext(ArgoModel):
    """One `spec.webhook.<eventName>` entry: an HTTP endpoint whose requests become CloudEvents."""

    endpoint: str = Field(description="URL path, e.g. /example.")
    method: str = Field(default="POST", description="HTTP method the endpoint accepts.")
    port: int = Field(description="TCP port to listen on, 1-65535 (Argo writes it as a string; both work).")
    url: str | None = Field(default=None, description="Kubernetes only (external URL); ignored.")
    auth_secret: KeySelector | None = Field(
        default=None, description="Bearer token the caller must send as `Authorization: Bearer <token>`.")
    server_cert_secret: KeySelector | None = Field(default=None, description="TLS certificate (PEM) to serve with.")
    server_key_secret: KeySelector | None = Field(default=None, description="TLS private key (PEM) to serve with.")
    max_payload_size: int = Field(default=DEFAULT_MAX_PAYLOAD,
                                  description="Largest accepted request body in bytes (at least 1); larger gets 413.")
    metadata: dict[str, str] | None = Field(default=None, description="Copied into the event data as `metadata`.")
    filter: dict[str, Any] | None = Field(default=None, description="Event source filter: not supported yet.")

    @field_validator("endpoint")
    @classmethod
    def _slash(cls, v: str) -> str:
        if not v.startswith("/"):
            raise ValueError("endpoint must start with '/'")
        return v

    @field_validator("port")
    @classmethod
    def _port(cls, v: int) -> int:
        return check_port(v)

    @field_validator("max_payload_size")
    @classmethod
    def _positive(cls, v: int) -> int:
        if v < 1:
            raise ValueError(f"maxPayloadSize must be at least 1 byte, got {v}")
        return v

    @field_validator("method")
    @classmethod
    def _method(cls, v: str) -> str:
        if v.upper() not in ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"):
            raise ValueError(f"unsupported method '{v}'")
        return v.upper()

    @field_validator("filter")
    @classmethod
    def _filter(cls, v: dict[str, Any] | None) -> dict[str, Any] | None:
        if v is not None:
            raise ValueError("event source filters are not supported yet; filter in the sensor instead")
        return v


class EventSourceSpec(ArgoModel):
    """Only `webhook` runs; any other event source type is accepted by the schema and refused at load."""

    model_config = ArgoModel.model_config | {"extra": "allow"}
    webhook: dict[str, WebhookContext] | None = Field(default=None, description="Webhook endpoints by event name.")
    event_bus_name: str = Field(default="default", description="EventBus to publish to.")
    type: str | None = Field(default=None, description="Legacy event source type marker (e.g. \"webhook\"); "
                             "informational.")
    service: dict[str, Any] | None = Field(default=None, description="Kubernetes only; ignored.")
    template: dict[str, Any] | None = Field(default=None, description="Kubernetes only; ignored.")
    replicas: int | None = Field(default=None, description="Kubernetes only; ignored.")

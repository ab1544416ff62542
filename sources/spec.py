"""The Argo `EventSource` document (YAML boundary). Only `webhook` sources run; other kinds parse and are refused."""

from __future__ import annotations

import ipaddress
from typing import Any, Literal

from pydantic import Field, field_validator

from sensorium.engine.core.specbase import ArgoModel, KeySelector, check_port
from sensorium.sources.eventshape import EventShape, check_transform

DEFAULT_MAX_PAYLOAD = 1_048_576


class SignatureSpec(ArgoModel):
    """How a webhook request must be signed (`sources.signature` has each provider's check). A request without a
    valid signature is answered 401 and nothing is published."""

    type: Literal["github", "gitlab", "bitbucket", "stripe", "slack", "shopify", "hmac"] = Field(
        description="Provider whose documented signature scheme to check; `hmac` is configured by the fields below.")
    secret: KeySelector = Field(description="The shared signing secret (never logged).")
    header: str = Field(default="X-Signature", description="`hmac` only: header holding the signature.")
    algorithm: Literal["sha1", "sha256", "sha512"] = Field(default="sha256", description="`hmac` only: hash.")
    encoding: Literal["hex", "base64"] = Field(default="hex", description="`hmac` only: signature encoding.")
    prefix: str = Field(default="", description="`hmac` only: text before the encoded signature, e.g. `sha256=`.")
    tolerance: float = Field(default=300.0, gt=0, description="`stripe`, `slack`: largest age (or skew) of the "
                             "signed timestamp, in seconds.")


class WebhookContext(EventShape):
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
    signature: SignatureSpec | None = Field(default=None, description="Sensorium extension: the signature every "
                                            "request must carry (401 otherwise).")
    allowed_networks: list[str] | None = Field(
        default=None, max_length=1000, description="Sensorium extension: client networks (CIDR, IPv4 or IPv6) "
        "allowed to call; others get 403. Unset: any client.")
    body_as_data: bool = Field(default=False, description="Sensorium extension: the event data is the request "
                               "body itself (JSON), not Argo's `{header, body}` (Weik.io's webhook event).")
    transform_payload: str | None = Field(
        default=None, description="Sensorium extension: Python code defining `transform(payload)`, which reshapes "
        "the JSON body before it becomes the event's (trusted code; 2 s per request; a failure answers 500).")

    @field_validator("transform_payload")
    @classmethod
    def _transform(cls, v: str | None) -> str | None:
        if v is not None:
            check_transform(v)
        return v

    def reshapes(self) -> bool:
        """Whether the Sensorium extensions change the event the request makes (`sources.eventshape`)."""
        return bool(self.body_as_data or self.transform_payload or self.cloud_event or self.variables)

    @field_validator("allowed_networks")
    @classmethod
    def _networks(cls, v: list[str] | None) -> list[str] | None:
        for net in v or ():
            try:
                ipaddress.ip_network(net, strict=False)
            except ValueError:
                raise ValueError(f"allowedNetworks: '{net}' is not a CIDR network (e.g. 10.0.0.0/8, ::1/128)") from None
        return v

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

"""Pydantic base for Argo documents and the small selector types several kinds share (YAML boundary only)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel


class ArgoModel(BaseModel):
    """Argo field names (camelCase) in YAML, snake_case in Python; unknown fields are errors."""

    model_config = ConfigDict(extra="forbid", alias_generator=to_camel, populate_by_name=True, frozen=True)


class KeySelector(ArgoModel):
    """A Kubernetes-style `{name, key}` reference, resolved from the secrets directory or the environment."""

    name: str = Field(description="Secret (or ConfigMap) name: the folder under the secrets directory.")
    key: str = Field(description="Key inside the secret: the file name inside that folder.")
    optional: bool | None = Field(default=None, description="Accepted for Argo compatibility; ignored.")


class TLSConfig(ArgoModel):
    ca_cert_secret: KeySelector | None = Field(default=None, description="CA certificate (PEM) to trust.")
    client_cert_secret: KeySelector | None = Field(default=None, description="Client certificate (PEM).")
    client_key_secret: KeySelector | None = Field(default=None, description="Client private key (PEM).")
    insecure_skip_verify: bool = Field(default=False, description="Do not verify the server certificate.")
    enabled: bool = Field(default=False, description="Use TLS with the system trust store.")

"""The Argo `EventBus` document (YAML boundary): which bus, where, and how its stream or topic is set up."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from sensorium.buses.jetstream.stream import StreamSettings  # the one parser of streamConfig
from sensorium.engine.core.errors import ConfigError
from sensorium.engine.core.specbase import (
    ArgoModel,
    KafkaSASL,
    KeySelector,
    TLSConfig,
    check_brokers,
    check_topic,
    check_url,
    raise_located,
)

JETSTREAM_SCHEMES = ("nats", "tls")


class JetStreamBus(ArgoModel):
    """`spec.jetstream` (Argo's managed server) or `spec.jetstreamExotic` (bring your own server)."""

    url: str | None = Field(default=None, description="nats://host:port of an existing server; "
                            "absent means Sensorium starts an embedded nats-server.")
    access_secret: KeySelector | None = Field(default=None, description="Token, or `user:password`, for the server.")
    stream_config: str | None = Field(default=None, description="YAML string: maxMsgs, maxAge, maxBytes, replicas, "
                                      "duplicates, retention (0 limits|1 interest|2 workqueue), discard (0 old|1 new).")
    tls: TLSConfig | None = Field(default=None, description="TLS settings for the connection.")
    version: str | None = Field(default=None, description="Kubernetes only; ignored.")
    replicas: int | None = Field(default=None, description="Kubernetes only; ignored.")
    settings: str | None = Field(default=None, description="Kubernetes only; ignored.")
    max_payload: str | None = Field(default=None, description="Kubernetes only; ignored.")
    container_template: dict[str, Any] | None = Field(default=None, description="Kubernetes only; ignored.")
    persistence: dict[str, Any] | None = Field(default=None, description="Kubernetes only; ignored.")
    metadata: dict[str, Any] | None = Field(default=None, description="Kubernetes only; ignored.")

    @field_validator("url")
    @classmethod
    def _nats_url(cls, value: str | None) -> str | None:
        if value is not None:
            check_url(value if "://" in value else f"nats://{value}", JETSTREAM_SCHEMES)
        return value

    @field_validator("stream_config")
    @classmethod
    def _stream_config(cls, value: str | None) -> str | None:
        try:
            StreamSettings.from_yaml(value)
        except ConfigError as exc:
            where = exc.field.removeprefix("streamConfig").lstrip(".")
            raise ValueError(f"{where}: {exc.message}" if where else exc.message) from None
        return value


class KafkaConsumerGroup(ArgoModel):
    group_name: str = Field(default="", description="Consumer group; default `sensorium-<sensor name>`.")
    oldest: bool = Field(default=False, description="A new group starts at the oldest record instead of the newest.")
    rebalance_strategy: Literal["range", "sticky", "roundrobin"] = Field(
        default="range", description="Partition assignment strategy.")


class KafkaBus(ArgoModel):
    url: str = Field(description="Comma-separated broker list, host:port[,host:port].")
    topic: str | None = Field(default=None, description="Event topic; default `argo-events`.")
    version: str | None = Field(default=None, description="Kafka protocol version hint (sarama); informational.")
    partitioner: Literal["random", "hash", "roundrobin", "manual"] | None = Field(
        default=None, description="How records are spread over partitions; keyed records use `hash`.")
    tls: TLSConfig | None = Field(default=None, description="TLS settings.")
    sasl: KafkaSASL | None = Field(default=None, description="SASL authentication.")
    consumer_group: KafkaConsumerGroup | None = Field(default=None, description="Consumer group settings.")

    @field_validator("topic")
    @classmethod
    def _topic(cls, value: str | None) -> str | None:
        return check_topic(value) if value is not None else None

    @field_validator("url")
    @classmethod
    def _brokers(cls, value: str) -> str:
        return check_brokers(value, "kafka broker list is empty")


class EventBusSpec(ArgoModel):
    """Exactly one bus kind: jetstream, jetstreamExotic or kafka (nats, NATS Streaming, is refused)."""

    jetstream: JetStreamBus | None = Field(default=None, description="NATS JetStream bus.")
    jetstream_exotic: JetStreamBus | None = Field(default=None, description="NATS JetStream bus you run yourself.")
    kafka: KafkaBus | None = Field(default=None, description="Apache Kafka bus.")
    nats: dict[str, Any] | None = Field(default=None, description="Legacy NATS Streaming: not supported.")

    @field_validator("nats")
    @classmethod
    def _no_stan(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None:
            raise ValueError("EventBus spec.nats (NATS Streaming) is not supported; use jetstream or kafka")
        return value

    @model_validator(mode="after")
    def _one_kind(self) -> EventBusSpec:
        kinds = [key for key, value in (("jetstream", self.jetstream), ("jetstreamExotic", self.jetstream_exotic),
                                        ("kafka", self.kafka)) if value is not None]
        if not kinds:
            raise ValueError("no bus: set one of jetstream, jetstreamExotic or kafka")
        raise_located(((key,), f"an EventBus has exactly one bus kind, got {' and '.join(kinds)}")
                      for key in kinds[1:])
        return self

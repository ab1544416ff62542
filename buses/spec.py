"""The Argo `EventBus` document (YAML boundary): which bus, where, and how its stream or topic is set up."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from engine.specbase import ArgoModel, KeySelector, TLSConfig


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


class KafkaSASL(ArgoModel):
    mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = Field(
        default="PLAIN", description="SASL mechanism.")
    user_secret: KeySelector = Field(description="Secret holding the user name.")
    password_secret: KeySelector = Field(description="Secret holding the password.")


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


class EventBusSpec(ArgoModel):
    jetstream: JetStreamBus | None = Field(default=None, description="NATS JetStream bus.")
    jetstream_exotic: JetStreamBus | None = Field(default=None, description="NATS JetStream bus you run yourself.")
    kafka: KafkaBus | None = Field(default=None, description="Apache Kafka bus.")
    nats: dict[str, Any] | None = Field(default=None, description="Legacy NATS Streaming: not supported.")

"""The connections the message-queue triggers share, one pool per kind, made together and closed together with
the engine (`sensorium run`) or a replay (whose `headers` mark every message it sends)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from sensorium.triggers.nats import NatsClients

if TYPE_CHECKING:
    from sensorium.triggers.kafka import KafkaProducers


class Pools:
    """`nats` (NatsClients) and `kafka` (KafkaProducers, made when first asked for: it loads aiokafka);
    `headers` go with every message of both."""

    def __init__(self, headers: Mapping[str, str] | None = None) -> None:
        self._headers = headers
        self.nats = NatsClients(headers=headers)
        self._kafka: KafkaProducers | None = None

    @property
    def kafka(self) -> KafkaProducers:
        if self._kafka is None:
            from sensorium.triggers.kafka import KafkaProducers

            self._kafka = KafkaProducers(headers=self._headers)
        return self._kafka

    async def close(self) -> None:
        await self.nats.close()
        if self._kafka is not None:
            await self._kafka.close()

    async def __aenter__(self) -> Pools:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

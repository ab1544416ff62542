"""The connections the message-queue triggers share, one pool per kind, made together and closed together with
the engine (`sensorium run`) or a replay (whose `headers` mark every message it sends)."""

from __future__ import annotations

from collections.abc import Mapping

from sensorium.triggers.kafka import KafkaProducers
from sensorium.triggers.nats import NatsClients


class Pools:
    """`nats` (NatsClients) and `kafka` (KafkaProducers); `headers` go with every message of both."""

    def __init__(self, headers: Mapping[str, str] | None = None) -> None:
        self.nats = NatsClients(headers=headers)
        self.kafka = KafkaProducers(headers=headers)

    async def close(self) -> None:
        await self.nats.close()
        await self.kafka.close()

    async def __aenter__(self) -> Pools:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

"""The Kafka bus's security, from its EventBus (`security_from_spec`); what every Kafka client shares is in
`engine.core.kafkaclient`, sarama's hash partitioner in `engine.goport.sarama`."""

from __future__ import annotations

import ssl

from sensorium.buses.spec import KafkaBus as KafkaBusSpec
from sensorium.engine.core.errors import BusError
from sensorium.engine.core.kafkaclient import KafkaSecurity
from sensorium.engine.core.secrets import Secrets
from sensorium.engine.core.tls import client_context


def security_from_spec(spec: KafkaBusSpec, secrets: Secrets) -> KafkaSecurity:
    try:
        context = client_context(spec.tls, secrets) if spec.tls is not None else None
        if spec.sasl is None:
            return KafkaSecurity(ssl_context=context)
        user = secrets.get(spec.sasl.user_secret.name, spec.sasl.user_secret.key)
        password = secrets.get(spec.sasl.password_secret.name, spec.sasl.password_secret.key)
    except (ssl.SSLError, ValueError) as exc:
        raise BusError(f"kafka {spec.url}: TLS settings unusable: {exc}") from None
    except Exception as exc:  # SecretNotFound names the secret, never its value
        raise BusError(f"kafka {spec.url}: {exc}") from None
    return KafkaSecurity(ssl_context=context, sasl_mechanism=spec.sasl.mechanism, username=user,
                         password=password)

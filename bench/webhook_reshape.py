"""`python -m bench.webhook_reshape`: CPU per webhook request of the event a request makes, plain (Argo's data)
against the Sensorium entry options a Weik.io webhook translates into (`bodyAsData`, `cloudEvent`, `variables`)
and with a `transformPayload` (run in its thread; `time.process_time` counts every thread of the process). Best
of 3 rounds of 5,000 requests each; no HTTP, no bus: the cost `sources.webhook.reshape` adds."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from sensorium.sources.eventshape import Transform
from sensorium.sources.spec import WebhookContext
from sensorium.sources.webhook import Endpoint, event_from_request, reshape

BODY = json.dumps({"order": {"id": 41, "total": 250, "customer": {"email": "ada@example.com"},
                             "lines": [{"sku": f"S{i}", "n": i} for i in range(10)]}}).encode()
HEADERS = [("Content-Type", "application/json"), ("User-Agent", "curl/8"), ("X-Signature", "ab" * 32)]
CODE = ('def transform(payload):\n    o = payload["order"]\n'
        '    return {"id": o["id"], "total": o["total"], "customer": o["customer"]["email"]}\n')
OPTIONS: dict[str, Any] = {"bodyAsData": True, "cloudEvent": {"type": "com.example.orders.created", "source": "shop"},
                           "variables": [{"sourceColumn": "order.id", "targetVariable": "OrderId"}]}
VARIANTS: list[tuple[str, dict[str, Any]]] = [
    ("plain (Argo's data)", {}),
    ("bodyAsData + cloudEvent + variables", OPTIONS),
    ("... + transformPayload", {**OPTIONS, "variables": [{"sourceColumn": "id", "targetVariable": "OrderId"}],
                                "transformPayload": CODE}),
]


async def main(rounds: int = 3, requests: int = 5000) -> None:
    for label, options in VARIANTS:
        context = WebhookContext.model_validate({"endpoint": "/orders", "port": 12000, **options})
        endpoint = Endpoint("orders-hook", "orders-hook", context)
        transform = Transform(CODE) if context.transform_payload else None
        best = float("inf")
        for _ in range(rounds):
            started = time.process_time()
            for _ in range(requests):
                event = event_from_request(endpoint, "POST", HEADERS, BODY, "")
                if context.reshapes():
                    event = await reshape(endpoint, event, transform)
            best = min(best, (time.process_time() - started) / requests * 1e6)
        if transform is not None:
            transform.close()
        print(f"{label:40s} {best:7.1f} us CPU per request")


if __name__ == "__main__":
    asyncio.run(main())

"""A custom event source for Sensorium's `python` kind (Weik.io's `custom`): one reading per SampleInterval seconds.

The interface: `async def events(params)` yields payloads; each is stored on the bus before the next is asked for.
Stopping the engine cancels the generator; an exception is logged and the generator restarted with backoff.
A real source would read a device here (blocking calls in `asyncio.to_thread`).
"""

import asyncio
import math
from collections.abc import AsyncIterator
from typing import Any


async def events(params: dict[str, str]) -> AsyncIterator[dict[str, Any]]:
    device = params.get("DeviceId", "thermometer-1")
    interval = float(params.get("SampleInterval", "5"))
    step = 0
    while True:
        celsius = round(21.0 + 4.0 * math.sin(step / 10), 2)
        yield {"deviceId": device, "celsius": celsius, "sample": step}
        step += 1
        await asyncio.sleep(interval)

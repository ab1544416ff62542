"""Child process that runs jq programs for dependency transforms (`python -m sensorium.sensors.jqworker`).

jq runs in C and cannot be interrupted, so the sensor stage sends each program here and kills this process when
it does not answer in time (`sensors.transform`). Protocol: one JSON request per line on stdin,
`{"program": str, "data": <JSON text>}`, one JSON answer per line on stdout:
`{"status": "ok", "value": <first output>}`, `{"status": "empty"}` or `{"status": "error", "message": str}`.
The parent starts it with an empty environment (so jq's `env`/`$ENV` are `{}`, as with gojq in Argo) and this
process caps its own address space.
"""

from __future__ import annotations

import json
import os
import resource
import sys
from functools import lru_cache
from typing import Any

import jq

MAX_ADDRESS_SPACE = 2 * 1024 * 1024 * 1024


@lru_cache(maxsize=256)
def _program(text: str) -> Any:
    return jq.compile(text)


def answer(request: dict[str, Any]) -> dict[str, Any]:
    try:
        program = _program(request["program"])
    except ValueError as exc:
        return {"status": "error", "message": str(exc)}
    try:
        value = next(iter(program.input_text(request["data"])))
    except StopIteration:
        return {"status": "empty"}
    except ValueError as exc:
        return {"status": "error", "message": str(exc)}
    return {"status": "ok", "value": value}


def main() -> None:
    os.environ.clear()  # jq's `env` and `$ENV` must not see the engine's environment (gojq in Argo gives {})
    try:
        resource.setrlimit(resource.RLIMIT_AS, (MAX_ADDRESS_SPACE, MAX_ADDRESS_SPACE))
    except (ValueError, OSError):
        pass
    for line in sys.stdin:
        try:
            reply = answer(json.loads(line))
        except MemoryError:
            reply = {"status": "error", "message": "out of memory"}
        sys.stdout.write(json.dumps(reply) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()

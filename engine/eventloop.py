"""Which asyncio event loop `sensorium run` drives the engine with: uvloop where it is installed (Linux and macOS;
a dependency on Linux), the standard library's loop otherwise or when asked for.

`sensorium run --no-uvloop` or `SENSORIUM_LOOP=asyncio` chooses the standard loop. Only `sensorium run` switches:
everything else (tests on pytest-asyncio's loop, the other commands) keeps the standard loop. The choice is a
loop factory handed to `asyncio.Runner`, so the process-wide event loop policy is never changed.
Measured with `python -m bench.engine --only engine,engine-uvloop` (bench/README.md).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")
ENV = "SENSORIUM_LOOP"
LOOPS = ("uvloop", "asyncio")

LoopFactory = Callable[[], asyncio.AbstractEventLoop]


def loop_factory(no_uvloop: bool = False, env: dict[str, str] | None = None) -> tuple[str, LoopFactory | None]:
    """The loop's name and factory: ("uvloop", uvloop.new_event_loop) unless `no_uvloop`, SENSORIUM_LOOP=asyncio
    or uvloop is not installed; ("asyncio", None) then (None: asyncio.Runner's default loop). An unknown
    SENSORIUM_LOOP value raises ValueError naming the accepted ones."""
    wanted = (os.environ if env is None else env).get(ENV, "").strip().lower() or "uvloop"
    if wanted not in LOOPS:
        raise ValueError(f"{ENV}={wanted!r}: expected one of {', '.join(LOOPS)}")
    if no_uvloop or wanted == "asyncio":
        return "asyncio", None
    try:
        import uvloop
    except ImportError:
        return "asyncio", None
    return "uvloop", uvloop.new_event_loop


def run(main: Coroutine[Any, Any, T], factory: LoopFactory | None) -> T:
    """`asyncio.run(main)` on a loop from `factory` (the standard loop when None)."""
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(main)

"""The cyclic garbage collector while the configuration is loaded and the sensors are set up.

Loading builds millions of objects that live as long as the engine (parsed documents, YAML nodes kept for line
numbers, models, compiled stages). With the collector on, every 700 allocations start a young collection and every
quarter more of long-lived objects a full one, which walks the whole heap built so far: loading 10,000 sensors (50
files) took 6.7 s of CPU with the collector on and 2.7 s with it paused, measured in one process with
`time.process_time()` around `load_checked` (18 full collections). Loading makes little cyclic garbage (about
100,000 of 1.6 million tracked objects with 10,000 sensors, closures mostly), which waits for the next collection:
after a load, or, in `sensorium run`, the one collection after start-up that also freezes what start-up built
(engine.app `_tune_gc`).
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator


@contextlib.contextmanager
def paused() -> Iterator[None]:
    """No automatic collection inside the block; the collector is on again after it if it was on before (a
    block inside another leaves it off). Process-wide: other threads allocating meanwhile are not collected
    either, so blocks are for bounded work such as a load."""
    was_on = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_on:
            gc.enable()


_held = False


def hold() -> None:
    """Stop automatic collection until `release()`: `sensorium run` holds it from before loading until the engine
    has collected and frozen what start-up built (engine.app `_tune_gc`), so the millions of start-up objects
    are walked once instead of at every full collection, and never by a young collection on the way."""
    global _held
    if gc.isenabled():
        gc.disable()
        _held = True


def release() -> None:
    """End what `hold()` began (nothing when it did not disable the collector, or was released already)."""
    global _held
    if _held:
        _held = False
        gc.enable()

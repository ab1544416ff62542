"""The `python` kind's running part without an engine: payloads published in order, each before the next is
asked for; a generator that raises is restarted with backoff; one that ignores its cancellation does not hold
up the stop."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from pathlib import Path

import pytest

from sensorium.engine.core.cloudevent import CloudEvent
from sensorium.engine.core.errors import BusError
from sensorium.engine.core.secrets import Secrets
from sensorium.sources.custom import CustomSource, PythonSourceContext


def source(tmp_path: Path, code: str, **spec: object) -> PythonSourceContext:
    path = tmp_path / "feed.py"
    path.write_text(code)
    return PythonSourceContext.model_validate({"implementation": str(path), **spec})


async def test_payloads_are_published_in_order_and_a_refused_one_is_retried(tmp_path: Path) -> None:
    published: list[CloudEvent] = []
    refusals = [1]

    async def publish(event: CloudEvent) -> None:
        if refusals:
            refusals.pop()
            raise BusError("bus down")
        published.append(event)

    code = "async def events(params):\n    for n in range(3):\n        yield {'n': n, 'who': params['Who']}\n" \
           "    import asyncio\n    await asyncio.Event().wait()\n"
    spec = source(tmp_path, code, parameters={"Who": "w"}, cloudEvent={"type": "com.x"},
                  variables=[{"sourceColumn": "n", "targetVariable": "N"}])
    running = CustomSource([("src", "evt", spec)], publish, Secrets(None, {}))
    await running.start()
    try:
        async with asyncio.timeout(10):
            while len(published) < 3:
                await asyncio.sleep(0.02)
    finally:
        await running.stop()
    assert [json.loads(e.data or b"") for e in published] == [{"n": n, "who": "w", "variables": {"N": n}}
                                                              for n in range(3)]
    assert {(e.source, e.subject, e.type) for e in published} == {("src", "evt", "com.x")}


@pytest.mark.slow
async def test_a_generator_that_ignores_cancellation_does_not_hold_up_the_stop(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    # ignores the first cancellation, cleans up for a second (the test's loop cancels it again at its end)
    code = ("import asyncio\nasync def events(params):\n    yield {}\n    try:\n        await asyncio.sleep(60)\n"
            "    except asyncio.CancelledError:\n        await asyncio.sleep(1)\n")

    async def publish(event: CloudEvent) -> None:
        return None

    running = CustomSource([("src", "stubborn", source(tmp_path, code))], publish, Secrets(None, {}),
                           stop_timeout=0.3)
    await running.start()
    await asyncio.sleep(0.2)
    started = time.monotonic()
    with caplog.at_level(logging.WARNING):
        await running.stop()
    assert time.monotonic() - started < 2
    assert "python source python.src.stubborn: events() did not stop within 0.3s of its cancellation" in caplog.text
    await asyncio.sleep(1.2)  # it ends by itself


def test_requirements_and_implementation_are_checked_at_load(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"requirement nope-not-a-package>=1 is not installed: run pip install "
                                         r"'nope-not-a-package>=1'"):
        source(tmp_path, "async def events(p):\n    yield 1\n", requirements={"nope-not-a-package": ">=1"})
    with pytest.raises(ValueError, match=r"requirements.pydantic: 'latest' is not a version specifier"):
        source(tmp_path, "async def events(p):\n    yield 1\n", requirements={"pydantic": "latest"})
    with pytest.raises(ValueError, match=r"is not met: pydantic .* is installed; run pip install 'pydantic<1'"):
        source(tmp_path, "async def events(p):\n    yield 1\n", requirements={"pydantic": "<1"})

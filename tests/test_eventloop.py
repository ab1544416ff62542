"""`sensorium run`'s event loop choice (engine.eventloop): uvloop by default where installed, the standard loop
with --no-uvloop or SENSORIUM_LOOP=asyncio, a bad SENSORIUM_LOOP refused with exit code 2."""

from __future__ import annotations

import asyncio
import sys

import pytest

from sensorium.engine.cli import main
from sensorium.engine.eventloop import loop_factory, run

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="uvloop is a dependency on Linux only")


@linux_only
def test_default_is_uvloop_and_the_engine_coroutine_runs_on_it() -> None:
    import uvloop

    name, factory = loop_factory(env={})
    assert name == "uvloop"

    async def which() -> type:
        return type(asyncio.get_running_loop())

    assert run(which(), factory) is uvloop.Loop


@pytest.mark.parametrize(("no_uvloop", "env"), [(True, {}), (False, {"SENSORIUM_LOOP": "asyncio"}),
                                                (True, {"SENSORIUM_LOOP": "uvloop"}),
                                                (False, {"SENSORIUM_LOOP": " AsyncIO "})])
def test_standard_loop_when_asked(no_uvloop: bool, env: dict[str, str]) -> None:
    name, factory = loop_factory(no_uvloop, env)
    assert (name, factory) == ("asyncio", None)

    async def which() -> type:
        return type(asyncio.get_running_loop())

    assert run(which(), factory).__module__.startswith("asyncio")


def test_unknown_loop_name_is_refused(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ValueError, match="SENSORIUM_LOOP='tokio': expected one of uvloop, asyncio"):
        loop_factory(env={"SENSORIUM_LOOP": "tokio"})
    monkeypatch.setenv("SENSORIUM_LOOP", "tokio")
    assert main(["run", "no-such-dir"]) == 2
    assert "SENSORIUM_LOOP='tokio': expected one of uvloop, asyncio" in capsys.readouterr().err

"""The markers hold: broker tests are marked at collection, and an unmarked test that starts a process or asks
for a broker fails loudly (tests/conftest.py). Runs pytest in-process on small generated test files."""

from __future__ import annotations

from pathlib import Path

import pytest

CONFTEST = (Path(__file__).parent / "conftest.py").read_text()


@pytest.fixture
def suite(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makeconftest(CONFTEST)
    pytester.makeini("[pytest]\nasyncio_mode = auto\nasyncio_default_fixture_loop_scope = function\n"
                     "markers =\n    integration\n    nats\n    kafka\n")
    pytester.makepyfile(test_sample='''
import subprocess

import pytest

from tests.markers import BUSES


def test_unit():
    assert True


def test_spawns():
    subprocess.run(["true"], check=True)


async def test_spawns_async():
    import asyncio
    await asyncio.create_subprocess_exec("true")


def test_named_broker(nats_url):
    pass


def test_broker_by_getfixturevalue(request):
    request.getfixturevalue("kafka_broker")


@pytest.mark.parametrize("bus", BUSES)
def test_each_bus(bus):
    pass


@pytest.mark.integration
def test_marked():
    pass
''')
    return pytester


def test_unmarked_tests_that_start_a_process_or_a_broker_fail_loudly(suite: pytest.Pytester) -> None:
    result = suite.runpytest_inprocess("-m", "not integration", "-v", "-p", "no:cacheprovider")
    # deselected: the tests using a broker by fixture name or by a BUSES parameter, and the marked one
    result.assert_outcomes(passed=1, failed=3, deselected=4)
    ran = sorted(line.split()[0] for line in result.outlines if line.startswith("test_sample.py::"))
    assert ran == ["test_sample.py::test_broker_by_getfixturevalue", "test_sample.py::test_spawns",
                   "test_sample.py::test_spawns_async", "test_sample.py::test_unit"]
    text = "\n".join(result.outlines)
    assert "test_spawns starts a child process (['true']" in text
    assert "test_spawns_async starts a child process" in text
    assert "test_broker_by_getfixturevalue starts a child process" in text  # the session broker's start
    assert "but is not marked `integration`" in text

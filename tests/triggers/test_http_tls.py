"""TLS options of the HTTP trigger against a real local HTTPS server (certificates made with the openssl CLI)."""

from __future__ import annotations

import shutil
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from aiohttp import web

from sensorium.engine.core.secrets import Secrets
from sensorium.triggers.http import HttpClient, HttpTrigger
from sensorium.triggers.policy import VerdictKind
from sensorium.triggers.spec import Trigger

pytestmark = [pytest.mark.integration,  # makes its certificates with the openssl CLI
              pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl CLI")]


async def _serve(pki: Path, require_client_cert: bool) -> tuple[web.AppRunner, str]:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(pki / "server.pem", pki / "server.key")
    if require_client_cert:
        context.load_verify_locations(pki / "ca.pem")
        context.verify_mode = ssl.CERT_REQUIRED

    async def ok(_: web.Request) -> web.Response:
        return web.Response(status=200)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", ok)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
    await site.start()
    server: Any = site._server
    return runner, f"https://127.0.0.1:{server.sockets[0].getsockname()[1]}/x"


@pytest_asyncio.fixture
async def https_url(pki: Path) -> AsyncIterator[str]:
    runner, url = await _serve(pki, require_client_cert=False)
    yield url
    await runner.cleanup()


@pytest_asyncio.fixture
async def mtls_url(pki: Path) -> AsyncIterator[str]:
    runner, url = await _serve(pki, require_client_cert=True)
    yield url
    await runner.cleanup()


def ref(key: str) -> dict[str, str]:
    return {"name": "tls", "key": key}


async def fire(url: str, secrets: Secrets, tls: dict[str, Any] | None) -> Any:
    http: dict[str, Any] = {"url": url} if tls is None else {"url": url, "tls": tls}
    t = Trigger.model_validate({"template": {"name": "t", "http": http}})
    async with HttpClient() as client:
        return await HttpTrigger(t, client, secrets).fire({})


async def test_ca_cert_is_trusted(https_url: str, tls_secrets: Secrets) -> None:
    assert (await fire(https_url, tls_secrets, {"caCertSecret": ref("ca.pem")})).success


async def test_unknown_ca_fails_retryably(https_url: str, tls_secrets: Secrets) -> None:
    outcome = await fire(https_url, tls_secrets, None)
    assert not outcome.success and outcome.attempts[0].verdict.kind is VerdictKind.RETRYABLE
    assert "certificate" in outcome.error.lower()


async def test_insecure_skip_verify(https_url: str, tls_secrets: Secrets) -> None:
    assert (await fire(https_url, tls_secrets, {"insecureSkipVerify": True})).success


async def test_client_certificate(mtls_url: str, tls_secrets: Secrets) -> None:
    tls = {"caCertSecret": ref("ca.pem"), "clientCertSecret": ref("client.pem"),
           "clientKeySecret": ref("client.key")}
    assert (await fire(mtls_url, tls_secrets, tls)).success
    assert not (await fire(mtls_url, tls_secrets, {"caCertSecret": ref("ca.pem")})).success


@pytest.mark.parametrize("tls,message", [
    ({"clientCertSecret": {"name": "tls", "key": "client.pem"}}, "both of clientCertSecret and clientKeySecret"),
    ({}, "neither of caCertSecret, clientCertSecret and clientKeySecret"),
])
async def test_invalid_tls_config_is_terminal(https_url: str, tls_secrets: Secrets, tls: dict[str, Any],
                                              message: str) -> None:
    outcome = await fire(https_url, tls_secrets, tls)
    assert not outcome.success and message in outcome.error
    assert outcome.attempts[0].verdict.kind is VerdictKind.TERMINAL


async def test_missing_tls_secret_is_retryable(https_url: str, tls_secrets: Secrets) -> None:
    outcome = await fire(https_url, tls_secrets, {"caCertSecret": {"name": "nope", "key": "ca"}})
    assert not outcome.success and outcome.attempts[0].verdict.kind is VerdictKind.RETRYABLE
    assert "failed to get the tls configuration" in outcome.error

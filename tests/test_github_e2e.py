"""examples/github run as a user would: the EventSource and Sensor files, a real nats-server, a GitHub-signed push
delivered over HTTP reaches the trigger's sink; a tampered delivery gets 401 and fires nothing."""

from __future__ import annotations

import hashlib
import hmac
import json
from pathlib import Path

import aiohttp

from tests.engine_harness import Engine, free_port, write_config
from tests.fixtures_http import HttpSink

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "github"
SECRET = (EXAMPLE / "secrets" / "github-webhook" / "secret").read_text()


def push(commit: str) -> bytes:
    return json.dumps({"ref": "refs/heads/main", "after": commit, "pusher": {"name": "octocat"},
                       "repository": {"full_name": "acme/shop"}}).encode()


def signed(body: bytes) -> dict[str, str]:
    signature = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    return {"Content-Type": "application/json", "X-GitHub-Event": "push", "X-GitHub-Delivery": "d-1",
            "X-Hub-Signature-256": signature}


async def test_a_signed_push_deploys_and_a_tampered_one_is_refused(tmp_path: Path, nats_url: str,
                                                                   http_sink: HttpSink) -> None:
    port = free_port()
    source = (EXAMPLE / "github-eventsource.yaml").read_text().replace('port: "12000"', f'port: "{port}"')
    sensor = (EXAMPLE / "sensor.yaml").read_text().replace("http://127.0.0.1:${SINK_PORT:-9000}", http_sink.url)
    folder = write_config(tmp_path / "config", source, sensor)
    url = f"http://127.0.0.1:{port}/push"
    async with Engine(folder, nats_url, secrets_dir=EXAMPLE / "secrets"), aiohttp.ClientSession() as session:
        async with session.post(url, data=push("bad0"), headers=signed(push("cafe"))) as tampered:
            assert tampered.status == 401
        async with session.post(url, data=push("cafe"), headers=signed(push("cafe"))) as good:
            assert (good.status, await good.text()) == (200, "success")
        [request] = await http_sink.wait_for(1, timeout=20)
    assert (request.path, request.json()) == ("/deploy", {"repository": "acme/shop", "commit": "cafe", "by": "octocat"})

"""`sensorium replay --subscription` on the HNS example (examples/hns, translated subscriptions): a real
nats-server holding the producers' stream and the bus, a real HTTP sink. The replay re-delivers the subscription's
envelopes as they were first delivered, marked as replays (`X-Sensorium-Replay`), to that subscription only."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import nats
import pytest

from sensorium.buses.embedded import EmbeddedNats
from tests.engine_harness import Engine
from tests.fixtures_http import HttpSink
from tests.test_replay import sensorium

pytestmark = [pytest.mark.integration, pytest.mark.nats]

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "hns"


async def test_replay_to_an_hns_subscription_redelivers_its_envelopes_marked(
        fresh_nats: EmbeddedNats, http_sink: HttpSink, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = fresh_nats.url
    client = await nats.connect(url)
    js = client.jetstream()
    await js.add_stream(name="hns_ticketing_events", subjects=["ticket.>", "order.>", "mail.>"])
    monkeypatch.setenv("AUDIT_WEBHOOK_URL", f"{http_sink.url}/audit")
    monkeypatch.setenv("MAIL_WEBHOOK_URL", f"{http_sink.url}/mail")
    example = tmp_path / "hns"
    shutil.copytree(EXAMPLE, example)
    try:
        async with Engine(example, url, data_dir=tmp_path / "data"):
            await js.publish("mail.welcome", b'{"to": "ada@example.com"}', headers={"Nats-Msg-Id": "m-1"})
            await js.publish("order.completed", b'{"order": 7}', headers={"Nats-Msg-Id": "o-7"})
            live = await http_sink.wait_for(3, timeout=30)
    finally:
        await client.close()
    first = next(r for r in live if r.path == "/mail")
    assert json.loads(first.body)["message_id"] == "m-1" and first.header("X-Sensorium-Replay") is None
    http_sink.reset()

    code, out, err = await sensorium("replay", str(example), "--bus", url, "--subscription", "mail", "--since", "1h")
    assert code == 0, err
    assert len(http_sink.requests) == 1  # the mail subscription's one envelope; audit-all is not replayed
    again = http_sink.requests[0]
    replay_id = again.header("X-Sensorium-Replay")
    assert replay_id is not None and replay_id.startswith("r-")
    assert (again.method, again.path, again.body) == ("POST", "/mail", first.body)  # the same envelope, byte for byte
    assert again.header("Authorization") == "Bearer dev-secret"
    assert f"replayed {replay_id} to sensor mail: 1 event(s) read, 1 matched, 1 firing(s) fired" in out

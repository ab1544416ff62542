"""The NATS trigger against real nats-servers: the message a subscriber receives, parameters (the subject too),
credentials, a server that is down or comes back, a message too large, and no secret in any outcome or log."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import nats
import nkeys
import pytest
from nats.aio.client import RawCredentials
from nats.aio.msg import Msg
from nats.errors import Error as NatsError

from sensorium.buses.embedded import EmbeddedNats, find_nats_server, free_port
from sensorium.engine.core.secrets import Secrets, env_name
from sensorium.triggers.nats import NatsClients, NatsTrigger, printable_url
from sensorium.triggers.policy import VerdictKind
from sensorium.triggers.spec import Trigger

from .helpers import event

pytestmark = pytest.mark.nats

TOKEN, PASSWORD = "tok-s3cr3t-value", "pa55-w0rd-xyz"
SECRETS = Secrets(environ={env_name("nats", "token"): TOKEN, env_name("nats", "user"): "alice",
                           env_name("nats", "password"): PASSWORD})
EVENTS = {"d": event(b'{"id":"abc","n":7,"kind":"orders"}')}
PAYLOAD = [{"src": {"dependencyName": "d", "dataKey": "id"}, "dest": "id"},
           {"src": {"dependencyName": "d", "dataKey": "n", "useRawData": True}, "dest": "n"}]
FAST = {"steps": 3, "duration": "10ms", "factor": 2.0, "jitter": 0.0}


class NoJitter:
    def random(self) -> float:
        return 0.0


def make(url: str, nats_spec: dict[str, Any] | None = None, **extra: Any) -> Trigger:
    spec = {"url": url, "subject": "out.orders", "payload": PAYLOAD, **(nats_spec or {})}
    return Trigger.model_validate({"template": {"name": "t1", "nats": spec}, **extra})


class Listener:
    """A plain subscriber on a subject: what the trigger's users see."""

    def __init__(self) -> None:
        self.messages: list[Msg] = []
        self.arrived = asyncio.Event()

    async def on(self, msg: Msg) -> None:
        self.messages.append(msg)
        self.arrived.set()


@pytest.fixture
async def clients() -> AsyncIterator[NatsClients]:
    async with NatsClients() as pool:
        yield pool


async def listen(url: str, subject: str, **auth: Any) -> tuple[Any, Listener]:
    nc = await nats.connect(url, **auth)
    listener = Listener()
    await nc.subscribe(subject, cb=listener.on)
    await nc.flush()
    return nc, listener


async def test_the_subscriber_gets_the_payload(nats_url: str, clients: NatsClients) -> None:
    nc, listener = await listen(nats_url, "out.>")
    try:
        outcome = await NatsTrigger(make(nats_url), clients, SECRETS).fire(EVENTS)
        assert outcome.success, outcome.error
        assert outcome.kind == "nats" and outcome.note == "published 18 bytes to out.orders"
        await asyncio.wait_for(listener.arrived.wait(), 5)
        [msg] = listener.messages
        assert msg.subject == "out.orders"
        assert msg.data == b'{"id":"abc","n":7}'
        assert [a.verdict.kind for a in outcome.attempts] == [VerdictKind.SUCCESS]
        assert [(p.dest, r.value) for p, r in outcome.params] == [("id", "abc"), ("n", "7")]
    finally:
        await nc.close()


async def test_parameters_choose_the_subject(nats_url: str, clients: NatsClients) -> None:
    """Argo applies `parameters` and then publishes to the template's subject; Sensorium honours them."""
    nc, listener = await listen(nats_url, "routed.>")
    try:
        trigger = make(nats_url, {"subject": "routed.default", "parameters": [
            {"src": {"dependencyName": "d", "dataKey": "kind"}, "dest": "subject", "operation": "append"}]})
        outcome = await NatsTrigger(trigger, clients, SECRETS).fire(EVENTS)
        assert outcome.success, outcome.error
        await asyncio.wait_for(listener.arrived.wait(), 5)
        assert [m.subject for m in listener.messages] == ["routed.defaultorders"]
    finally:
        await nc.close()


async def test_a_subject_made_invalid_fails_at_once(nats_url: str, clients: NatsClients) -> None:
    trigger = make(nats_url, {"parameters": [{"src": {"dependencyName": "d", "value": "a.*"}, "dest": "subject"}]},
                   retryStrategy=FAST)
    outcome = await NatsTrigger(trigger, clients, SECRETS, rng=NoJitter()).fire(EVENTS)
    assert not outcome.success
    assert len(outcome.attempts) == 1 and outcome.attempts[0].verdict.kind is VerdictKind.TERMINAL
    assert "wildcard" in outcome.error


async def test_a_message_larger_than_the_server_takes_fails_at_once(nats_url: str, clients: NatsClients) -> None:
    big = {"d": event(b'{"n":1,"id":"' + b"x" * (2 * 1024 * 1024) + b'"}')}
    outcome = await NatsTrigger(make(nats_url, retryStrategy=FAST), clients, SECRETS, rng=NoJitter()).fire(big)
    assert not outcome.success and len(outcome.attempts) == 1
    assert "larger than the server's max_payload (1048576 bytes)" in outcome.error


async def test_triggers_on_one_server_share_a_connection(nats_url: str, clients: NatsClients) -> None:
    one, two = NatsTrigger(make(nats_url), clients, SECRETS), NatsTrigger(make(nats_url), clients, SECRETS)
    assert (await one.fire(EVENTS)).success and (await two.fire(EVENTS)).success
    assert len(clients) == 1


@pytest.fixture
async def guarded(tmp_path: Path) -> AsyncIterator[EmbeddedNats]:
    """A server that wants a user name and password."""
    server = EmbeddedNats(tmp_path / "guarded", extra_args=["--user", "alice", "--pass", PASSWORD])
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


async def test_basic_auth_from_secrets(guarded: EmbeddedNats, clients: NatsClients,
                                       caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    nc, listener = await listen(guarded.url, "out.>", user="alice", password=PASSWORD)
    try:
        auth = {"basic": {"username": {"name": "nats", "key": "user"},
                          "password": {"name": "nats", "key": "password"}}}
        outcome = await NatsTrigger(make(guarded.url, {"auth": auth}), clients, SECRETS).fire(EVENTS)
        assert outcome.success, outcome.error
        await asyncio.wait_for(listener.arrived.wait(), 5)
        wrong = Secrets(environ={env_name("nats", "user"): "alice", env_name("nats", "password"): "nope-" + PASSWORD})
        async with NatsClients() as others:
            refused = await NatsTrigger(make(guarded.url, {"auth": auth}, retryStrategy=FAST), others, wrong,
                                        rng=NoJitter()).fire(EVENTS)
        assert not refused.success and len(refused.attempts) == 3
        assert "cannot connect to NATS at nats://127.0.0.1:" in refused.error
        for text in (refused.error, caplog.text, repr(refused)):
            assert PASSWORD not in text
    finally:
        await nc.close()


async def test_token_auth_and_a_token_in_the_url_never_shown(tmp_path: Path, clients: NatsClients,
                                                             caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    server = EmbeddedNats(tmp_path / "token", extra_args=["--auth", TOKEN])
    await server.start()
    try:
        auth = {"token": {"name": "nats", "key": "token"}}
        outcome = await NatsTrigger(make(server.url, {"auth": auth}), clients, SECRETS).fire(EVENTS)
        assert outcome.success, outcome.error
        in_url = server.url.replace("nats://", f"nats://{TOKEN}@")
        assert (await NatsTrigger(make(in_url), clients, SECRETS).fire(EVENTS)).success
        await server.stop()
        gone = await NatsTrigger(make(in_url.replace(str(server.port), str(free_port("127.0.0.1"))),
                                      retryStrategy=FAST), clients, SECRETS, rng=NoJitter()).fire(EVENTS)
        assert not gone.success
        for text in (gone.error, caplog.text, repr(gone), printable_url(in_url)):
            assert TOKEN not in text
    finally:
        await server.stop()


async def test_a_server_that_is_down_is_retried_then_the_firing_fails(clients: NatsClients) -> None:
    url = f"nats://127.0.0.1:{free_port('127.0.0.1')}"
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    outcome = await NatsTrigger(make(url, retryStrategy=FAST), clients, SECRETS, rng=NoJitter(),
                                sleep=sleep).fire(EVENTS)
    assert not outcome.success
    assert [a.verdict.kind for a in outcome.attempts] == [VerdictKind.RETRYABLE] * 3
    assert slept == [0.01, 0.02]
    assert outcome.error.startswith(f"failed after retries: cannot connect to NATS at {url}")


async def test_a_server_that_went_away_and_came_back(tmp_path: Path, clients: NatsClients) -> None:
    """While the server is down an attempt fails (nothing is buffered to be sent late); once it is back the
    shared connection reconnects and the next firing's message arrives."""
    server = EmbeddedNats(tmp_path / "flaky")
    await server.start()
    try:
        trigger = NatsTrigger(make(server.url), clients, SECRETS, timeout=2.0)
        assert (await trigger.fire(EVENTS)).success
        await server.stop()
        down = await trigger.fire(EVENTS)
        assert not down.success and down.attempts[0].verdict.kind is VerdictKind.RETRYABLE
        await server.start()
        nc, listener = await listen(server.url, "out.>")
        try:
            for _ in range(50):
                outcome = await trigger.fire(EVENTS)
                if outcome.success:
                    break
                await asyncio.sleep(0.1)
            assert outcome.success, outcome.error
            await asyncio.wait_for(listener.arrived.wait(), 5)
            assert len(listener.messages) == 1
        finally:
            await nc.close()
    finally:
        await server.stop()


async def test_the_pool_s_headers_go_with_every_message(nats_url: str) -> None:
    """How `sensorium replay` marks its messages, as it marks its HTTP requests."""
    nc, listener = await listen(nats_url, "out.>")
    try:
        async with NatsClients(headers={"X-Sensorium-Replay": "r-0123abcd"}) as marked:
            assert (await NatsTrigger(make(nats_url), marked, SECRETS).fire(EVENTS)).success
        await asyncio.wait_for(listener.arrived.wait(), 5)
        assert listener.messages[0].headers == {"X-Sensorium-Replay": "r-0123abcd"}
    finally:
        await nc.close()


async def test_the_pool_keeps_a_bounded_number_of_connections(nats_url: str) -> None:
    """`parameters` that rewrite `url` cannot open a connection per event: the least recently used one closes."""
    port = nats_url.rsplit(":", 1)[1]
    urls = [nats_url, f"127.0.0.1:{port}", f"nats://localhost:{port}"]
    async with NatsClients(limit=2) as pool:
        for url in urls * 2:
            outcome = await NatsTrigger(make(url), pool, SECRETS).fire(EVENTS)
            assert outcome.success, outcome.error
            assert len(pool) <= 2
        assert len(pool) == 2


@pytest.mark.parametrize("verify_clients", [False, True], ids=["tls", "mutual-tls"])
async def test_tls_from_secrets(pki: Path, tls_secrets: Secrets, tmp_path: Path, verify_clients: bool) -> None:
    """A server that speaks only TLS (and, mutual, wants a client certificate): the trigger's `tls` as for the
    http trigger; without the CA the attempt fails, retryably."""
    args = ["--tls", "--tlscert", str(pki / "server.pem"), "--tlskey", str(pki / "server.key")]
    if verify_clients:
        args += ["--tlsverify", "--tlscacert", str(pki / "ca.pem")]
    server = EmbeddedNats(tmp_path / "tls", extra_args=args)
    await server.start()
    ref = {"name": "tls"}
    tls: dict[str, Any] = {"caCertSecret": {**ref, "key": "ca.pem"}}
    if verify_clients:
        tls |= {"clientCertSecret": {**ref, "key": "client.pem"}, "clientKeySecret": {**ref, "key": "client.key"}}
    url = server.url.replace("nats://", "tls://")
    try:
        async with NatsClients() as pool:
            outcome = await NatsTrigger(make(url, {"tls": tls}), pool, tls_secrets).fire(EVENTS)
            assert outcome.success, outcome.error
            untrusted = await NatsTrigger(make(url), pool, tls_secrets, timeout=3.0).fire(EVENTS)
        assert not untrusted.success and untrusted.attempts[0].verdict.kind is VerdictKind.RETRYABLE
        assert "certificate" in untrusted.error.lower(), untrusted.error
    finally:
        await server.stop()


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def signed_jwt(claims: dict[str, Any], issuer: nkeys.KeyPair) -> str:
    """A NATS JWT (v2) as nsc makes one: `ed25519-nkey`, signed by `issuer`."""
    body = {"jti": "", "iat": int(time.time()), "iss": issuer.public_key.decode(), **claims}
    body["jti"] = base64.b32encode(hashlib.sha256(json.dumps(body).encode()).digest()).decode().rstrip("=")
    signing = f"{_b64(json.dumps({'typ': 'JWT', 'alg': 'ed25519-nkey'}).encode())}.{_b64(json.dumps(body).encode())}"
    return f"{signing}.{_b64(issuer.sign(signing.encode()))}"


def new_key(prefix: int) -> tuple[bytes, nkeys.KeyPair]:
    seed = nkeys.encode_seed(os.urandom(32), prefix)
    return seed, nkeys.from_seed(bytearray(seed))


async def test_nkey_auth_from_a_secret(tmp_path: Path, clients: NatsClients,
                                       caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    seed, user = new_key(nkeys.PREFIX_BYTE_USER)
    conf = tmp_path / "nkey.conf"
    conf.write_text(f'authorization {{ users = [ {{ nkey: "{user.public_key.decode()}" }} ] }}\n')
    server = EmbeddedNats(tmp_path / "nkey", extra_args=["-c", str(conf)])
    await server.start()
    try:
        nc, listener = await listen(server.url, "out.>", nkeys_seed_str=seed.decode())
        auth = {"nkey": {"name": "nats", "key": "seed"}}
        secrets = Secrets(environ={env_name("nats", "seed"): seed.decode() + "\n"})
        try:
            outcome = await NatsTrigger(make(server.url, {"auth": auth}), clients, secrets).fire(EVENTS)
            assert outcome.success, outcome.error
            await asyncio.wait_for(listener.arrived.wait(), 5)
        finally:
            await nc.close()
        bad = Secrets(environ={env_name("nats", "seed"): "SUnot-a-seed"})
        async with NatsClients() as others:
            refused = await NatsTrigger(make(server.url, {"auth": auth}, retryStrategy=FAST), others, bad,
                                        rng=NoJitter()).fire(EVENTS)
        assert not refused.success and len(refused.attempts) == 1
        assert "the nkey secret does not hold an NKey seed" in refused.error
        assert seed.decode() not in caplog.text and "SUnot-a-seed" not in refused.error + caplog.text
    finally:
        await server.stop()


async def test_credentials_file_auth_on_an_operator_mode_server(tmp_path: Path, clients: NatsClients,
                                                                caplog: pytest.LogCaptureFixture) -> None:
    """A server that trusts an operator; the user's JWT and seed come from one secret, as `nsc` writes them."""
    caplog.set_level(logging.DEBUG)
    _, operator = new_key(nkeys.PREFIX_BYTE_OPERATOR)
    _, account = new_key(nkeys.PREFIX_BYTE_ACCOUNT)
    user_seed, user = new_key(nkeys.PREFIX_BYTE_USER)
    op = signed_jwt({"name": "op", "sub": operator.public_key.decode(),
                     "nats": {"type": "operator", "version": 2}}, operator)
    unlimited = {"subs": -1, "data": -1, "payload": -1, "imports": -1, "exports": -1, "wildcards": True,
                 "conn": -1, "leaf": -1}
    acc = signed_jwt({"name": "acc", "sub": account.public_key.decode(),
                      "nats": {"limits": unlimited, "type": "account", "version": 2}}, operator)
    usr = signed_jwt({"name": "u", "sub": user.public_key.decode(),
                      "nats": {"pub": {}, "sub": {}, "subs": -1, "data": -1, "payload": -1, "type": "user",
                               "version": 2}}, account)
    conf = tmp_path / "operator.conf"
    conf.write_text(f'operator: "{op}"\nresolver: MEMORY\n'
                    f'resolver_preload: {{ {account.public_key.decode()}: "{acc}" }}\n')
    port = free_port("127.0.0.1")
    server = await asyncio.create_subprocess_exec(find_nats_server(), "-c", str(conf), "-a", "127.0.0.1",
                                                  "-p", str(port), stdout=asyncio.subprocess.DEVNULL,
                                                  stderr=asyncio.subprocess.DEVNULL)
    creds = (f"-----BEGIN NATS USER JWT-----\r\n{usr}\r\n------END NATS USER JWT------\r\n\r\n"
             "************************* IMPORTANT *************************\r\n\r\n"
             f"-----BEGIN USER NKEY SEED-----\r\n{user_seed.decode()}\r\n------END USER NKEY SEED------\r\n")
    url = f"nats://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                lf = creds.replace("\r\n", "\n")  # (nats-py itself reads a CRLF file wrong; the trigger does not)
                nc, listener = await listen(url, "out.>", user_credentials=RawCredentials(lf))
                break
            except (OSError, NatsError):
                await asyncio.sleep(0.05)
        else:
            pytest.fail("the operator-mode nats-server did not start within 5 s")
        auth = {"credential": {"name": "nats", "key": "creds"}}
        secrets = Secrets(environ={env_name("nats", "creds"): creds})
        try:
            outcome = await NatsTrigger(make(url, {"auth": auth}), clients, secrets).fire(EVENTS)
            assert outcome.success, outcome.error
            await asyncio.wait_for(listener.arrived.wait(), 5)
        finally:
            await nc.close()
        for text, missing in (("just a JWT", "BEGIN NATS USER JWT"),
                              (creds.split("-----BEGIN USER NKEY SEED")[0], "BEGIN USER NKEY SEED")):
            async with NatsClients() as others:
                refused = await NatsTrigger(make(url, {"auth": auth}), others,
                                            Secrets(environ={env_name("nats", "creds"): text})).fire(EVENTS)
            assert not refused.success and f"no `{missing}` block" in refused.error
        assert user_seed.decode() not in caplog.text
    finally:
        server.terminate()
        await server.wait()


async def test_concurrent_firings_share_flushes(nats_url: str, clients: NatsClients) -> None:
    """200 firings at once: every message arrives, confirmed by far fewer PINGs than messages."""
    nc, listener = await listen(nats_url, "out.>")
    trigger = NatsTrigger(make(nats_url), clients, SECRETS)
    assert (await trigger.fire(EVENTS)).success  # connected
    [connection] = list(clients._open.values())
    flushes = 0
    flush = connection.client.flush

    async def counted(timeout: int = 10) -> None:
        nonlocal flushes
        flushes += 1
        await flush(timeout)

    connection.client.flush = counted  # type: ignore[method-assign]
    try:
        outcomes = await asyncio.gather(*(trigger.fire(EVENTS) for _ in range(200)))
        assert all(o.success for o in outcomes)
        for _ in range(100):
            if len(listener.messages) == 201:
                break
            await asyncio.sleep(0.05)
        assert len(listener.messages) == 201
        assert 1 <= flushes <= 20, flushes
    finally:
        await nc.close()


async def test_a_failed_flush_fails_every_firing_waiting_on_it(tmp_path: Path, clients: NatsClients) -> None:
    server = EmbeddedNats(tmp_path / "gone")
    await server.start()
    try:
        trigger = NatsTrigger(make(server.url), clients, SECRETS, timeout=2.0)
        assert (await trigger.fire(EVENTS)).success
        [connection] = list(clients._open.values())

        async def never(timeout: int = 10) -> None:
            raise nats.errors.FlushTimeoutError

        connection.client.flush = never  # type: ignore[method-assign]
        outcomes = await asyncio.gather(*(trigger.fire(EVENTS) for _ in range(20)))
        assert all(not o.success and o.attempts[0].verdict.kind is VerdictKind.RETRYABLE for o in outcomes)
        assert all("not confirmed: FlushTimeoutError" in o.error for o in outcomes), outcomes[0].error
    finally:
        await server.stop()

"""What every NATS client of Sensorium's outside the bus shares (the nats trigger, the nats event source): server
URLs as Argo writes them, and the connect options of Argo's NATS `auth` read from secrets. No client is made
here."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit, urlunsplit

from nats.aio.client import RawCredentials

from sensorium.engine.core.errors import SensoriumError
from sensorium.engine.core.secrets import Secrets
from sensorium.engine.core.specbase import NATSAuth

__all__ = ["NatsCredentialError", "connect_options", "printable_url", "servers", "user_credentials"]


class NatsCredentialError(SensoriumError):
    """A secret that does not hold what its `auth` field says (an NKey seed, a credentials file); the message
    names the secret's role, never its value."""


def servers(url: str) -> list[str]:
    """The server URLs of a `url`: comma-separated, `nats://` assumed where no scheme is written
    (`nats.example:4222`, as Argo's own example writes it, and as nats.go reads it)."""
    return [one if "://" in one else f"nats://{one}" for one in (part.strip() for part in url.split(","))]


def printable_url(url: str) -> str:
    """The server URL(s) without user info (a NATS URL's user part may be a token), for messages."""
    out = []
    for one in servers(url):
        try:
            parts = urlsplit(one)
            host = parts.hostname or ""
            port = parts.port
        except ValueError:
            out.append("(an unreadable URL)")
            continue
        out.append(urlunsplit((parts.scheme, f"{host}:{port}" if port else host, parts.path, "", "")))
    return ",".join(out)


def _seed(text: str, what: str) -> str:
    """An NKey seed (`S...`, as `nsc` writes it), checked: nats-py would fail on a bad one only while
    connecting, with an error that says less. Raises NatsCredentialError."""
    import nkeys  # (only auth with NKeys needs it: not imported by every CLI command)

    seed = text.strip()
    try:
        nkeys.from_seed(bytearray(seed.encode())).wipe()
    except (nkeys.NkeysError, ValueError, TypeError):
        raise NatsCredentialError(f"the {what} secret does not hold an NKey seed") from None
    return seed


def user_credentials(text: str) -> tuple[str, str]:
    """(user JWT, user seed) of a NATS credentials file's text (`nsc generate creds`), or NatsCredentialError naming
    what is missing. Read here, not by nats-py, whose reader loops forever on a text without the JWT's
    `BEGIN` line."""
    found: dict[str, str] = {}
    lines = [line.strip() for line in text.splitlines()]
    for marker, name in (("BEGIN NATS USER JWT", "jwt"), ("BEGIN USER NKEY SEED", "seed")):
        for index, line in enumerate(lines[:-1]):
            if marker in line and lines[index + 1]:
                found[name] = lines[index + 1]
                break
        else:
            raise NatsCredentialError(f"the credential secret is not a NATS credentials file (no `{marker}` block)")
    jwt = found["jwt"]
    if jwt.count(".") != 2:
        raise NatsCredentialError("the credential secret is not a NATS credentials file (its user JWT is not a JWT)")
    return jwt, _seed(found["seed"], "credential")


def connect_options(auth: NATSAuth | None, secrets: Secrets) -> tuple[dict[str, Any], tuple[str, ...]]:
    """nats-py's connect options for `auth` (Argo uses the first one written), and the secret values they hold
    (for masking). Raises SecretNotFound (a secret missing) or NatsCredentialError (one holding the wrong
    thing)."""
    if auth is None:
        return {}, ()
    if auth.basic is not None:
        user = password = ""
        if auth.basic.username is not None:
            user = secrets.get(auth.basic.username.name, auth.basic.username.key)
        if auth.basic.password is not None:
            password = secrets.get(auth.basic.password.name, auth.basic.password.key)
        return {"user": user, "password": password}, (user, password)
    if auth.token is not None:
        token = secrets.get(auth.token.name, auth.token.key)
        return {"token": token}, (token,)
    if auth.nkey is not None:  # Argo: the secret holds the seed (nats.go's NkeyOptionFromSeed reads it)
        seed = _seed(secrets.get(auth.nkey.name, auth.nkey.key), "nkey")
        return {"nkeys_seed_str": seed}, (seed,)
    if auth.credential is not None:  # Argo: the secret holds a credentials file (nats.go's UserCredentials)
        jwt, seed = user_credentials(secrets.get(auth.credential.name, auth.credential.key))
        text = (f"-----BEGIN NATS USER JWT-----\n{jwt}\n------END NATS USER JWT------\n\n"
                f"-----BEGIN USER NKEY SEED-----\n{seed}\n------END USER NKEY SEED------\n")
        return {"user_credentials": RawCredentials(text)}, (seed,)
    return {}, ()

"""Webhook request signatures (parts layer): each provider's documented check, by constant-time comparison.

`verifier(spec, secret)` gives the check for a `signature` entry: called with the request headers (a
case-insensitive mapping), the raw body and the current Unix time, it returns None when the request is signed
with `secret`, else a short reason (said in the log and the 401's absence of detail; it never holds the secret or
the expected value). Providers and what they sign:

| type | header | value |
|---|---|---|
| `github` | `X-Hub-Signature-256` | `sha256=` hex HMAC-SHA256 of the body |
| `gitlab` | `X-Gitlab-Token` | the secret itself |
| `bitbucket` | `X-Hub-Signature` | `sha256=` hex HMAC-SHA256 of the body (Bitbucket Cloud and Server) |
| `stripe` | `Stripe-Signature` | `t=TS,v1=HEX[,v1=...]`, HMAC-SHA256 of `TS.body`, `TS` within `tolerance` s |
| `slack` | `X-Slack-Signature` | `v0=` hex HMAC-SHA256 of `v0:TS:body`, `TS` from `X-Slack-Request-Timestamp` |
| `shopify` | `X-Shopify-Hmac-Sha256` | base64 HMAC-SHA256 of the body |
| `hmac` | `header` | `prefix` + hex or base64 HMAC (`algorithm` sha1, sha256, sha512) of the body |
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Callable, Mapping

from sensorium.sources.spec import SignatureSpec

__all__ = ["Check", "verifier"]

Check = Callable[[Mapping[str, str], bytes, float], str | None]
"""(headers, raw body, now) -> None when signed, else why not."""

MAX_SIGNATURE_HEADER = 4096
"""Longest signature header considered (longer: refused unread); real ones are under 1 KiB."""


def _mac(secret: bytes, message: bytes, algorithm: str = "sha256") -> bytes:
    return hmac.new(secret, message, getattr(hashlib, algorithm)).digest()


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode("utf-8", "surrogateescape"), expected.encode())


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    return None if value is None or len(value) > MAX_SIGNATURE_HEADER else value


def _prefixed_hex(name: str, prefix: str, secret: bytes, algorithm: str = "sha256") -> Check:
    def check(headers: Mapping[str, str], raw: bytes, now: float) -> str | None:
        given = _header(headers, name)
        if given is None:
            return f"no {name} header"
        return None if _same(given, prefix + _mac(secret, raw, algorithm).hex()) else f"{name} does not match"
    return check


def _timestamp(value: str | None, now: float, tolerance: float) -> str | None:
    if value is None or not value.isdigit() or len(value) > 20:
        return "no valid timestamp"
    return None if abs(now - int(value)) <= tolerance else f"timestamp outside the {tolerance:g} s tolerance"


def _stripe(secret: bytes, tolerance: float) -> Check:
    def check(headers: Mapping[str, str], raw: bytes, now: float) -> str | None:
        given = _header(headers, "Stripe-Signature")
        if given is None:
            return "no Stripe-Signature header"
        pairs = [part.split("=", 1) for part in given.split(",") if "=" in part]
        stamp = next((v.strip() for k, v in pairs if k.strip() == "t"), None)
        late = _timestamp(stamp, now, tolerance)
        if late is not None or stamp is None:
            return f"Stripe-Signature: {late}"
        expected = _mac(secret, stamp.encode() + b"." + raw).hex()
        matches = [_same(v.strip(), expected) for k, v in pairs if k.strip() == "v1"]  # compare every one
        return None if any(matches) else "Stripe-Signature does not match"
    return check


def _slack(secret: bytes, tolerance: float) -> Check:
    def check(headers: Mapping[str, str], raw: bytes, now: float) -> str | None:
        given, stamp = _header(headers, "X-Slack-Signature"), _header(headers, "X-Slack-Request-Timestamp")
        if given is None:
            return "no X-Slack-Signature header"
        late = _timestamp(stamp, now, tolerance)
        if late is not None or stamp is None:
            return f"X-Slack-Request-Timestamp: {late}"
        expected = "v0=" + _mac(secret, b"v0:" + stamp.encode() + b":" + raw).hex()
        return None if _same(given, expected) else "X-Slack-Signature does not match"
    return check


def _token(name: str, secret: str) -> Check:
    def check(headers: Mapping[str, str], raw: bytes, now: float) -> str | None:
        given = _header(headers, name)
        if given is None:
            return f"no {name} header"
        return None if _same(given, secret) else f"{name} does not match"
    return check


def _encoded(name: str, prefix: str, secret: bytes, algorithm: str, encoding: str) -> Check:
    def check(headers: Mapping[str, str], raw: bytes, now: float) -> str | None:
        given = _header(headers, name)
        if given is None:
            return f"no {name} header"
        digest = _mac(secret, raw, algorithm)
        text = digest.hex() if encoding == "hex" else base64.b64encode(digest).decode()
        return None if _same(given, prefix + text) else f"{name} does not match"
    return check


def verifier(spec: SignatureSpec, secret: str) -> Check:
    """The check `spec` describes, keyed with `secret` (see the module's table)."""
    key = secret.encode()
    match spec.type:
        case "github":
            return _prefixed_hex("X-Hub-Signature-256", "sha256=", key)
        case "bitbucket":
            return _prefixed_hex("X-Hub-Signature", "sha256=", key)
        case "gitlab":
            return _token("X-Gitlab-Token", secret)
        case "stripe":
            return _stripe(key, spec.tolerance)
        case "slack":
            return _slack(key, spec.tolerance)
        case "shopify":
            return _encoded("X-Shopify-Hmac-Sha256", "", key, "sha256", "base64")
        case _:
            return _encoded(spec.header, spec.prefix, key, spec.algorithm, spec.encoding)

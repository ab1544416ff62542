"""Previews of data from outside (event data, a trigger target's response body): bounded and masked (kernel).

The one rule for every preview a trace record or a log line shows of bytes Sensorium did not write itself:
  - at most `PREVIEW_BYTES` bytes of the data (512 by default) are decoded (UTF-8, invalid bytes replaced), and a
    cut preview says how long the data was: hostile input cannot make a record or a log line grow;
  - values that look like credentials are replaced by "***": a JSON member whose name contains auth, token,
    secret, passw, cookie, api-key/api_key/apikey, credential, signature or session (a string, or a list of
    strings, as the webhook's `header` map holds them: `"Authorization":["Bearer ..."]`), and `name=value`
    pairs with such names in form or query text (`token=...&`). A value cut by the bound is masked too.
Masking by name is a safety net for data from outside; secrets Sensorium itself reads (secureHeaders, basicAuth)
are masked where they are used (`HttpRequest.scrub`), by value.
"""

from __future__ import annotations

import re

__all__ = ["MASK", "PREVIEW_BYTES", "is_credential_name", "mask_credentials", "preview"]

PREVIEW_BYTES = 512
MASK = "***"

_NAMES = ("auth", "token", "secret", "passw", "cookie", "apikey", "api-key", "api_key", "credential", "signature",
          "session")


# _NAMES as scanned: the three api-key spellings only once "api" is there (one scan of the text instead of three)
_SCANNED = tuple(word for word in _NAMES if not word.startswith("api"))
_API_KEYS = tuple(word for word in _NAMES if word.startswith("api"))


def is_credential_name(name: str) -> bool:
    """Whether `name` (or any part of a text) holds one of the credential words (a lower-cased substring test:
    ten times cheaper than a case-insensitive regex alternation). It runs on every traced event's data preview:
    a plain loop, not any() over a generator (a quarter of its cost on a 250-character text)."""
    low = name.lower()
    for word in _SCANNED:
        if word in low:
            return True
    if "api" in low:
        for word in _API_KEYS:
            if word in low:
                return True
    return False



_STRING = r'"(?:[^"\\]|\\.)*(?:"|\\?$)'  # a JSON string, or its start when the preview cut it
# a JSON member with a string or list-of-strings value (names bounded: no backtracking blow-up); the callback
# masks it when its name is a credential's
_JSON_MEMBER = re.compile(r'("([^"\\]{1,200})"\s*:\s*)(' + _STRING + r"|\[\s*(?:" + _STRING + r"\s*,?\s*)*(?:\]|$))")
_FORM_PAIR = re.compile(r"(?<![\w.\-])([\w.\-]{1,100}=)([^&\s\"]*)")


def _masked_member(match: re.Match[str]) -> str:
    if not is_credential_name(match.group(2)):
        return match.group(0)
    return match.group(1) + (f'["{MASK}"]' if match.group(3).startswith("[") else f'"{MASK}"')


def _masked_pair(match: re.Match[str]) -> str:
    return match.group(0) if not is_credential_name(match.group(1)) else match.group(1) + MASK


def mask_credentials(text: str) -> str:
    """`text` with credential-looking JSON members and form pairs masked (see the module's rule)."""
    if not is_credential_name(text):  # the common case: nothing to mask
        return text
    text = _JSON_MEMBER.sub(_masked_member, text)
    return _FORM_PAIR.sub(_masked_pair, text) if "=" in text else text


def preview(data: bytes | None, limit: int = PREVIEW_BYTES) -> str:
    """The start of `data` as text: at most `limit` bytes, credentials masked; a cut preview ends with
    `… (N bytes)`."""
    if not data:
        return ""
    text = mask_credentials(data[:limit].decode("utf-8", "replace"))
    return text if len(data) <= limit else f"{text}… ({len(data)} bytes)"

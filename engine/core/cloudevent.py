"""CloudEvent value and its structured-mode JSON codec (kernel: imports nothing else from the project).

Structured mode is what Argo Events writes on its buses (sdk-go `WriteJson`, key order kept); binary mode
(`ce_*` / `ce-*` headers) is accepted on decode for events produced by other CloudEvents SDKs.
Hand-written rather than the `cloudevents` SDK: its v2 models truncate Argo's RFC3339Nano `time` to
microseconds and reject extension names that are not lowercase alphanumeric (checked with cloudevents 2.2.0), and
the hot path needs the raw data bytes, not a re-parsed object.
"""

from __future__ import annotations

import base64
import json
import re
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import msgspec

_CORE = ("specversion", "id", "source", "type", "subject", "datacontenttype", "dataschema", "time")
_JSON_TYPES = ("application/json", "text/json")


class DecodeError(ValueError):
    """The bytes are not a CloudEvent; the message says why."""


class CloudEvent(msgspec.Struct, frozen=True):
    """One event. `data` holds the raw data bytes (JSON text for JSON content types), or None when absent.
    A msgspec Struct: built in C, one per event and per transform (`msgspec.structs.replace` edits a copy)."""

    id: str
    source: str
    type: str
    subject: str = ""
    specversion: str = "1.0"
    datacontenttype: str = ""
    time: str = ""
    dataschema: str = ""
    data: bytes | None = None
    extensions: Mapping[str, str] = msgspec.field(default_factory=dict)

    def context(self) -> dict[str, Any]:
        """Attributes as a JSON object (Argo's event context for `contextKey`, plus extensions)."""
        ctx: dict[str, Any] = {
            "id": self.id,
            "source": self.source,
            "specversion": self.specversion,
            "type": self.type,
            "datacontenttype": self.datacontenttype,
            "subject": self.subject,
            "time": self.time,
        }
        ctx.update(self.extensions)
        return ctx


def new_id() -> str:
    """A fresh event id in Argo's form: uuid4 as 32 lowercase hex characters."""
    return uuid.uuid4().hex


def now_rfc3339() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def is_json_type(content_type: str) -> bool:
    base = content_type.split(";", 1)[0].strip().lower()
    return base in _JSON_TYPES or base.endswith("+json") or base == ""


def encode_structured(event: CloudEvent) -> bytes:
    """Structured-mode JSON with sdk-go's key order; JSON data is embedded raw, other data as base64."""
    obj: dict[str, Any] = {"specversion": event.specversion, "id": event.id, "source": event.source,
                           "type": event.type}
    if event.subject:
        obj["subject"] = event.subject
    if event.datacontenttype:
        obj["datacontenttype"] = event.datacontenttype
    if event.dataschema:
        obj["dataschema"] = event.dataschema
    if event.time:
        obj["time"] = event.time
    obj.update(event.extensions)
    head = json.dumps(obj, separators=(",", ":"), ensure_ascii=False)
    if event.data is None:
        return head.encode()
    if is_json_type(event.datacontenttype) and is_json(event.data):
        return (head[:-1] + ',"data":').encode() + event.data + b"}"
    b64 = base64.b64encode(event.data).decode()
    return (head[:-1] + ',"data_base64":' + json.dumps(b64) + "}").encode()


def _text(obj: Mapping[str, Any], name: str, required: bool) -> str:
    value = obj.get(name)
    if value is None:
        if required:
            raise DecodeError(f"missing required attribute '{name}'")
        return ""
    if not isinstance(value, str):
        raise DecodeError(f"attribute '{name}' must be a string, got {type(value).__name__}")
    if required and value == "":
        raise DecodeError(f"attribute '{name}' must not be empty")
    return value


def _short(name: str) -> str:
    """An attribute name as error messages show it: at most 40 characters, control characters escaped."""
    text = name if len(name) <= 40 else name[:40] + "..."
    return text.encode("unicode_escape", "backslashreplace").decode("ascii")


def from_mapping(obj: Any, raw_data: str | None = None) -> CloudEvent:
    """Build a CloudEvent from a parsed structured-mode JSON object; `raw_data` is the `data` member's text as it
    arrived, kept byte for byte for JSON content (as sdk-go keeps it), else the value is re-encoded compactly."""
    if not isinstance(obj, dict):
        raise DecodeError("a structured CloudEvent must be a JSON object")
    content_type = _text(obj, "datacontenttype", False)
    data: bytes | None = None
    if "data_base64" in obj and obj["data_base64"] is not None:
        data = _base64(obj["data_base64"])
    elif "data" in obj:
        value = obj["data"]
        if isinstance(value, str) and not is_json_type(content_type):
            data = value.encode()
        elif raw_data is not None:
            data = raw_data.encode()
        else:
            data = json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()
    return _event(obj, data)


def _base64(value: object) -> bytes:
    if not isinstance(value, str):
        raise DecodeError(f"data_base64 must be a string, got {type(value).__name__}")
    try:
        return base64.b64decode(value, validate=True)
    except ValueError as exc:  # binascii.Error, or non-ASCII characters
        raise DecodeError(f"data_base64 is not valid base64: {exc}") from None


def _event(attrs: Mapping[str, Any], data: bytes | None) -> CloudEvent:
    """The event of decoded attribute values (`data`/`data_base64` members are skipped) and data bytes."""
    specversion = _text(attrs, "specversion", True)
    if specversion != "1.0":
        raise DecodeError(f"unsupported specversion '{specversion[:20]}' (want 1.0)")
    extensions: dict[str, str] = {}
    for key, value in attrs.items():
        if key in _CORE or key in ("data", "data_base64"):
            continue
        if not isinstance(value, (str, int, bool)):
            raise DecodeError(f"extension attribute '{_short(key)}' must be a string, integer or boolean")
        extensions[key] = str(value).lower() if isinstance(value, bool) else str(value)
    return CloudEvent(
        id=_text(attrs, "id", True), source=_text(attrs, "source", True), type=_text(attrs, "type", True),
        subject=_text(attrs, "subject", False), specversion=specversion,
        datacontenttype=_text(attrs, "datacontenttype", False), time=_text(attrs, "time", False),
        dataschema=_text(attrs, "dataschema", False), data=data, extensions=extensions,
    )


# Structured mode is decoded by msgspec's C parser, never by recursive Python code: the envelope as members
# whose values stay raw bytes (`msgspec.Raw`: the `data` member's exact text, validated but not built), then each
# attribute on its own. msgspec stops at Python's recursion limit (RecursionError, raised cleanly from C);
# MAX_DEPTH makes the limit a fixed, documented number below it.
MAX_DEPTH = 512
_ENVELOPE = msgspec.json.Decoder(dict[str, msgspec.Raw])
_ATTRIBUTE = msgspec.json.Decoder(str | int | bool | None)
_JSON_STRING = msgspec.json.Decoder(str)
_ANY_JSON = msgspec.json.Decoder(msgspec.Raw)  # validates a whole JSON text without building it
_STRINGS = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


def decode_structured(raw: bytes | str) -> CloudEvent:
    """Parse structured-mode CloudEvent JSON; raises DecodeError (a one-line reason) and nothing else for any
    input: not UTF-8, not JSON (NaN/Infinity, truncated, lone surrogate escapes), nested deeper than MAX_DEPTH
    levels, attributes of the wrong type, integers of more than 4,300 digits, bad base64. The `data` member's
    bytes are kept exactly as they arrived."""
    try:
        body = raw.encode() if isinstance(raw, str) else bytes(raw)
        body.decode()  # msgspec leaves the bytes inside skipped (raw) members unchecked
    except (UnicodeDecodeError, UnicodeEncodeError) as exc:
        raise DecodeError(f"not UTF-8: {exc.reason} at position {exc.start}") from None
    try:
        members = _ENVELOPE.decode(body)
    except msgspec.ValidationError:
        raise DecodeError("a structured CloudEvent must be a JSON object") from None
    except msgspec.DecodeError as exc:
        raise DecodeError(f"not JSON: {_json_problem(body, exc)}") from None
    except RecursionError:
        raise DecodeError(f"not JSON: nested deeper than {MAX_DEPTH} levels") from None
    if _too_deep(body, MAX_DEPTH):
        raise DecodeError(f"not JSON: nested deeper than {MAX_DEPTH} levels")
    attrs: dict[str, Any] = {}
    for name, value in members.items():
        if name not in ("data", "data_base64"):
            try:
                attrs[name] = _ATTRIBUTE.decode(value)
            except (msgspec.DecodeError, RecursionError):  # ValidationError included
                kinds = "a string" if name in _CORE else "a string, an integer (at most 4,300 digits) or a boolean"
                raise DecodeError(f"attribute '{_short(name)}' must be {kinds}") from None
    data: bytes | None = None
    encoded, member = members.get("data_base64"), members.get("data")
    if encoded is not None and bytes(encoded) != b"null":
        try:
            value = _ATTRIBUTE.decode(encoded)
        except msgspec.DecodeError:
            raise DecodeError("data_base64 must be a string") from None
        data = _base64(value)
    elif member is not None:
        data = bytes(member)
        content_type = attrs.get("datacontenttype")
        if data[:1] == b'"' and not is_json_type(content_type if isinstance(content_type, str) else ""):
            data = _JSON_STRING.decode(data).encode()  # a valid JSON string (the envelope was validated)
    return _event(attrs, data)


def _json_problem(body: bytes, exc: msgspec.DecodeError) -> str:
    message = str(exc)
    if message == "Input data was truncated" and _SURROGATE_ESCAPE.search(body):
        return "truncated, or a \\u escape is a lone UTF-16 surrogate"
    return message


def _too_deep(body: bytes, limit: int) -> bool:
    """Arrays/objects of valid JSON `body` nest deeper than `limit`. Cheap unless the text has more than `limit`
    opening brackets: then the brackets outside strings are counted (a Python loop over brackets only)."""
    if body.count(b"[") + body.count(b"{") <= limit:
        return False
    depth = 0
    for byte in _STRINGS.sub(b"", body).translate(None, _NOT_BRACKETS):
        if byte in (0x5B, 0x7B):
            depth += 1
            if depth > limit:
                return True
        else:
            depth -= 1
    return False


def is_json(data: bytes) -> bool:
    """`data` is one valid JSON text (RFC 8259: no NaN/Infinity), nested at most MAX_DEPTH levels."""
    try:
        _ANY_JSON.decode(data)
    except (msgspec.DecodeError, RecursionError):
        return False
    return not _too_deep(data, MAX_DEPTH)


def decode_binary(headers: Mapping[str, str], body: bytes) -> CloudEvent:
    """Parse a binary-mode CloudEvent: attributes in `ce_`/`ce-` headers, data in the body (kept as is)."""
    attrs: dict[str, Any] = {}
    for key, value in headers.items():
        low = key.lower()
        if low.startswith(("ce_", "ce-")):
            if low[3:] not in ("data", "data_base64"):
                attrs[low[3:]] = value
        elif low in ("content-type", "content_type"):
            attrs["datacontenttype"] = value
    if "specversion" not in attrs:
        raise DecodeError("no ce_specversion header")
    return _event(attrs, body if body else None)


def decode_delivery(body: bytes, headers: Mapping[str, str]) -> CloudEvent:
    """A message as a bus delivers it: structured-mode JSON, or (when that fails and `ce_specversion` is among
    the headers) binary mode, whose error is then the one reported. Raises DecodeError only."""
    try:
        return decode_structured(body)
    except DecodeError:
        if not any(k.lower() in ("ce_specversion", "ce-specversion") for k in headers):
            raise
    return decode_binary(headers, body)

"""CloudEvent value and its structured-mode JSON codec (kernel: imports nothing from the project).

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
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

_CORE = ("specversion", "id", "source", "type", "subject", "datacontenttype", "dataschema", "time")
_JSON_TYPES = ("application/json", "text/json")


class DecodeError(ValueError):
    """The bytes are not a CloudEvent; the message says why."""


@dataclass(frozen=True)
class CloudEvent:
    """One event. `data` holds the raw data bytes (JSON text for JSON content types), or None when absent."""

    id: str
    source: str
    type: str
    subject: str = ""
    specversion: str = "1.0"
    datacontenttype: str = ""
    time: str = ""
    dataschema: str = ""
    data: bytes | None = None
    extensions: Mapping[str, str] = field(default_factory=dict)

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

    def attribute(self, name: str) -> str | None:
        """Value of a core or extension attribute by its CloudEvents name, None when unset."""
        if name in _CORE:
            value = getattr(self, name)
            return value if value != "" else None
        return self.extensions.get(name)


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
    if is_json_type(event.datacontenttype):
        try:
            json.loads(event.data)
        except ValueError:
            pass
        else:
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


def from_mapping(obj: Any, raw_data: str | None = None) -> CloudEvent:
    """Build a CloudEvent from a parsed structured-mode JSON object; `raw_data` is the `data` member's text as it
    arrived, kept byte for byte for JSON content (as sdk-go keeps it), else the value is re-encoded compactly."""
    if not isinstance(obj, dict):
        raise DecodeError("a structured CloudEvent must be a JSON object")
    specversion = _text(obj, "specversion", True)
    if specversion != "1.0":
        raise DecodeError(f"unsupported specversion '{specversion}' (want 1.0)")
    extensions: dict[str, str] = {}
    for key, value in obj.items():
        if key in _CORE or key in ("data", "data_base64"):
            continue
        if not isinstance(value, (str, int, bool)):
            raise DecodeError(f"extension attribute '{key}' must be a string, integer or boolean")
        extensions[key] = str(value).lower() if isinstance(value, bool) else str(value)
    content_type = _text(obj, "datacontenttype", False)
    data: bytes | None = None
    if "data_base64" in obj and obj["data_base64"] is not None:
        try:
            data = base64.b64decode(obj["data_base64"], validate=True)
        except (ValueError, TypeError) as exc:
            raise DecodeError(f"data_base64 is not valid base64: {exc}") from None
    elif "data" in obj:
        value = obj["data"]
        if isinstance(value, str) and not is_json_type(content_type):
            data = value.encode()
        elif raw_data is not None:
            data = raw_data.encode()
        else:
            data = json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()
    return CloudEvent(
        id=_text(obj, "id", True), source=_text(obj, "source", True), type=_text(obj, "type", True),
        subject=_text(obj, "subject", False), specversion=specversion, datacontenttype=content_type,
        time=_text(obj, "time", False), dataschema=_text(obj, "dataschema", False), data=data,
        extensions=extensions,
    )


def decode_structured(raw: bytes | str) -> CloudEvent:
    """Parse structured-mode CloudEvent JSON; raises DecodeError with a one-line reason."""
    try:
        text = raw.decode() if isinstance(raw, bytes) else raw
        obj = json.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise DecodeError(f"not JSON: {exc}") from None
    raw_data = _raw_data(text, obj) if isinstance(obj, dict) and "data" in obj else None
    return from_mapping(obj, raw_data)


_DATA_MEMBER = re.compile(r'"data"\s*:\s*')


def _raw_data(text: str, obj: dict[str, Any]) -> str | None:
    """The `data` member's source text. Fast path: it is the last member (as sdk-go and Sensorium write it);
    otherwise the span-recording parser finds it. A nested `"data":` never parses as the member's value, because
    the text after it up to the envelope's closing brace is unbalanced."""
    body = text.rstrip()
    if not body.endswith("}"):
        return None
    for match in reversed(list(_DATA_MEMBER.finditer(body))):
        candidate = body[match.end():-1].rstrip()
        try:
            if json.loads(candidate) == obj["data"]:
                return candidate
        except ValueError:
            continue
    from engine.paths import parse_json, to_json  # the slow path: data not last

    try:
        return to_json(parse_json(text)["data"])
    except (ValueError, KeyError, TypeError):
        return None


def decode_binary(headers: Mapping[str, str], body: bytes) -> CloudEvent:
    """Parse a binary-mode CloudEvent: attributes in `ce_`/`ce-` headers, data in the body."""
    attrs: dict[str, Any] = {}
    for key, value in headers.items():
        low = key.lower()
        if low.startswith(("ce_", "ce-")):
            attrs[low[3:]] = value
        elif low in ("content-type", "content_type"):
            attrs["datacontenttype"] = value
    if "specversion" not in attrs:
        raise DecodeError("no ce_specversion header")
    event = from_mapping(attrs)
    return CloudEvent(**{**event.__dict__, "data": body if body else None})

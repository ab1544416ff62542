"""W3C Trace Context (`traceparent`, `tracestate`) as the CloudEvents distributed-tracing extension carries it.

A webhook copies a valid incoming `traceparent` (and its `tracestate`) onto the event as extension attributes; an
HTTP trigger sends them on (as they came when OpenTelemetry is off, with its own attempt span as the parent when
it is on). Everything here is bounded and never raises: a header that is not valid W3C is ignored, as the
specification asks, so a hostile client can neither break an event nor carry arbitrary text through the bus.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

TRACEPARENT = "traceparent"
TRACESTATE = "tracestate"
MAX_TRACESTATE = 512
"""Longest `tracestate` kept (W3C: propagators SHOULD keep at least 512 characters; longer ones may be dropped)."""
MAX_TRACESTATE_MEMBERS = 32  # W3C: at most 32 list members

_TRACEPARENT = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")
_MEMBER = re.compile(r"[a-z0-9][_0-9a-z\-*/]{0,255}(@[a-z0-9][_0-9a-z\-*/]{0,13})?=[ -+\--<>-~]{0,255}[!-+\--<>-~]")
_ZERO_TRACE, _ZERO_SPAN = "0" * 32, "0" * 16


def parse_traceparent(value: str | None) -> str | None:
    """The `traceparent` value as version 00 sends it (55 characters), or None when `value` is not valid: wrong
    shape, version `ff`, an all-zero trace or parent id, or version 00 with trailing data. A later version's
    trailing fields are dropped (W3C: parse the version 00 part)."""
    if value is None or len(value) > 512:
        return None
    value = value.strip(" \t")
    match = _TRACEPARENT.match(value)
    if match is None:
        return None
    version, trace_id, parent_id, flags = match.groups()
    rest = value[match.end():]
    if version == "ff" or trace_id == _ZERO_TRACE or parent_id == _ZERO_SPAN:
        return None
    if rest and (version == "00" or not rest.startswith("-")):
        return None
    return f"00-{trace_id}-{parent_id}-{flags}"


def parse_tracestate(value: str | None) -> str | None:
    """The `tracestate` list with blank members removed, or None when it is empty, longer than MAX_TRACESTATE,
    has more than MAX_TRACESTATE_MEMBERS members or a member that is not `key=value` in W3C's alphabet."""
    if value is None or len(value) > MAX_TRACESTATE:
        return None
    members = [m.strip(" \t") for m in value.split(",")]
    members = [m for m in members if m]
    if not members or len(members) > MAX_TRACESTATE_MEMBERS:
        return None
    if not all(_MEMBER.fullmatch(m) for m in members):
        return None
    return ",".join(members)


def trace_id(traceparent: str) -> str:
    """The 32 hex digits of a valid `traceparent`'s trace id."""
    return traceparent[3:35]


def from_headers(headers: Iterable[tuple[str, str]]) -> dict[str, str]:
    """The extension attributes an event gets from request headers: `traceparent` when one valid header is sent
    (two are ambiguous: none), and `tracestate` only beside it. Empty when there is nothing valid."""
    parents = [v for k, v in headers if k.lower() == TRACEPARENT]
    parent = parse_traceparent(parents[0]) if len(parents) == 1 else None
    if parent is None:
        return {}
    out = {TRACEPARENT: parent}
    # Several tracestate headers are one list (W3C): joined, then checked as a whole.
    states = [v for k, v in headers if k.lower() == TRACESTATE]
    state = parse_tracestate(",".join(states)) if states else None
    if state is not None:
        out[TRACESTATE] = state
    return out


def from_extensions(extensions: Mapping[str, str]) -> dict[str, str]:
    """The trace context an event carries (re-validated: events may come from any publisher), as headers."""
    parent = parse_traceparent(extensions.get(TRACEPARENT))
    if parent is None:
        return {}
    out = {TRACEPARENT: parent}
    state = parse_tracestate(extensions.get(TRACESTATE))
    if state is not None:
        out[TRACESTATE] = state
    return out

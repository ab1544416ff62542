"""Printing trace records: JSON Lines, or one human line per step grouped by event (coloured on a terminal).

The human format works on the JSON form of a record (`TraceRecord.to_json()`), so live records, records read
back from the bus and dry-run records print the same way. Only formatting here: no I/O but the stream sink's writes.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, TextIO

from sensorium.engine.trace.records import TraceRecord, encode_lines

_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))
_RESET, _BOLD, _DIM, _RED, _GREEN, _YELLOW, _CYAN = (
    "\x1b[0m", "\x1b[1m", "\x1b[2m", "\x1b[31m", "\x1b[32m", "\x1b[33m", "\x1b[36m")
STEP_WIDTH = 10


def use_color(stream: TextIO) -> bool:
    """Colour only on a terminal, and never when NO_COLOR is set."""
    if os.environ.get("NO_COLOR"):
        return False
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def json_line(record: Mapping[str, Any]) -> str:
    return _ENCODER.encode(record) + "\n"




def _q(value: Any) -> str:
    """A value as JSON text (strings quoted), so an empty string or a number-looking string stays visible."""
    return _ENCODER.encode(value)


class HumanFormat:
    """Stateful: prints a header line whenever the event changes, then one indented line per step."""

    def __init__(self, *, color: bool = False, times: bool = True) -> None:
        self.color, self.times = color, times
        self._group: tuple[Any, Any] | None = None

    def _c(self, code: str, text: str) -> str:
        return f"{code}{text}{_RESET}" if self.color else text

    def _verdict(self, passed: bool, error: Any = None) -> str:
        if passed:
            return self._c(_YELLOW if error else _GREEN, "pass")
        return self._c(_RED, "FAIL")

    def lines(self, records: Iterable[Mapping[str, Any]]) -> str:
        out: list[str] = []
        for r in records:
            group = (r.get("sensor"), r.get("event") or r.get("position"))
            if group != self._group:
                self._group = group
                what = (f"event {r['event']}" if r.get("event")
                        else f"source {r.get('source')}/{r.get('subject')}" if r.get("step") == "source"
                        else f"message at {r.get('position', '?')}")
                out.append(self._c(_BOLD, f"{what} · sensor {r.get('sensor')}"))
            out.append(self.line(r))
        return "".join(line + "\n" for line in out)

    def line(self, r: Mapping[str, Any]) -> str:
        step = str(r.get("step", "?"))
        head = f"  {self._c(_DIM, str(r.get('time', ''))[11:23])} " if self.times and r.get("time") else "  "
        try:
            text = getattr(self, "_" + step, self._other)(r)
        except (KeyError, TypeError, ValueError):
            text = self._other(r)
        text = text.replace("\r", "\\r").replace("\n", "\\n")  # one line per step, whatever the values hold
        return f"{head}{self._c(_CYAN, step.ljust(STEP_WIDTH))} {text}"

    def _firing(self, r: Mapping[str, Any]) -> str:
        events = ", ".join(f"{dep}={eid}" for dep, eid in r["events"].items())
        return f"{r['trigger']} [{r['firing']}] {r['kind']} trigger with {events}"

    def _tag(self, r: Mapping[str, Any]) -> str:
        return f"{r['trigger']} [{r['firing']}]"

    def _received(self, r: Mapping[str, Any]) -> str:
        where = f"{r['position']} on {r['bus']}" if r.get("bus") else str(r["position"])
        if r.get("delivery") and r["delivery"] > 1:
            where += f" (delivery {r['delivery']})"
        if r.get("error"):
            text = f"{where}: {self._c(_RED, 'not a CloudEvent')}: {r['error']}"
            return text + (f"; message: {r['data_preview']}" if r.get("data_preview") else "")
        attrs = r.get("attributes") or {}
        shown = " ".join(f"{k}={v}" for k, v in attrs.items() if k not in ("id", "specversion") and v != "")
        text = f"{where} {shown} ({r.get('data_bytes', 0)} bytes of data)"
        return text + (f": {r['data_preview']}" if r.get("data_preview") else "")

    def _unmatched(self, r: Mapping[str, Any]) -> str:
        return (f"no dependency listens to eventSourceName {_q(r['source'])} and eventName {_q(r['subject'])} "
                f"(the event's source and subject); dependencies listen to {', '.join(r['listening'])}")

    def _source(self, r: Mapping[str, Any]) -> str:
        answered = f" (answered {r['status']})" if r.get("status") else ""
        return (f"{r['kind']} source {_q(r['source'])}/{_q(r['subject'])} stored no event: "
                f"{self._c(_RED, str(r['problem']))}{answered}")

    def _dependency(self, r: Mapping[str, Any]) -> str:
        text = f"{r['dependency']} matched the event: filters {self._verdict(r['passed'], r.get('error'))}"
        if r.get("error"):
            text += f", error: {r['error']}"
        if r.get("reason"):
            text += f" ({r['reason']})"
        return text

    def _transform(self, r: Mapping[str, Any]) -> str:
        if not r["passed"]:
            return f"{r['dependency']} {r['kind']}: {self._c(_RED, 'FAIL')}: {r.get('error') or r.get('reason')}" \
                   " (the event is dropped for this dependency)"
        text = f"{r['dependency']} {r['kind']}: data is now {r['data_bytes']} bytes"
        if r.get("data_preview"):
            text += f": {r['data_preview']}"
        return text + (f" ({r['reason']})" if r.get("reason") else "")

    def _filter(self, r: Mapping[str, Any]) -> str:
        verdict = self._verdict(r["passed"], r.get("error"))
        if not r.get("target"):
            text = f"{r['dependency']} {r['kind']}: {verdict}"
            if r.get("reason"):
                text += f": {r['reason']}"
            if r.get("error"):
                text += f"; error: {r['error']}"
            return text
        seen = "nothing (missing)" if r.get("seen") is None else _q(r["seen"])
        op = r.get("comparator") or "="
        wanted = ", ".join(_q(w) for w in r.get("wanted", ()))
        kind = f" {r['type']}" if r.get("type") else ""
        return (f"{r['dependency']} {r['kind']} {r['target']}: saw {seen}, wanted{kind} {op} [{wanted}] -> "
                f"{verdict}: {r.get('reason', '')}")

    def _condition(self, r: Mapping[str, Any]) -> str:
        state = self._c(_GREEN, "satisfied") if r["satisfied"] else self._c(_YELLOW, "not satisfied yet")
        text = f"{r['trigger']} {_q(r['expression'])} after {r['dependency']}: {state}"
        text += f" (held: {', '.join(r['held']) or 'none'})"
        if r.get("immediate"):
            text += " (no &&: fires on every passing event)"
        return text

    def _param(self, r: Mapping[str, Any]) -> str:
        src = r["source"] + (f" {r['path']}" if r.get("path") else "")
        value = "no value (skipped)" if r.get("value") is None else _q(r["value"])
        return f"{self._tag(r)} {r['where']} {r['dependency']} {src} = {value} -> {r['dest'] or '(whole body)'}"

    def _request(self, r: Mapping[str, Any]) -> str:
        headers = "; ".join(f"{k}: {v}" for k, v in (r.get("headers") or {}).items())
        text = f"{self._tag(r)} {r['method']} {r['url']}"
        if headers:
            text += f" headers {{{headers}}}"
        text += f" body {r['body_bytes']} bytes"
        if r.get("body_preview"):
            text += f" {r['body_preview']}"
        return text

    def _response(self, r: Mapping[str, Any]) -> str:
        took = f"{r['latency_ms']:.1f} ms"
        waited = f" (waited {r['rate_limited_ms']:.1f} ms for the rate limit)" if r.get("rate_limited_ms") else ""
        colour = {"success": _GREEN, "retryable": _YELLOW}.get(r["verdict"], _RED)
        policy = f"policy: {self._c(colour, r['verdict'])}"
        if r.get("status") is None and r["verdict"] == "success":  # a message trigger's kind: no status, confirmed
            return f"{self._tag(r)} attempt {r['attempt']}: {self._c(_GREEN, 'confirmed')} in {took}{waited}"
        if r.get("status") is None:
            return (f"{self._tag(r)} attempt {r['attempt']}: {self._c(_RED, 'no response')} after {took}{waited}"
                    f" -> {policy}: {r.get('error') or r['reason']}")
        status = r["status"]
        shown = self._c(_GREEN if 200 <= status < 300 else _RED, str(status))
        text = f"{self._tag(r)} attempt {r['attempt']}: status {shown} in {took}{waited} -> {policy}: {r['reason']}"
        return text + (f"; body: {r['body_preview']}" if r.get("body_preview") else "")

    def _retry(self, r: Mapping[str, Any]) -> str:
        return f"{self._tag(r)} attempt {r['attempt']} in {r['delay_s']:g}s"

    def _outcome(self, r: Mapping[str, Any]) -> str:
        n = r.get("attempts", 0)
        tries = f" after {n} attempt{'s' if n != 1 else ''}" if n else ""
        text = f"{self._tag(r)} " + (self._c(_GREEN, "succeeded") if r["success"] else self._c(_RED, "FAILED"))
        text += tries
        if r.get("error"):
            text += f": {r['error']}"
        if r.get("note"):
            text += f" ({r['note']})"
        return text

    def _ack(self, r: Mapping[str, Any]) -> str:
        return f"{r['position']}: {r['action']} ({r['reason']})"

    def _other(self, r: Mapping[str, Any]) -> str:
        skip = ("step", "time", "sensor", "event")
        return " ".join(f"{k}={_q(v)}" for k, v in r.items() if k not in skip)


class StreamSink:
    """Writes batches to a text stream (stdout or a file) off the event loop, so a slow reader never stalls
    the engine. `fmt` "json" (JSON Lines) or "human". In JSON it also takes lines the hub serialised already
    (`write_lines`)."""

    def __init__(self, stream: TextIO, fmt: str = "human", *, color: bool = False, owns: bool = False) -> None:
        self.stream, self.fmt, self.owns = stream, fmt, owns
        self.human = HumanFormat(color=color)

    @property
    def accepts_lines(self) -> bool:
        return self.fmt == "json"

    def _write(self, data: bytes | str) -> None:
        if isinstance(data, bytes):
            raw = getattr(self.stream, "buffer", None)
            if raw is None:  # a stream without a byte layer (StringIO)
                data = data.decode()
            else:
                self.stream.flush()  # whatever went through the text layer first stays first
                raw.write(data)
                raw.flush()
                return
        self.stream.write(data)
        self.stream.flush()

    def _render(self, batch: Sequence[TraceRecord]) -> None:
        data: bytes | str = encode_lines(batch)[0] if self.fmt == "json" else self.human.lines(
            r.to_json() for r in batch)
        if data:
            self._write(data)

    async def write(self, batch: Sequence[TraceRecord]) -> None:
        await asyncio.to_thread(self._render, batch)  # the hub writes one batch at a time

    async def write_lines(self, chunks: Sequence[bytes], sensors: Sequence[str]) -> None:
        """Chunks of JSON Lines (`engine.trace.records.encode_chunks`)."""
        data = b"".join(chunks)
        if data:
            await asyncio.to_thread(self._write, data)

    async def close(self) -> None:
        if self.owns:
            await asyncio.to_thread(self.stream.close)

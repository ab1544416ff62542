"""Dependency transforms (section 2.7 of the semantics reference): jq or Lua rewriting the event data.

Ports ApplyTransform (pkg/sensors/dependencies/transform.go): `jq` wins when both are set; an event without data
is unchanged; the data must decode (Go `encoding/json`) to a JSON object; jq keeps only the first output, which
must be an object; a Lua script must return a table. The new data is Go's `json.Marshal` of the result (keys
sorted, float64 numbers: `4`, not `4.0`) and the content type becomes `application/json`. Any failure drops the
event for that dependency (the caller shows the reason).

jq programs run in a child process (`sensors.jqworker`) with a time limit: the process is killed and replaced
when a program does not finish, so a looping program cannot hang the engine. Programs that load jq modules
(`import`, `include`, `modulemeta`) are refused at load: gojq in Argo has no module loader, and jq's would read
local files. The child gets an empty environment, so `env`/`$ENV` are `{}` as with gojq.
"""

from __future__ import annotations

import json
import os
import re
import selectors
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any, Literal

import jq
import msgspec

from sensorium.engine.core.cloudevent import CloudEvent
from sensorium.engine.goport.jsonenc import marshal, unmarshal
from sensorium.sensors.lua import DEFAULT_TIMEOUT, LuaScriptError, check_syntax, memory_limit, run_script
from sensorium.sensors.spec import EventDependencyTransformer

JQ_TIMEOUT = 1.0
_DIRECTIVE = re.compile(r"(module|import|include)(?![A-Za-z0-9_])")
_MODULEMETA = re.compile(r"(?<![A-Za-z0-9_$.])modulemeta(?![A-Za-z0-9_])")


def _uses_modules(program: str) -> bool:
    """A jq program that loads modules: `module`/`import`/`include` directives (only allowed before the main
    expression, after whitespace and comments) or `modulemeta`, which reads module files too."""
    i = 0
    while i < len(program):
        if program[i].isspace():
            i += 1
        elif program[i] == "#":
            end = program.find("\n", i)
            i = len(program) if end < 0 else end + 1
        else:
            break
    return _DIRECTIVE.match(program, i) is not None or _MODULEMETA.search(program) is not None
_APPLICATION_JSON = "application/json"


class TransformError(ValueError):
    """A transform that failed for one event; the message says why (Argo's text where it has one)."""


class TransformConfigError(ValueError):
    """A transform that can never run (found at load); `field` is `jq` or `script`."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(message)


# ---- Go encoding/json decoding of the event data ------------------------------------------------------------

def decode_object(data: bytes) -> dict[str, Any]:
    """json.Unmarshal(data, &map[string]interface{}): numbers float64, the last duplicate key wins, `null`
    gives an empty map; TransformError for invalid JSON or a value that is not an object."""
    text = data.decode("utf-8", errors="replace")
    try:
        value, error = unmarshal(text)
    except json.JSONDecodeError as exc:
        raise TransformError(f"the event data is not valid JSON: {exc.msg} (line {exc.lineno} column "
                             f"{exc.colno})") from None
    except ValueError as exc:
        raise TransformError(str(exc)) from None
    except RecursionError:  # Go's decoder stops at 10,000 levels; Python's recursion limit comes first
        raise TransformError("the event data is not valid JSON: nested too deeply") from None
    if not isinstance(value, dict) and value is not None:
        kind = "array" if isinstance(value, list) else "string" if isinstance(value, str) else \
            "bool" if isinstance(value, bool) else "number"
        raise TransformError(f"json: cannot unmarshal {kind} into Go value of type map[string]interface {{}}")
    if error is not None:
        raise TransformError(str(error))
    return value if value is not None else {}


def _jq_input(value: Any) -> Any:
    """Go float64 values as gojq sees them: integral numbers are integers (so `tostring` gives "1")."""
    if isinstance(value, float) and value.is_integer() and abs(value) <= 2.0**53:
        return int(value)
    if isinstance(value, dict):
        return {k: _jq_input(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jq_input(v) for v in value]
    return value


def _from_jq(value: Any) -> Any:
    """jq results as Go values: integers past 2**53 are float64 (as decoded from the event by Go)."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > 2**53:
        return float(value)
    if isinstance(value, dict):
        return {k: _from_jq(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_from_jq(v) for v in value]
    return value


# ---- jq worker process --------------------------------------------------------------------------------------

class _JqWorker:
    """One `sensors.jqworker` child; restarted after a timeout or a crash."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None

    def _start(self) -> subprocess.Popen[bytes]:
        if self._proc is None or self._proc.poll() is not None:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "sensorium.sensors.jqworker"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL, env={"PYTHONPATH": os.pathsep.join(p for p in sys.path if p)},
                cwd="/", close_fds=True)
        return self._proc

    def _kill(self) -> None:
        if self._proc is not None:
            self._proc.kill()
            self._proc.wait()
            self._proc = None

    def run(self, program: str, data: str, timeout: float) -> dict[str, Any]:
        with self._lock:
            proc = self._start()
            assert proc.stdin is not None and proc.stdout is not None
            request = (json.dumps({"program": program, "data": data}) + "\n").encode()
            try:
                proc.stdin.write(request)
                proc.stdin.flush()
            except OSError:
                self._kill()
                raise TransformError("jq failed: the jq worker process stopped") from None
            deadline = time.monotonic() + timeout
            buffer = b""
            fd = proc.stdout.fileno()
            with selectors.DefaultSelector() as selector:
                selector.register(fd, selectors.EVENT_READ)
                while not buffer.endswith(b"\n"):
                    remaining = deadline - time.monotonic()
                    if remaining <= 0 or not selector.select(remaining):
                        self._kill()
                        raise TransformError(f"jq program exceeded its time limit of {timeout:g}s")
                    chunk = os.read(fd, 1 << 16)
                    if not chunk:
                        self._kill()
                        raise TransformError("jq failed: the jq worker process stopped (out of memory?)")
                    buffer += chunk
            reply: dict[str, Any] = json.loads(buffer)
            return reply

    def close(self) -> None:
        with self._lock:
            self._kill()


_WORKER = _JqWorker()


def check_jq(program: str) -> None:
    """Load-time check: the program compiles and loads no modules; TransformConfigError otherwise."""
    if _uses_modules(program):
        raise TransformConfigError("jq", "jq modules (module/import/include/modulemeta) are not supported")
    try:
        jq.compile(program)
    except ValueError as exc:
        message = " ".join(str(exc).split())
        raise TransformConfigError("jq", f"jq program does not compile: {message}") from None


def apply_jq(program: str, data: bytes, timeout: float = JQ_TIMEOUT) -> bytes:
    """applyJQTransform on event data; the new data bytes or TransformError."""
    if _uses_modules(program):
        raise TransformError("jq modules (module/import/include/modulemeta) are not supported")
    value = decode_object(data)
    reply = _WORKER.run(program, json.dumps(_jq_input(value), ensure_ascii=False), timeout)
    if reply["status"] == "empty":
        raise TransformError("no output available from the jq command execution")
    if reply["status"] == "error":
        message = " ".join(str(reply["message"]).split())
        raise TransformError(f"jq transformation output must be a JSON object (the program failed: {message})")
    output = _from_jq(reply["value"])
    if not isinstance(output, dict):
        raise TransformError(f"jq transformation output must be a JSON object (got {_json_kind(output)})")
    try:
        return marshal(output).encode()
    except ValueError as exc:
        raise TransformError(str(exc)) from None


def _json_kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "an array" if isinstance(value, list) else "an object"


def apply_script(script: str, data: bytes, timeout: float = DEFAULT_TIMEOUT) -> bytes:
    """applyScriptTransform: the Lua script must return a table, converted like gopher-lua's toGoValue."""
    value = decode_object(data)
    try:
        result = run_script(script, value, convert=True, timeout=timeout, max_memory=memory_limit(len(data)))
    except LuaScriptError as exc:
        raise TransformError(str(exc)) from None
    if not result.is_table:
        raise TransformError(f"transformation script output type is not of lua table (got {result.type_name})")
    try:
        return marshal(result.value).encode()
    except ValueError as exc:
        raise TransformError(str(exc)) from None


# ---- the dependency step ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class TransformResult:
    """One dependency's transform of one event: the event filters and parameters see, or the error."""

    kind: Literal["jq", "script"]
    event: CloudEvent | None
    error: str | None = None
    reason: str = ""


def active_kind(spec: EventDependencyTransformer | None) -> Literal["jq", "script"] | None:
    """Which transform runs: jq wins when both are set (TR:15-26); None when there is nothing to run."""
    if spec is None:
        return None
    if spec.jq:
        return "jq"
    return "script" if spec.script else None


def check_transform(spec: EventDependencyTransformer | None) -> None:
    """Load-time checks of the transform that would run; TransformConfigError."""
    kind = active_kind(spec)
    if kind == "jq":
        assert spec is not None
        check_jq(spec.jq)
    elif kind == "script":
        assert spec is not None
        try:
            check_syntax(spec.script)
        except LuaScriptError as exc:
            raise TransformConfigError("script", f"Lua script does not compile: {exc}") from None


def apply_transform(spec: EventDependencyTransformer | None, event: CloudEvent) -> TransformResult | None:
    """ApplyTransform: None when the dependency has no transform, else the transformed event or the error."""
    kind = active_kind(spec)
    if kind is None:
        return None
    assert spec is not None
    if event.data is None:
        return TransformResult(kind, event, None, "the event has no data, so the transform leaves it unchanged")
    try:
        data = apply_jq(spec.jq, event.data) if kind == "jq" else apply_script(spec.script, event.data)
    except TransformError as exc:
        return TransformResult(kind, None, f"{kind} transform error ({exc})",
                               "the transform failed, so the event is dropped for this dependency (Argo)")
    except RecursionError:  # data within the decoder's nesting limit, but too deep for the conversions here
        return TransformResult(kind, None, f"{kind} transform error (the event data is nested too deeply)",
                               "the transform failed, so the event is dropped for this dependency (Argo)")
    changed = msgspec.structs.replace(event, data=data, datacontenttype=_APPLICATION_JSON)
    return TransformResult(kind, changed, None, f"{kind} transform applied; datacontenttype is now "
                                                f"{_APPLICATION_JSON}")


def close_worker() -> None:
    """Stop the jq worker process (tests, shutdown)."""
    _WORKER.close()

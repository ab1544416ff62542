"""Sandboxed Lua for script filters and script transforms (sections 2.6 and 2.7 of the semantics reference).

Argo runs each script in a fresh gopher-lua state (Lua 5.1) with the global `event` built from the event data
(`mapToTable`) and reads the value left on top of the stack (the last value the chunk returned). Sensorium uses
lupa's Lua 5.1, also a fresh runtime per call (so globals never leak between events), sandboxed:

* removed: `os`, `io`, `require`, `module`, `package`, `debug`, `load`, `loadstring`, `loadfile`, `dofile`,
  `collectgarbage`, `gcinfo`, `newproxy`, `getfenv`, `setfenv`, `string.dump` and lupa's `python` table;
  Python objects are never handed to scripts, and any attribute access on one is refused anyway;
  `print` discards its arguments (gopher-lua would write to the sensor's stdout);
* a memory limit per runtime (`max_memory`, 64 MiB plus room for the event table): a script that allocates too
  much fails with "not enough memory";
* a wall-clock limit per call, enforced by a count hook installed before `debug` is removed: the hook raises an
  error once the deadline has passed, and `pcall`, `xpcall` and `coroutine.resume`/`wrap` re-raise it, so a
  script cannot swallow the timeout; coroutines get the same hook;
* a process boundary: `run_script` runs the script in a child process (sensors.luaworker, one per calling
  thread, so one sensor's runaway script never waits on another's) that is killed and restarted when a call
  does not answer within its time limit. Single C calls the hook cannot interrupt - a Lua string pattern that
  backtracks (`string.find(s, string.rep('a*', 30) .. 'b')`), one huge `string.rep` - are cut there. Both
  limits give the same reason: `timed out after 1.0 s`. `run_script_here` runs in this process (the child's
  side; load-time syntax checks use `check_syntax`, which runs nothing).

Cost, measured on this 2-core machine (`return event.body.a == 1` on a 3-field event, 2,000 calls): 97 us of
CPU per call in process (a fresh runtime per call); through the worker, see `python -m bench.lua_worker`.
"""

from __future__ import annotations

import math
import os
import selectors
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import lupa.lua51 as lua51
import msgspec

from sensorium.engine.goport import strconv
from sensorium.engine.goport.deadline import remaining, timed_out

DEFAULT_TIMEOUT = 1.0
DEFAULT_MAX_MEMORY = 64 * 1024 * 1024
_BYTES_PER_DATA_BYTE = 16  # room for the `event` table built from the data, on top of the default


def memory_limit(data_size: int) -> int:
    """The memory limit for a script run on event data of `data_size` bytes."""
    return DEFAULT_MAX_MEMORY + _BYTES_PER_DATA_BYTE * data_size
_HOOK_EVERY = 1000  # instructions between deadline checks
_MAX_ARRAY_INDEX = 67108864  # gopher-lua: integer keys below this live in the array part (MaxN)
_MAX_DEPTH = 200

_BOOTSTRAP = r"""
local now, deadline, every = ...
local sethook, rawmeta = debug.sethook, debug.getmetatable
local loadstring, select, error, unpack = loadstring, select, error, unpack
local real_pcall, real_xpcall = pcall, xpcall
local co_create, co_resume = coroutine.create, coroutine.resume
local TIMEOUT = "script exceeded its time limit"
local expired = false

local function hook()
  if expired or now() > deadline then
    expired = true
    error(TIMEOUT, 0)
  end
end

local function guard(...)
  if expired then error(TIMEOUT, 0) end
  return ...
end

pcall = function(...) return guard(real_pcall(...)) end
xpcall = function(...) return guard(real_xpcall(...)) end
local function create(f)
  local co = co_create(f)
  sethook(co, hook, "", every)
  return co
end
coroutine.create = create
coroutine.resume = function(...) return guard(co_resume(...)) end
coroutine.wrap = function(f)
  local co = create(f)
  local function finish(ok, ...)
    guard()
    if not ok then error((...), 0) end
    return ...
  end
  return function(...) return finish(co_resume(co, ...)) end
end
print = function() end

for _, name in ipairs({"os", "io", "require", "module", "package", "debug", "load", "loadstring", "loadfile",
                       "dofile", "collectgarbage", "gcinfo", "newproxy", "getfenv", "setfenv", "python"}) do
  _G[name] = nil
end
string.dump = nil

local function compile(source)
  local chunk, err = loadstring(source, "=script")
  return chunk ~= nil, err
end

local function run(source)
  local chunk, err = loadstring(source, "=script")
  if not chunk then error(err, 0) end
  sethook(hook, "", every)
  local function finish(...)
    sethook()
    local n = select("#", ...)
    if n == 0 then return 0, nil end
    return n, (select(n, ...))
  end
  return finish(chunk())
end

local function is_array(t)
  local mt = rawmeta(t)
  return type(mt) == "table" and rawget(mt, "__is_array") == true
end

return compile, run, is_array
"""


_TIMEOUT_MARK = "script exceeded its time limit"


class LuaScriptError(ValueError):
    """A script that does not compile, fails, runs out of time or memory; message from Lua (or the limit)."""


def _deny(*_args: Any) -> Any:
    raise AttributeError("Python attributes are not accessible from sensor scripts")


@dataclass
class _Runtime:
    runtime: Any
    compile: Any
    run: Any
    is_array: Any


def _runtime(timeout: float, max_memory: int) -> _Runtime:
    rt = lua51.LuaRuntime(encoding=None, register_eval=False, register_builtins=False, max_memory=max_memory,
                          attribute_handlers=(_deny, _deny), unpack_returned_tuples=False)
    deadline = time.monotonic() + timeout
    compile_fn, run_fn, is_array = rt.execute(_BOOTSTRAP, time.monotonic, deadline, _HOOK_EVERY)
    return _Runtime(rt, compile_fn, run_fn, is_array)


def _error_text(exc: BaseException) -> str:
    text = str(exc)
    if isinstance(exc, lua51.LuaMemoryError) or "not enough memory" in text:
        return "not enough memory (the script exceeded its memory limit)"
    if "script exceeded its time limit" in text:
        return _TIMEOUT_MARK
    return text.replace("\\n", "\n").strip()


def check_syntax(script: str) -> None:
    """Compile without running (load time); LuaScriptError with Lua's message, e.g. "script:2: 'then' expected"."""
    rt = _runtime(DEFAULT_TIMEOUT, DEFAULT_MAX_MEMORY)
    ok, err = rt.compile(script.encode("utf-8"))
    if not ok:
        raise LuaScriptError(_lua_str(err))


# ---- Go values -> Lua (mapToTable) -------------------------------------------------------------------------

def _lua_str(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _to_lua_value(value: Any) -> Any:
    """One value of Argo's mapToTable: null fields are dropped (returns None), arrays keep only
    map/number/string/bool elements (no nested arrays, no nulls), numbers are float64."""
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, Mapping):
        return _to_lua_map(value)
    if isinstance(value, list):
        return [_to_lua_value(v) for v in value
                if v is not None and not isinstance(v, list)]
    return None


def _to_lua_map(data: Mapping[str, Any]) -> dict[bytes, Any]:
    return {str(k).encode("utf-8"): _to_lua_value(v) for k, v in data.items() if v is not None}


# ---- Lua -> Go values (toGoValue) --------------------------------------------------------------------------

class _Converter:
    def __init__(self, rt: _Runtime) -> None:
        self.rt = rt

    def key(self, key: Any) -> str:
        """gopher-lua LValue.String() of a table key."""
        if isinstance(key, bytes):
            return key.decode("utf-8", "replace")
        if isinstance(key, bool):
            return "true" if key else "false"
        if isinstance(key, (int, float)):
            f = float(key)
            if math.isfinite(f) and f == int(f) and abs(f) < 2.0**63:
                return str(int(f))
            return strconv.format_float(f, "g", -1)
        return f"{lua51.lua_type(key)}: 0x{id(key):08x}"

    def value(self, value: Any, depth: int = 0) -> Any:
        if value is None or isinstance(value, bool):
            return value
        if isinstance(value, (int, float)):
            return float(value)
        if isinstance(value, bytes):
            return value.decode("utf-8", "replace")
        kind = lua51.lua_type(value)
        if kind != "table":
            raise LuaScriptError(f"json: unsupported type: lua {kind}")
        if depth > _MAX_DEPTH:
            raise LuaScriptError("json: the table is nested too deeply (does it contain itself?)")
        items = list(value.items())
        numbered: dict[int, Any] = {}
        for k, v in items:
            if isinstance(k, (int, float)) and not isinstance(k, bool) and math.isfinite(k) and k == int(k) \
                    and 1 <= k < _MAX_ARRAY_INDEX:
                numbered[int(k)] = v
        maxn = max(numbered, default=0)
        if maxn > 0 or self.rt.is_array(value):
            return [self.value(numbered.get(i), depth + 1) for i in range(1, maxn + 1)]
        return {self.key(k): self.value(v, depth + 1) for k, v in items}


@dataclass(frozen=True)
class ScriptResult:
    """What the chunk left on top of the stack: `returned` is False when it returned nothing."""

    returned: bool
    is_true: bool
    is_table: bool
    type_name: str
    value: Any  # the last returned value converted like Argo's toGoValue (tables only; else None)


def run_script_here(script: str, data: Mapping[str, Any], *, convert: bool = False,
                    timeout: float = DEFAULT_TIMEOUT, max_memory: int = DEFAULT_MAX_MEMORY) -> ScriptResult:
    """Run `script` in this process with the global `event` built from `data`; LuaScriptError for any failure
    (a script that overruns `timeout` in Lua code fails with `timed out after ...`, but a long C call is not
    interrupted: use run_script)."""
    rt = _runtime(timeout, max_memory)
    try:
        rt.runtime.globals().event = rt.runtime.table_from(_to_lua_map(data), recursive=True)
        count, last = rt.run(script.encode("utf-8"))
        if not count:
            return ScriptResult(False, False, False, "nil", None)
        type_name = "nil" if last is None else "boolean" if isinstance(last, bool) else \
            "number" if isinstance(last, (int, float)) else "string" if isinstance(last, bytes) else \
            str(lua51.lua_type(last))
        is_table = type_name == "table"
        value = _Converter(rt).value(last) if convert and is_table else None
        return ScriptResult(True, last is True, is_table, type_name, value)
    except LuaScriptError:
        raise
    except (lua51.LuaError, MemoryError) as exc:
        text = _error_text(exc)
        raise LuaScriptError(timed_out(timeout) if text == _TIMEOUT_MARK else text) from None


# ---- the worker process -----------------------------------------------------------------------------------

_GRACE = 0.05  # the child's own hook usually reports a Lua-level overrun first; then the parent kills it
_START_TIMEOUT = 30.0
_HEADER = 4


class LuaWorker:
    """One `sensors.luaworker` child, used by one thread at a time; killed after a timeout, restarted on use."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None
        self._encoder = msgspec.msgpack.Encoder()
        self._decoder = msgspec.msgpack.Decoder(list)

    def _read(self, proc: subprocess.Popen[bytes], size: int, deadline: float) -> bytes | None:
        """`size` bytes from the child before `deadline`; None when it does not answer or stopped."""
        assert proc.stdout is not None
        fd = proc.stdout.fileno()
        chunks: list[bytes] = []
        got = 0
        with selectors.DefaultSelector() as selector:
            selector.register(fd, selectors.EVENT_READ)
            while got < size:
                left = deadline - time.monotonic()
                if left <= 0 or not selector.select(left):
                    return None
                chunk = os.read(fd, min(size - got, 1 << 20))
                if not chunk:
                    return None
                chunks.append(chunk)
                got += len(chunk)
        return b"".join(chunks)

    def _start(self) -> subprocess.Popen[bytes]:
        if self._proc is not None and self._proc.poll() is None:
            return self._proc
        self._kill()
        proc = subprocess.Popen(
            [sys.executable, "-m", "sensorium.sensors.luaworker", str(os.getpid())], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, cwd="/", close_fds=True,
            env={"PYTHONPATH": os.pathsep.join(p for p in sys.path if p)})
        if self._read(proc, 1, time.monotonic() + _START_TIMEOUT) != b"R":
            proc.kill()
            proc.wait()
            raise LuaScriptError("the Lua worker process did not start")
        self._proc = proc
        return proc

    def _kill(self) -> None:
        if self._proc is not None:
            self._proc.kill()
            self._proc.wait()
            self._proc = None

    def run(self, script: str, data: Mapping[str, Any], convert: bool, timeout: float, max_memory: int,
            limit: float) -> ScriptResult:
        """One call; `limit` is the limit a timeout names (the event's when its deadline cut `timeout`)."""
        with self._lock:
            proc = self._start()  # (re)starting is not charged to the call's time limit
            assert proc.stdin is not None
            body = self._encoder.encode([script, data, convert, timeout, max_memory])
            try:
                proc.stdin.write(len(body).to_bytes(_HEADER, "big") + body)
                proc.stdin.flush()
            except (OSError, ValueError):
                self._kill()
                raise LuaScriptError("the Lua worker process stopped") from None
            deadline = time.monotonic() + timeout + _GRACE
            header = self._read(proc, _HEADER, deadline)
            reply = None if header is None else self._read(proc, int.from_bytes(header, "big"), deadline)
            if reply is None:
                stopped = proc.poll() is not None
                self._kill()
                raise LuaScriptError("the Lua worker process stopped (out of memory?)" if stopped
                                     else timed_out(limit))
        answer = self._decoder.decode(reply)
        if answer[0] != "ok":
            message = str(answer[1])
            raise LuaScriptError(timed_out(limit) if message.startswith("timed out after ") else message)
        _, returned, is_true, is_table, type_name, value = answer
        return ScriptResult(bool(returned), bool(is_true), bool(is_table), str(type_name), value)

    def close(self) -> None:
        with self._lock:
            self._kill()


_WORKERS: list[LuaWorker] = []
_local = threading.local()


def _worker() -> LuaWorker:
    worker: LuaWorker | None = getattr(_local, "worker", None)
    if worker is None:
        worker = _local.worker = LuaWorker()
        _WORKERS.append(worker)
    return worker


def run_script(script: str, data: Mapping[str, Any], *, convert: bool = False, timeout: float = DEFAULT_TIMEOUT,
               max_memory: int = DEFAULT_MAX_MEMORY) -> ScriptResult:
    """Run `script` with the global `event` built from `data` in this thread's Lua worker process, within
    `timeout` or what is left of the current event's deadline (engine.goport.deadline), whichever is shorter;
    LuaScriptError for any failure, `timed out after 1.0 s` when it does not finish in time."""
    limit, left = timeout, remaining()
    if left is not None:
        if left[0] <= 0:
            raise LuaScriptError(timed_out(left[1]))
        if left[0] < timeout:
            timeout, limit = left[0], left[1]
    return _worker().run(script, data, convert, timeout, max_memory, limit)


def close_workers() -> None:
    """Stop every Lua worker process (tests, shutdown); they restart when used again."""
    for worker in list(_WORKERS):
        worker.close()

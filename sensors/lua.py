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
  script cannot swallow the timeout; coroutines get the same hook. Long single C calls (one huge `string.rep`,
  a pathological pattern match) are bounded by the memory limit but cannot be interrupted mid-call.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import lupa.lua51 as lua51

from sensors.expr import go_format_g

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
        return "script exceeded its time limit"
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
            return go_format_g(f)
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


def run_script(script: str, data: Mapping[str, Any], *, convert: bool = False, timeout: float = DEFAULT_TIMEOUT,
               max_memory: int = DEFAULT_MAX_MEMORY) -> ScriptResult:
    """Run `script` with the global `event` built from `data`; LuaScriptError for any failure."""
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
        raise LuaScriptError(_error_text(exc)) from None

"""Child process that runs Lua scripts for script filters and transforms (`python -m sensorium.sensors.luaworker`).

Lua's string patterns (`string.find`/`match`/`gmatch`/`gsub`) backtrack inside one C call that the instruction
hook of sensors.lua cannot interrupt (`string.find(s, string.rep('a*', 30) .. 'b')` runs for hours), and a
thread cannot be stopped; so scripts run here and the parent (sensors.lua.LuaWorker) kills this process when a
call does not answer in time. Protocol, over stdin/stdout: the child writes one byte `R` once it is ready, then
answers each request frame with one reply frame; a frame is a 4-byte big-endian length and a msgpack body.
The parent's pid is the only argument: the child exits when it
changes. Request `[script, data, convert, timeout, max_memory]`; reply `["ok", returned, is_true, is_table, type_name,
value]` or `["error", message]`. The child caps its own address space, like sensors.jqworker.
"""

from __future__ import annotations

import os
import resource
import struct
import sys
import threading
import time
from typing import Any, BinaryIO

import msgspec

from sensorium.sensors.lua import LuaScriptError, run_script_here

MAX_ADDRESS_SPACE = 2 * 1024 * 1024 * 1024
_HEADER = struct.Struct(">I")


def answer(request: list[Any]) -> list[Any]:
    script, data, convert, timeout, max_memory = request
    try:
        r = run_script_here(script, data, convert=convert, timeout=timeout, max_memory=max_memory)
    except LuaScriptError as exc:
        return ["error", str(exc)]
    except Exception as exc:  # whatever a script provokes is its failure, never the worker's
        return ["error", f"{type(exc).__name__}: {exc}"]
    return ["ok", r.returned, r.is_true, r.is_table, r.type_name, r.value]


def read_frame(stream: BinaryIO) -> bytes | None:
    header = stream.read(_HEADER.size)
    if len(header) < _HEADER.size:
        return None
    (size,) = _HEADER.unpack(header)
    body = stream.read(size)
    return body if len(body) == size else None


def frame(body: bytes) -> bytes:
    return _HEADER.pack(len(body)) + body


def _exit_with(parent: int) -> None:
    """Exit when the engine is gone (even killed with -9), also while a script is stuck in a C call (lupa
    releases the GIL while Lua runs)."""
    while os.getppid() == parent:
        time.sleep(0.5)
    os._exit(1)


def main() -> None:
    if len(sys.argv) > 1:
        threading.Thread(target=_exit_with, args=(int(sys.argv[1]),), daemon=True).start()
    try:
        resource.setrlimit(resource.RLIMIT_AS, (MAX_ADDRESS_SPACE, MAX_ADDRESS_SPACE))
    except (ValueError, OSError):
        pass
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    encoder, decoder = msgspec.msgpack.Encoder(), msgspec.msgpack.Decoder(list)
    stdout.write(b"R")
    stdout.flush()
    while (body := read_frame(stdin)) is not None:
        try:
            reply = answer(decoder.decode(body))
        except MemoryError:
            reply = ["error", "not enough memory (the script exceeded its memory limit)"]
        except msgspec.DecodeError as exc:
            reply = ["error", f"bad request: {exc}"]
        stdout.write(frame(encoder.encode(reply)))
        stdout.flush()


if __name__ == "__main__":
    main()

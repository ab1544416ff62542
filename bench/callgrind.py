"""valgrind's callgrind around the benchmarks' child processes: instructions counted between two points of a run.

Unlike CPU seconds, instruction counts do not depend on what else runs on the machine's cores, so they compare two
variants steadily where times scatter; they cannot show what sharing the cores costs (preemptions, cold caches).
Under callgrind a Python process runs about 30 times slower.
"""

from __future__ import annotations

import asyncio
from pathlib import Path


def command(out_file: str | Path, children: bool = False) -> list[str]:
    """valgrind's callgrind, counting nothing until `control(pid, "-i", "on")`; dumps go to OUT_FILE.N (callgrind's
    `%p` in OUT_FILE is the process id). `children`: every process it starts (exec) runs under callgrind too."""
    return ["valgrind", "--tool=callgrind", "--instr-atstart=no", "--dump-instr=no",
            *(["--trace-children=yes"] if children else []), f"--callgrind-out-file={out_file}"]


async def control(pid: int, *args: str) -> None:
    """`callgrind_control ARGS PID` (e.g. `-i on`, `-d`); raises RuntimeError when it fails."""
    process = await asyncio.create_subprocess_exec("callgrind_control", *args, str(pid),
                                                   stdout=asyncio.subprocess.DEVNULL,
                                                   stderr=asyncio.subprocess.DEVNULL)
    if await process.wait() != 0:
        raise RuntimeError(f"callgrind_control {' '.join(args)} {pid} failed")


def totals(path: Path) -> int | None:
    """The instructions a callgrind output file counted (its `totals:` line); None when it has none."""
    try:
        for line in path.read_text().splitlines():
            if line.startswith("totals:"):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return None


async def dump(pid: int, out_file: Path) -> int:
    """Dump process `pid`'s counts (instructions since its previous dump, or since counting began) and return
    them, read from the newest OUT_FILE.N (`out_file` with callgrind's `%p` already filled in)."""
    await control(pid, "-d")
    dumps = [p for p in out_file.parent.glob(f"{out_file.name}.*") if p.suffix[1:].isdigit()]
    if not dumps:
        raise RuntimeError(f"callgrind wrote no dump {out_file}.N for process {pid}")
    newest = max(dumps, key=lambda p: int(p.suffix[1:]))
    counted = totals(newest)
    if counted is None:
        raise RuntimeError(f"{newest}: no totals line")
    return counted

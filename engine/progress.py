"""A progress display for long commands (`sensorium replay`): on a terminal one line redrawn in place with a bar;
otherwise (a pipe, a log file, CI) a plain line now and then. Thirty lines, so no dependency is added for it
(tqdm would do the bar, but its lines for a non-terminal are redraws with carriage returns, not log lines)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TextIO

BAR = 24


class Progress:
    """`update(done, note)` as work goes on; `close()` ends the display (the bar's line is cleared). `total` is
    what `done` counts towards (0: unknown, no bar). At most one redraw per `tty_every` seconds on a terminal,
    one line per `plain_every` seconds otherwise."""

    def __init__(self, stream: TextIO, label: str, total: int, *, tty: bool | None = None,
                 tty_every: float = 0.1, plain_every: float = 5.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.stream, self.label, self.total = stream, label, total
        self.tty = stream.isatty() if tty is None else tty
        self.every = tty_every if self.tty else plain_every
        self.clock = clock
        self._last = clock()
        self._drawn = False

    def line(self, done: int, note: str) -> str:
        count = f"{done}/{self.total}" if self.total else str(done)
        if not self.tty or not self.total:
            return f"{self.label}: {count} {note}"
        filled = min(BAR, BAR * done // self.total)
        return f"{self.label} [{'#' * filled}{'-' * (BAR - filled)}] {count} {note}"

    def update(self, done: int, note: str, force: bool = False) -> None:
        now = self.clock()
        if not force and now - self._last < self.every:
            return
        self._last = now
        if self.tty:
            self.stream.write("\r\x1b[2K" + self.line(done, note))
            self._drawn = True
        else:
            self.stream.write(self.line(done, note) + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self._drawn:
            self.stream.write("\r\x1b[2K")
            self.stream.flush()
            self._drawn = False

"""A one-line progress bar with ETA on stderr (only used when stderr is a TTY)."""

from __future__ import annotations

import sys
import time


def _fmt(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"


class Progress:
    def __init__(self, total: int, start: int = 0, enabled: bool = True, stream=None, width: int = 24) -> None:
        self.total, self.start, self.enabled = total, start, enabled
        self.stream = stream or sys.stderr
        self.width = width
        self.t0 = time.monotonic()
        self.shown = False
        self._last = 0

    def update(self, done: int, info: str = "") -> None:
        if not self.enabled:
            return
        frac = done / max(self.total, 1)
        fill = int(frac * self.width)
        elapsed = time.monotonic() - self.t0
        ran = done - self.start
        eta = elapsed / ran * (self.total - done) if ran > 0 else 0.0
        line = f"\repoch {done}/{self.total} [{'#' * fill}{'.' * (self.width - fill)}] {info} ETA {_fmt(eta)}"
        line = line[:200]
        # pad over whatever the previous, possibly longer, line left on screen
        self.stream.write(line.ljust(max(80, self._last)))
        self._last = len(line)
        self.stream.flush()
        self.shown = True

    def clear(self) -> None:
        """Blank the bar's line so that a log line can be written cleanly."""
        if self.enabled and self.shown:
            self.stream.write("\r" + " " * max(80, self._last) + "\r")
            self.stream.flush()

    def close(self) -> None:
        if self.enabled and self.shown:
            self.stream.write("\n")
            self.stream.flush()

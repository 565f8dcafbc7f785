"""The one progress bar: tqdm on stderr, silent when disabled (data goes to stdout, never bars)."""

from __future__ import annotations

import sys


class Progress:
    """A progress bar over ``total`` units, or nothing when disabled.

    ``update(k)`` advances by k; ``set(done, info)`` moves to ``done`` and shows
    ``info`` beside the bar; ``clear()`` blanks the line before a log message.
    """

    def __init__(self, total: int, desc: str = "", *, start: int = 0, enabled: bool = True, unit: str = "it", stream=None):
        self.bar = None
        if enabled and total > 0:
            from tqdm import tqdm

            self.bar = tqdm(total=total, initial=start, desc=desc, unit=unit, file=stream or sys.stderr, dynamic_ncols=True, leave=True)

    def update(self, k: int = 1) -> None:
        if self.bar is not None:
            self.bar.update(k)

    def set(self, done: int, info: str = "") -> None:
        if self.bar is not None:
            if info:
                self.bar.set_postfix_str(info, refresh=False)
            self.bar.update(done - self.bar.n)

    def clear(self) -> None:
        if self.bar is not None:
            self.bar.clear()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

"""Graceful interruption: SIGINT / SIGTERM finish the current step, then the trainer saves and exits.

A second SIGINT raises KeyboardInterrupt at once.
"""

from __future__ import annotations

import logging
import signal
import threading

log = logging.getLogger("kgalign.training")


class InterruptFlag:
    """Context manager installing the handlers (main thread only; a no-op elsewhere)."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._old: dict[int, object] = {}

    @property
    def set(self) -> bool:
        return self.signum is not None

    def _handle(self, signum, frame) -> None:
        if self.signum is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.signum = signum
        log.warning("received %s: finishing the current step, then saving a checkpoint", signal.Signals(signum).name)

    def __enter__(self) -> "InterruptFlag":
        if threading.current_thread() is threading.main_thread():
            for s in (signal.SIGINT, signal.SIGTERM):
                self._old[s] = signal.getsignal(s)
                signal.signal(s, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for s, h in self._old.items():
            signal.signal(s, h)
        self._old.clear()

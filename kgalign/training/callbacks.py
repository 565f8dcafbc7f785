"""Small training-loop callbacks: the metrics file, checkpoints, the progress bar."""

from __future__ import annotations

import logging
from pathlib import Path

from kgalign import rundir
from kgalign.progress import Progress
from kgalign.training.checkpoint import add_prefix, load_checkpoint, save_checkpoint, strip_prefix
from kgalign.training.loop import Callback, TrainingLoop

log = logging.getLogger("kgalign.training")


class MetricsLog(Callback):
    """Appends each epoch's record to ``RUN/metrics.jsonl`` (rank 0 only)."""

    def __init__(self, path: Path, enabled: bool = True) -> None:
        self.path = path
        self.enabled = enabled

    def on_epoch_end(self, loop: TrainingLoop, record: dict) -> None:
        if self.enabled:
            rundir.append_metrics(self.path, record)


class Checkpointer(Callback):
    """Saves the loop and every stateful callback every ``every`` epochs, on interrupt,
    and when asked (:meth:`save`); restores them (:meth:`restore`).

    ``meta`` (config hash, seed, world size) goes into every checkpoint's JSON.
    """

    def __init__(self, directory: Path, every: int, meta: dict, enabled: bool = True) -> None:
        self.directory = directory
        self.every = every
        self.meta = meta
        self.enabled = enabled
        self.loop: TrainingLoop | None = None

    def on_fit_start(self, loop: TrainingLoop) -> None:
        self.loop = loop

    def on_epoch_end(self, loop: TrainingLoop, record: dict) -> None:
        if loop.epoch % self.every == 0:
            self.save(loop)

    def on_interrupt(self, loop: TrainingLoop) -> None:
        self.save(loop)

    def save(self, loop: TrainingLoop, finished: bool = False) -> None:
        if not self.enabled:
            return
        tensors, meta = loop.state_dict()
        meta = dict(meta, **self.meta, finished=finished, callbacks={})
        for cb in loop.callbacks:
            if cb.key:
                t, js = cb.state_dict()
                tensors.update(add_prefix(t, f"cb.{cb.key}."))
                meta["callbacks"][cb.key] = js
        save_checkpoint(self.directory, tensors, meta)

    def restore(self, loop: TrainingLoop, check=None) -> dict:
        """Load the last checkpoint into ``loop`` and its callbacks; returns its JSON.

        ``check(meta)`` runs first (e.g. the config hash), so a foreign checkpoint is refused before
        its tensors meet the model."""
        tensors, meta = load_checkpoint(self.directory)
        if check is not None:
            check(meta)
        loop.load_state_dict(tensors, meta)
        for cb in loop.callbacks:
            if cb.key and cb.key in meta.get("callbacks", {}):
                cb.load_state_dict(strip_prefix(tensors, f"cb.{cb.key}."), meta["callbacks"][cb.key])
        return meta


class ProgressBar(Callback):
    """An epoch bar on stderr with the loss and the last evaluation."""

    def __init__(self, epochs: int, start: int, enabled: bool, selection=None) -> None:
        self.bar = Progress(epochs, "epoch", start=start, unit="epoch", enabled=enabled)
        self.selection = selection

    def log(self, message: str) -> None:
        """Log a line without breaking the bar."""
        self.bar.clear()
        log.info("%s", message)

    def on_fit_start(self, loop: TrainingLoop) -> None:
        if self.bar.bar is not None and loop.epoch:
            self.bar.bar.n = self.bar.bar.initial = loop.epoch  # a resumed run starts where it stopped
            self.bar.bar.refresh()

    def on_epoch_end(self, loop: TrainingLoop, record: dict) -> None:
        info = f"loss {record['loss']:.4f}"
        if self.selection is not None and self.selection.message:
            info += " " + self.selection.message
        self.bar.set(loop.epoch, info)

    def on_interrupt(self, loop: TrainingLoop) -> None:
        self.bar.close()

    def on_fit_end(self, loop: TrainingLoop) -> None:
        self.bar.close()

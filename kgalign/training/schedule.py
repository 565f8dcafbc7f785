"""Learning-rate schedule: linear warm-up, then cosine decay to zero (or constant).

The factor is a pure function of training progress measured in epochs, not in
optimizer steps, so it stays correct when bootstrapping adds links (and with
them batches) in the middle of a phase, and it needs no state beyond the phase
boundaries to resume exactly.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass


def warmup_constant(progress: float, warmup: float) -> float:
    """Linear warm-up over the first ``warmup`` of the phase, then constant 1."""
    progress = min(max(progress, 0.0), 1.0)
    return progress / warmup if warmup > 0 and progress < warmup else 1.0


def warmup_cosine(progress: float, warmup: float) -> float:
    """LR factor at ``progress`` in [0, 1] of a phase; ``warmup`` is the warm-up fraction.

    Linear from ~0 to 1 over the first ``warmup`` of the phase, then
    ``0.5 * (1 + cos(pi * t))`` with ``t`` the progress after warm-up.
    """
    progress = min(max(progress, 0.0), 1.0)
    if warmup > 0 and progress < warmup:
        return progress / warmup
    if warmup >= 1.0:
        return 1.0
    t = (progress - warmup) / (1.0 - warmup)
    return 0.5 * (1.0 + math.cos(math.pi * t))


@dataclass
class Phase:
    """One schedule phase: epochs ``[start, end)`` with peak learning rate ``lr``."""

    start: int
    end: int
    lr: float
    warmup: float
    schedule: str = "cosine"  # or "constant"

    def factor(self, epoch: int, batch: int, num_batches: int) -> float:
        """Factor for step ``batch`` (0-based) of 0-based ``epoch``; the first step is > 0."""
        span = max(self.end - self.start, 1)
        done = (epoch - self.start) + (batch + 1) / max(num_batches, 1)
        fn = warmup_cosine if self.schedule == "cosine" else warmup_constant
        return fn(done / span, self.warmup)

    def lr_at(self, epoch: int, batch: int, num_batches: int) -> float:
        return self.lr * self.factor(epoch, batch, num_batches)

    def state_dict(self) -> dict:
        return asdict(self)


def set_lr(optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr

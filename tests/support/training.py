"""Short training for model tests, through the one training loop every run uses."""

from __future__ import annotations

import numpy as np
import torch

from kgalign.device import resolve_precision
from kgalign.training.distributed import DistInfo, wrap_model
from kgalign.training.loop import TrainingLoop


def fit_steps(model, links, steps: int = 60, lr: float = 5e-3, weight_decay: float = 1e-4, seed: int = 0):
    """``steps`` full-batch optimizer steps on ``links`` (B, 2) at a constant learning rate; returns the model."""
    cpu = torch.device("cpu")
    loop = TrainingLoop(
        model,
        wrap_model(model, DistInfo(), cpu),
        np.asarray(links, dtype=np.int64),
        epochs=steps,
        batch_size=None,
        lr=lr,
        warmup=0.0,
        schedule="constant",
        weight_decay=weight_decay,
        betas=(0.9, 0.999),
        eps=1e-8,
        grad_clip=0.0,
        precision=resolve_precision("off", cpu),
        device=cpu,
        dist=DistInfo(),
        seed=seed,
    )
    loop.fit()
    return model

"""Training: the trainer loop, schedule, bootstrapping, checkpoints and the run directory.

``from kgalign.training import train`` is the Python entry point (see pipeline.py).
"""

from __future__ import annotations

__all__ = ["train", "Trainer", "TrainResult", "TrainingInterrupted"]


def __getattr__(name):
    # Lazy: importing kgalign.training must not import torch (the CLI's --help stays instant).
    if name in __all__:
        from kgalign.training import pipeline

        return getattr(pipeline, name)
    raise AttributeError(name)

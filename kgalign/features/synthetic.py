"""A synthetic dataset directory with its features (the generator is :mod:`kgalign.data.synthetic`)."""

from __future__ import annotations

import os
from pathlib import Path

from kgalign.data.synthetic import synthetic_pair


def make_synthetic(
    out_dir: str | os.PathLike,
    n: int = 200,
    degree: int = 4,
    modalities: tuple[str, ...] | dict[str, int] = ("attribute", "image"),
    dim: int = 32,
    noise: float = 0.6,
    splits: tuple[float, float, float] = (0.3, 0.2, 0.5),
    seed: int = 0,
    overwrite: bool = False,
    with_features: bool = True,
    missing: float | dict[str, float] = 0.05,
    vocabulary_shift: bool = False,
) -> Path:
    """Write :func:`synthetic_pair` as a dataset directory (with its features) to ``out_dir``."""
    from kgalign.data.store import write_dataset
    from kgalign.features.store import save_feature

    ds, features = synthetic_pair(n, degree, modalities, dim, noise, splits, seed, missing, vocabulary_shift)
    out = write_dataset(ds, out_dir, overwrite=overwrite)
    if with_features:
        for name, (mat, mask) in features.items():
            save_feature(out, name, mat, mask, {"featurizer": "synthetic"})
    return Path(out)

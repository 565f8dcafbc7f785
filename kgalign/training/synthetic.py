"""A tiny, learnable two-graph dataset for tests, examples and smoke runs.

Both graphs are noisy copies of one random latent graph: each keeps most latent
edges, gains a few random ones, and (KG2) numbers its entities in a shuffled
order. Each modality is the latent entity vector plus independent noise, so
features carry real but imperfect alignment signal.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np


def make_synthetic(
    out_dir: str | os.PathLike,
    n: int = 200,
    degree: int = 4,
    modalities: tuple[str, ...] = ("attribute", "image"),
    dim: int = 32,
    noise: float = 0.6,
    splits: tuple[float, float, float] = (0.3, 0.2, 0.5),
    seed: int = 0,
    overwrite: bool = False,
    with_features: bool = True,
) -> Path:
    """Write a dataset with ``n`` entities per graph and features to ``out_dir``.

    splits: fractions of the ``n`` gold links for train / valid / test (valid may be 0).
    """
    from kgalign.data.store import Dataset, write_dataset
    from kgalign.features.store import save_feature

    rng = np.random.default_rng(seed)
    n_rel = 5
    m = n * degree // 2
    latent = np.stack([rng.integers(0, n, m), rng.integers(0, n_rel, m), rng.integers(0, n, m)], 1)
    latent = latent[latent[:, 0] != latent[:, 2]]
    perm = rng.permutation(n)  # KG2 local id of latent entity i

    def noisy_copy(local_of: np.ndarray, offset: int, rel_offset: int) -> np.ndarray:
        keep = latent[rng.random(len(latent)) > 0.1]
        extra = np.stack([rng.integers(0, n, m // 10), rng.integers(0, n_rel, m // 10), rng.integers(0, n, m // 10)], 1)
        t = np.concatenate([keep, extra])
        return np.stack([local_of[t[:, 0]] + offset, t[:, 1] + rel_offset, local_of[t[:, 2]] + offset], 1)

    ident = np.arange(n)
    triples = np.concatenate([noisy_copy(ident, 0, 0), noisy_copy(perm, n, n_rel)]).astype(np.int64)
    entities = [f"http://kg1.example/e{i}" for i in range(n)] + [f"http://kg2.example/e{i}" for i in range(n)]
    links = np.stack([ident, perm + n], 1).astype(np.int64)
    order = rng.permutation(n)
    n_tr, n_va = int(round(splits[0] * n)), int(round(splits[1] * n))
    split = np.empty(n, dtype=object)
    split[order[:n_tr]] = "train"
    split[order[n_tr : n_tr + n_va]] = "valid"
    split[order[n_tr + n_va :]] = "test"
    ds = Dataset(
        entities=entities,
        entity_kg=np.array([1] * n + [2] * n, dtype=np.int8),
        relations=[f"r{i}" for i in range(n_rel)] * 2,
        relation_kg=np.array([1] * n_rel + [2] * n_rel, dtype=np.int8),
        relation_triples=triples,
        links=links,
        link_split=[str(s) for s in split],
        manifest={"source": "kgalign.training.synthetic", "seed": seed},
    )
    out = write_dataset(ds, out_dir, overwrite=overwrite)
    if with_features:
        z = rng.normal(size=(n, dim)).astype(np.float32)
        for name in modalities:
            w = rng.normal(size=(dim, dim)).astype(np.float32) / np.sqrt(dim)
            f1 = (z + noise * rng.normal(size=z.shape)) @ w
            f2 = (z[np.argsort(perm)] + noise * rng.normal(size=z.shape)) @ w
            mat = np.concatenate([f1, f2]).astype(np.float32)
            mask = rng.random(2 * n) > 0.05
            mat[~mask] = 0
            save_feature(out, name, mat, mask, {"featurizer": "synthetic"})
    return Path(out)

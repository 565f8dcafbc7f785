"""The synthetic two-graph pair for tests, examples, benchmarks and smoke runs (one generator).

Both graphs are noisy copies of one random latent graph: each keeps most latent
edges, gains a few random ones, and (KG2) numbers its entities in a shuffled
order. Each feature modality is a projection of the latent entity vector plus
independent noise, so features carry real but imperfect alignment signal; with
``vocabulary_shift`` the two graphs use different projections (as bag-of-words
columns of two real graphs differ), so an untrained model aligns near chance.
"""

from __future__ import annotations

import numpy as np

from kgalign.data.store import Dataset


def synthetic_pair(
    n: int = 200,
    degree: int = 4,
    modalities: tuple[str, ...] | dict[str, int] = ("attribute", "image"),
    dim: int = 32,
    noise: float = 0.6,
    splits: tuple[float, float, float] = (0.3, 0.2, 0.5),
    seed: int = 0,
    missing: float | dict[str, float] = 0.05,
    vocabulary_shift: bool = False,
) -> tuple[Dataset, dict[str, tuple[np.ndarray, np.ndarray]]]:
    """A dataset with ``n`` entities per graph and ``{modality: (matrix (2n, d), mask (2n,))}`` features.

    modalities: names (each ``dim`` wide) or ``{name: width}``. splits: fractions of
    the ``n`` gold links for train / valid / test. missing: the fraction of entities
    without each modality (a number or per modality).
    """
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
        manifest={"source": "kgalign.data.synthetic", "seed": seed},
    )
    widths = dict(modalities) if isinstance(modalities, dict) else {name: dim for name in modalities}
    z = rng.normal(size=(n, dim)).astype(np.float32)
    features = {}
    for name, width in widths.items():
        w1 = rng.normal(size=(dim, width)).astype(np.float32) / np.sqrt(dim)
        w2 = rng.normal(size=(dim, width)).astype(np.float32) / np.sqrt(dim) if vocabulary_shift else w1
        f1 = (z + noise * rng.normal(size=z.shape)) @ w1
        f2 = (z[np.argsort(perm)] + noise * rng.normal(size=z.shape)) @ w2
        mat = np.concatenate([f1, f2]).astype(np.float32)
        frac = missing.get(name, 0.0) if isinstance(missing, dict) else missing
        mask = rng.random(2 * n) >= frac if frac > 0 else np.ones(2 * n, bool)
        mat[~mask] = 0
        features[name] = (mat, mask)
    return ds, features

"""Synthetic :class:`ModelInputs` for tests and benchmarks (no files, no dataset).

- :func:`random_inputs`: unaligned random graph and features at a given scale
  (timing and memory benchmarks).
- :func:`aligned_pair`: the synthetic pair of :mod:`kgalign.data.synthetic` as
  model inputs, plus its gold links (model contract tests).
"""

from __future__ import annotations

import numpy as np
import torch

from kgalign.models.inputs import ModelInputs, build_inputs, undirected_edges


def random_inputs(
    num_entities: int, num_edges: int, feature_dims: dict[str, int], seed: int = 0, missing: dict[str, float] | None = None
) -> ModelInputs:
    """Random graph with ``num_edges`` undirected edges (before de-duplication) and
    random non-negative features ``{name: width}``; ``missing[name]`` is the
    fraction of entities without that modality."""
    rng = np.random.default_rng(seed)
    n = num_entities
    h = rng.integers(0, n, num_edges // 2)
    t = rng.integers(0, n, num_edges // 2)
    triples = np.stack([h, np.zeros_like(h), t], 1)
    feats, masks = {}, {}
    for name, dim in feature_dims.items():
        mask = rng.random(n) >= (missing or {}).get(name, 0.0)
        # ~5 % non-zero entries, like bag-of-words rows (float32 throughout: less peak memory).
        mat = np.zeros((n, dim), np.float32)
        nz = rng.integers(0, n * dim, n * dim // 20)
        mat.reshape(-1)[nz] = rng.random(len(nz), dtype=np.float32)
        mat[~mask] = 0.0
        feats[name] = torch.from_numpy(mat)
        masks[name] = torch.from_numpy(mask)
    n1 = n // 2
    return ModelInputs(
        num_entities=n,
        edge_index=undirected_edges(triples, n),
        rel_triples=torch.from_numpy(triples.astype(np.int64)),
        features=feats,
        masks=masks,
        kg=torch.from_numpy(np.r_[np.ones(n1), np.full(n - n1, 2)].astype(np.int64)),
    )


def aligned_pair(
    n_base: int = 200,
    degree: int = 6,
    feature_dims: dict[str, int] | None = None,
    feature_noise: float = 0.5,
    missing: dict[str, float] | None = None,
    seed: int = 0,
) -> tuple[ModelInputs, torch.Tensor]:
    """:func:`kgalign.data.synthetic.synthetic_pair` as model inputs: two noisy copies of one latent
    graph whose feature vocabularies differ (so an untrained model aligns near chance).

    Returns:
        ``(inputs, links)``: :class:`ModelInputs` with ``2 * n_base`` entities and
        LongTensor (n_base, 2) gold links (KG1 id, KG2 id) in random order.
    """
    from kgalign.data.synthetic import synthetic_pair

    dims = {"relation": 40, "attribute": 30, "image": 64} if feature_dims is None else feature_dims
    ds, feats = synthetic_pair(n_base, degree, dims, dim=16, noise=feature_noise, seed=seed, missing=missing or 0.0, vocabulary_shift=True)
    links = ds.links[np.random.default_rng(seed).permutation(len(ds.links))]
    return build_inputs(ds, feats), torch.from_numpy(links.astype(np.int64))


def hits_at_1(emb: torch.Tensor, links: torch.Tensor) -> float:
    """Fraction of ``links`` (L, 2) whose KG1 end's nearest link target (dot product) is its own partner."""
    sim = emb[links[:, 0]] @ emb[links[:, 1]].t()
    return (sim.argmax(1) == torch.arange(len(links), device=sim.device)).float().mean().item()

"""Synthetic :class:`ModelInputs` for tests and benchmarks (no files, no dataset).

- :func:`random_inputs`: unaligned random graph and features at a given scale
  (timing and memory benchmarks).
- :func:`aligned_pair`: two small graphs that are noisy copies of one base
  graph, with features derived from shared latent vectors, plus their gold
  links (tests that training lifts Hits@1 far above chance).
"""

from __future__ import annotations

import numpy as np
import torch

from kgalign.models.inputs import ModelInputs, undirected_edges


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
    drop_edges: float = 0.15,
    feature_noise: float = 0.5,
    missing: dict[str, float] | None = None,
    seed: int = 0,
) -> tuple[ModelInputs, torch.Tensor]:
    """Two noisy copies of one random base graph.

    KG1 entity ``i`` (id ``i``) and KG2 entity ``perm[i]`` (id ``n_base + perm[i]``)
    are the same base entity. Each copy keeps ``1 - drop_edges`` of the base
    edges independently. Every modality's feature is ``relu(A_m z_e) + noise``
    where ``z_e`` is the base entity's latent vector and ``A_m`` differs between
    the two graphs (their vocabularies differ, as relation/attribute bag-of-words
    columns do in real KG pairs), so an untrained model aligns near chance level.

    Returns:
        ``(inputs, links)``: :class:`ModelInputs` with ``2 * n_base`` entities and
        LongTensor (n_base, 2) gold links (KG1 id, KG2 id) in random order.
    """
    rng = np.random.default_rng(seed)
    if feature_dims is None:
        feature_dims = {"relation": 40, "attribute": 30, "image": 64}
    n = 2 * n_base
    m = n_base * degree // 2
    base = np.stack([rng.integers(0, n_base, m), rng.integers(0, n_base, m)], 1)
    perm = rng.permutation(n_base)
    keep1 = rng.random(m) >= drop_edges
    keep2 = rng.random(m) >= drop_edges
    e1 = base[keep1]
    e2 = n_base + perm[base[keep2]]
    edges = np.concatenate([e1, e2])
    triples = np.stack([edges[:, 0], np.zeros(len(edges), np.int64), edges[:, 1]], 1)
    latent = rng.normal(size=(n_base, 16))
    feats, masks = {}, {}
    for name, dim in feature_dims.items():
        mat = np.zeros((n, dim), np.float32)
        for rows in (np.arange(n_base), n_base + perm):
            clean = np.maximum(latent @ rng.normal(size=(16, dim)), 0.0)
            mat[rows] = clean + feature_noise * rng.normal(size=clean.shape)
        mask = rng.random(n) >= (missing or {}).get(name, 0.0)
        mat[~mask] = 0.0
        feats[name] = torch.from_numpy(mat.astype(np.float32))
        masks[name] = torch.from_numpy(mask)
    links = np.stack([np.arange(n_base), n_base + perm], 1)[rng.permutation(n_base)]
    inputs = ModelInputs(
        num_entities=n,
        edge_index=undirected_edges(triples, n),
        rel_triples=torch.from_numpy(triples.astype(np.int64)),
        features=feats,
        masks=masks,
        kg=torch.from_numpy(np.r_[np.ones(n_base), np.full(n_base, 2)].astype(np.int64)),
    )
    return inputs, torch.from_numpy(links.astype(np.int64))


def hits_at_1(emb: torch.Tensor, links: torch.Tensor) -> float:
    """Fraction of ``links`` (L, 2) whose KG1 end's nearest link target (dot product) is its own partner."""
    sim = emb[links[:, 0]] @ emb[links[:, 1]].t()
    return (sim.argmax(1) == torch.arange(len(links), device=sim.device)).float().mean().item()


def fit_briefly(
    model: torch.nn.Module, links: torch.Tensor, steps: int = 60, lr: float = 5e-3, weight_decay: float = 1e-4
) -> torch.nn.Module:
    """A bare AdamW loop over full-graph steps on ``links``: enough to check that a model can learn."""
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    model.train()
    for _ in range(steps):
        opt.zero_grad()
        loss, _ = model.loss(model(), links)
        loss.backward()
        opt.step()
    return model

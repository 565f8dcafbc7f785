"""Ranking on a seeded sample of the links: exact ranks for the sampled queries, every candidate kept.

At a million entities per side the full evaluation is out of reach on a small machine: the test
links' ``C1 x C2`` matrix is about 10^12 scores, and CSLS needs all of it (each candidate's
neighbourhood is taken over every query). Sampling the *queries* keeps each sampled rank exact:
the KG1 end of a sampled link ranks every KG2 candidate (l2r) and its KG2 end every KG1 candidate
(r2l), with the same candidate sets as :func:`~kgalign.evaluation.ranking.evaluate_embeddings`
(the whole split's ends, the pool, or all). The cost is ``m x (n1 + n2) x d`` for m sampled links.

The ranks are those of the full evaluation up to the float32 rounding of the block products: with exact ties
(duplicate embeddings) the two block layouts can round a tied score differently.

Only cosine is computed: CSLS's candidate-side term needs every query's neighbours, which is the
full matrix again; estimating it from the sample would change the statistic, so it is not offered.
Hits@k and MRR are then estimates of the full figures with standard error about
``sqrt(p (1 - p) / m)`` (0.005 at m = 10,000, p = 0.5).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from kgalign.evaluation.ranking import links_and_candidates, metrics_from_ranks
from kgalign.evaluation.similarity import DEFAULT_MAX_BLOCK_ELEMS, as_tensor, row_blocks

# The seed of each split's sample, shared by training's evaluations and `kgalign evaluate --sample`, so both rank the
# same links of a split.
SPLIT_SEEDS = {"test": 0, "valid": 1}


def sample_rows(n: int, sample: int, seed: int) -> np.ndarray:
    """Sorted indices of ``sample`` of ``n`` links drawn without replacement by ``seed``; all when ``sample >= n``."""
    if sample < 1:
        raise ValueError("sample must be >= 1")
    if sample >= n:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, sample, replace=False))


def _unit_rows(x: torch.Tensor) -> torch.Tensor:
    """L2-normalise a fresh (indexed) copy in place, as ``F.normalize`` computes it (zero rows stay zero)."""
    return x.div_(x.norm(2, 1, keepdim=True).clamp_min_(1e-12))


def _ranks(Q: torch.Tensor, C: torch.Tensor, gold: torch.Tensor, block_size: int, max_block_elems: int) -> torch.Tensor:
    """Pessimistic rank of candidate ``gold[i]`` for query ``Q[i]`` among the rows of ``C``: (m,) int64."""
    out = torch.empty(Q.shape[0], dtype=torch.long, device=Q.device)
    for s, e in row_blocks(Q.shape[0], C.shape[0], block_size, max_block_elems):
        S = Q[s:e] @ C.T
        g = S.gather(1, gold[s:e, None])
        out[s:e] = (~(S < g)).sum(1)  # >=, and a NaN gold score ranks last
    return out


def evaluate_sampled(
    emb,
    links,
    *,
    sample: int,
    seed: int = 0,
    candidates: str = "test",
    kg=None,
    exclude=None,
    block_size: int = 4096,
    device=None,
    ks: Sequence[int] = (1, 5, 10),
    max_block_elems: int = DEFAULT_MAX_BLOCK_ELEMS,
    dtype: torch.dtype = torch.float32,
) -> dict:
    """Cosine Hits@k / MRR / MR of up to ``sample`` links of ``links``, both directions.

    emb: (n, d); links: (L, 2) (kg1 id, kg2 id); candidates, kg, exclude: as
    :func:`~kgalign.evaluation.ranking.evaluate_embeddings`, computed from all L links.
    Returns ``{"cosine": {"l2r": m, "r2l": m}, "protocol": str, "candidates": {..., "sampled": m}}``.
    """
    # Only the rows read are normalised, one side's candidates at a time: at a million entities per side a full
    # normalised copy plus both candidate matrices would triple the embeddings' memory.
    E = as_tensor(emb, dtype) if device is None else as_tensor(emb, dtype, device)
    if E.dim() != 2:
        raise ValueError(f"embeddings must be 2-d (n, d), got shape {tuple(E.shape)}")
    dev = E.device
    L, c1, c2 = links_and_candidates(E, links, candidates, kg, exclude)
    S = L[torch.from_numpy(sample_rows(L.shape[0], sample, seed)).to(dev)]
    pos1 = torch.searchsorted(c1, S[:, 0].contiguous())
    pos2 = torch.searchsorted(c2, S[:, 1].contiguous())
    l2r = _ranks(_unit_rows(E[S[:, 0]]), _unit_rows(E[c2]), pos2, block_size, max_block_elems)
    r2l = _ranks(_unit_rows(E[S[:, 1]]), _unit_rows(E[c1]), pos1, block_size, max_block_elems)
    n1, n2, m = c1.numel(), c2.numel(), S.shape[0]
    return {
        "cosine": {"l2r": metrics_from_ranks(l2r, ks), "r2l": metrics_from_ranks(r2l, ks)},
        "protocol": (
            f"a sample of {m} of the {L.shape[0]} links (seed {seed}), each ranked exactly against all {n1} KG1 / {n2} KG2 "
            f"candidates ({candidates}); L2-normalised embeddings; cosine only (CSLS needs every query); "
            "ties pessimistic"
        ),
        "candidates": {"scope": candidates, "kg1": n1, "kg2": n2, "links": int(L.shape[0]), "sampled": m},
    }

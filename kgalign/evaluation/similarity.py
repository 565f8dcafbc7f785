"""Blocked similarity primitives: row blocks, CSLS neighbour means, exact top-k.

Every function here computes ``A @ B.T`` one block of rows at a time so that no
more than ``max_block_elems`` scores exist at once (the full matrix is never
materialised above that limit). Inputs are expected L2-normalised, so the dot
product is the cosine similarity.
"""

from __future__ import annotations

from typing import Iterator

import torch
import torch.nn.functional as F

# 2**25 float32 scores = 128 MiB per block matrix.
DEFAULT_MAX_BLOCK_ELEMS = 1 << 25


def as_tensor(x, dtype: torch.dtype, device=None) -> torch.Tensor:
    """numpy array or tensor -> tensor of ``dtype`` on ``device`` (no copy when possible)."""
    if isinstance(x, torch.Tensor):
        return x.to(device=device, dtype=dtype) if device is not None else x.to(dtype=dtype)
    import numpy as np

    return torch.as_tensor(np.asarray(x), dtype=dtype, device=device)


def normalise(emb, device=None, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """L2-normalise rows: (n, d) -> (n, d) of ``dtype``. Zero rows stay zero."""
    t = as_tensor(emb, dtype, device)
    if t.dim() != 2:
        raise ValueError(f"embeddings must be 2-d (n, d), got shape {tuple(t.shape)}")
    return F.normalize(t, p=2, dim=1)


def row_blocks(
    n_rows: int, n_cols: int, block_size: int = 4096, max_block_elems: int = DEFAULT_MAX_BLOCK_ELEMS
) -> Iterator[tuple[int, int]]:
    """Yield ``(start, end)`` row ranges with at most ``block_size`` rows and
    ``max_block_elems`` scores per block (at least one row)."""
    rows = max(1, min(int(block_size), int(max_block_elems) // max(1, int(n_cols))))
    for s in range(0, n_rows, rows):
        yield s, min(n_rows, s + rows)


def csls_neighbour_means(
    A: torch.Tensor, B: torch.Tensor, k: int, *, block_size: int = 4096, max_block_elems: int = DEFAULT_MAX_BLOCK_ELEMS
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean cosine to the k nearest neighbours on the other side, in one blocked pass.

    A: (m, d), B: (p, d), both L2-normalised.
    Returns ``r_a`` (m,): mean of the top-k of ``A[i] @ B.T``, and ``r_b`` (p,):
    mean of the top-k of ``B[j] @ A.T`` (kept as a running top-k over the
    columns of each row block). k is capped at the other side's size.
    """
    m, p = A.shape[0], B.shape[0]
    ka, kb = min(k, p), min(k, m)
    r_a = torch.zeros(m, dtype=A.dtype, device=A.device)
    if m == 0 or p == 0:
        return r_a, torch.zeros(p, dtype=A.dtype, device=A.device)
    run = None  # (kb, p) best column scores so far
    for s, e in row_blocks(m, p, block_size, max_block_elems):
        S = A[s:e] @ B.T
        r_a[s:e] = torch.topk(S, ka, dim=1, sorted=False).values.mean(1)
        col = torch.topk(S, min(kb, e - s), dim=0, sorted=False).values
        run = col if run is None else torch.topk(torch.cat([run, col], 0), min(kb, run.shape[0] + col.shape[0]), dim=0, sorted=False).values
    return r_a, run.mean(0)


def _topk_lowest_index_on_ties(S: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Row top-k of S (r, p) where a tie at the k-th place goes to the lower column.

    ``torch.topk`` picks any of the tied columns at the boundary; one extra place shows
    whether a row has such a tie, and only those rows are sorted stably (rare in float data)."""
    p = S.shape[1]
    if k >= p:
        return torch.topk(S, k, dim=1, sorted=True)
    v, i = torch.topk(S, k + 1, dim=1, sorted=True)
    tie = torch.nonzero(v[:, k] == v[:, k - 1]).flatten()
    v, i = v[:, :k].clone(), i[:, :k].clone()
    if tie.numel():
        sv, si = torch.sort(S[tie], dim=1, descending=True, stable=True)
        v[tie], i[tie] = sv[:, :k], si[:, :k]
    return v, i


def blocked_topk(
    A: torch.Tensor,
    B: torch.Tensor,
    k: int,
    *,
    r_a: torch.Tensor | None = None,
    r_b: torch.Tensor | None = None,
    block_size: int = 4096,
    max_block_elems: int = DEFAULT_MAX_BLOCK_ELEMS,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact top-k of each row of ``A`` against ``B``: cosine, or CSLS when
    ``r_a``/``r_b`` are given (score = 2 cos - r_a[i] - r_b[j]).

    A: (m, d), B: (p, d). Returns scores (m, k') in A's dtype and indices int64 (m, k')
    with k' = min(k, p), best first; ties broken by the lower index of B.
    """
    m, p = A.shape[0], B.shape[0]
    kk = min(int(k), p)
    scores = torch.empty((m, kk), dtype=A.dtype, device=A.device)
    index = torch.empty((m, kk), dtype=torch.long, device=A.device)
    if kk == 0 or m == 0:
        return scores, index
    for s, e in row_blocks(m, p, block_size, max_block_elems):
        S = A[s:e] @ B.T
        if r_a is not None:
            S.mul_(2).sub_(r_a[s:e, None]).sub_(r_b[None, :])
        v, i = _topk_lowest_index_on_ties(S, kk)
        # topk's order among equal scores is unspecified: re-sort by (score desc, index asc).
        i, perm = torch.sort(i, dim=1)
        v = v.gather(1, perm)
        perm = torch.sort(v, dim=1, descending=True, stable=True).indices
        scores[s:e] = v.gather(1, perm)
        index[s:e] = i.gather(1, perm)
    return scores, index

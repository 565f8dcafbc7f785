"""Exact top-k from low-precision (bfloat16 / float16) matrix products, with a certificate per row.

The score blocks are computed in low precision (faster where the hardware has it: 2x on
this project's CPUs for bfloat16, more on GPUs), each row keeps ``k + margin`` approximate
candidates, and those are rescored in float32. With unit roundoff ``u`` of the low
precision format, L2-normalised rows (norm <= ``norm``) and float32 accumulation, every
approximate cosine is within

    delta = (3 u + u^2 + d 2^-23) * norm^2

of the float32 one (two rounded inputs, the rounded output, the accumulation). A row is
*certified* when its float32 k-th best candidate score beats the smallest approximate
score kept, plus delta (2 delta for CSLS, whose cosine term counts twice): no target left
out can then reach the top-k. Rows that fail are recomputed in float32. The result equals
the float32 blocked search up to float32 rounding of the products (the rescoring sums in
another order), whatever the data.
"""

from __future__ import annotations

import torch

from kgalign.evaluation.similarity import DEFAULT_MAX_BLOCK_ELEMS, blocked_topk, row_blocks

LOW_PRECISION = {"bfloat16": (torch.bfloat16, 2.0**-8), "float16": (torch.float16, 2.0**-11)}


def error_bound(dtype_name: str, d: int, norm: float = 1.0) -> float:
    """delta: the largest |low-precision cosine - float32 cosine| (see the module docstring)."""
    _, u = LOW_PRECISION[dtype_name]
    return (3 * u + u * u + d * 2.0**-23) * norm * norm * 1.01


def _rescore(A_blk, B, idx, r_a_blk, r_b) -> torch.Tensor:
    """float32 scores of the candidates idx (r, c) of the rows A_blk (r, d)."""
    ex = torch.bmm(B[idx], A_blk[:, :, None])[:, :, 0]
    if r_a_blk is not None:
        ex = ex.mul_(2).sub_(r_a_blk[:, None]).sub_(r_b[idx])
    return ex


def _sort_desc_low_index(v: torch.Tensor, i: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    i, perm = torch.sort(i, dim=1)
    v = v.gather(1, perm)
    perm = torch.sort(v, dim=1, descending=True, stable=True).indices[:, :k]
    return v.gather(1, perm), i.gather(1, perm)


def certified_topk(
    A: torch.Tensor,
    B: torch.Tensor,
    k: int,
    *,
    dtype_name: str = "bfloat16",
    r_a: torch.Tensor | None = None,
    r_b: torch.Tensor | None = None,
    margin: int | None = None,
    block_size: int = 4096,
    max_block_elems: int = DEFAULT_MAX_BLOCK_ELEMS,
) -> tuple[torch.Tensor, torch.Tensor, dict]:
    """Exact top-k of A (m, d) against B (p, d) (float32, L2-normalised): cosine, or CSLS with r_a/r_b.

    Returns float32 scores (m, k'), int64 indices (m, k') best first (ties: lower index), and
    ``{"rows_recomputed": int, "delta": float}``."""
    if dtype_name not in LOW_PRECISION:
        raise ValueError(f"precision must be float32, {', '.join(LOW_PRECISION)}, got {dtype_name!r}")
    lp, _ = LOW_PRECISION[dtype_name]
    m, p = A.shape[0], B.shape[0]
    kk = min(int(k), p)
    scores = torch.empty((m, kk), dtype=torch.float32, device=A.device)
    index = torch.empty((m, kk), dtype=torch.long, device=A.device)
    if kk == 0 or m == 0:
        return scores, index, {"rows_recomputed": 0, "delta": 0.0}
    norm = float(max(A.norm(dim=1).max(), B.norm(dim=1).max()))
    delta = error_bound(dtype_name, A.shape[1], norm) * (2 if r_a is not None else 1)
    kp = min(p, kk + (margin if margin is not None else max(kk, 16)))
    A_lp, B_lp = A.to(lp), B.to(lp)
    failed = []
    # the low-precision block is 2 bytes a score: twice the rows of a float32 block in the same memory
    for s, e in row_blocks(m, p, block_size, 2 * max_block_elems):
        S = (A_lp[s:e] @ B_lp.T).float()
        if r_a is not None:
            S.mul_(2).sub_(r_a[s:e, None]).sub_(r_b[None, :])
        v, i = torch.topk(S, kp, dim=1, sorted=True)
        del S
        ex = _rescore(A[s:e], B, i, r_a[s:e] if r_a is not None else None, r_b)
        sv, si = _sort_desc_low_index(ex, i, kk)
        scores[s:e], index[s:e] = sv, si
        if kp < p:
            bad = torch.nonzero(sv[:, kk - 1] <= v[:, kp - 1] + delta).flatten()
            if bad.numel():
                failed.append(bad + s)
    rows = torch.cat(failed) if failed else torch.empty(0, dtype=torch.long, device=A.device)
    if rows.numel():
        fs, fi = blocked_topk(
            A[rows], B, kk, r_a=r_a[rows] if r_a is not None else None, r_b=r_b, block_size=block_size, max_block_elems=max_block_elems
        )
        scores[rows], index[rows] = fs, fi
    return scores, index, {"rows_recomputed": int(rows.numel()), "delta": delta}


def certified_neighbour_means(
    A: torch.Tensor,
    B: torch.Tensor,
    k: int,
    *,
    dtype_name: str = "bfloat16",
    block_size: int = 4096,
    max_block_elems: int = DEFAULT_MAX_BLOCK_ELEMS,
) -> tuple[torch.Tensor, torch.Tensor, int]:
    """CSLS neighbour means (r_a (m,), r_b (p,)) from two certified passes (rows of A, then rows of B);
    k capped at the other side's size. Also returns the number of rows recomputed in float32."""
    kw = dict(dtype_name=dtype_name, block_size=block_size, max_block_elems=max_block_elems)
    sa, _, ia = certified_topk(A, B, k, **kw)
    sb, _, ib = certified_topk(B, A, k, **kw)
    return sa.mean(1), sb.mean(1), ia["rows_recomputed"] + ib["rows_recomputed"]

"""Top-k candidate search at scale: exact blocked search in a memory budget, or FAISS, with CSLS on top.

``method``:

- ``exact``: :func:`kgalign.evaluation.similarity.blocked_topk` in row blocks sized from
  ``memory_budget``; CSLS neighbour means from one more blocked pass. Exact (ties: lower index).
- ``faiss``: approximate kNN (kgalign/evaluation/ann.py). Cosine: the index's top-k.
  CSLS: ``r_a`` = mean of each source's ``csls_k`` best cosines from the forward kNN lists,
  ``r_b`` the same from a backward search (targets against an index of the sources);
  then each source's ``rerank`` best cosine candidates are rescored
  ``2 cos - r_a[i] - r_b[j]`` and the top-k kept. Nothing of size sources x targets exists.
- ``auto``: ``faiss`` when sources x targets > ``auto_cells`` and faiss is installed, else ``exact``.

Memory of the exact path (float32, m sources, p targets, d dims, k kept):
inputs ``4 (m + p) d`` bytes + one score block ``<= memory_budget`` (about 16 bytes per score
for the block, topk's and the in-place CSLS temporaries) + results ``12 m k`` + the running
column top-k of the CSLS pass ``8 p csls_k``.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from kgalign.evaluation.ann import AnnOptions
from kgalign.evaluation.similarity import blocked_topk, csls_neighbour_means

log = logging.getLogger("kgalign")

SEARCH_METHODS = ("exact", "faiss", "auto")
PRECISIONS = ("float32", "bfloat16", "float16")
SIMILARITIES = ("cosine", "csls")
# Bytes per score in a block: the float32 block plus topk/cat temporaries (measured: benchmarks/scale_search.py).
BYTES_PER_SCORE = 16
DEFAULT_MEMORY_BUDGET = 512 << 20  # 512 MiB -> 2**25 scores per block, the previous fixed limit
# auto: FAISS above 1e9 score cells (about 32k x 32k); exact search below takes seconds.
AUTO_FAISS_CELLS = 10**9


@dataclass
class SearchOptions:
    """How to find the top-k candidates. ``rerank``: cosine candidates per source rescored by
    CSLS on the FAISS path (default max(3k, 30))."""

    method: str = "exact"
    ann: AnnOptions = field(default_factory=AnnOptions)
    memory_budget: int = DEFAULT_MEMORY_BUDGET
    block_size: int = 4096
    rerank: int | None = None
    auto_cells: int = AUTO_FAISS_CELLS
    precision: str = "float32"  # exact path: products in float32, or bfloat16/float16 + certified rescoring

    def check(self) -> None:
        if self.method not in SEARCH_METHODS:
            raise ValueError(f"search must be one of {', '.join(SEARCH_METHODS)}, got {self.method!r}")
        if self.memory_budget < BYTES_PER_SCORE:
            raise ValueError(f"memory budget must be at least {BYTES_PER_SCORE} bytes, got {self.memory_budget}")
        if self.block_size < 1:
            raise ValueError(f"block size must be at least 1, got {self.block_size}")
        if self.rerank is not None and self.rerank < 1:
            raise ValueError(f"rerank must be at least 1, got {self.rerank}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        self.ann.check()

    @property
    def max_block_elems(self) -> int:
        return max(1, int(self.memory_budget) // BYTES_PER_SCORE)


@dataclass
class TopK:
    """Candidates of m sources among p targets. scores float32 (m, k) best first, index int64 (m, k)
    (-1 / -inf pads on the FAISS path); back: (p,) best source of each target or None; info: how;
    knn: the FAISS forward cosine kNN lists (scores, ids) when asked for (``keep_knn``), to measure recall."""

    scores: np.ndarray
    index: np.ndarray
    back: np.ndarray | None = None
    info: dict = field(default_factory=dict)
    knn: tuple[np.ndarray, np.ndarray] | None = None


def resolve_method(m: int, p: int, opts: SearchOptions) -> str:
    if opts.method != "auto":
        return opts.method
    from kgalign.evaluation.ann import faiss_available

    if m * p <= opts.auto_cells:
        return "exact"
    if not faiss_available():
        log.warning("search auto: %d x %d candidates but faiss is not installed; exact search (pip install 'kgalign[ann]')", m, p)
        return "exact"
    return "faiss"


def similarity_topk(
    A: torch.Tensor,
    B: torch.Tensor,
    k: int,
    *,
    similarity: str = "csls",
    csls_k: int = 3,
    back: bool = False,
    opts: SearchOptions | None = None,
    keep_knn: bool = False,
) -> TopK:
    """Top-k targets of every source: A (m, d), B (p, d) L2-normalised -> :class:`TopK` (k' = min(k, p)).

    ``back=True`` also returns each target's best source under the same similarity (for ``mutual``)."""
    opts = opts or SearchOptions()
    opts.check()
    if similarity not in SIMILARITIES:
        raise ValueError(f"similarity must be one of {SIMILARITIES}, got {similarity!r}")
    m, p = A.shape[0], B.shape[0]
    method = resolve_method(m, p, opts)
    t0 = time.perf_counter()
    if method == "exact" or m == 0 or p == 0:
        res = _exact(A, B, k, similarity, csls_k, back, opts)
    else:
        res = _faiss(A, B, k, similarity, csls_k, back, opts)
        if not keep_knn:
            res.knn = None
    res.info.update(method=method, seconds=round(time.perf_counter() - t0, 3))
    return res


def _exact(A, B, k, similarity, csls_k, back, opts: SearchOptions) -> TopK:
    if opts.precision != "float32":
        return _exact_low_precision(A, B, k, similarity, csls_k, back, opts)
    kw = dict(block_size=opts.block_size, max_block_elems=opts.max_block_elems)
    r_a = r_b = None
    if similarity == "csls" and A.shape[0] and B.shape[0]:
        r_a, r_b = csls_neighbour_means(A, B, csls_k, **kw)
    scores, index = blocked_topk(A, B, k, r_a=r_a, r_b=r_b, **kw)
    best = None
    if back:
        if A.shape[0]:
            best = blocked_topk(B, A, 1, r_a=r_b, r_b=r_a, **kw)[1][:, 0].cpu().numpy()
        else:
            best = np.full(B.shape[0], -1, np.int64)
    info = {"block_rows": min(opts.block_size, max(1, opts.max_block_elems // max(1, B.shape[0]))), "memory_budget": opts.memory_budget}
    return TopK(scores.float().cpu().numpy(), index.cpu().numpy(), best, info)


def _exact_low_precision(A, B, k, similarity, csls_k, back, opts: SearchOptions) -> TopK:
    """Same result as float32 (up to float32 rounding), products in bfloat16/float16 (kgalign/evaluation/certified.py)."""
    from kgalign.evaluation.certified import certified_neighbour_means, certified_topk

    kw = dict(dtype_name=opts.precision, block_size=opts.block_size, max_block_elems=opts.max_block_elems)
    A, B = A.float(), B.float()
    r_a = r_b = None
    recomputed = 0
    if similarity == "csls" and A.shape[0] and B.shape[0]:
        r_a, r_b, recomputed = certified_neighbour_means(A, B, csls_k, **kw)
    scores, index, info = certified_topk(A, B, k, r_a=r_a, r_b=r_b, **kw)
    recomputed += info["rows_recomputed"]
    best = None
    if back:
        best = np.full(B.shape[0], -1, np.int64)
        if A.shape[0]:
            _, bi, binfo = certified_topk(B, A, 1, r_a=r_b, r_b=r_a, **kw)
            best = bi[:, 0].cpu().numpy()
            recomputed += binfo["rows_recomputed"]
    info = {"precision": opts.precision, "rows_recomputed_float32": recomputed, "delta": info["delta"], "memory_budget": opts.memory_budget}
    return TopK(scores.cpu().numpy(), index.cpu().numpy(), best, info)


def _means(scores: np.ndarray, k: int) -> np.ndarray:
    """Mean of each row's first k finite scores (kNN lists are best first; pads are -inf)."""
    s = scores[:, :k]
    ok = np.isfinite(s)
    return (np.where(ok, s, 0).sum(1) / np.maximum(1, ok.sum(1))).astype(np.float32)


def _csls_rescore(cos: np.ndarray, ids: np.ndarray, r_q: np.ndarray, r_other: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """CSLS of kNN candidates, re-sorted (score desc, index asc), first k kept."""
    valid = ids >= 0
    s = np.where(valid, 2 * cos - r_q[:, None] - r_other[np.where(valid, ids, 0)], -np.inf).astype(np.float32)
    order = np.lexsort((np.where(valid, ids, np.iinfo(np.int64).max), -s), axis=1)[:, :k]
    return np.take_along_axis(s, order, 1), np.take_along_axis(ids, order, 1)


def _sorted_knn(cos: np.ndarray, ids: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """kNN lists re-sorted with ties by lower index (faiss leaves tie order open), first k kept."""
    order = np.lexsort((np.where(ids >= 0, ids, np.iinfo(np.int64).max), -cos), axis=1)[:, :k]
    return np.take_along_axis(cos, order, 1), np.take_along_axis(ids, order, 1)


def _faiss(A, B, k, similarity, csls_k, back, opts: SearchOptions) -> TopK:
    from kgalign.evaluation.ann import build_index, refill, search

    a = A.detach().float().cpu().numpy()
    b = B.detach().float().cpu().numpy()
    m, p = a.shape[0], b.shape[0]
    kk = min(int(k), p)
    csls = similarity == "csls"
    rerank = min(p, max(kk, opts.rerank or max(3 * kk, 30))) if csls else kk
    kf = min(p, max(rerank, csls_k if csls else 1))
    t0 = time.perf_counter()
    index, desc = build_index(b, opts.ann)
    t1 = time.perf_counter()
    fs, fi = search(index, a, kf)
    t2 = time.perf_counter()
    info = {"index": desc, "build_s": round(t1 - t0, 3), "search_s": round(t2 - t1, 3), "rerank": rerank if csls else None}
    best = None
    if not csls and not back:
        del index
        s, i = _sorted_knn(fs, fi, kk)
        return TopK(s, i, None, info, (fs, fi))
    # backward search: targets against an index of the sources (r_b, and each target's best source)
    kb = min(m, max(csls_k if csls else 1, rerank if back else 1))
    index, desc_b = refill(index, a, opts.ann, desc)
    bs, bi = search(index, b, kb)
    del index
    info.update(index_back=desc_b, back_s=round(time.perf_counter() - t2, 3))
    if not csls:
        s, i = _sorted_knn(fs, fi, kk)
        return TopK(s, i, _sorted_knn(bs, bi, 1)[1][:, 0], info, (fs, fi))
    r_a, r_b = _means(fs, csls_k), _means(bs, csls_k)
    s, i = _csls_rescore(fs[:, :rerank], fi[:, :rerank], r_a, r_b, kk)
    if back:
        best = _csls_rescore(bs, bi, r_b, r_a, 1)[1][:, 0]
    return TopK(s, i, best, info, (fs, fi))


def neighbour_means(X: torch.Tensor, B: torch.Tensor, k: int, opts: SearchOptions | None = None) -> torch.Tensor:
    """Mean cosine of each row of X (q, d) to its k nearest rows of B (p, d): (q,), exact or FAISS as ``opts`` says."""
    opts = opts or SearchOptions()
    if X.shape[0] == 0 or B.shape[0] == 0:
        return torch.zeros(X.shape[0], dtype=X.dtype, device=X.device)
    if resolve_method(X.shape[0], B.shape[0], opts) == "exact":
        return csls_neighbour_means(X, B, k, block_size=opts.block_size, max_block_elems=opts.max_block_elems)[0]
    from kgalign.evaluation.ann import build_index, search

    index, _ = build_index(B.detach().float().cpu().numpy(), opts.ann)
    s, _ = search(index, X.detach().float().cpu().numpy(), min(k, B.shape[0]))
    return torch.as_tensor(_means(s, k), device=X.device).to(X.dtype)

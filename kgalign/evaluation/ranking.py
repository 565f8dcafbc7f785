"""Ranking evaluation of entity embeddings: Hits@k, MRR, MR; cosine and CSLS; both directions.

Protocol (documented in docs/evaluation.md):

- Embeddings are L2-normalised here, so scores are cosine similarities.
- Candidate sets: ``C1`` (KG1 side) and ``C2`` (KG2 side).
  ``candidates="test"`` (the benchmark protocol of MCLEA/MEAformer/NoCo): ``C1`` are
  the distinct KG1 entities of the given links and ``C2`` the distinct KG2 entities.
  ``candidates="all"``: ``C1`` every KG1 entity, ``C2`` every KG2 entity.
- l2r: each link ``(a, b)`` is a query; ``a`` ranks every entity of ``C2`` and the
  rank of ``b`` is recorded. r2l: ``b`` ranks every entity of ``C1``, rank of ``a``.
- CSLS (as MEAformer): ``csls(i, j) = 2 cos(i, j) - r1(i) - r2(j)`` where ``r1(i)`` is
  the mean cosine of ``i`` in ``C1`` to its k nearest neighbours in ``C2`` and ``r2(j)``
  the mean cosine of ``j`` in ``C2`` to its k nearest neighbours in ``C1`` (the row and
  column top-k of the ``C1 x C2`` similarity matrix). One CSLS matrix serves both
  directions.
- Ties are pessimistic: rank = number of candidates whose score is >= the gold
  score (the gold itself included). An embedding that scores everything equal gets
  the worst rank, never a lucky hit. The reference codes sort, which breaks ties
  arbitrarily.
- Computed in row blocks of ``C1`` (at most ``block_size`` rows and
  ``max_block_elems`` scores per block): pass 1 computes the CSLS neighbour means,
  the l2r cosine ranks and the gold scores; pass 2 recomputes the same blocks for
  CSLS l2r ranks and the r2l counts (accumulated over row blocks). When the whole
  ``C1 x C2`` matrix has at most ``cache_elems`` scores, pass 2 reuses pass 1's
  blocks instead of recomputing them (memory: that many scores). No Python loop
  runs over entities.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

from kgalign.evaluation.similarity import DEFAULT_MAX_BLOCK_ELEMS, as_tensor, normalise, row_blocks

# Keep pass 1's blocks for pass 2 up to 2**27 scores (512 MiB float32; a 10k x 10k test set fits).
DEFAULT_CACHE_ELEMS = 1 << 27

METRIC_KEYS = ("hits@1", "hits@5", "hits@10", "mrr", "mr")


def metrics_from_ranks(ranks, ks: Sequence[int] = (1, 5, 10)) -> dict:
    """ranks: (L,) integer ranks, 1 = best -> ``{"hits@k": fraction, "mrr", "mr"}``."""
    r = as_tensor(ranks, torch.float64)
    if r.numel() == 0:
        out = {f"hits@{k}": 0.0 for k in ks}
        out.update(mrr=0.0, mr=0.0)
        return out
    out = {f"hits@{k}": float((r <= k).double().mean()) for k in ks}
    out["mrr"] = float((1.0 / r).mean())
    out["mr"] = float(r.mean())
    return out


def ranks_from_scores(scores, gold) -> torch.Tensor:
    """Pessimistic rank of ``scores[q, gold[q]]`` within row q: (Q, C), (Q,) -> (Q,) int64.

    Small dense helper (tests, tiny inputs); the blocked code uses the same rule.
    """
    S = as_tensor(scores, torch.float64)
    g = as_tensor(gold, torch.long)
    gs = S.gather(1, g[:, None])
    return (S >= gs).sum(1)


def protocol_text(candidates: str, n1: int, n2: int, n_links: int, csls_k: int) -> str:
    if candidates == "test":
        scope = f"candidates = the {n1} KG1 / {n2} KG2 distinct entities of the {n_links} evaluated links (benchmark protocol)"
    elif candidates == "pool":
        scope = f"candidates = the {n1} KG1 / {n2} KG2 entities not in a training link ({n_links} evaluated links)"
    else:
        scope = f"candidates = all {n1} KG1 / {n2} KG2 entities ({n_links} evaluated links)"
    return (
        f"{scope}; L2-normalised embeddings; cosine and CSLS (k={csls_k}, r over the other side's candidates); "
        "l2r ranks KG2 candidates for each KG1 link end, r2l the reverse; "
        "ties pessimistic (rank = #candidates scoring >= gold)"
    )


CANDIDATE_SCOPES = ("test", "pool", "all")


def candidate_sets(links: torch.Tensor, candidates: str, kg, n: int, device, exclude=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Sorted KG1 and KG2 candidate ids: the evaluated links' ends (``test``), every entity of each
    graph (``all``), or every entity not in an ``exclude`` link (``pool``; the links' own ends stay in)."""
    if candidates == "test":
        return torch.unique(links[:, 0]), torch.unique(links[:, 1])
    if candidates not in ("all", "pool"):
        raise ValueError(f"candidates must be one of {', '.join(CANDIDATE_SCOPES)}, got {candidates!r}")
    if kg is None:
        raise ValueError(f'candidates="{candidates}" needs kg, the (n,) array of graph labels 1/2')
    kgt = as_tensor(kg, torch.long, device)
    if kgt.shape != (n,):
        raise ValueError(f"kg must have shape ({n},), got {tuple(kgt.shape)}")
    if not bool((kgt[links[:, 0]] == 1).all()) or not bool((kgt[links[:, 1]] == 2).all()):
        raise ValueError("links must be (KG1 entity, KG2 entity) pairs")
    keep = torch.ones(n, dtype=torch.bool, device=kgt.device)
    if candidates == "pool" and exclude is not None:
        ex = as_tensor(exclude, torch.long, kgt.device).reshape(-1)
        if ex.numel() and (int(ex.min()) < 0 or int(ex.max()) >= n):
            raise ValueError(f"excluded link ids must be in [0, {n})")
        keep[ex] = False
        keep[links.reshape(-1).to(kgt.device)] = True
    c1 = torch.nonzero((kgt == 1) & keep).flatten()
    c2 = torch.nonzero((kgt == 2) & keep).flatten()
    return c1, c2


class GoldCounts:
    """Per-block rank counts of the gold cells.

    Fast paths: thresholds per row / per column instead of gathering rows / columns,
    when each candidate row / column is the end of at most one link and links cover most of them.
    """

    def __init__(self, pos1, pos2, order, n1: int, n2: int, buf) -> None:
        nl = len(pos1)
        self.pos1, self.pos2, self.order, self.n2, self.buf = pos1, pos2, order, n2, buf
        self.spos1 = pos1[order]
        self.one_per_row = nl > 0 and int(torch.bincount(pos1).max()) == 1 and 2 * nl >= n1
        self.one_per_col = nl > 0 and int(torch.bincount(pos2).max()) == 1 and 2 * nl >= n2

    def links_in(self, s: int, e: int):
        """Links whose KG1 end is a row of block [s, e): (link ids, rows in the block, columns)."""
        lo = int(torch.searchsorted(self.spos1, s))
        hi = int(torch.searchsorted(self.spos1, e))
        idx = self.order[lo:hi]
        return idx, self.pos1[idx] - s, self.pos2[idx]

    def l2r(self, M: torch.Tensor, rows, cols) -> torch.Tensor:
        """Pessimistic ranks of the gold cells (rows, cols) within their rows of block M."""
        g = M[rows, cols]
        if self.one_per_row:
            thr = torch.full((M.shape[0], 1), float("inf"), dtype=M.dtype, device=M.device)
            thr[rows, 0] = g
            out = torch.ge(M, thr, out=self.buf[: M.shape[0]]).sum(1)[rows]
        else:
            out = torch.ge(M[rows], g[:, None], out=self.buf.new_empty((len(rows), self.n2))).sum(1)
        return out.long()

    def r2l(self, M: torch.Tensor, gold: torch.Tensor, thr_col, idx, rows, cols) -> torch.Tensor:
        """Per link: candidates in this block scoring >= gold in its column, gold cell excluded."""
        if self.one_per_col:
            m = torch.ge(M, thr_col[None, :], out=self.buf[: M.shape[0]])
            m[rows, cols] = 0
            return m.sum(0).long()[self.pos2]
        m = torch.ge(M[:, self.pos2], gold[None, :], out=self.buf.new_empty((M.shape[0], len(self.pos2))))
        m[rows, idx] = 0
        return m.sum(0).long()


@dataclass
class RankingProblem:
    """What both passes of :func:`evaluate_embeddings` (one process or sharded) work on."""

    A: torch.Tensor  # (n1, d) KG1 candidates, L2-normalised
    B: torch.Tensor  # (n2, d) KG2 candidates
    pos1: torch.Tensor  # (L,) row of each link's KG1 end in A
    pos2: torch.Tensor  # (L,) row of each link's KG2 end in B
    k1: int
    k2: int
    blocks: list
    gc: GoldCounts
    dtype: torch.dtype

    @property
    def sizes(self) -> tuple[int, int, int]:
        return self.A.shape[0], self.B.shape[0], self.pos1.shape[0]


def links_and_candidates(E: torch.Tensor, links, candidates: str, kg, exclude) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``links`` as a (L, 2) long tensor on ``E``'s device, checked against ``E``'s (n, d) rows, and the sorted KG1
    and KG2 candidate ids (:func:`candidate_sets`)."""
    L = as_tensor(links, torch.long, E.device).reshape(-1, 2)
    n = E.shape[0]
    if L.numel() and (int(L.min()) < 0 or int(L.max()) >= n):
        raise ValueError(f"link ids must be in [0, {n})")
    c1, c2 = candidate_sets(L, candidates, kg, n, E.device, exclude)
    return L, c1, c2


def ranking_problem(emb, links, candidates, kg, exclude, csls_k, block_size, device, max_block_elems, dtype) -> RankingProblem:
    """Validate the arguments and set up the candidates, the links' positions and the row blocks."""
    if csls_k < 1:
        raise ValueError("csls_k must be >= 1")
    E = normalise(emb, device, dtype)
    L, c1, c2 = links_and_candidates(E, links, candidates, kg, exclude)
    dev = E.device
    n1, n2 = c1.numel(), c2.numel()
    pos1 = torch.searchsorted(c1, L[:, 0].contiguous())
    pos2 = torch.searchsorted(c2, L[:, 1].contiguous())
    order = torch.argsort(pos1, stable=True)
    blocks = list(row_blocks(n1, n2, block_size, max_block_elems))
    # 0/1 masks are summed in a float buffer (several times faster than bool sums);
    # per-block counts are < 2**24 so float32 counts are exact.
    cdtype = dtype if max(n1, n2) < (1 << 24) else torch.float64
    buf = torch.empty((blocks[0][1] - blocks[0][0] if blocks else 0, n2), dtype=cdtype, device=dev)
    gc = GoldCounts(pos1, pos2, order, n1, n2, buf)
    return RankingProblem(E[c1], E[c2], pos1, pos2, min(csls_k, n2), min(csls_k, n1), blocks, gc, dtype)


def gold_thresholds(p: RankingProblem, gold_cos: torch.Tensor, gold_csls: torch.Tensor):
    """Per-column gold scores for the r2l counts when every KG2 candidate has at most one link, else ``(None, None)``."""
    if not p.gc.one_per_col:
        return None, None
    n2, dev = p.B.shape[0], p.B.device
    thr_cos = torch.full((n2,), float("inf"), dtype=p.dtype, device=dev)
    thr_csls = thr_cos.clone()
    thr_cos[p.pos2] = gold_cos
    thr_csls[p.pos2] = gold_csls
    return thr_cos, thr_csls


def ranking_result(rank: dict, p: RankingProblem, candidates: str, csls_k: int, ks: Sequence[int], return_ranks: bool) -> dict:
    """The result dict of :func:`evaluate_embeddings` from ``{(similarity, direction): ranks (L,)}``."""
    n1, n2, nl = p.sizes
    out: dict = {}
    for (m, d), r in sorted(rank.items()):
        out.setdefault(m, {})[d] = metrics_from_ranks(r, ks)
    out["protocol"] = protocol_text(candidates, n1, n2, nl, csls_k)
    out["candidates"] = {"scope": candidates, "kg1": n1, "kg2": n2, "links": nl}
    if return_ranks:
        res: dict = {}
        for (m, d), r in rank.items():
            res.setdefault(m, {})[d] = r.cpu()
        out["ranks"] = res
    return out


def evaluate_embeddings(
    emb,
    links,
    *,
    candidates: str = "test",
    kg=None,
    exclude=None,
    csls_k: int = 3,
    block_size: int = 4096,
    device=None,
    ks: Sequence[int] = (1, 5, 10),
    max_block_elems: int = DEFAULT_MAX_BLOCK_ELEMS,
    cache_elems: int = DEFAULT_CACHE_ELEMS,
    return_ranks: bool = False,
    dtype: torch.dtype = torch.float32,
) -> dict:
    """Rank metrics of ``links`` under ``emb``.

    emb: (n, d) float (global entity ids); links: (L, 2) int (kg1 id, kg2 id);
    candidates: ``test`` (the links' own ends: benchmark protocol), ``pool`` (every entity not in an
    ``exclude`` link, e.g. the training links) or ``all``; kg: (n,) values 1/2, needed for ``pool``/``all``.
    Returns ``{"cosine": {"l2r": m, "r2l": m}, "csls": {...}, "protocol": str}``
    with ``m = {"hits@1", "hits@5", "hits@10", "mrr", "mr"}`` (hits as fractions);
    ``dtype=torch.float64`` makes scores exact enough for comparisons with plain code;
    with ``return_ranks`` also ``"ranks": {"cosine": {"l2r": (L,) int64, ...}, ...}``.
    """
    p = ranking_problem(emb, links, candidates, kg, exclude, csls_k, block_size, device, max_block_elems, dtype)
    A, B, pos1, pos2, k1, k2, blocks, gc = p.A, p.B, p.pos1, p.pos2, p.k1, p.k2, p.blocks, p.gc
    n1, n2, nl = p.sizes
    dev = A.device
    # pass 2 reuses pass 1's blocks when the whole matrix fits in cache_elems (saves a matmul)
    keep_blocks = n1 * n2 <= cache_elems
    rank = {}
    gold_cos = torch.empty(nl, dtype=dtype, device=dev)
    rank["cosine", "l2r"] = torch.zeros(nl, dtype=torch.long, device=dev)
    r1 = torch.empty(n1, dtype=dtype, device=dev)
    run = None
    # Pass 1: neighbour means (row top-k; running column top-k), l2r cosine, gold cosines.
    cache: list = []
    for s, e in blocks:
        S = A[s:e] @ B.T
        if keep_blocks:
            cache.append(S)
        r1[s:e] = torch.topk(S, k1, dim=1, sorted=False).values.mean(1)
        col = torch.topk(S, min(k2, e - s), dim=0, sorted=False).values
        if run is not None:
            col = torch.topk(torch.cat([run, col], 0), min(k2, run.shape[0] + col.shape[0]), dim=0, sorted=False).values
        run = col
        idx, rows, cols = gc.links_in(s, e)
        if idx.numel():
            gold_cos[idx] = S[rows, cols]
            rank["cosine", "l2r"][idx] = gc.l2r(S, rows, cols)
    r2 = run.mean(0) if run is not None else torch.empty(0, dtype=dtype, device=dev)
    # Same elementwise operations as the in-place block formula below: bit-identical values.
    gold_csls = (gold_cos * 2).sub_(r1[pos1]).sub_(r2[pos2])

    # Pass 2: the same blocks again: r2l cosine counts, then CSLS in place: l2r and r2l.
    thr_cos, thr_csls = gold_thresholds(p, gold_cos, gold_csls)
    cnt_cos = torch.zeros(nl, dtype=torch.long, device=dev)
    cnt_csls = torch.zeros(nl, dtype=torch.long, device=dev)
    rank["csls", "l2r"] = torch.zeros(nl, dtype=torch.long, device=dev)
    for b, (s, e) in enumerate(blocks):
        if keep_blocks:
            S, cache[b] = cache[b], None  # freed as pass 2 goes
        else:
            S = A[s:e] @ B.T
        idx, rows, cols = gc.links_in(s, e)
        cnt_cos += gc.r2l(S, gold_cos, thr_cos, idx, rows, cols)
        C = S.mul_(2).sub_(r1[s:e, None]).sub_(r2[None, :])
        if idx.numel():
            rank["csls", "l2r"][idx] = gc.l2r(C, rows, cols)
        cnt_csls += gc.r2l(C, gold_csls, thr_csls, idx, rows, cols)
        del S, C
    rank["cosine", "r2l"] = cnt_cos + 1
    rank["csls", "r2l"] = cnt_csls + 1
    return ranking_result(rank, p, candidates, csls_k, ks, return_ranks)


def evaluate_alignment(emb1, emb2, **kwargs) -> dict:
    """Row i of ``emb1`` (m, d) is aligned with row i of ``emb2`` (m, d); candidates
    are the rows of the other matrix. Same result dict as :func:`evaluate_embeddings`."""
    e1 = as_tensor(emb1, torch.float32)
    e2 = as_tensor(emb2, torch.float32, e1.device)
    m = e1.shape[0]
    ar = torch.arange(m, device=e1.device)
    links = torch.stack([ar, ar + m], 1)
    kwargs.pop("candidates", None)
    return evaluate_embeddings(torch.cat([e1, e2], 0), links, candidates="test", **kwargs)

"""Matching strategies over sparse top-k candidate lists.

Input for every strategy: ``scores`` float (m, k) and ``index`` int (m, k), the
top-k targets of each of the m sources (row i: best first; index into the p
targets; an approximate search may pad a short list with index -1, which is no
edge). Output: ``(src, tgt, score)`` numpy arrays of the chosen pairs, sorted by
source. Every strategy works on the m x k candidate lists only (memory O(m k + p));
the dense Hungarian solver is the one exception, used only up to
``HUNGARIAN_DENSE_MAX`` cells.

- ``top1``: the best target of each source (a target may be chosen twice).
- ``mutual``: pairs that are each other's best (needs ``best_source`` of each target).
- ``greedy``: global greedy one-to-one: edges by score descending (ties: lower
  source, then lower target), take an edge when both ends are free.
- ``stable``: Gale-Shapley, sources propose along their top-k lists, a target
  keeps the proposer with the higher score. With one symmetric score (cosine or
  CSLS) and no ties the stable matching is unique and equals ``greedy``.
- ``hungarian``: maximum-weight assignment (scipy). Dense
  ``linear_sum_assignment`` on the full score matrix when it has at most
  ``HUNGARIAN_DENSE_MAX`` cells; otherwise on the sparse top-k graph with
  ``min_weight_full_bipartite_matching`` (maximum cardinality first, then
  maximum total score; unmatched entities allowed).
"""

from __future__ import annotations

import numpy as np

STRATEGIES = ("top1", "mutual", "greedy", "hungarian", "stable")
ONE_TO_ONE = {"mutual", "greedy", "hungarian", "stable"}
# 2000 x 2000: the dense O(n^3) solver takes seconds at this size on one core.
HUNGARIAN_DENSE_MAX = 4_000_000


def _pairs(src, tgt, score):
    src = np.asarray(src, np.int64)
    order = np.lexsort((np.asarray(tgt), src))
    return src[order], np.asarray(tgt, np.int64)[order], np.asarray(score, np.float64)[order]


def top1(scores: np.ndarray, index: np.ndarray):
    m = scores.shape[0]
    if m == 0 or scores.shape[1] == 0:
        return _pairs([], [], [])
    ok = index[:, 0] >= 0
    return _pairs(np.arange(m)[ok], index[ok, 0], scores[ok, 0])


def mutual(scores: np.ndarray, index: np.ndarray, best_source: np.ndarray):
    """best_source: (p,) the best source of each target (same score)."""
    m = scores.shape[0]
    if m == 0 or scores.shape[1] == 0:
        return _pairs([], [], [])
    src = np.arange(m)
    first = index[:, 0]
    keep = (first >= 0) & (best_source[np.maximum(first, 0)] == src)
    return _pairs(src[keep], index[keep, 0], scores[keep, 0])


def _edges(scores: np.ndarray, index: np.ndarray):
    """Edges sorted by score desc, then source, then target (pads dropped)."""
    m, k = scores.shape
    src = np.repeat(np.arange(m), k)
    tgt = index.reshape(-1)
    sc = scores.reshape(-1)
    ok = tgt >= 0
    if not ok.all():
        src, tgt, sc = src[ok], tgt[ok], sc[ok]
    order = np.lexsort((tgt, src, -sc))
    return src[order], tgt[order], sc[order]


def greedy(scores: np.ndarray, index: np.ndarray, n_targets: int | None = None):
    m = scores.shape[0]
    if m == 0 or scores.shape[1] == 0:
        return _pairs([], [], [])
    p = int(index.max()) + 1 if n_targets is None else n_targets
    if p <= 0:
        return _pairs([], [], [])
    src, tgt, sc = _edges(scores, index)
    used_s = np.zeros(m, bool)
    used_t = np.zeros(p, bool)
    out_s, out_t, out_c = [], [], []
    limit = min(m, p)
    # sequential by nature; plain lists are faster than numpy scalars here
    us, ut = used_s.tolist(), used_t.tolist()
    for s, t, c in zip(src.tolist(), tgt.tolist(), sc.tolist(), strict=False):
        if us[s] or ut[t]:
            continue
        us[s] = ut[t] = True
        out_s.append(s)
        out_t.append(t)
        out_c.append(c)
        if len(out_s) == limit:
            break
    return _pairs(out_s, out_t, out_c)


def stable(scores: np.ndarray, index: np.ndarray, n_targets: int | None = None):
    m, k = scores.shape
    if m == 0 or k == 0:
        return _pairs([], [], [])
    p = int(index.max()) + 1 if n_targets is None else n_targets
    sc, ix = scores.tolist(), index.tolist()
    holder = [-1] * p  # source currently held by each target
    held = [0.0] * p
    nxt = [0] * m  # next list position each source proposes to
    free = list(range(m - 1, -1, -1))  # stack: lower sources propose first
    while free:
        s = free.pop()
        while nxt[s] < k:
            j = nxt[s]
            nxt[s] += 1
            t, c = ix[s][j], sc[s][j]
            if t < 0:  # a pad: the list ends here
                nxt[s] = k
                break
            h = holder[t]
            # a target prefers the higher score; on a tie, the lower source id
            if h == -1 or c > held[t] or (c == held[t] and s < h):
                holder[t], held[t] = s, c
                if h != -1:
                    free.append(h)
                break
    tg = [t for t in range(p) if holder[t] != -1]
    return _pairs([holder[t] for t in tg], tg, [held[t] for t in tg])


def hungarian_dense(dense: np.ndarray):
    """Maximum-weight assignment on a dense (m, p) score matrix (min(m, p) pairs)."""
    from scipy.optimize import linear_sum_assignment

    if dense.size == 0:
        return _pairs([], [], [])
    r, c = linear_sum_assignment(dense, maximize=True)
    return _pairs(r, c, dense[r, c])


def hungarian_sparse(scores: np.ndarray, index: np.ndarray, n_targets: int):
    """Maximum-cardinality, then maximum-score matching on the top-k graph.

    Reduction to a perfect matching: every source i gets a dummy partner
    (cost U), every target j a dummy partner (cost U), and each candidate edge
    (i, j) a mirrored dummy-dummy edge (cost 0) so that both dummies of a matched
    pair are absorbed. Costs are shifted to be positive (scipy treats the sparse
    structure as the edge set). U exceeds what any matching of one more pair
    can lose, so cardinality comes first.
    """
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import min_weight_full_bipartite_matching

    m, k = scores.shape
    p = int(n_targets)
    if m == 0 or k == 0 or p == 0:
        return _pairs([], [], [])
    src = np.repeat(np.arange(m), k)
    tgt = index.reshape(-1).astype(np.int64)
    sc = scores.reshape(-1).astype(np.float64)
    ok = tgt >= 0
    if not ok.all():
        src, tgt, sc = src[ok], tgt[ok], sc[ok]
    if sc.size == 0:
        return _pairs([], [], [])
    # duplicate (i, j) edges cannot occur in top-k lists; keep the structure simple
    span = float(sc.max() - sc.min()) if sc.size else 0.0
    cost = (sc.max() - sc) + 1.0  # in [1, 1 + span]
    big_u = (min(m, p) + 2) * (1.0 + span)
    # left nodes: sources 0..m-1, target-dummies m..m+p-1
    # right nodes: targets 0..p-1, source-dummies p..p+m-1
    rows = np.concatenate([src, np.arange(m), m + np.arange(p), m + tgt])
    cols = np.concatenate([tgt, p + np.arange(m), np.arange(p), p + src])
    vals = np.concatenate([cost, np.full(m, big_u), np.full(p, big_u), np.zeros(src.size)]) + 1.0
    graph = csr_matrix((vals, (rows, cols)), shape=(m + p, p + m))
    _, match = min_weight_full_bipartite_matching(graph)
    real = match[:m] < p
    s = np.nonzero(real)[0]
    t = match[:m][real]
    col = (index[s] == t[:, None]).argmax(1)  # where t sits in s's top-k list
    return _pairs(s, t, scores[s, col])


def is_one_to_one(src: np.ndarray, tgt: np.ndarray) -> bool:
    return len(np.unique(src)) == len(src) and len(np.unique(tgt)) == len(tgt)

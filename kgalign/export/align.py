"""Predict links from embeddings: candidate scope, blocked top-k search, matching, thresholds.

Scopes: ``"all"`` (default, the production case) aligns every KG1 entity that is
not the KG1 end of a training link with every KG2 entity that is not the KG2 end
of one; ``"test"`` aligns the KG1 ends of the test links with their KG2 ends
(the benchmark case). Training links are returned as ``status="seed"`` rows,
never mixed with predictions; they are scored like the predictions (CSLS
neighbourhoods measured against the same candidate sets).

``similarity`` (default CSLS) ranks candidates and drives matching; ``score``
(default cosine) is the number written per pair and compared with the
thresholds. CSLS matches better (it corrects hubness) but its values are small
and hard to threshold; cosine values are what users expect.

Status: ``accepted`` when score >= threshold, ``review`` when
review_threshold <= score < threshold; pairs below are dropped (the entity stays
unmatched). Thresholds apply after matching.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from kgalign.evaluation.search import SearchOptions, neighbour_means, similarity_topk
from kgalign.evaluation.similarity import DEFAULT_MAX_BLOCK_ELEMS, csls_neighbour_means, normalise, row_blocks
from kgalign.export import matching

SCOPES = ("all", "test")
SIMILARITIES = ("cosine", "csls")
STATUS_ORDER = {"accepted": 0, "review": 1, "seed": 2}


@dataclass
class Predictions:
    """Aligned pairs as global entity ids. kg1, kg2: int64 (P,); score: float64 (P,);
    status: list of ``accepted | review | seed``."""

    kg1: np.ndarray
    kg2: np.ndarray
    score: np.ndarray
    status: list[str]
    summary: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.status)


def _scope(kg: np.ndarray, links: np.ndarray, split: np.ndarray, scope: str) -> tuple[np.ndarray, np.ndarray]:
    if scope == "all":
        train = links[split == "train"]
        src = np.setdiff1d(np.nonzero(kg == 1)[0], train[:, 0])
        tgt = np.setdiff1d(np.nonzero(kg == 2)[0], train[:, 1])
        return src, tgt
    if scope == "test":
        test = links[split == "test"]
        return np.unique(test[:, 0]), np.unique(test[:, 1])
    raise ValueError(f"scope must be one of {SCOPES}, got {scope!r}")


def _dense_scores(A, B, r_a, r_b, block_size, max_block_elems) -> np.ndarray:
    out = np.empty((A.shape[0], B.shape[0]), np.float64)
    for s, e in row_blocks(A.shape[0], B.shape[0], block_size, max_block_elems):
        S = A[s:e] @ B.T
        if r_a is not None:
            S.mul_(2).sub_(r_a[s:e, None]).sub_(r_b[None, :])
        out[s:e] = S.cpu().numpy()
    return out


def _pair_scores(E, pairs, A, B, similarity, csls_k, opts: SearchOptions) -> np.ndarray:
    """Scores of given (kg1, kg2) id pairs; CSLS neighbourhoods against the candidate sets A, B."""
    if len(pairs) == 0:
        return np.zeros(0)
    x, y = E[torch.as_tensor(pairs[:, 0])], E[torch.as_tensor(pairs[:, 1])]
    cos = (x * y).sum(1)
    if similarity == "cosine":
        return cos.double().cpu().numpy()
    rx = neighbour_means(x, B, csls_k, opts)
    ry = neighbour_means(y, A, csls_k, opts)
    return (cos * 2 - rx - ry).double().cpu().numpy()


def _search_options(search: SearchOptions | None, block_size: int, max_block_elems: int) -> SearchOptions:
    """The caller's options (default: exact), with the block limits of the older keywords applied."""
    from dataclasses import replace

    from kgalign.evaluation.search import BYTES_PER_SCORE

    opts = replace(search) if search is not None else SearchOptions()
    opts.block_size = block_size
    if max_block_elems != DEFAULT_MAX_BLOCK_ELEMS:
        opts.memory_budget = min(opts.memory_budget, max_block_elems * BYTES_PER_SCORE)
    opts.check()
    return opts


def align_embeddings(
    emb,
    kg: np.ndarray,
    links: np.ndarray,
    link_split,
    *,
    scope: str = "all",
    similarity: str = "csls",
    score: str = "cosine",
    strategy: str = "greedy",
    topk: int = 10,
    csls_k: int = 3,
    threshold: float | None = None,
    review_threshold: float | None = None,
    include_seeds: bool = True,
    block_size: int = 4096,
    max_block_elems: int = DEFAULT_MAX_BLOCK_ELEMS,
    hungarian_dense_max: int = matching.HUNGARIAN_DENSE_MAX,
    device=None,
    search: SearchOptions | None = None,
) -> Predictions:
    """emb: (n, D) global ids; kg: (n,) 1/2; links: (L, 2) with ``link_split`` (L,) labels.

    ``search`` chooses exact blocked search (default; its ``memory_budget`` sizes the blocks, and
    ``max_block_elems`` caps them) or FAISS (kgalign/evaluation/search.py)."""
    if similarity not in SIMILARITIES:
        raise ValueError(f"similarity must be one of {SIMILARITIES}, got {similarity!r}")
    if score not in SIMILARITIES:
        raise ValueError(f"score must be one of {SIMILARITIES}, got {score!r}")
    score_kind = score
    if strategy not in matching.STRATEGIES:
        raise ValueError(f"strategy must be one of {matching.STRATEGIES}, got {strategy!r}")
    if topk < 1:
        raise ValueError("topk must be >= 1")
    if threshold is not None and review_threshold is not None and review_threshold > threshold:
        raise ValueError(f"review threshold {review_threshold} is above the threshold {threshold}")
    kg = np.asarray(kg)
    links = np.asarray(links, np.int64).reshape(-1, 2)
    split = np.asarray(link_split, dtype=object)
    E = normalise(np.asarray(emb), device)
    src, tgt = _scope(kg, links, split, scope)
    A = E[torch.as_tensor(src)]
    B = E[torch.as_tensor(tgt)]
    opts = _search_options(search, block_size, max_block_elems)
    hungarian_mode = None
    search_info: dict = {"method": "exact"}
    if strategy == "hungarian" and len(src) * len(tgt) <= hungarian_dense_max:
        r_a = r_b = None
        if similarity == "csls" and len(src) and len(tgt):
            r_a, r_b = csls_neighbour_means(A, B, csls_k, block_size=block_size, max_block_elems=opts.max_block_elems)
        s, t, c = matching.hungarian_dense(_dense_scores(A, B, r_a, r_b, block_size, opts.max_block_elems))
        hungarian_mode = "dense"
    else:
        res = similarity_topk(
            A, B, 1 if strategy in ("top1", "mutual") else topk, similarity=similarity, csls_k=csls_k, back=strategy == "mutual", opts=opts
        )
        search_info = res.info
        sc, ix = res.scores.astype(np.float64), res.index
        if strategy == "top1":
            s, t, c = matching.top1(sc, ix)
        elif strategy == "mutual":
            s, t, c = matching.mutual(sc, ix, res.back)
        elif strategy == "greedy":
            s, t, c = matching.greedy(sc, ix, len(tgt))
        elif strategy == "stable":
            s, t, c = matching.stable(sc, ix, len(tgt))
        else:
            s, t, c = matching.hungarian_sparse(sc, ix, len(tgt))
            hungarian_mode = "sparse-topk"
    matched = len(s)
    if score_kind != similarity and len(s):
        c = _pair_scores(E, np.stack([src[s], tgt[t]], 1), A, B, score_kind, csls_k, opts)
    status = np.full(len(s), "accepted", dtype=object)
    keep = np.ones(len(s), bool)
    if threshold is not None:
        below = c < threshold
        status[below] = "review"
        keep = ~below if review_threshold is None else (c >= review_threshold)
    kg1, kg2, score, status = src[s][keep], tgt[t][keep], c[keep], status[keep]
    # order: accepted then review, each by score descending, then ids
    order = np.lexsort((kg2, kg1, -score, np.array([STATUS_ORDER[x] for x in status], np.int64)))
    kg1, kg2, score, status = kg1[order], kg2[order], score[order], status[order].tolist()
    n_acc = status.count("accepted")
    n_rev = len(status) - n_acc
    seeds = links[split == "train"]
    if include_seeds and len(seeds):
        seed_scores = _pair_scores(E, seeds, A, B, score_kind, csls_k, opts)
        kg1 = np.concatenate([kg1, seeds[:, 0]])
        kg2 = np.concatenate([kg2, seeds[:, 1]])
        score = np.concatenate([score, seed_scores])
        status = status + ["seed"] * len(seeds)
    summary = {
        "scope": scope,
        "similarity": similarity if similarity == "cosine" else f"csls(k={csls_k})",
        "score": score_kind if score_kind == "cosine" else f"csls(k={csls_k})",
        "strategy": strategy + (f" ({hungarian_mode})" if hungarian_mode else ""),
        "topk": topk,
        "threshold": threshold,
        "review_threshold": review_threshold,
        "sources": int(len(src)),
        "targets": int(len(tgt)),
        "matched": int(matched),
        "accepted": n_acc,
        "review": n_rev,
        "unmatched_sources": int(len(src) - n_acc - n_rev),
        "seeds": int(len(seeds)) if include_seeds else 0,
        "one_to_one": strategy in matching.ONE_TO_ONE,
        "search": search_info,
    }
    return Predictions(kg1=kg1, kg2=kg2, score=score, status=status, summary=summary)

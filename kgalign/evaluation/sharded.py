"""Ranking evaluation and nearest-neighbour search with the query rows split across processes.

Under ``torchrun`` every rank holds the same embeddings. Instead of each rank repeating the whole
evaluation, the row blocks of :func:`kgalign.evaluation.ranking.evaluate_embeddings` (the KG1
candidates, at most ``block_size`` rows and ``max_block_elems`` scores each) are dealt out round
robin: block ``b`` belongs to rank ``b % W``. Each rank scores its own blocks against all targets
and the results are combined with collectives, so that every rank ends with the same result dict,
equal bit for bit to the one-process one:

- per query row (``r1``, the CSLS mean of the row's k best cosines) and per link (gold cosine,
  l2r ranks): computed by the owner of the row's block, then all-gathered and picked by owner;
- per target (``r2``, the mean of each KG2 candidate's k best cosines among *all* queries): each
  rank computes the column top-k of its block, ``(k, n2)``; those are all-gathered one round
  (W blocks) at a time and every rank merges them in block order with the same
  ``topk(cat([run, col]))`` as one process, so ``r2`` is the same float (the mean of k values
  depends on their order, and a merge of per-rank top-k lists would change that order);
- r2l counts (candidates scoring at least the gold in its column): each rank counts over its
  blocks, an all-reduce sums the integers.

The blocks are those of one process (same ``block_size`` / ``max_block_elems``), so every score
is the same matrix product of the same rows. Communication: ``W k n2`` scores per round plus
O(n1 + L) at the end; memory per rank as one process's block, plus ``W k n2`` for a round.

:class:`QueryShard` holds the rank, the world size and the collectives (``torch.distributed``'s
default group; none when ``world_size == 1``, which runs the same code in one process).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

from kgalign.evaluation.ranking import DEFAULT_CACHE_ELEMS, GoldCounts, gold_thresholds, ranking_problem, ranking_result
from kgalign.evaluation.similarity import DEFAULT_MAX_BLOCK_ELEMS, blocked_topk, row_blocks


@dataclass(frozen=True)
class QueryShard:
    """Rank ``rank`` of ``world_size`` processes splitting the query rows of a search.

    The collectives use ``torch.distributed``'s default process group; with ``world_size == 1``
    they are identities and no process group is needed.
    """

    rank: int = 0
    world_size: int = 1

    def __post_init__(self) -> None:
        if self.world_size < 1 or not 0 <= self.rank < self.world_size:
            raise ValueError(f"rank {self.rank} is not in [0, {self.world_size})")

    @classmethod
    def from_process_group(cls) -> QueryShard | None:
        """This process's shard of the initialised default group; None outside torch.distributed or with one process."""
        import torch.distributed as dist

        if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() < 2:
            return None
        return cls(dist.get_rank(), dist.get_world_size())

    def owner(self, block: int) -> int:
        return block % self.world_size

    def gather(self, t: torch.Tensor) -> list[torch.Tensor]:
        """Every rank's ``t`` (same shape and dtype on all ranks), in rank order."""
        if self.world_size == 1:
            return [t]
        import torch.distributed as dist

        t = t.contiguous()
        out = [torch.empty_like(t) for _ in range(self.world_size)]
        dist.all_gather(out, t)
        return out

    def sum_(self, t: torch.Tensor) -> torch.Tensor:
        """In-place sum over ranks (exact for integer tensors)."""
        if self.world_size > 1:
            import torch.distributed as dist

            dist.all_reduce(t, op=dist.ReduceOp.SUM)
        return t

    def assemble(self, part: torch.Tensor, owner: torch.Tensor) -> torch.Tensor:
        """Entry i of every rank's ``part`` (N, ...) taken from rank ``owner[i]`` (N,): the whole from the owners' pieces."""
        if self.world_size == 1:
            return part
        stacked = torch.stack(self.gather(part))  # (W, N, ...)
        return stacked[owner.to(stacked.device), torch.arange(part.shape[0], device=stacked.device)]


def merge_column_topk(run: torch.Tensor | None, col: torch.Tensor, k: int) -> torch.Tensor:
    """One step of the running column top-k: ``run`` (a, p) best scores so far (None at the start),
    ``col`` (c, p) the next block's column top-k -> (min(k, a + c), p) values, unsorted.

    The same operation as the one-process pass (kgalign/evaluation/ranking.py, similarity.py), so
    replaying the blocks in their order reproduces its values and their order exactly."""
    if run is None:
        return col
    return torch.topk(torch.cat([run, col], 0), min(k, run.shape[0] + col.shape[0]), dim=0, sorted=False).values


def block_owners(blocks: Sequence[tuple[int, int]], n_rows: int, shard: QueryShard, device=None) -> torch.Tensor:
    """(n_rows,) int64: the rank owning each row (the owner of its block)."""
    owner = torch.zeros(n_rows, dtype=torch.long, device=device)
    for b, (s, e) in enumerate(blocks):
        owner[s:e] = shard.owner(b)
    return owner


@dataclass
class _Pass1:
    """Pass 1 on one rank: ``r1`` (n1,) and, per link, the gold cosine and l2r cosine rank, filled for its own blocks;
    ``r2`` (n2,) for all targets; ``cache`` the rank's score blocks (by block index) when they are kept for pass 2."""

    r1: torch.Tensor
    r2: torch.Tensor
    gold_cos: torch.Tensor
    rank_cos: torch.Tensor
    cache: dict


def _pass1(A, B, blocks, shard: QueryShard, gc: GoldCounts, k1: int, k2: int, nl: int, keep: bool) -> _Pass1:
    n1, n2 = A.shape[0], B.shape[0]
    dev, dtype = A.device, A.dtype
    res = _Pass1(
        torch.zeros(n1, dtype=dtype, device=dev),
        torch.empty(0, dtype=dtype, device=dev),
        torch.zeros(nl, dtype=dtype, device=dev),
        torch.zeros(nl, dtype=torch.long, device=dev),
        {},
    )
    W, run = shard.world_size, None
    for first in range(0, len(blocks), W):
        col = torch.full((k2, n2), float("-inf"), dtype=dtype, device=dev)  # padding when this rank has no block this round
        b = first + shard.rank
        if b < len(blocks):
            s, e = blocks[b]
            S = A[s:e] @ B.T
            if keep:
                res.cache[b] = S
            res.r1[s:e] = torch.topk(S, k1, dim=1, sorted=False).values.mean(1)
            top = torch.topk(S, min(k2, e - s), dim=0, sorted=False).values
            col[: top.shape[0]] = top
            idx, rows, cols = gc.links_in(s, e)
            if idx.numel():
                res.gold_cos[idx] = S[rows, cols]
                res.rank_cos[idx] = gc.l2r(S, rows, cols)
        # replay the one-process merge in block order
        for j, got in enumerate(shard.gather(col)):
            if first + j >= len(blocks):
                break
            s, e = blocks[first + j]
            run = merge_column_topk(run, got[: min(k2, e - s)], k2)
    if run is not None:
        res.r2 = run.mean(0)
    return res


def evaluate_embeddings_sharded(
    emb,
    links,
    *,
    shard: QueryShard,
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
    """:func:`kgalign.evaluation.ranking.evaluate_embeddings` with the query row blocks split across ``shard``'s ranks.

    emb: (n, d) float, identical on every rank; links: (L, 2) int. Every rank must call it with the
    same arguments (collectives). Returns on every rank the same dict as the one-process function
    (same ranks, hence the same Hits@k / MRR / MR; ties pessimistic). A rank keeps at most its own
    blocks for pass 2 (``cache_elems`` counts the whole matrix, as in one process).
    """
    p = ranking_problem(emb, links, candidates, kg, exclude, csls_k, block_size, device, max_block_elems, dtype)
    A, B, pos1, pos2, blocks, gc = p.A, p.B, p.pos1, p.pos2, p.blocks, p.gc
    n1, n2, nl = p.sizes
    dev = A.device
    p1 = _pass1(A, B, blocks, shard, gc, p.k1, p.k2, nl, n1 * n2 <= cache_elems)
    row_owner = block_owners(blocks, n1, shard, dev)
    link_owner = row_owner[pos1]
    # the owners' r1 rows and gold cosines, every rank's whole
    r1 = shard.assemble(p1.r1, row_owner)
    gold_cos = shard.assemble(p1.gold_cos, link_owner)
    rank = {("cosine", "l2r"): shard.assemble(p1.rank_cos, link_owner)}
    r2 = p1.r2
    gold_csls = (gold_cos * 2).sub_(r1[pos1]).sub_(r2[pos2])  # the one-process formula on the same values

    thr_cos, thr_csls = gold_thresholds(p, gold_cos, gold_csls)
    counts = torch.zeros((2, nl), dtype=torch.long, device=dev)  # r2l: cosine, CSLS
    csls_l2r = torch.zeros(nl, dtype=torch.long, device=dev)
    for b in range(shard.rank, len(blocks), shard.world_size):
        s, e = blocks[b]
        S = p1.cache.pop(b) if b in p1.cache else A[s:e] @ B.T
        idx, rows, cols = gc.links_in(s, e)
        counts[0] += gc.r2l(S, gold_cos, thr_cos, idx, rows, cols)
        C = S.mul_(2).sub_(r1[s:e, None]).sub_(r2[None, :])
        if idx.numel():
            csls_l2r[idx] = gc.l2r(C, rows, cols)
        counts[1] += gc.r2l(C, gold_csls, thr_csls, idx, rows, cols)
        del S, C
    shard.sum_(counts)
    rank["csls", "l2r"] = shard.assemble(csls_l2r, link_owner)
    rank["cosine", "r2l"] = counts[0] + 1
    rank["csls", "r2l"] = counts[1] + 1

    return ranking_result(rank, p, candidates, csls_k, ks, return_ranks)


def nearest_sharded(
    A: torch.Tensor, B: torch.Tensor, shard: QueryShard, *, block_size: int = 4096, max_block_elems: int = DEFAULT_MAX_BLOCK_ELEMS
) -> torch.Tensor:
    """Best cosine target of every row: A (m, d), B (p, d) L2-normalised, p >= 1 -> (m,) int64 indices into B.

    Equal to ``blocked_topk(A, B, 1)[1][:, 0]`` (ties: lower index), with A's row blocks split across the ranks."""
    m, p = A.shape[0], B.shape[0]
    if p == 0:
        raise ValueError("no targets to search")
    blocks = list(row_blocks(m, p, block_size, max_block_elems))
    part = torch.zeros(m, dtype=torch.long, device=A.device)
    for b in range(shard.rank, len(blocks), shard.world_size):
        s, e = blocks[b]
        part[s:e] = blocked_topk(A[s:e], B, 1, block_size=block_size, max_block_elems=max_block_elems)[1][:, 0]
    return shard.assemble(part, block_owners(blocks, m, shard, A.device))

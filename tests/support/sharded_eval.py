"""Query-sharded evaluation on fixed random embeddings.

Run under torchrun (``python -m torch.distributed.run --nproc_per_node 2 sharded_eval.py OUT``): every
rank evaluates each case of :func:`cases` with the rows split across the ranks and writes what it got
to OUT/rank<R>.json, for tests/test_evaluation_sharded.py to compare with one process.
"""

from __future__ import annotations

import json
import os
import sys

import torch

N1, N2 = 61, 53


def _pairs() -> torch.Tensor:
    g = torch.Generator().manual_seed(3)
    return torch.stack([torch.randperm(N1, generator=g)[:45], N1 + torch.randperm(N2, generator=g)[:45]], 1)


def embeddings() -> tuple[torch.Tensor, list[int]]:
    """(N1 + N2, 8) float32: linked rows close (noisy copies), duplicated rows (tied scores); and the (N1 + N2,) graph labels."""
    g = torch.Generator().manual_seed(12)
    E = torch.randn(N1 + N2, 8, generator=g)
    p = _pairs()
    E[p[:, 1]] = E[p[:, 0]] + 0.9 * torch.randn(len(p), 8, generator=g)
    E = (E * 2).round() / 2  # coarse values: equal scores between different rows too
    E[3], E[N1 + 5], E[N1 + 11] = E[7], E[N1 + 9], E[N1 + 9]
    return E, [1] * N1 + [2] * N2


def links(kind: str) -> torch.Tensor:
    """Gold links (L, 2): ``one`` each end in one link; ``shared`` some ends in two links."""
    pairs = _pairs()
    if kind == "shared":
        pairs = torch.cat([pairs, torch.stack([pairs[:6, 0], pairs[6:12, 1]], 1)])
    return pairs


def cases() -> list[dict]:
    """Keyword arguments of the evaluation: scopes, block counts that W does not divide, one block, no cache."""
    train = torch.stack([torch.arange(45, 55), N1 + torch.arange(40, 50)], 1)
    return [
        dict(links="one", candidates="test", block_size=9),
        dict(links="one", candidates="all", block_size=5, cache_elems=0),
        dict(links="shared", candidates="all", block_size=7),
        dict(links="shared", candidates="pool", block_size=4, exclude=train, csls_k=5),
        dict(links="one", candidates="all", block_size=1000),
        dict(links="one", candidates="test", block_size=3, csls_k=1, dtype=torch.float64),
    ]


def run_case(case: dict, shard=None) -> dict:
    """The evaluation of one case: sharded when ``shard`` is given, else the one-process function."""
    from kgalign.evaluation.ranking import evaluate_embeddings
    from kgalign.evaluation.sharded import evaluate_embeddings_sharded

    E, kg = embeddings()
    kw = {k: v for k, v in case.items() if k != "links"}
    if shard is None:
        res = evaluate_embeddings(E, links(case["links"]), kg=kg, return_ranks=True, **kw)
    else:
        res = evaluate_embeddings_sharded(E, links(case["links"]), kg=kg, return_ranks=True, shard=shard, **kw)
    res["ranks"] = {m: {d: r.tolist() for d, r in v.items()} for m, v in res["ranks"].items()}
    return res


def main(out: str) -> None:
    import torch.distributed as dist

    from kgalign.evaluation.sharded import QueryShard, nearest_sharded
    from kgalign.evaluation.similarity import normalise

    dist.init_process_group("gloo")
    shard = QueryShard.from_process_group()
    assert shard is not None and shard.world_size == 2
    got = {"cases": [run_case(c, shard) for c in cases()]}
    E = normalise(embeddings()[0])
    got["nearest"] = [nearest_sharded(E[:N1], E[N1:], shard, block_size=b).tolist() for b in (4, 7, 100)]
    got["nearest_back"] = nearest_sharded(E[N1:], E[:N1], shard, block_size=6).tolist()
    with open(os.path.join(out, f"rank{shard.rank}.json"), "w", encoding="utf-8") as f:
        json.dump(got, f)
    dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1])

"""Ranking metrics: hand-worked values, ties, CSLS blocked vs a plain implementation, scopes."""

import math

import numpy as np
import pytest
import torch

from kgalign.evaluation.ranking import evaluate_alignment, evaluate_embeddings, metrics_from_ranks, ranks_from_scores
from kgalign.evaluation.similarity import blocked_topk, csls_neighbour_means, normalise


def _hand_embeddings():
    """KG1 a0..a3 are one-hot e0..e3; KG2 b0..b3 have norm 3, so cos(a_i, b_j) = b_j[i] / 3
    exactly (single non-zero product) and equal entries tie exactly.

    3 * S (rows a_i, columns b_j), gold on the diagonal::

        a0: 3 2 0 2
        a1: 0 1 2 2
        a2: 0 2 1 0
        a3: 0 0 2 1
    """
    a = np.eye(4, dtype=np.float32)
    b = np.array([[3, 0, 0, 0], [2, 1, 2, 0], [0, 2, 1, 2], [2, 2, 0, 1]], np.float32)
    emb = np.concatenate([a, b])
    links = np.array([[0, 4], [1, 5], [2, 6], [3, 7]])
    return emb, links


def test_hand_worked_cosine_and_csls_both_directions():
    emb, links = _hand_embeddings()
    res = evaluate_embeddings(emb, links, csls_k=1, ks=(1, 2, 3), return_ranks=True)
    # l2r: a0 rank 1; a1 gold 1/3 vs {1/3, 2/3, 2/3} -> 3; a2 gold 1/3 vs {2/3, 1/3} -> 2; a3 -> 2
    assert res["ranks"]["cosine"]["l2r"].tolist() == [1, 3, 2, 2]
    # r2l (columns): b0 -> 1; b1 col (2,1,2,0) gold 1 -> 3; b2 col (0,2,1,2) gold 1 -> 3; b3 col (2,2,0,1) gold 1 -> 3
    assert res["ranks"]["cosine"]["r2l"].tolist() == [1, 3, 3, 3]
    m = res["cosine"]["l2r"]
    assert m["hits@1"] == 0.25 and m["hits@2"] == 0.75 and m["hits@3"] == 1.0
    assert math.isclose(m["mrr"], (1 + 1 / 3 + 1 / 2 + 1 / 2) / 4)
    assert m["mr"] == 2.0
    m = res["cosine"]["r2l"]
    assert m["hits@1"] == 0.25 and m["hits@2"] == 0.25 and m["hits@3"] == 1.0
    assert math.isclose(m["mrr"], (1 + 3 * (1 / 3)) / 4)
    assert m["mr"] == 2.5
    # CSLS, k=1: r1 = row max = (3,2,2,2)/3, r2 = column max = (3,2,2,2)/3; 3*CSLS =
    #  a0: 0 -1 -5 -1 | a1: -5 -2 0 0 | a2: -5 0 -2 -4 | a3: -5 -4 0 -2
    assert res["ranks"]["csls"]["l2r"].tolist() == [1, 3, 2, 2]
    assert res["ranks"]["csls"]["r2l"].tolist() == [1, 3, 3, 3]
    assert "pessimistic" in res["protocol"] and "k=1" in res["protocol"]


def test_all_tied_gets_worst_rank():
    emb = np.ones((6, 4), np.float32)
    links = np.array([[0, 3], [1, 4], [2, 5]])
    res = evaluate_embeddings(emb, links, return_ranks=True)
    for m in ("cosine", "csls"):
        for d in ("l2r", "r2l"):
            assert res["ranks"][m][d].tolist() == [3, 3, 3]
            assert res[m][d]["hits@1"] == 0.0 and res[m][d]["mr"] == 3.0


def test_metrics_from_ranks_and_dense_helper():
    m = metrics_from_ranks([1, 2, 10, 11], ks=(1, 10))
    assert m == {"hits@1": 0.25, "hits@10": 0.75, "mrr": pytest.approx((1 + 0.5 + 0.1 + 1 / 11) / 4), "mr": 6.0}
    S = np.array([[0.5, 0.5, 0.1], [0.2, 0.9, 0.9]])
    assert ranks_from_scores(S, [0, 1]).tolist() == [2, 2]


def _plain(emb, links, k, c1=None, c2=None):
    """Direct float64 implementation: full matrices, no blocks."""
    E = torch.nn.functional.normalize(torch.as_tensor(emb, dtype=torch.float64), dim=1)
    L = torch.as_tensor(links)
    c1 = torch.unique(L[:, 0]) if c1 is None else torch.as_tensor(c1)
    c2 = torch.unique(L[:, 1]) if c2 is None else torch.as_tensor(c2)
    S = E[c1] @ E[c2].T
    r1 = S.topk(min(k, S.shape[1]), dim=1).values.mean(1)
    r2 = S.topk(min(k, S.shape[0]), dim=0).values.mean(0)
    C = 2 * S - r1[:, None] - r2[None, :]
    p1 = torch.searchsorted(c1, L[:, 0].contiguous())
    p2 = torch.searchsorted(c2, L[:, 1].contiguous())
    out = {}
    for name, M in (("cosine", S), ("csls", C)):
        g = M[p1, p2]
        out[name] = {"l2r": (M[p1] >= g[:, None]).sum(1), "r2l": (M[:, p2] >= g[None, :]).sum(0)}
    return out


@pytest.mark.parametrize(
    "block_size,max_elems,cache",
    [(1, 1 << 25, 0), (7, 1 << 25, 1 << 27), (4096, 1 << 25, 0), (4096, 1 << 25, 1 << 27), (4096, 50, 1 << 27)],
)
@pytest.mark.parametrize("k", [1, 3, 10])
def test_blocked_equals_plain_test_scope(block_size, max_elems, cache, k):
    g = torch.Generator().manual_seed(block_size + k)
    n = 60
    emb = torch.randn(2 * n, 6, generator=g)
    links = torch.stack([torch.randperm(n, generator=g)[:50], n + torch.randperm(n, generator=g)[:50]], 1)
    res = evaluate_embeddings(
        emb, links, csls_k=k, block_size=block_size, max_block_elems=max_elems, cache_elems=cache, return_ranks=True, dtype=torch.float64
    )
    ref = _plain(emb, links, k)
    for m in ("cosine", "csls"):
        for d in ("l2r", "r2l"):
            assert torch.equal(res["ranks"][m][d], ref[m][d]), (m, d)
            assert res[m][d] == metrics_from_ranks(ref[m][d])


def test_duplicate_link_ends_take_the_general_path():
    # entity 0 linked twice, entity n+1 linked twice: no one-per-row / one-per-column fast path
    g = torch.Generator().manual_seed(3)
    n = 20
    emb = torch.randn(2 * n, 5, generator=g)
    links = torch.tensor([[0, n], [0, n + 1], [2, n + 1], [3, n + 3], [4, n + 7]])
    res = evaluate_embeddings(emb, links, csls_k=2, block_size=2, return_ranks=True, dtype=torch.float64)
    ref = _plain(emb, links, 2)
    for m in ("cosine", "csls"):
        for d in ("l2r", "r2l"):
            assert torch.equal(res["ranks"][m][d], ref[m][d]), (m, d)


def test_all_candidates_scope_uses_every_entity():
    g = torch.Generator().manual_seed(5)
    n1, n2 = 30, 40
    emb = torch.randn(n1 + n2, 6, generator=g)
    kg = np.array([1] * n1 + [2] * n2)
    links = torch.tensor([[i, n1 + i + 3] for i in range(10)])
    res = evaluate_embeddings(emb, links, candidates="all", kg=kg, block_size=8, return_ranks=True, dtype=torch.float64)
    ref = _plain(emb, links, 3, torch.arange(n1), torch.arange(n1, n1 + n2))
    for m in ("cosine", "csls"):
        for d in ("l2r", "r2l"):
            assert torch.equal(res["ranks"][m][d], ref[m][d]), (m, d)
    assert res["candidates"] == {"scope": "all", "kg1": 30, "kg2": 40, "links": 10}
    # more candidates can only make ranks worse (cosine ranks do not depend on r)
    test_scope = evaluate_embeddings(emb, links, return_ranks=True, dtype=torch.float64)
    assert bool((res["ranks"]["cosine"]["l2r"] >= test_scope["ranks"]["cosine"]["l2r"]).all())


def test_pool_scope_excludes_training_entities_but_keeps_gold():
    g = torch.Generator().manual_seed(6)
    n1, n2 = 30, 40
    emb = torch.randn(n1 + n2, 6, generator=g)
    kg = np.array([1] * n1 + [2] * n2)
    train = np.array([[i, n1 + i] for i in range(10, 20)])
    # link 0 reuses a training link's KG2 end: it must stay a candidate (the gold of an evaluated link)
    links = torch.tensor([[0, n1 + 10]] + [[i, n1 + i + 20] for i in range(1, 8)])
    res = evaluate_embeddings(emb, links, candidates="pool", kg=kg, exclude=train, block_size=7, return_ranks=True, dtype=torch.float64)
    c1 = torch.tensor([i for i in range(n1) if not 10 <= i < 20])
    c2 = torch.tensor([n1 + j for j in range(n2) if not 11 <= j < 20])
    ref = _plain(emb, links, 3, c1, c2)
    for m in ("cosine", "csls"):
        for d in ("l2r", "r2l"):
            assert torch.equal(res["ranks"][m][d], ref[m][d]), (m, d)
    assert res["candidates"] == {"scope": "pool", "kg1": 20, "kg2": 31, "links": 8}
    assert "not in a training link" in res["protocol"]
    # no exclusions: the pool is every entity
    every = evaluate_embeddings(emb, links, candidates="pool", kg=kg, return_ranks=True)
    assert every["candidates"]["kg1"] == n1 and every["candidates"]["kg2"] == n2


def test_all_scope_needs_kg_and_valid_links():
    emb = np.random.default_rng(0).normal(size=(6, 3))
    with pytest.raises(ValueError, match="needs kg"):
        evaluate_embeddings(emb, [[0, 3]], candidates="all")
    with pytest.raises(ValueError, match="KG1 entity, KG2 entity"):
        evaluate_embeddings(emb, [[3, 0]], candidates="all", kg=[1, 1, 1, 2, 2, 2])
    with pytest.raises(ValueError, match="link ids"):
        evaluate_embeddings(emb, [[0, 9]])
    with pytest.raises(ValueError, match="needs kg"):
        evaluate_embeddings(emb, [[0, 3]], candidates="pool")
    with pytest.raises(ValueError, match="excluded link ids"):
        evaluate_embeddings(emb, [[0, 3]], candidates="pool", kg=[1, 1, 1, 2, 2, 2], exclude=[[1, 7]])
    with pytest.raises(ValueError, match="candidates must be one of"):
        evaluate_embeddings(emb, [[0, 3]], candidates="every")


def test_perfect_embeddings_and_evaluate_alignment():
    x = torch.randn(25, 8, generator=torch.Generator().manual_seed(1))
    res = evaluate_alignment(x, x * 2.0)  # scaling does not matter: normalised inside
    for m in ("cosine", "csls"):
        for d in ("l2r", "r2l"):
            assert res[m][d]["hits@1"] == 1.0 and res[m][d]["mrr"] == 1.0 and res[m][d]["mr"] == 1.0


def test_blocked_topk_and_neighbour_means_match_dense():
    g = torch.Generator().manual_seed(9)
    A = normalise(torch.randn(33, 7, generator=g), dtype=torch.float64)
    B = normalise(torch.randn(21, 7, generator=g), dtype=torch.float64)
    S = A @ B.T
    ra, rb = csls_neighbour_means(A, B, 3, block_size=5)
    assert torch.allclose(ra, S.topk(3, 1).values.mean(1)) and torch.allclose(rb, S.topk(3, 0).values.mean(0))
    v, i = blocked_topk(A, B, 4, block_size=4)
    ref = S.topk(4, 1)
    assert torch.equal(i, ref.indices) and torch.allclose(v.double(), ref.values)
    v, i = blocked_topk(A, B, 4, r_a=ra, r_b=rb, block_size=6)
    ref = (2 * S - ra[:, None] - rb[None, :]).topk(4, 1)
    assert torch.equal(i, ref.indices)
    # ties are broken by the lower index
    T = normalise(torch.ones(3, 2), dtype=torch.float64)
    _, i = blocked_topk(T[:1], T, 3)
    assert i.tolist() == [[0, 1, 2]]

"""Matching strategies: valid matchings, one-to-one where promised, Hungarian optimal (brute force)."""

import itertools

import numpy as np
import pytest

from kgalign.export import matching


def _topk(S: np.ndarray, k: int):
    idx = np.argsort(-S, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(S, idx, 1), idx


def _edge_set(sc, ix):
    return {(i, int(j)): float(c) for i in range(sc.shape[0]) for j, c in zip(ix[i], sc[i], strict=False)}


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("strategy", ["top1", "mutual", "greedy", "stable", "hungarian_sparse"])
def test_strategies_give_valid_matchings(seed, strategy):
    rng = np.random.default_rng(seed)
    m, p, k = 7, 5, 3
    S = rng.random((m, p))
    sc, ix = _topk(S, k)
    if strategy == "top1":
        s, t, c = matching.top1(sc, ix)
    elif strategy == "mutual":
        s, t, c = matching.mutual(sc, ix, S.argmax(0))
    elif strategy == "hungarian_sparse":
        s, t, c = matching.hungarian_sparse(sc, ix, p)
    else:
        s, t, c = getattr(matching, strategy)(sc, ix, p)
    edges = _edge_set(sc, ix)
    for a, b, x in zip(s.tolist(), t.tolist(), c.tolist(), strict=False):
        assert (a, b) in edges and edges[(a, b)] == pytest.approx(x)  # only candidate edges, true scores
    assert list(s) == sorted(s)
    if strategy == "top1":
        assert s.tolist() == list(range(m)) and t.tolist() == S.argmax(1).tolist()
    else:
        assert matching.is_one_to_one(s, t)
    if strategy == "mutual":
        expect = [(i, int(S[i].argmax())) for i in range(m) if S[:, S[i].argmax()].argmax() == i]
        assert list(zip(s.tolist(), t.tolist(), strict=False)) == expect


def _stable(s, t, sc, ix):
    """No blocking pair: a source and a target (in the source's list) that both prefer each other."""
    partner_s = dict(zip(s.tolist(), t.tolist(), strict=False))
    score_s = (
        {
            a: x
            for a, x in zip(
                s.tolist(), sc[s, [list(ix[a]).index(b) for a, b in zip(s.tolist(), t.tolist(), strict=False)]].tolist(), strict=False
            )
        }
        if len(s)
        else {}
    )
    holder = {b: a for a, b in partner_s.items()}
    for i in range(sc.shape[0]):
        for j, c in zip(ix[i].tolist(), sc[i].tolist(), strict=False):
            mine = score_s.get(i, -np.inf)
            if j == partner_s.get(i):
                break
            if c > mine:
                h = holder.get(j)
                theirs = score_s[h] if h is not None else -np.inf
                if c > theirs:
                    return False
    return True


@pytest.mark.parametrize("seed", range(10))
def test_stable_is_stable_and_equals_greedy_without_ties(seed):
    rng = np.random.default_rng(100 + seed)
    S = rng.random((9, 8))
    sc, ix = _topk(S, 4)
    s1, t1, _ = matching.stable(sc, ix, 8)
    s2, t2, _ = matching.greedy(sc, ix, 8)
    assert _stable(s1, t1, sc, ix)
    assert (s1.tolist(), t1.tolist()) == (s2.tolist(), t2.tolist())


def _brute_dense(S):
    m, p = S.shape
    best = -np.inf
    if m <= p:
        for perm in itertools.permutations(range(p), m):
            best = max(best, sum(S[i, perm[i]] for i in range(m)))
    else:
        for perm in itertools.permutations(range(m), p):
            best = max(best, sum(S[perm[j], j] for j in range(p)))
    return best


@pytest.mark.parametrize("shape", [(4, 4), (3, 5), (6, 4), (1, 3)])
@pytest.mark.parametrize("seed", range(5))
def test_hungarian_dense_is_optimal(shape, seed):
    S = np.random.default_rng(seed).normal(size=shape)
    s, t, c = matching.hungarian_dense(S)
    assert matching.is_one_to_one(s, t) and len(s) == min(shape)
    assert c.sum() == pytest.approx(_brute_dense(S))
    assert np.allclose(c, S[s, t])


def _brute_sparse(edges: dict, m: int):
    """Max cardinality, then max total score, over all matchings of the edge set."""
    best = (0, 0.0)
    items = list(edges.items())

    def rec(i, used, size, total):
        nonlocal best
        if i == m:
            if (size, total) > (best[0], best[1] - 1e-12) and (size > best[0] or total > best[1]):
                best = (size, total)
            return
        rec(i + 1, used, size, total)
        for (a, b), c in items:
            if a == i and b not in used:
                rec(i + 1, used | {b}, size + 1, total + c)

    rec(0, frozenset(), 0, 0.0)
    return best


@pytest.mark.parametrize("seed", range(12))
def test_hungarian_sparse_is_optimal_on_the_candidate_graph(seed):
    rng = np.random.default_rng(seed)
    m, p, k = 6, 5, 2
    S = rng.normal(size=(m, p))
    sc, ix = _topk(S, k)
    s, t, c = matching.hungarian_sparse(sc, ix, p)
    assert matching.is_one_to_one(s, t)
    size, total = _brute_sparse(_edge_set(sc, ix), m)
    assert len(s) == size
    assert c.sum() == pytest.approx(total)


def test_greedy_breaks_ties_by_lower_ids_and_handles_empty():
    sc = np.array([[1.0, 1.0], [1.0, 1.0]])
    ix = np.array([[0, 1], [0, 1]])
    s, t, _ = matching.greedy(sc, ix, 2)
    assert list(zip(s.tolist(), t.tolist(), strict=False)) == [(0, 0), (1, 1)]
    empty = np.zeros((0, 3)), np.zeros((0, 3), np.int64)
    for fn in (matching.top1, matching.greedy, matching.stable):
        assert len(fn(*empty)[0]) == 0
    assert len(matching.hungarian_dense(np.zeros((0, 4)))[0]) == 0

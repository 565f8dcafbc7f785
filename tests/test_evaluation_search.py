"""Candidate search at scale: exact blocked search = brute force under any memory budget; FAISS top-1 = exact
on easy data (flat), high recall for IVF on clustered data; CSLS on FAISS kNN lists; padded lists."""

import numpy as np
import pytest
import torch

from kgalign.evaluation.ann import AnnOptions, default_nlist
from kgalign.evaluation.search import BYTES_PER_SCORE, SearchOptions, neighbour_means, similarity_topk
from kgalign.evaluation.similarity import normalise


def _brute_topk(S: np.ndarray, k: int):
    """Best k per row: score desc, then column asc (float64 scores)."""
    cols = np.broadcast_to(np.arange(S.shape[1]), S.shape)
    order = np.lexsort((cols, -S), axis=1)[:, :k]
    return np.take_along_axis(S, order, 1), order


def _brute_csls(A: np.ndarray, B: np.ndarray, kc: int) -> np.ndarray:
    S = A @ B.T
    r_a = -np.sort(-S, axis=1)[:, :kc].mean(1)
    r_b = -np.sort(-S, axis=0)[:kc].mean(0)
    return 2 * S - r_a[:, None] - r_b[None, :]


def _integer_data(seed: int, m: int, p: int, d: int = 4):
    """Small integer vectors: every dot product is exact in float32 and ties are common."""
    rng = np.random.default_rng(seed)
    return rng.integers(-2, 3, size=(m, d)).astype(np.float32), rng.integers(-2, 3, size=(p, d)).astype(np.float32)


@pytest.mark.parametrize("budget_scores", [1, 7, 64, 1 << 20])
@pytest.mark.parametrize("similarity", ["cosine", "csls"])
@pytest.mark.parametrize("seed", range(3))
def test_exact_blocked_equals_brute_force_with_ties_and_tiny_budgets(budget_scores, similarity, seed):
    a, b = _integer_data(seed, 23, 17)
    k = 5
    opts = SearchOptions(method="exact", memory_budget=budget_scores * BYTES_PER_SCORE, block_size=6)
    res = similarity_topk(torch.from_numpy(a), torch.from_numpy(b), k, similarity=similarity, csls_k=2, back=True, opts=opts)
    S = (
        a.astype(np.float64) @ b.T.astype(np.float64)
        if similarity == "cosine"
        else _brute_csls(a.astype(np.float64), b.astype(np.float64), 2)
    )
    want_s, want_i = _brute_topk(S, k)
    assert any(len(set(row)) < len(row) for row in S.tolist())  # ties within rows
    np.testing.assert_array_equal(res.index, want_i)
    np.testing.assert_allclose(res.scores, want_s, rtol=0, atol=1e-5)
    back = _brute_topk(S.T, 1)[1][:, 0]
    np.testing.assert_array_equal(res.back, back)
    assert res.info["method"] == "exact" and res.info["block_rows"] == max(1, min(6, budget_scores // 17))


def test_exact_handles_empty_sides_and_k_above_targets():
    a, b = _integer_data(0, 4, 3)
    res = similarity_topk(torch.from_numpy(a), torch.from_numpy(b), 10, similarity="csls")
    assert res.index.shape == (4, 3) and sorted(res.index[0].tolist()) == [0, 1, 2]
    empty = similarity_topk(torch.from_numpy(a[:0]), torch.from_numpy(b), 3, back=True)
    assert empty.index.shape == (0, 3) and empty.back.tolist() == [-1, -1, -1]


def _clustered(seed: int, n: int, d: int, centers: int, spread: float, noise: float):
    """n linked pairs in clusters: KG2 row i is KG1 row i plus noise."""
    rng = np.random.default_rng(seed)
    c = rng.standard_normal((centers, d)).astype(np.float32)
    z = c[rng.integers(0, centers, n)] + spread * rng.standard_normal((n, d)).astype(np.float32)
    a = z + noise * rng.standard_normal((n, d)).astype(np.float32)
    b = z + noise * rng.standard_normal((n, d)).astype(np.float32)
    return normalise(a), normalise(b)


def _recall_at(approx: np.ndarray, exact: np.ndarray, k: int) -> float:
    return float(np.mean([len(set(x[:k]) & set(y[:k])) / k for x, y in zip(approx.tolist(), exact.tolist(), strict=False)]))


@pytest.mark.parametrize("similarity", ["cosine", "csls"])
def test_faiss_flat_gives_the_exact_top1_on_easy_data(similarity):
    pytest.importorskip("faiss")
    A, B = _clustered(0, 600, 32, 20, 0.5, 0.1)
    exact = similarity_topk(A, B, 10, similarity=similarity, back=True)
    approx = similarity_topk(A, B, 10, similarity=similarity, back=True, opts=SearchOptions(method="faiss", ann=AnnOptions(kind="flat")))
    assert approx.info["method"] == "faiss" and approx.info["index"] == "Flat"
    np.testing.assert_array_equal(approx.index[:, 0], exact.index[:, 0])
    np.testing.assert_array_equal(approx.back, exact.back)
    np.testing.assert_allclose(approx.scores[:, 0], exact.scores[:, 0], atol=1e-5)
    assert _recall_at(approx.index, exact.index, 10) >= 0.99
    assert (approx.index[:, 0] == np.arange(600)).mean() > 0.95  # the gold partner, as a sanity check of the data


def test_faiss_ivf_and_hnsw_have_high_recall_on_clustered_data():
    pytest.importorskip("faiss")
    A, B = _clustered(1, 4000, 32, 64, 0.4, 0.15)
    exact = similarity_topk(A, B, 10, similarity="cosine")
    for ann in (AnnOptions(kind="ivf", nlist=64, nprobe=8), AnnOptions(kind="hnsw", hnsw_m=16, ef_search=64)):
        approx = similarity_topk(A, B, 10, similarity="cosine", opts=SearchOptions(method="faiss", ann=ann))
        assert approx.info["index"].startswith(ann.kind.upper())
        assert (approx.index[:, 0] == exact.index[:, 0]).mean() >= 0.97, ann
        assert _recall_at(approx.index, exact.index, 10) >= 0.9, ann
    # CSLS on IVF kNN lists: the top-1 agrees with exact CSLS
    ivf = SearchOptions(method="faiss", ann=AnnOptions(kind="ivf", nlist=64, nprobe=8))
    approx = similarity_topk(A, B, 10, similarity="csls", opts=ivf)
    exact = similarity_topk(A, B, 10, similarity="csls")
    assert (approx.index[:, 0] == exact.index[:, 0]).mean() >= 0.97


def test_faiss_pads_short_lists_and_neighbour_means_agree():
    pytest.importorskip("faiss")
    A, B = _clustered(2, 300, 16, 30, 0.2, 0.05)
    # 30 tight clusters in 64 cells, one probed: some queries find fewer than 50 neighbours
    res = similarity_topk(A, B, 50, similarity="cosine", opts=SearchOptions(method="faiss", ann=AnnOptions(kind="ivf", nlist=64, nprobe=1)))
    pad = res.index < 0
    assert pad.any() and np.isneginf(res.scores[pad]).all()
    assert (np.diff(pad.astype(int), axis=1) >= 0).all()  # pads only at the end of a list
    flat = SearchOptions(method="faiss", ann=AnnOptions(kind="flat"))
    np.testing.assert_allclose(neighbour_means(A, B, 3, flat).numpy(), neighbour_means(A, B, 3).numpy(), atol=1e-5)


def test_auto_picks_exact_for_small_inputs_and_nlist_rule():
    A, B = _clustered(3, 50, 8, 5, 0.3, 0.1)
    assert similarity_topk(A, B, 3).info["method"] == "exact"
    assert default_nlist(1_000_000) == 4000 and default_nlist(10_000) == 256 and default_nlist(100) == 2  # >= 39 vectors per cell
    with pytest.raises(ValueError, match="search must be one of"):
        similarity_topk(A, B, 3, opts=SearchOptions(method="annoy"))
    with pytest.raises(ValueError, match="index must be one of"):
        similarity_topk(A, B, 3, opts=SearchOptions(method="faiss", ann=AnnOptions(kind="lsh")))


@pytest.mark.parametrize("precision", ["bfloat16", "float16"])
@pytest.mark.parametrize("similarity", ["cosine", "csls"])
def test_low_precision_products_give_the_float32_result(precision, similarity):
    # integer data (exact in every format, many ties) and clustered float data (near ties, rows recomputed)
    a, b = _integer_data(4, 31, 19)
    A, B = torch.from_numpy(a), torch.from_numpy(b)
    for scale in (None, 1.0):
        if scale is not None:
            A, B = _clustered(5, 300, 16, 6, 0.2, 0.05)
        want = similarity_topk(A, B, 5, similarity=similarity, csls_k=2, back=True)
        got = similarity_topk(A, B, 5, similarity=similarity, csls_k=2, back=True, opts=SearchOptions(precision=precision, block_size=64))
        same = got.index == want.index
        # where the order differs, the float32 scores are equal up to rounding
        assert same.mean() > 0.97
        np.testing.assert_allclose(got.scores, want.scores, rtol=0, atol=2e-6)
        assert (got.back == want.back).mean() > 0.97
        if scale is None:
            assert same.all() and (got.back == want.back).all()
    assert got.info["precision"] == precision and got.info["delta"] > 0

"""Sparse 1:1 matching on candidate lists (= the dense result when the lists are full; padded lists), and
`kgalign align --search faiss` end to end, including a clean error when faiss is not installed."""

import json
import subprocess
import sys

import numpy as np
import pytest
from test_export_helpers import make_dataset, make_run

from kgalign.export import matching
from kgalign.export.align import align_embeddings
from kgalign.export.api import align_run
from kgalign.export.predictions import read_predictions


def _dense_greedy(S: np.ndarray):
    """Greedy on the dense matrix: repeatedly take the best remaining cell (ties: lower row, lower column)."""
    S = S.astype(np.float64).copy()
    out = []
    for _ in range(min(S.shape)):
        i, j = np.unravel_index(np.argmax(S), S.shape)  # argmax: first in row-major order on ties
        out.append((int(i), int(j)))
        S[i, :] = -np.inf
        S[:, j] = -np.inf
    return sorted(out)


def _lists(S: np.ndarray, k: int):
    idx = np.argsort(-S, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(S, idx, 1), idx


@pytest.mark.parametrize("seed", range(8))
def test_sparse_strategies_on_full_lists_equal_the_dense_result(seed):
    rng = np.random.default_rng(seed)
    m, p = 9, 7
    S = np.round(rng.random((m, p)), 1)  # rounded: ties are common
    sc, ix = _lists(S, p)
    s, t, _ = matching.greedy(sc, ix, p)
    assert matching.is_one_to_one(s, t) and sorted(zip(s.tolist(), t.tolist(), strict=False)) == _dense_greedy(S)
    s2, t2, c2 = matching.hungarian_sparse(sc, ix, p)
    _, _, cd = matching.hungarian_dense(S)
    assert matching.is_one_to_one(s2, t2) and len(s2) == min(m, p) and c2.sum() == pytest.approx(cd.sum())
    s3, t3, _ = matching.stable(sc, ix, p)
    assert matching.is_one_to_one(s3, t3) and len(s3) == min(m, p)


@pytest.mark.parametrize("strategy", ["top1", "greedy", "stable", "hungarian_sparse", "mutual"])
def test_padded_candidate_lists_are_not_edges(strategy):
    # source 1 found nothing; source 2 found one target; -1 pads must never be matched
    sc = np.array([[0.9, 0.5, 0.1], [-np.inf, -np.inf, -np.inf], [0.8, -np.inf, -np.inf], [0.7, 0.6, -np.inf]])
    ix = np.array([[0, 1, 2], [-1, -1, -1], [1, -1, -1], [0, 2, -1]])
    if strategy == "top1":
        s, t, c = matching.top1(sc, ix)
    elif strategy == "mutual":
        s, t, c = matching.mutual(sc, ix, np.array([0, 2, 3]))
    elif strategy == "hungarian_sparse":
        s, t, c = matching.hungarian_sparse(sc, ix, 3)
    else:
        s, t, c = getattr(matching, strategy)(sc, ix, 3)
    assert (t >= 0).all() and 1 not in s.tolist() and np.isfinite(c).all()
    pairs = sorted(zip(s.tolist(), t.tolist(), strict=False))
    expect = {
        "top1": [(0, 0), (2, 1), (3, 0)],
        "mutual": [(0, 0), (2, 1)],
        "greedy": [(0, 0), (2, 1), (3, 2)],
        "stable": [(0, 0), (2, 1), (3, 2)],
        "hungarian_sparse": [(0, 0), (2, 1), (3, 2)],
    }[strategy]
    assert pairs == expect


@pytest.mark.parametrize("strategy", ["greedy", "stable", "hungarian", "mutual"])
def test_align_with_faiss_flat_equals_exact(tmp_path, strategy):
    pytest.importorskip("faiss")
    from kgalign.evaluation.ann import AnnOptions
    from kgalign.evaluation.search import SearchOptions

    ds, emb = make_dataset(tmp_path / "ds", n_links=80, noise=0.2)
    kw = dict(strategy=strategy, include_seeds=True, hungarian_dense_max=0)
    exact = align_embeddings(emb, ds.entity_kg, ds.links, ds.link_split, **kw)
    approx = align_embeddings(
        emb, ds.entity_kg, ds.links, ds.link_split, search=SearchOptions(method="faiss", ann=AnnOptions(kind="flat")), **kw
    )
    assert approx.summary["search"]["method"] == "faiss" and exact.summary["search"]["method"] == "exact"
    assert sorted(zip(approx.kg1.tolist(), approx.kg2.tolist(), strict=False)) == sorted(
        zip(exact.kg1.tolist(), exact.kg2.tolist(), strict=False)
    )
    np.testing.assert_allclose(np.sort(approx.score), np.sort(exact.score), atol=1e-5)


def _kgalign(args, block_faiss=False, timeout=120):
    pre = "import sys; sys.modules['faiss'] = None; " if block_faiss else "import sys; "
    code = pre + "from kgalign.cli import main; sys.argv = ['kgalign'] + sys.argv[1:]; main()"
    return subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True, timeout=timeout)


def _accepted(path):
    t = read_predictions(path)
    return [(a, b) for a, b, s in zip(t.kg1, t.kg2, t.status, strict=False) if s == "accepted"]


def test_cli_align_search_faiss_end_to_end(tmp_path):
    pytest.importorskip("faiss")
    run, ds, _ = make_run(tmp_path, n_links=60, noise=0.2)
    out = tmp_path / "faiss.tsv"
    p = _kgalign(["align", run, "--search", "faiss", "--index", "ivf", "--nlist", "4", "--nprobe", "4", "--json", "-o", out])
    assert p.returncode == 0, p.stderr
    summary = json.loads(p.stdout)
    assert summary["search"]["method"] == "faiss" and summary["search"]["index"].startswith("IVF4,Flat")
    gold = {(ds.entities[a], ds.entities[b]) for a, b in ds.links.tolist()}
    acc = _accepted(out)
    assert sum(x in gold for x in acc) >= 36  # of the 40 non-training links (dangling entities also get partners)
    assert len({a for a, _ in acc}) == len(acc) and len({b for _, b in acc}) == len(acc)  # greedy 1:1
    exact = tmp_path / "exact.tsv"
    align_run(run, output=exact, search="exact", memory_budget_mib=1, precision="bfloat16")
    assert sorted(acc) == sorted(_accepted(exact))  # IVF with every cell probed is exact here


def test_missing_faiss_gives_a_clean_error_and_writes_nothing(tmp_path):
    run, _, _ = make_run(tmp_path)
    out = tmp_path / "p.tsv"
    p = _kgalign(["align", run, "--search", "faiss", "-o", out], block_faiss=True)
    assert p.returncode == 3, p.stderr
    assert "pip install 'kgalign[ann]'" in p.stderr and "Traceback" not in p.stderr
    assert not out.exists()
    # exact and auto need no faiss
    p = _kgalign(["align", run, "--search", "auto", "--json", "-o", out], block_faiss=True)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["search"]["method"] == "exact" and out.exists()


def test_bad_search_flags_are_input_errors(tmp_path):
    from typer.testing import CliRunner

    from kgalign.cli import app

    run, _, _ = make_run(tmp_path)
    for args, msg in (
        (["--search", "annoy"], "--search must be one of"),
        (["--index", "lsh"], "--index must be one of"),
        (["--nprobe", "0"], "--nprobe must be at least 1"),
        (["--memory-budget", "0"], "--memory-budget must be at least 1"),
        (["--precision", "int8"], "--precision must be one of"),
    ):
        p = CliRunner().invoke(app, ["align", str(run), *args, "-o", str(tmp_path / "x.tsv")])
        assert p.exit_code == 2 and msg in p.output, p.output
        assert not (tmp_path / "x.tsv").exists()

"""align_embeddings / align_run: scopes, seeds, thresholds, review band, blocked = unblocked."""

import numpy as np
import pytest
from test_export_helpers import make_dataset, make_run

from kgalign.export.align import align_embeddings
from kgalign.export.api import align_run
from kgalign.export.predictions import read_predictions


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_dataset(tmp_path_factory.mktemp("al") / "ds")


def _align(data, **kw):
    ds, emb = data
    return align_embeddings(emb, ds.entity_kg, ds.links, ds.link_split, **kw)


def _precision(pred, gold):
    g = {tuple(x) for x in gold.tolist()}
    acc = [(a, b) for a, b, s in zip(pred.kg1.tolist(), pred.kg2.tolist(), pred.status, strict=False) if s == "accepted"]
    return sum(p in g for p in acc) / max(1, len(acc)), len(acc)


@pytest.mark.parametrize("strategy", ["top1", "mutual", "greedy", "hungarian", "stable"])
@pytest.mark.parametrize("similarity", ["cosine", "csls"])
def test_test_scope_recovers_links(data, strategy, similarity):
    ds, _ = data
    pred = _align(data, scope="test", strategy=strategy, similarity=similarity, include_seeds=False)
    test = ds.links_for("test")
    prec, n = _precision(pred, test)
    assert prec >= 0.9 and n >= 0.8 * len(test)
    assert set(pred.kg1.tolist()) <= set(test[:, 0].tolist()) and set(pred.kg2.tolist()) <= set(test[:, 1].tolist())
    if strategy != "top1":
        assert len(set(pred.kg1.tolist())) == len(pred) and len(set(pred.kg2.tolist())) == len(pred)


def test_all_scope_excludes_training_entities_and_flags_seeds(data):
    ds, _ = data
    pred = _align(data)  # defaults: all entities, csls, greedy, seeds included
    train = ds.links_for("train")
    seeds = [(a, b) for a, b, s in zip(pred.kg1.tolist(), pred.kg2.tolist(), pred.status, strict=False) if s == "seed"]
    assert seeds == [tuple(x) for x in train.tolist()]
    predicted = [(a, b) for a, b, s in zip(pred.kg1.tolist(), pred.kg2.tolist(), pred.status, strict=False) if s != "seed"]
    assert not ({a for a, _ in predicted} & set(train[:, 0].tolist()))
    assert not ({b for _, b in predicted} & set(train[:, 1].tolist()))
    # 40 KG1 sources (30 linked + 10 dangling) against 38 KG2 targets; greedy over top-10 lists
    # matches at most 38 (a target in nobody's remaining list stays unmatched)
    assert pred.summary["sources"] == 40 and pred.summary["targets"] == 38 and 30 <= pred.summary["matched"] <= 38
    assert pred.status[: pred.summary["accepted"]] == ["accepted"] * pred.summary["accepted"]


def test_threshold_and_review_band(data):
    base = _align(data, include_seeds=False)
    pred = _align(data, include_seeds=False, threshold=0.3, review_threshold=0.1)
    for s, c in zip(pred.status, pred.score.tolist(), strict=False):
        assert (s == "accepted" and c >= 0.3) or (s == "review" and 0.1 <= c < 0.3)
    expect = sorted((a, b) for a, b, c in zip(base.kg1.tolist(), base.kg2.tolist(), base.score.tolist(), strict=False) if c >= 0.1)
    assert sorted(zip(pred.kg1.tolist(), pred.kg2.tolist(), strict=False)) == expect
    only = _align(data, include_seeds=False, threshold=0.3)
    assert set(only.status) <= {"accepted"} and len(only) == pred.status.count("accepted")
    with pytest.raises(ValueError, match="above the threshold"):
        _align(data, threshold=0.1, review_threshold=0.2)


def test_threshold_sweep_is_monotone(data):
    ds, _ = data
    gold = np.concatenate([ds.links_for("test"), ds.links_for("valid")])
    prev_n, prev_p, seen = None, -1.0, []
    for t in np.linspace(-0.2, 0.8, 11):
        prec, n = _precision(_align(data, include_seeds=False, threshold=float(t)), gold)
        if prev_n is not None:
            assert n <= prev_n
            if n:  # precision of an empty set is undefined
                assert prec >= prev_p - 1e-12
        prev_n, prev_p = n, prec if n else prev_p
        seen.append(n)
    assert seen[0] > seen[-1]  # the sweep really moves


@pytest.mark.parametrize("strategy", ["greedy", "mutual", "top1", "hungarian"])
def test_blocked_search_equals_single_block(data, strategy):
    a = _align(data, strategy=strategy, max_block_elems=1 << 25, hungarian_dense_max=10**9)
    b = _align(data, strategy=strategy, block_size=3, max_block_elems=50, hungarian_dense_max=10**9)
    assert a.kg1.tolist() == b.kg1.tolist() and a.kg2.tolist() == b.kg2.tolist()
    assert np.allclose(a.score, b.score, atol=1e-6)


def test_sparse_hungarian_beyond_the_dense_limit(data):
    dense = _align(data, strategy="hungarian", include_seeds=False, topk=38, score="csls")
    sparse = _align(data, strategy="hungarian", include_seeds=False, topk=38, hungarian_dense_max=0, score="csls")
    assert "dense" in dense.summary["strategy"] and "sparse" in sparse.summary["strategy"]
    # with every candidate in the top-k lists both solve the same problem
    assert dense.score.sum() == pytest.approx(sparse.score.sum(), abs=1e-5)


def test_align_run_writes_predictions_and_sidecar(tmp_path):
    run, ds, _ = make_run(tmp_path)
    summary = align_run(run, threshold=0.2)
    table = read_predictions(run / "predictions.tsv")
    assert summary["output"] == str(run / "predictions.tsv")
    assert table.meta["model"] == "test" and table.meta["config_sha256"] == summary["config_sha256"]
    assert table.status.count("seed") == 20
    ents = set(ds.entities)
    assert set(table.kg1) <= ents and set(table.kg2) <= ents
    assert all(c >= 0.2 for c, s in zip(table.score, table.status, strict=False) if s == "accepted")
    assert ("_:b1", ds.entities[60]) in set(zip(table.kg1, table.kg2, strict=False))  # a seed with a blank node


def test_trainer_style_config_gives_model_name_and_seed(tmp_path):
    import json

    run, _, _ = make_run(tmp_path)
    cfg = {"dataset": str((tmp_path / "ds").resolve()), "model": {"name": "noco", "hidden": 32}, "train": {"seed": 7}}
    (run / "config.json").write_text(json.dumps(cfg), encoding="utf-8")
    meta = align_run(run, output=tmp_path / "p.tsv")
    assert meta["model"] == "noco" and meta["seed"] == 7


def test_scores_are_cosine_by_default_and_csls_on_request(data):
    ds, emb = data
    e = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    pred = _align(data)  # matching by CSLS, scores cosine
    assert np.allclose(pred.score, (e[pred.kg1] * e[pred.kg2]).sum(1), atol=1e-5)
    assert pred.summary["similarity"] == "csls(k=3)" and pred.summary["score"] == "cosine"
    same = _align(data, score="csls")
    assert sorted(zip(same.kg1.tolist(), same.kg2.tolist(), strict=False)) == sorted(
        zip(pred.kg1.tolist(), pred.kg2.tolist(), strict=False)
    )
    # CSLS scores worked out plainly over the candidate sets (train entities excluded), k = 3
    train = ds.links_for("train")
    src = np.setdiff1d(np.nonzero(ds.entity_kg == 1)[0], train[:, 0])
    tgt = np.setdiff1d(np.nonzero(ds.entity_kg == 2)[0], train[:, 1])
    S = e[src] @ e[tgt].T
    r1 = np.sort(S, 1)[:, -3:].mean(1)
    r2 = np.sort(S, 0)[-3:, :].mean(0)
    pos1 = {x: i for i, x in enumerate(src.tolist())}
    pos2 = {x: i for i, x in enumerate(tgt.tolist())}
    for a, b, c, st in zip(same.kg1.tolist(), same.kg2.tolist(), same.score.tolist(), same.status, strict=False):
        if st != "seed":
            i, j = pos1[a], pos2[b]
            assert c == pytest.approx(2 * S[i, j] - r1[i] - r2[j], abs=1e-5)

"""Sampled ranking (evaluation/sampled.py): each sampled rank is the full evaluation's rank; training and
`kgalign evaluate` use it on request; CSLS selection with a sample is refused."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from kgalign.cli import app
from kgalign.evaluation.ranking import evaluate_embeddings, metrics_from_ranks
from kgalign.evaluation.sampled import evaluate_sampled, sample_rows
from kgalign.features.synthetic import make_synthetic

pytestmark = pytest.mark.usefixtures("single_thread")


def _problem(seed=0, n1=60, n2=70, links=40, d=6, tie=True):
    g = torch.Generator().manual_seed(seed)
    emb = torch.randn(n1 + n2, d, generator=g)
    if tie:  # exact ties: a KG2 candidate that duplicates a gold entity
        emb[n1 + links] = emb[n1 + 3]
    kg = np.array([1] * n1 + [2] * n2)
    L = np.stack([np.arange(links), n1 + np.arange(links)], 1)
    return emb, L, kg


@pytest.mark.parametrize("candidates", ["test", "pool", "all"])
@pytest.mark.parametrize("sample", [7, 25, 1000])
def test_sampled_ranks_are_the_full_ranks(candidates, sample):
    emb, L, kg = _problem()
    train = np.array([[45, 105], [46, 106]])
    full = evaluate_embeddings(emb, L, candidates=candidates, kg=kg, exclude=train, return_ranks=True, block_size=8)
    res = evaluate_sampled(emb, L, sample=sample, seed=3, candidates=candidates, kg=kg, exclude=train, block_size=8)
    rows = sample_rows(len(L), sample, 3)
    assert len(rows) == min(sample, len(L))
    for d in ("l2r", "r2l"):
        assert res["cosine"][d] == metrics_from_ranks(full["ranks"]["cosine"][d][rows])
    assert "csls" not in res
    assert res["candidates"] == {**full["candidates"], "sampled": len(rows)}
    if sample >= len(L):
        assert res["cosine"] == {d: full["cosine"][d] for d in ("l2r", "r2l")}


def test_sample_rows_are_seeded_distinct_and_sorted():
    a, b, c = sample_rows(1000, 50, 1), sample_rows(1000, 50, 1), sample_rows(1000, 50, 2)
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert len(np.unique(a)) == 50 and np.all(np.diff(a) > 0)
    with pytest.raises(ValueError):
        sample_rows(10, 0, 0)


@pytest.fixture(scope="module")
def ds_path(tmp_path_factory):
    return make_synthetic(tmp_path_factory.mktemp("syn") / "ds", n=120, noise=1.0, seed=5)


def _train(ds, out, *extra):
    args = ["train", str(ds), "-m", "mclea", "-o", str(out), "--epochs", "2", "--device", "cpu", "--set", "model.hidden=16"]
    return CliRunner().invoke(app, [*args, "--set", "model.feature_dim=16", "-q", *extra])


def test_training_with_a_sample_selects_on_cosine(ds_path, tmp_path):
    r = _train(ds_path, tmp_path / "run", "--set", "eval.sample=10", "--select-metric", "cosine.l2r.mrr", "--json")
    assert r.exit_code == 0, r.stderr
    res = json.loads(r.stdout)
    for split in ("valid", "test"):
        assert set(res[split]) >= {"cosine", "candidates"} and "csls" not in res[split]
        assert res[split]["candidates"]["sampled"] == 10
    assert res["selection"]["metric"] == "cosine.l2r.mrr"
    r = _train(ds_path, tmp_path / "run2", "--set", "eval.sample=10", "--select-metric", "cosine.l2r.mrr")
    assert r.exit_code == 0 and "10 sampled links" in r.stdout and "csls" not in r.stdout
    # the same run's embeddings, evaluated by the command with the same sample, give the same test figures
    r = CliRunner().invoke(app, ["evaluate", str(tmp_path / "run"), "--sample", "10", "--json"])
    assert r.exit_code == 0, r.stderr
    ev = json.loads(r.stdout)
    assert ev["candidates"]["sampled"] == 10 and "csls" not in ev
    for d in ("l2r", "r2l"):
        for k, v in res["test"]["cosine"][d].items():
            assert ev["cosine"][d][k] == pytest.approx(v, abs=1e-6)
    r = CliRunner().invoke(app, ["evaluate", str(tmp_path / "run"), "--sample", "10", "--split", "valid", "--candidates", "pool", "--json"])
    assert r.exit_code == 0, r.stderr
    for k, v in res["valid"]["cosine"]["l2r"].items():  # the same valid sample as training's
        assert json.loads(r.stdout)["cosine"]["l2r"][k] == pytest.approx(v, abs=1e-6)
    r = CliRunner().invoke(app, ["evaluate", str(tmp_path / "run"), "--sample", "10"])
    assert r.exit_code == 0 and "cosine" in r.stdout and "csls" not in r.stdout


def test_a_sample_with_csls_selection_is_refused(ds_path, tmp_path):
    r = _train(ds_path, tmp_path / "run", "--set", "eval.sample=10")
    assert r.exit_code == 2, r.stderr
    assert r.stderr.startswith("error:") and "cosine" in r.stderr and "eval.sample" in r.stderr
    assert not (tmp_path / "run").exists()
    r = _train(ds_path, tmp_path / "run", "--set", "eval.sample=0", "--select-metric", "cosine.l2r.mrr")
    assert r.exit_code == 2 and "eval.sample" in r.stderr
    r = CliRunner().invoke(app, ["evaluate", str(tmp_path), "--sample", "0"])
    assert r.exit_code != 0 and "--sample" in r.stderr

"""LightEA (kgalign/models/lightea.py): a training-free aligner through the engine's training-free path."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys

import numpy as np
import pytest
import torch

from kgalign.data.store import load_dataset
from kgalign.errors import InputError
from kgalign.evaluation.ranking import evaluate_embeddings
from kgalign.features.store import load_features
from kgalign.features.synthetic import make_synthetic
from kgalign.models.inputs import build_inputs
from kgalign.models.lightea import mutual_above, sparse_sinkhorn
from kgalign.models.registry import build_model, list_models
from kgalign.training import train

pytestmark = pytest.mark.usefixtures("single_thread")
KG = f"{shlex.quote(sys.executable)} -m kgalign.cli"


@pytest.fixture(scope="module")
def ds_path(tmp_path_factory):
    # 300 linked pairs: 90 train, 60 valid, 150 test; chance Hits@1 on valid is 1/60
    return make_synthetic(tmp_path_factory.mktemp("syn") / "ds", n=300, noise=1.5, seed=0)


def _fit(ds_path, **options):
    ds = load_dataset(ds_path)
    torch.manual_seed(0)
    model = build_model("lightea", build_inputs(ds, load_features(ds_path)), **options)
    rounds = list(model.fit(torch.from_numpy(ds.links_for("train"))))
    return ds, model, rounds


def test_registered_as_training_free():
    assert "lightea" in list_models() and "lightea" in list_models(trainable=False)
    assert "lightea" not in list_models(trainable=True) and "noco" in list_models(trainable=True)


def test_aligns_far_above_chance_without_training(ds_path):
    ds, model, rounds = _fit(ds_path, features=False, iterations=0)
    assert len(rounds) == 1 and list(model.parameters()) == []
    emb = model.embed()
    assert emb.shape == (ds.num_entities, 32 * 8 + 256)  # relation-specific view | entity view
    # unit rows, except entities in no triple: no evidence, a zero row (ranked last: ties are pessimistic)
    tri = np.asarray(ds.relation_triples)
    isolated = torch.from_numpy(~np.isin(np.arange(ds.num_entities), np.concatenate([tri[:, 0], tri[:, 2]])))
    norms = emb.norm(dim=1)
    assert torch.allclose(norms[~isolated], torch.ones(int((~isolated).sum())), atol=1e-5) and (norms[isolated] == 0).all()
    h1 = evaluate_embeddings(emb, ds.links_for("valid"))["cosine"]["l2r"]["hits@1"]
    assert h1 >= 0.5, h1  # chance is 1/60


def test_bootstrapping_adds_only_unlinked_mostly_correct_pairs(ds_path):
    ds, _, rounds = _fit(ds_path, features=False, iterations=2)
    seeds = ds.links_for("train")
    gold = {tuple(p) for p in ds.links.tolist()}
    links, source = rounds[-1]
    assert len(rounds) >= 2 and (source[: len(seeds)] == 0).all() and np.array_equal(links[: len(seeds)], seeds)
    new = links[source > 0]
    assert len(new) > 20
    # no entity gets a second link, none is a seed entity, every pair joins KG1 to KG2
    assert len(np.unique(links[:, 0])) == len(links) and len(np.unique(links[:, 1])) == len(links)
    kg = ds.entity_kg
    assert (kg[new[:, 0]] == 1).all() and (kg[new[:, 1]] == 2).all()
    assert np.mean([tuple(p) in gold for p in new.tolist()]) >= 0.8


def test_known_negatives_are_never_added(ds_path):
    ds, _, rounds = _fit(ds_path, features=False, iterations=1)
    first = rounds[-1][0][rounds[-1][1] > 0]
    torch.manual_seed(0)
    model = build_model("lightea", build_inputs(ds, load_features(ds_path)), features=False, iterations=1)
    links, source = list(model.fit(torch.from_numpy(ds.links_for("train")), excluded=torch.from_numpy(first[:10])))[-1]
    added = {tuple(p) for p in links[source > 0].tolist()}
    assert added and not added & {tuple(p) for p in first[:10].tolist()}


def test_sparse_sinkhorn_normalises_and_mutual_pairs_pass_the_threshold():
    # 3 x 3 candidates, a clear diagonal, plus a weak off-diagonal entry
    i = torch.tensor([0, 0, 1, 2, 2])
    j = torch.tensor([3, 4, 4, 5, 3])
    sim = torch.tensor([0.9, 0.5, 0.8, 0.95, 0.2])
    p = sparse_sinkhorn(i, j, sim, 6, steps=20, tau=0.05)
    col = torch.zeros(6).index_add_(0, j, p)
    assert torch.allclose(col[3:], torch.ones(3), atol=1e-4)
    pairs = mutual_above(i, j, p, 6, 0.5)
    assert sorted(map(tuple, pairs.tolist())) == [(0, 3), (1, 4), (2, 5)]
    # (1, 4) shares its column with the weak (0, 4): its score stays below 1 and a strict threshold drops it
    assert sorted(map(tuple, mutual_above(i, j, p, 6, 0.9999).tolist())) == [(0, 3), (2, 5)]


def test_train_writes_a_run_selected_on_valid_and_is_deterministic(ds_path, tmp_path):
    kw = dict(device="cpu", features=False, iterations=2, seed=7)
    a = train(ds_path, model="lightea", out_dir=tmp_path / "a", **kw)
    train(ds_path, model="lightea", out_dir=tmp_path / "b", **kw)
    train(ds_path, model="lightea", out_dir=tmp_path / "c", **{**kw, "seed": 8})
    ea, eb, ec = (np.load(tmp_path / x / "embeddings.npy") for x in "abc")
    assert np.array_equal(ea, eb) and not np.array_equal(ea, ec)
    r = a.results
    assert r["training_free"] and r["selection"]["split"] == "valid" and "validation links" in r["protocol"]
    records = [json.loads(line) for line in (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()]
    assert [x["round"] for x in records] == list(range(len(records))) and len(records) >= 2
    values = [x["valid"]["csls"]["l2r"]["mrr"] for x in records]
    # the selected round is the best on valid, so bootstrapping never lowers the reported valid figure
    assert r["valid"]["csls"]["l2r"]["mrr"] == pytest.approx(max(values)) and max(values) >= values[0]
    assert records[1]["valid"]["cosine"]["l2r"]["hits@1"] >= records[0]["valid"]["cosine"]["l2r"]["hits@1"]
    # the saved embeddings give the reported numbers; train_links.tsv names the bootstrapped pairs
    again = evaluate_embeddings(ea, load_dataset(ds_path).links_for("test"))
    assert again["csls"]["l2r"]["mrr"] == pytest.approx(r["test"]["csls"]["l2r"]["mrr"], abs=1e-5)
    rows = (tmp_path / "a" / "train_links.tsv").read_text().splitlines()[1:]
    assert sum(x.endswith("\tseed") for x in rows) == 90
    assert r["train_links"] == {"seed": 90, "bootstrapped": len(rows) - 90}


def test_train_with_a_sampled_evaluation(ds_path, tmp_path):
    kw = dict(device="cpu", features=False, iterations=1, seed=7, eval__sample=20, select_metric="cosine.l2r.mrr")
    r = train(ds_path, model="lightea", out_dir=tmp_path / "s", **kw).results
    assert "csls" not in r["test"] and r["test"]["candidates"]["sampled"] == 20 and r["valid"]["candidates"]["sampled"] == 20
    assert r["selection"]["metric"] == "cosine.l2r.mrr"


def test_bad_options_are_bad_input(ds_path):
    inputs = build_inputs(load_dataset(ds_path), load_features(ds_path))
    for bad, match in [
        ({"dtype": "float8"}, "dtype must be one of"),
        ({"rounds": 0}, r"rounds must be in \[1"),
        ({"threshold": 0.0}, "threshold"),
    ]:
        with pytest.raises(InputError, match=match):
            build_model("lightea", inputs, **bad)
    model = build_model("lightea", inputs)
    with pytest.raises(RuntimeError, match="call fit"):
        model.embed()


def test_cli_train_evaluate_align_export(ds_path, tmp_path):
    run = tmp_path / "RUN"
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")

    def sh(cmd):
        return subprocess.run(["bash", "-o", "pipefail", "-c", cmd], capture_output=True, text=True, timeout=120, env=env)

    p = sh(f"{KG} train {ds_path} --model lightea -o {run} --device cpu --set model.iterations=1")
    assert p.returncode == 0, p.stderr
    assert "H@1" in p.stdout and "round 1" in p.stderr
    assert {"config.json", "results.json", "embeddings.npy", "best.safetensors", "train_links.tsv"} <= {f.name for f in run.iterdir()}
    p = sh(f"{KG} evaluate {run} --json")
    assert p.returncode == 0, p.stderr
    res = json.loads(p.stdout)
    saved = json.loads((run / "results.json").read_text())
    assert res["csls"]["l2r"]["mrr"] == pytest.approx(saved["test"]["csls"]["l2r"]["mrr"], abs=1e-4)
    p = sh(f"{KG} align {run} --json")
    assert p.returncode == 0 and json.loads(p.stdout)["accepted"] > 0, p.stderr
    p = sh(f"{KG} export {run} --format tsv | head -n 3")
    assert p.returncode == 0 and len(p.stdout.splitlines()) == 3, p.stderr
    p = sh(f"{KG} train {ds_path} --model lightea -o {tmp_path / 'bad'} --device cpu --set model.dtype=float8")
    assert p.returncode == 2 and "dtype" in p.stderr and not (tmp_path / "bad").exists()


def test_half_precision_storage_keeps_the_embeddings(ds_path):
    _, full, _ = _fit(ds_path, features=False, iterations=0)
    _, half, _ = _fit(ds_path, features=False, iterations=0, dtype="float16")
    assert half.views["graph"].dtype == torch.float16 and half.embed().dtype == torch.float32
    assert torch.allclose(full.embed(), half.embed(), atol=2e-3)


def test_resume_is_refused_nothing_to_resume(ds_path, tmp_path):
    with pytest.raises(InputError, match="training-free: there is nothing to resume"):
        train(ds_path, model="lightea", out_dir=tmp_path / "r", device="cpu", resume=True, iterations=0)
    assert not (tmp_path / "r").exists()

"""Mini-batch training: sampled subgraphs, the model.on() swap, layer-wise embedding, the auto rule, resume."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from kgalign.data.store import load_dataset
from kgalign.errors import InputError
from kgalign.features.store import load_features
from kgalign.features.synthetic import make_synthetic
from kgalign.models.inputs import build_inputs
from kgalign.models.registry import build_model
from kgalign.models.subgraph import placeholder_inputs
from kgalign.training import train
from kgalign.training.minibatch import MiniBatchStep, decide, embed_layerwise, fanouts_for
from kgalign.training.sampling import Adjacency, FeatureSource, batch_subgraph

pytestmark = pytest.mark.usefixtures("single_thread")

# per model: options that make a training-mode forward deterministic (no dropout, no noise)
DETERMINISTIC = {"meaformer": {"fusion_dropout": 0.0}, "noco": {"noise": False}, "mclea": {}}


@pytest.fixture(scope="module")
def ds_path(tmp_path_factory):
    return make_synthetic(tmp_path_factory.mktemp("syn") / "ds", n=100, noise=1.0, seed=4)


@pytest.fixture(scope="module")
def data(ds_path):
    ds = load_dataset(ds_path)
    inputs = build_inputs(ds, load_features(ds_path))
    return ds, inputs, Adjacency(inputs.edge_index, inputs.num_entities), FeatureSource(inputs.features, inputs.masks)


def _pair(name, inputs, **opts):
    """The same model twice under one seed: full-graph, and built for mini-batch from placeholders."""
    torch.manual_seed(0)
    full = build_model(name, inputs, hidden=16, **opts)
    torch.manual_seed(0)
    dims = {m: f.shape[1] for m, f in inputs.features.items()}
    mb = build_model(name, placeholder_inputs(inputs.num_entities, dims, inputs.masks), hidden=16, **opts)
    return full, mb


def _batch_loss(model, adjacency, source, links, fanouts):
    sub = batch_subgraph(adjacency, source, links.numpy(), fanouts, np.random.default_rng(0))
    with model.on(sub):
        out = model()
        total, parts = model.loss(out, sub.links)
    total.backward()
    return total, parts, sub


@pytest.mark.parametrize("name", ["meaformer", "noco", "mclea"])
def test_full_fanout_batch_equals_full_graph_loss_and_gradients(data, name):
    ds, inputs, adjacency, source = data
    full, mb = _pair(name, inputs, **DETERMINISTIC[name])
    links = torch.from_numpy(ds.links_for("train")[:24])
    total, parts = full.loss(full(), links)
    total.backward()
    mb_total, mb_parts, sub = _batch_loss(mb, adjacency, source, links, [-1, -1])
    assert sub.num_nodes < inputs.num_entities  # a real subgraph, not the whole graph
    assert float(mb_total) == pytest.approx(float(total), rel=1e-6)
    assert mb_parts == pytest.approx(parts, rel=1e-5, abs=1e-7)
    grads = dict(mb.named_parameters())
    for key, p in full.named_parameters():
        if p.grad is None:
            assert grads[key].grad is None, key
            continue
        torch.testing.assert_close(grads[key].grad, p.grad, rtol=1e-4, atol=1e-5, msg=key)
    assert float(full.graph_encoder().entity.grad.abs().sum()) > 0
    # the check can fail: a fan-out of 1 drops neighbours, and the loss moves
    _, again = _pair(name, inputs, **DETERMINISTIC[name])
    capped, _, _ = _batch_loss(again, adjacency, source, links, [1, 1])
    assert abs(float(capped) - float(total)) > 1e-4


def test_sampler_caps_fanout_and_keeps_real_edges(data):
    ds, inputs, adjacency, source = data
    links = ds.links_for("train")[:10]
    sub = batch_subgraph(adjacency, source, links, [2, 3], np.random.default_rng(1))
    nodes = sub.nodes.numpy()
    seeds = list(dict.fromkeys(links.reshape(-1).tolist()))
    assert nodes[: len(seeds)].tolist() == seeds and len(set(nodes.tolist())) == len(nodes)
    assert np.array_equal(nodes[sub.links.numpy()], links)  # local links point at the same entities
    real = set(zip(*inputs.edge_index.numpy().tolist(), strict=True))
    src, dst = nodes[sub.edge_index[0].numpy()], nodes[sub.edge_index[1].numpy()]
    assert all((s, d) in real for s, d in zip(src.tolist(), dst.tolist(), strict=True))
    indeg = np.bincount(sub.edge_index[1].numpy(), minlength=len(nodes))
    assert indeg[: len(seeds)].max() == 2 and indeg[len(seeds) :].max() <= 3  # hop 1 takes 2 per seed, hop 2 at most 3
    feats, masks = source.gather(nodes)
    for m in feats:
        assert torch.equal(sub.features[m], feats[m]) and torch.equal(sub.masks[m], masks[m])
    # same stream, same subgraph
    again = batch_subgraph(adjacency, source, links, [2, 3], np.random.default_rng(1))
    assert torch.equal(again.nodes, sub.nodes) and torch.equal(again.edge_index, sub.edge_index)


@pytest.mark.parametrize("name", ["noco", "meaformer"])
def test_layerwise_embedding_equals_full_graph_embed(data, name):
    _, inputs, adjacency, source = data
    full, mb = _pair(name, inputs)
    mb.load_state_dict(full.state_dict())
    emb = embed_layerwise(mb, adjacency, source, chunk=37)
    torch.testing.assert_close(emb, full.embed(), rtol=1e-5, atol=1e-6)
    half = np.empty(tuple(emb.shape), dtype=np.float16)
    embed_layerwise(mb, adjacency, source, chunk=64, out=half)
    assert np.abs(half.astype(np.float32) - emb.numpy()).max() < 2e-3
    with pytest.raises(RuntimeError, match="mini-batch"):
        mb.embed()  # its feature rows live outside it


# Bootstrapping on (its embeddings come from the layer-wise pass), so its added links, the sampler's
# draw counter and the mid-run optimizer switch all have to survive the restart.
KW = dict(
    epochs=6,
    eval_every=2,
    batch_size=32,
    lr=5e-3,
    device="cpu",
    hidden=32,
    noise_size=16,
    checkpoint_every=2,
    minibatch=True,
    fanout=5,
    iterative=True,
    iterative__start=2,
    iterative__step=1,
    iterative__reset_every=2,
    iterative__add_every=2,
)


def _steps(run) -> int:
    return sum(json.loads(x)["steps"] for x in (run / "metrics.jsonl").read_text().splitlines())


@pytest.fixture(scope="module")
def reference(ds_path, tmp_path_factory):
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("ref") / "run"
    res = train(ds_path, model="noco", out_dir=out, **KW)
    return out, res


def test_minibatch_training_learns(reference):
    out, res = reference
    assert res.results["minibatch"] is True and res.results["loss_rows_only"] is True  # the default: per-row modules on the batch's rows
    # valid links ranked among the 70 non-seed entities per side (chance 0.014), test among its 50 (chance 0.02)
    assert res.results["valid"]["cosine"]["l2r"]["hits@1"] > 0.1 and res.results["valid"]["cosine"]["l2r"]["mrr"] > 0.25
    assert res.results["test"]["cosine"]["l2r"]["hits@1"] > 0.2
    meta = json.loads((out / "checkpoints" / "last.json").read_text())
    assert meta["minibatch"] is True and meta["callbacks"]["sampler"]["draws"] == _steps(out)  # one subgraph per step
    assert res.results["train_links"]["bootstrapped"] > 0
    emb = np.load(out / "embeddings.npy")
    assert emb.shape[0] == 200 and np.allclose(np.linalg.norm(emb, axis=1), 1, atol=1e-5)


def test_stop_and_resume_is_bitwise_identical(ds_path, reference, tmp_path):
    ref, _ = reference
    out = tmp_path / "run"
    train(ds_path, model="noco", out_dir=out, stop_after=4, **KW)
    assert json.loads((out / "checkpoints" / "last.json").read_text())["callbacks"]["sampler"]["draws"] == _steps(out) >= 4
    done = train(ds_path, model="noco", out_dir=out, resume=True, **KW)
    assert done.finished and done.epoch == 6
    assert np.array_equal(np.load(out / "embeddings.npy"), np.load(ref / "embeddings.npy"))
    assert (out / "train_links.tsv").read_text() == (ref / "train_links.tsv").read_text()
    a, b = load_file(out / "best.safetensors"), load_file(ref / "best.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_auto_rule_and_settings(ds_path, tmp_path):
    # a tiny budget: auto chooses mini-batch for a model that supports it ...
    res = train(ds_path, model="mclea", out_dir=tmp_path / "a", epochs=1, eval_every=1, device="cpu", hidden=16, memory_budget_gib=1e-6)
    assert res.results["minibatch"] is True and res.results["loss_rows_only"] is True
    # train.loss_rows_only=false: the whole model on every subgraph node, as before
    old = train(
        ds_path,
        model="mclea",
        out_dir=tmp_path / "o",
        epochs=1,
        eval_every=1,
        device="cpu",
        hidden=16,
        minibatch=True,
        loss_rows_only=False,
    )
    assert old.results["minibatch"] is True and old.results["loss_rows_only"] is False
    # ... and the full graph when the estimate fits
    assert decide("auto", 10, 100, True, "noco") is False and decide("auto", 1000, 100, True, "noco") is True
    assert decide("auto", 1000, 100, False, "mpsea") is False
    with pytest.raises(InputError, match="mpsea.*does not support mini-batch"):
        train(ds_path, model="mpsea", out_dir=tmp_path / "b", epochs=1, device="cpu", minibatch=True)
    with pytest.raises(InputError, match="train.minibatch"):
        train(ds_path, model="noco", out_dir=tmp_path / "c", epochs=1, minibatch="maybe")
    with pytest.raises(InputError, match="train.fanout"):
        train(ds_path, model="noco", out_dir=tmp_path / "c", epochs=1, fanout=[5, 0])
    assert fanouts_for(10, 2) == [10, 10] and fanouts_for([4], 3) == [4, 4, 4] and fanouts_for([3, 2, 1], 2) == [3, 2]


def test_feature_source_gathers_sparse_float16_and_memmapped_rows(tmp_path):
    from scipy.sparse import csr_array

    rng = np.random.default_rng(0)
    dense = (rng.random((50, 8)) * (rng.random((50, 8)) > 0.7)).astype(np.float32)
    np.save(tmp_path / "f.npy", dense.astype(np.float16))
    mask = rng.random(50) > 0.2
    source = FeatureSource(
        {"bag": csr_array(dense), "half": np.load(tmp_path / "f.npy", mmap_mode="r"), "plain": dense},
        {"bag": mask, "half": mask, "plain": mask},
    )
    rows = np.array([7, 3, 3, 49, 0])
    feats, masks = source.gather(rows)
    assert feats["bag"].dtype == torch.float32 and torch.equal(feats["bag"], torch.from_numpy(dense[rows]))
    assert torch.equal(feats["plain"], feats["bag"])
    torch.testing.assert_close(feats["half"], torch.from_numpy(dense[rows]), rtol=1e-3, atol=1e-3)
    assert torch.equal(masks["bag"], torch.from_numpy(mask[rows])) and source.dims == {"bag": 8, "half": 8, "plain": 8}


def test_csr_stored_features_train_as_their_dense_copy(tmp_path):
    """A dataset whose attribute bag is stored CSR trains exactly as the same values stored dense,
    mini-batch (rows gathered from the CSR matrix) and full-graph (densified once)."""
    import shutil

    from scipy.sparse import csr_array

    from kgalign.features.store import save_feature

    dense = make_synthetic(tmp_path / "dense", n=60, noise=1.0, seed=2)
    sparse = Path(shutil.copytree(dense, tmp_path / "sparse"))
    mat, mask = load_features(dense, ["attribute"])["attribute"]
    save_feature(sparse, "attribute", csr_array(mat), mask, {"featurizer": "synthetic"}, storage="csr")
    assert hasattr(load_features(sparse, ["attribute"], dense=False)["attribute"][0], "toarray")
    kw = dict(epochs=2, eval_every=2, batch_size=16, device="cpu", hidden=16, noise_size=8, fanout=4)
    for mode in (True, False):
        a = train(dense, model="noco", out_dir=tmp_path / f"a{mode}", minibatch=mode, **kw)
        b = train(sparse, model="noco", out_dir=tmp_path / f"b{mode}", minibatch=mode, **kw)
        assert a.results["minibatch"] is b.results["minibatch"] is mode
        assert np.array_equal(np.load(tmp_path / f"a{mode}" / "embeddings.npy"), np.load(tmp_path / f"b{mode}" / "embeddings.npy"))


@pytest.mark.parametrize("name", ["meaformer", "noco", "mclea"])
def test_rows_only_step_equals_the_whole_subgraph_step(data, name):
    """MiniBatchStep with the per-row modules on the batch's rows only: same loss and gradients as
    the whole-subgraph step, with feature rows gathered for the batch's entities alone."""
    ds, inputs, adjacency, source = data
    links = torch.from_numpy(ds.links_for("train")[:24])
    results = []
    for rows_only in (False, True):
        _, mb = _pair(name, inputs, **DETERMINISTIC[name])
        mb.train()
        step = MiniBatchStep(mb, adjacency, source, [3, 2], seed=7, rank=0, device=torch.device("cpu"), rows_only=rows_only)
        total, parts, out = step(links)
        total.backward()
        grads = {k: p.grad.clone() for k, p in mb.named_parameters() if p.grad is not None}
        results.append((total.detach(), parts, grads, out.subgraph, out))
    (t_all, p_all, g_all, sub_all, _), (t_rows, p_rows, g_rows, sub_rows, out_rows) = results
    assert torch.allclose(t_all, t_rows, rtol=1e-5, atol=1e-6)
    assert p_all.keys() == p_rows.keys() and all(p_all[k] == pytest.approx(p_rows[k], rel=1e-5, abs=1e-6) for k in p_all)
    assert g_all.keys() == g_rows.keys()
    for k in g_all:
        torch.testing.assert_close(g_rows[k], g_all[k], rtol=1e-4, atol=1e-6, msg=k)
    # the GAT's weights and the entity table rows beyond the batch got their gradient through the precomputed rows
    assert any("conv" in k for k in g_rows) and float(g_rows["encoder.graph.entity"].abs().sum()) > 0
    # the per-row part ran on the link entities only, while the sampled subgraph (same draw) is larger
    seeds = list(dict.fromkeys(links.reshape(-1).tolist()))
    assert sub_rows.nodes.tolist() == seeds == sub_all.nodes[: len(seeds)].tolist()
    assert sub_all.num_nodes > len(seeds) and out_rows["joint"].shape[0] == len(seeds)
    assert all(f.shape[0] == len(seeds) for f in sub_rows.features.values())


def test_sampler_gathers_only_the_seeds_features_on_request(data):
    ds, inputs, adjacency, source = data
    links = ds.links_for("train")[:10]
    full = batch_subgraph(adjacency, source, links, [2, 3], np.random.default_rng(1))
    seeds = batch_subgraph(adjacency, source, links, [2, 3], np.random.default_rng(1), seed_features=True)
    assert torch.equal(full.nodes, seeds.nodes) and torch.equal(full.edge_index, seeds.edge_index)
    assert full.seeds == seeds.seeds == len(set(links.reshape(-1).tolist())) < full.num_nodes
    for m in full.features:
        assert seeds.features[m].shape[0] == seeds.seeds and full.features[m].shape[0] == full.num_nodes
        assert torch.equal(seeds.features[m], full.features[m][: seeds.seeds]) and torch.equal(seeds.masks[m], full.masks[m][: seeds.seeds])

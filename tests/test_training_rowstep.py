"""The full-graph step with per-row modules on the loss's rows only (kgalign/training/rowstep.py)."""

from __future__ import annotations

import json

import pytest
import torch

from kgalign.features.synthetic import make_synthetic
from kgalign.models.registry import build_model
from kgalign.models.synthetic import aligned_pair
from kgalign.training import train
from kgalign.training.distributed import TrainStep
from kgalign.training.rowstep import RowStep

pytestmark = pytest.mark.usefixtures("single_thread")

# Options that make each model deterministic (no dropout, no noise) so both steps draw nothing at random.
DETERMINISTIC = {
    "meaformer": {"hidden": 16, "fusion_dropout": 0.0},
    "mclea": {"hidden": 16},
    "noco": {"hidden": 16, "noise": False, "noise_size": 8, "uni_conf_hidden": 8},
}


@pytest.mark.parametrize("name", sorted(DETERMINISTIC))
def test_loss_and_gradients_equal_the_all_rows_step(name):
    inputs, links = aligned_pair(80, feature_dims={"relation": 20, "attribute": 12, "image": 24}, missing={"image": 0.3}, seed=3)
    batch = links[:24]
    torch.manual_seed(0)
    model = build_model(name, inputs, **DETERMINISTIC[name])
    model.train()
    results = []
    for step in (TrainStep(model), RowStep(model)):
        model.zero_grad()
        total, parts, out = step(batch)
        total.backward()
        grads = {k: p.grad.clone() for k, p in model.named_parameters() if p.grad is not None}
        results.append((total.detach(), parts, grads, out))
    (t_full, p_full, g_full, _), (t_rows, p_rows, g_rows, out_rows) = results
    assert torch.allclose(t_full, t_rows, rtol=1e-5, atol=1e-6)
    assert p_full.keys() == p_rows.keys() and all(p_full[k] == pytest.approx(p_rows[k], rel=1e-5, abs=1e-6) for k in p_full)
    assert g_full.keys() == g_rows.keys()
    for k in g_full:
        assert torch.allclose(g_full[k], g_rows[k], rtol=1e-4, atol=1e-6), k
    # the row step computed only the batch's entities
    rows = torch.unique(batch)
    assert torch.equal(out_rows.subgraph.nodes, rows) and out_rows["joint"].shape[0] == len(rows) < inputs.num_entities
    # and the model is back on the whole graph afterwards
    assert model().get("joint").shape[0] == inputs.num_entities


def test_train_uses_the_row_step_by_default_and_the_old_step_on_request(tmp_path):
    ds = make_synthetic(tmp_path / "ds", n=120, noise=1.0, seed=5)
    kw = dict(epochs=6, eval_every=3, batch_size=32, lr=5e-3, device="cpu", hidden=32)
    rows = train(ds, model="meaformer", out_dir=tmp_path / "rows", **kw).results
    full = train(ds, model="meaformer", out_dir=tmp_path / "full", loss_rows_only=False, **kw).results
    assert rows["loss_rows_only"] is True and full["loss_rows_only"] is False
    assert json.loads((tmp_path / "rows" / "config.json").read_text())["train"]["loss_rows_only"] is True
    assert rows["config_hash"] != full["config_hash"]
    # both learn (chance among the valid pool is about 1/84)
    for r in (rows, full):
        assert r["valid"]["cosine"]["l2r"]["hits@1"] > 0.2, r["valid"]["cosine"]["l2r"]
    # MPSEA cannot run on a subgraph, but has its own row step (MPSEA.rows_step); the option turns it off too
    small = {**kw, "epochs": 1, "hidden": 40, "fusion_ffn": 40, "outlook_grid": 10}
    assert train(ds, model="mpsea", out_dir=tmp_path / "mp", **small).results["loss_rows_only"] is True
    assert train(ds, model="mpsea", out_dir=tmp_path / "mpf", loss_rows_only=False, **small).results["loss_rows_only"] is False

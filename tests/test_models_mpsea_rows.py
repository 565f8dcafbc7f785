"""MPSEA's row step: every module after the structural encoder on the loss's rows only, with the
all-rows step's loss and gradients (kgalign/models/mpsea.py ``rows_step``)."""

import pytest
import torch
from test_models_mpsea import SMALL, _data

from kgalign.models.numeric_encoder import DNEF
from kgalign.models.registry import build_model
from kgalign.models.relational_gat import MultiWeightGAT
from kgalign.training.distributed import TrainStep
from kgalign.training.rowstep import RowStep

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def data():
    return _data()


def _both_steps(inputs, batch, train_mode, **kw):
    """(loss, parts, grads, out) of the all-rows step and of the row step, same parameters."""
    torch.manual_seed(0)
    model = build_model("mpsea", inputs, **{**SMALL, "fusion_dropout": 0.0, **kw})
    model.train(train_mode)
    results = []
    for step in (TrainStep(model), RowStep(model)):
        model.zero_grad()
        total, parts, out = step(batch)
        total.backward()
        grads = {k: p.grad.clone() for k, p in model.named_parameters() if p.grad is not None}
        results.append((total.detach(), parts, grads, out))
    return model, results


def _assert_same(results):
    (t_full, p_full, g_full, _), (t_rows, p_rows, g_rows, _) = results
    assert torch.allclose(t_full, t_rows, rtol=1e-5, atol=1e-6)
    assert p_full.keys() == p_rows.keys() and all(p_full[k] == pytest.approx(p_rows[k], rel=1e-5, abs=1e-6) for k in p_full)
    assert g_full.keys() == g_rows.keys()
    for k in g_full:
        assert torch.allclose(g_full[k], g_rows[k], rtol=1e-4, atol=1e-6), k


@pytest.mark.parametrize(
    "switch",
    [{}, {"dnef": False}, {"structure": False}, {"mmpf": False}, {"multi_weight_gat": False}, {"outlook": False, "outlook_conv": False}],
)
def test_row_step_equals_the_all_rows_step_with_cprl(data, switch):
    # Eval mode: the policy takes its greedy action, so neither step draws anything at random.
    inputs, links = data
    batch = links[:24]
    model, results = _both_steps(inputs, batch, False, **switch)
    assert "policy" in results[0][1]
    _assert_same(results)
    out_rows = results[1][3]
    rows = torch.unique(batch)
    assert out_rows["joint"].shape[0] == len(rows) < inputs.num_entities
    assert torch.equal(out_rows.aux["mask"], model.modality_mask[rows])


def test_row_step_equals_the_all_rows_step_in_training_without_cprl(data):
    inputs, links = data
    model, results = _both_steps(inputs, links[:30], True, cprl=False)
    _assert_same(results)
    assert model().get("joint").shape[0] == inputs.num_entities  # the model is whole again afterwards


def test_row_step_in_training_samples_actions_for_the_rows_only(data):
    inputs, links = data
    torch.manual_seed(0)
    model = build_model("mpsea", inputs, **SMALL)
    model.train()
    total, parts, out = RowStep(model)(links[:10])
    total.backward()
    rows = torch.unique(links[:10])
    assert out.aux["action"].shape == (len(rows),) and out.aux["negatives"].shape[0] == len(model.mi_pool)
    assert all(p.grad is not None for m in model.aux_modules() for p in m.parameters())
    assert all(p.grad is not None for p in model.graph.parameters())


@pytest.mark.parametrize("concat", [True, False])
def test_sparse_aggregation_equals_the_per_edge_one(concat):
    # The multi-weight GAT sums messages with one CSR SpMM; the per-edge gather/scatter is the reference.
    torch.manual_seed(1)
    n, e, rel = 50, 400, 6
    index = torch.randint(0, n, (2, e))
    types = torch.randint(0, 2 * rel, (e,))
    gat = MultiWeightGAT(n, 24, index, types, rel, heads=2, layers=2, concat=concat, bands=2)
    with torch.no_grad():
        for conv in gat.convs:  # groups that differ, so that a wrong slot would show
            conv.weight.normal_(std=0.3)
            conv.type_bias.normal_()
    results = []
    for sparse in (False, True):
        gat.sparse = sparse
        gat.zero_grad()
        out = gat()
        (out * torch.linspace(-1, 1, out.numel()).view_as(out)).sum().backward()
        results.append((out.detach(), {k: p.grad.clone() for k, p in gat.named_parameters()}))
    (o_ref, g_ref), (o_sp, g_sp) = results
    assert gat.num_groups == 4 and torch.allclose(o_ref, o_sp, atol=1e-5)
    assert all(torch.allclose(g_ref[k], g_sp[k], atol=1e-5) for k in g_ref)


def test_dnef_chunks_recompute_the_same_function():
    # Chunked, checkpointed facts (less memory) give the one-pass result and gradients.
    torch.manual_seed(2)
    ent, att, val = torch.randint(0, 30, (500,)), torch.randint(0, 6, (500,)), torch.rand(500)
    results = []
    for chunk in (0, 64):
        torch.manual_seed(3)
        enc = DNEF(6, 16, 8, (0.0, 1.0), chunk=chunk)
        out = enc(ent, att, val, 35)
        (out * torch.linspace(-1, 1, out.numel()).view_as(out)).sum().backward()
        results.append((out.detach(), {k: p.grad.clone() for k, p in enc.named_parameters()}))
    (o1, g1), (o2, g2) = results
    assert torch.allclose(o1, o2, atol=1e-6) and (o1[30:] == 0).all()
    assert all(torch.allclose(g1[k], g2[k], atol=1e-6) for k in g1)

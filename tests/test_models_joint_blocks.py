"""The joint contrastive term from the per-modality similarity blocks (losses.joint_and_modality_log_probs)."""

from __future__ import annotations

import pytest
import torch

from kgalign.models.fusion import masked_softmax, weighted_concat
from kgalign.models.losses import joint_and_modality_log_probs, pair_log_probs
from kgalign.models.registry import build_model
from kgalign.models.synthetic import aligned_pair

pytestmark = pytest.mark.usefixtures("single_thread")


def _random_case(seed: int):
    """20 entities, three modalities of widths 5 / 7 / 3; modality 1 absent on 3 entities (rows zeroed, as NoCo's),
    modality 2 absent on 3 others (rows left as they are, as MEAformer's and MCLEA's)."""
    g = torch.Generator().manual_seed(seed)
    mask = torch.ones(20, 3, dtype=torch.bool)
    mask[[2, 11, 15], 1] = False
    mask[[3, 12, 19], 2] = False
    embs = [torch.randn(20, d, generator=g) for d in (5, 7, 3)]
    embs[1][~mask[:, 1]] = 0.0
    logits = torch.randn(20, 3, generator=g)
    links = torch.tensor([[i, 10 + i] for i in range(10)])
    return embs, logits, mask, links


def _losses(embs, logits, mask, links, direct: bool):
    """Both paths on fresh leaves; returns (outputs, gradients of a weighted sum of every output)."""
    es = [e.clone().requires_grad_(True) for e in embs]
    lg = logits.clone().requires_grad_(True)
    w = masked_softmax(lg, mask)
    presents = [None, mask[:, 1], mask[:, 2]]
    if direct:
        joint = pair_log_probs(weighted_concat(es, w), links, 0.1)[:2]
        per = [pair_log_probs(e, links, 0.1, p) for e, p in zip(es, presents, strict=True)]
    else:
        joint, per = joint_and_modality_log_probs(es, w, links, 0.1, presents)
    total = (1.3 * joint[0] + 0.7 * joint[1]).sum() + sum(((k + 1) * ab + 0.5 * ba).sum() for k, (ab, ba, _) in enumerate(per))
    total.backward()
    return [*joint, *(x for lp in per for x in lp)], [*(e.grad for e in es), lg.grad]


@pytest.mark.parametrize("seed", [0, 1])
def test_joint_and_modality_log_probs_equal_the_direct_computation(seed):
    embs, logits, mask, links = _random_case(seed)
    out_d, grads_d = _losses(embs, logits, mask, links, direct=True)
    out_b, grads_b = _losses(embs, logits, mask, links, direct=False)
    for x, y in zip(out_d, out_b, strict=True):
        assert x.dtype == y.dtype
        assert torch.allclose(x, y, atol=1e-5) if x.is_floating_point() else torch.equal(x, y)
    for x, y in zip(grads_d, grads_b, strict=True):
        assert torch.allclose(x, y, atol=1e-5)
    # the case exercises absent modalities: some pairs are not valid for modality 1 and 2
    assert out_b[4].all() and not out_b[7].all() and not out_b[10].all()
    # and the joint's gradient reaches the weights (the identity is not only about the embeddings)
    assert grads_b[-1].abs().sum() > 0


def test_no_complete_pair_gives_zero_log_probs_that_still_backpropagate():
    embs, logits, mask, links = _random_case(2)
    mask[:, 2] = False
    es = [e.clone().requires_grad_(True) for e in embs]
    joint, per = joint_and_modality_log_probs(es, masked_softmax(logits, mask), links, 0.1, [None, mask[:, 1], mask[:, 2]])
    assert not per[2][2].any() and per[2][0].abs().sum() == 0
    (joint[0].sum() + per[2][0].sum()).backward()
    assert all(torch.isfinite(e.grad).all() for e in es) and es[2].grad.abs().sum() == 0


DETERMINISTIC = {
    "meaformer": {"hidden": 16, "fusion_dropout": 0.0},
    "mclea": {"hidden": 16},
    "noco": {"hidden": 16, "noise": False, "noise_size": 8, "uni_conf_hidden": 8},
}


@pytest.mark.parametrize("name", sorted(DETERMINISTIC))
def test_models_loss_and_gradients_equal_with_and_without_blocks(name):
    inputs, links = aligned_pair(80, feature_dims={"relation": 20, "attribute": 12, "image": 24}, missing={"image": 0.3}, seed=3)
    batch = links[:24]
    results = []
    for from_blocks in (False, True):
        torch.manual_seed(0)
        model = build_model(name, inputs, joint_from_blocks=from_blocks, **DETERMINISTIC[name])
        model.train()
        total, parts = model.loss(model(), batch)
        total.backward()
        results.append((total.detach(), parts, {k: p.grad for k, p in model.named_parameters() if p.grad is not None}))
    (t_d, p_d, g_d), (t_b, p_b, g_b) = results
    assert torch.allclose(t_d, t_b, rtol=1e-5, atol=1e-6)
    assert p_d.keys() == p_b.keys() and all(p_d[k] == pytest.approx(p_b[k], rel=1e-5, abs=1e-6) for k in p_d)
    assert g_d.keys() == g_b.keys()
    for k in g_d:
        assert torch.allclose(g_d[k], g_b[k], rtol=1e-4, atol=1e-6), k


def test_noco_recompute_option_gives_the_same_loss_and_gradients():
    inputs, links = aligned_pair(60, feature_dims={"relation": 20, "image": 24}, missing={"image": 0.3}, seed=4)
    results = []
    for recompute in (False, True):
        torch.manual_seed(0)
        model = build_model("noco", inputs, icl_recompute=recompute, joint_from_blocks=False, **DETERMINISTIC["noco"])
        total, _ = model.loss(model(), links[:20])
        total.backward()
        results.append((total.detach(), [p.grad for p in model.parameters() if p.grad is not None]))
    assert torch.equal(results[0][0], results[1][0])
    assert all(torch.allclose(x, y, atol=1e-7) for x, y in zip(results[0][1], results[1][1], strict=True))


def test_gram_values_and_gradients_equal_the_plain_product_also_under_autocast():
    from kgalign.models.losses import gram

    g = torch.Generator().manual_seed(5)
    z = torch.randn(9, 4, generator=g)
    weights = torch.randn(9, 9, generator=g)
    for amp in (False, True):
        grads, values = [], []
        for fn in (gram, lambda x: x @ x.t()):
            leaf = z.clone().requires_grad_(True)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
                y = fn(leaf)
            (y.float() * weights).sum().backward()
            values.append(y)
            grads.append(leaf.grad)
        assert values[0].dtype == values[1].dtype == (torch.bfloat16 if amp else torch.float32)
        assert grads[0].dtype == torch.float32
        tol = 5e-2 if amp else 1e-5
        assert torch.allclose(values[0].float(), values[1].float(), atol=tol) and torch.allclose(grads[0], grads[1], atol=tol, rtol=tol)


def test_ial_with_shared_teacher_logits_equals_the_teacher_path():
    from kgalign.models.losses import ial_loss, teacher_logits

    embs, logits, mask, links = _random_case(3)
    joint = weighted_concat(embs, masked_softmax(logits, mask)).requires_grad_(True)
    shared = teacher_logits(joint, links, 4.0)
    for m, present in enumerate([None, mask[:, 1], mask[:, 2]]):
        e1, e2 = (embs[m].clone().requires_grad_(True) for _ in range(2))
        direct = ial_loss(e1, joint, links, 4.0, 0.3, present)
        reused = ial_loss(e2, None, links, 4.0, 0.3, present, teacher_logits=shared)
        (direct + reused).backward()
        assert torch.equal(direct, reused) and torch.equal(e1.grad, e2.grad) and e1.grad.abs().sum() > 0
    assert joint.grad is None  # the teacher stays detached


def test_masked_softmax_of_a_row_without_modalities_is_zero_with_finite_gradients():
    logits = torch.randn(3, 4, requires_grad=True)
    mask = torch.tensor([[True, False, True, True], [False, False, False, False], [False, True, False, False]])
    w = masked_softmax(logits, mask)
    assert torch.allclose(w.sum(1), torch.tensor([1.0, 0.0, 1.0])) and (w[~mask] == 0).all()
    (w * torch.randn(3, 4)).sum().backward()
    assert torch.isfinite(logits.grad).all() and (logits.grad[1] == 0).all()

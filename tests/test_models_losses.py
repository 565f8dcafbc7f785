"""Losses (kgalign/models/losses.py) and the model registry."""

import inspect
import math

import pytest
import torch
import torch.nn.functional as F

from kgalign.errors import InputError
from kgalign.models.losses import UncertaintyWeights, ial_loss, icl_loss, pair_log_probs
from kgalign.models.registry import build_model, get_model, list_models
from kgalign.models.synthetic import aligned_pair

torch.set_num_threads(1)


def _brute_icl(emb, links, tau, alpha):
    """ICL written out pair by pair from the formula (reference-implementations.md §8)."""
    z = F.normalize(emb, dim=-1)
    a, b = links[:, 0], links[:, 1]
    la, lb = [], []
    for i in range(len(links)):
        num = torch.exp(z[a[i]] @ z[b[i]] / tau)
        den_a = sum(torch.exp(z[a[i]] @ z[b[j]] / tau) for j in range(len(links))) + sum(
            torch.exp(z[a[i]] @ z[a[j]] / tau) for j in range(len(links)) if j != i
        )
        den_b = sum(torch.exp(z[b[i]] @ z[a[j]] / tau) for j in range(len(links))) + sum(
            torch.exp(z[b[i]] @ z[b[j]] / tau) for j in range(len(links)) if j != i
        )
        la.append(-torch.log(num / den_a))
        lb.append(-torch.log(num / den_b))
    return alpha * torch.stack(la).mean() + (1 - alpha) * torch.stack(lb).mean()


def test_icl_matches_formula_both_directions():
    g = torch.Generator().manual_seed(0)
    emb = torch.randn(12, 5, generator=g)
    links = torch.tensor([[0, 6], [1, 7], [2, 8], [3, 11]])
    for alpha in (0.5, 0.2):
        assert torch.allclose(icl_loss(emb, links, 0.1, alpha), _brute_icl(emb, links, 0.1, alpha), atol=1e-5)


def test_icl_prefers_aligned_embeddings():
    g = torch.Generator().manual_seed(1)
    base = torch.randn(50, 16, generator=g)
    links = torch.stack([torch.arange(50), torch.arange(50, 100)], 1)
    aligned = torch.cat([base, base + 0.01 * torch.randn(50, 16, generator=g)])
    shuffled = torch.cat([base, torch.randn(50, 16, generator=g)])
    assert icl_loss(aligned, links) < 0.1 < icl_loss(shuffled, links)


def test_icl_masked_entities_are_neither_anchors_nor_negatives():
    g = torch.Generator().manual_seed(2)
    emb = torch.randn(8, 4, generator=g)
    links = torch.tensor([[0, 4], [1, 5], [2, 6], [3, 7]])
    present = torch.ones(8, dtype=torch.bool)
    present[3] = False  # pair 3 loses its KG1 side; its KG2 side (7) stays a negative
    masked = icl_loss(emb, links, present=present)
    assert not torch.allclose(masked, icl_loss(emb, links[:3]))
    present[7] = False  # both sides absent: same as the loss over the three complete pairs
    e1, e2 = emb.clone().requires_grad_(True), emb.clone().requires_grad_(True)
    l1, l2 = icl_loss(e1, links, present=present), icl_loss(e2, links[:3])
    assert torch.allclose(l1, l2, atol=1e-6)
    l1.backward()
    l2.backward()
    assert torch.allclose(e1.grad, e2.grad, atol=1e-6) and e1.grad[[3, 7]].abs().sum() == 0
    present[7] = True
    lp_ab, lp_ba, valid = pair_log_probs(emb, links, present=present)
    assert valid.tolist() == [True, True, True, False]
    assert torch.isfinite(lp_ab).all() and torch.isfinite(lp_ba).all()
    # No complete pair at all: zero loss that still backpropagates.
    emb.requires_grad_(True)
    none = icl_loss(emb, links, present=torch.zeros(8, dtype=torch.bool))
    none.backward()
    assert none.item() == 0.0 and torch.isfinite(emb.grad).all()


def test_lean_log_probs_match_plain_values_and_gradients():
    from kgalign.models.noco import _lean_log_probs

    g = torch.Generator().manual_seed(8)
    links = torch.tensor([[0, 6], [1, 7], [2, 8], [3, 9], [4, 10]])
    present = torch.ones(12, dtype=torch.bool)
    present[[2, 9]] = False
    for pres in (None, present):
        e1 = torch.randn(12, 5, generator=g, requires_grad=True)
        e2 = e1.detach().clone().requires_grad_(True)
        a, b = pair_log_probs(e1, links, 0.1, pres), _lean_log_probs(e2, links, 0.1, pres)
        assert all(torch.equal(x, y) for x, y in zip(a, b, strict=False))
        (a[0].sum() + 2 * a[1].sum()).backward()
        (b[0].sum() + 2 * b[1].sum()).backward()
        assert torch.allclose(e1.grad, e2.grad)


def test_ial_zero_for_identical_teacher_and_gradient_only_to_student():
    g = torch.Generator().manual_seed(3)
    emb = torch.randn(10, 6, generator=g, requires_grad=True)
    teacher = torch.randn(10, 9, generator=g, requires_grad=True)
    links = torch.tensor([[0, 5], [1, 6], [2, 7]])
    assert ial_loss(emb, emb, links).abs().item() < 1e-6
    loss = ial_loss(emb, teacher, links)
    assert loss.item() > 0
    loss.backward()
    assert torch.isfinite(emb.grad).all() and emb.grad.abs().sum() > 0
    assert teacher.grad is None


def test_ial_masking_equals_the_loss_without_absent_entities():
    g = torch.Generator().manual_seed(4)
    emb = torch.randn(10, 6, generator=g, requires_grad=True)
    teacher = torch.randn(10, 9, generator=g)
    links = torch.tensor([[0, 5], [1, 6], [2, 7], [3, 8]])
    present = torch.ones(10, dtype=torch.bool)
    present[[3, 8]] = False
    # Averaged over all entries, so compare on a batch whose width matches: the
    # masked loss equals the 3-pair loss rescaled by the ratio of entry counts.
    masked = ial_loss(emb, teacher, links, present=present)
    plain = ial_loss(emb, teacher, links[:3])
    assert torch.allclose(masked * (3 * 8) / (3 * 6), plain, atol=1e-6)
    masked.backward()
    assert torch.isfinite(emb.grad).all() and emb.grad[[3, 8]].abs().sum() == 0


def test_uncertainty_weights_formula_and_gradient():
    w = UncertaintyWeights(["graph", "image"])
    with torch.no_grad():
        w.log_vars.copy_(torch.tensor([0.5, -1.0]))
    total = w({"graph": torch.tensor(2.0), "image": torch.tensor(3.0)})
    expected = math.exp(-0.5) * 2 + 0.5 + math.exp(1.0) * 3 - 1.0
    assert abs(total.item() - expected) < 1e-5
    total.backward()
    assert (w.log_vars.grad != 0).all()


def test_registry_lists_and_resolves_models():
    assert list_models() == ["lightea", "mclea", "meaformer", "mpsea", "noco"]
    for name in list_models():
        spec = get_model(name.upper())
        assert spec.name == name and spec.doc == f"docs/models/{name}.md"
        params = inspect.signature(spec.cls.__init__).parameters
        # The registry's documented defaults are exactly the class's keyword defaults.
        assert set(spec.defaults) == set(params) - {"self", "inputs"}
        for key, value in spec.defaults.items():
            default = params[key].default
            assert (list(default) if isinstance(default, tuple) else default) == value, (name, key)
        assert spec.train_defaults["lr"] == 5e-4


def test_registry_rejects_unknown_names_and_options():
    with pytest.raises(InputError, match="unknown model 'nope'; available: lightea, mclea, meaformer, mpsea, noco"):
        get_model("nope")
    inputs, _ = aligned_pair(20, feature_dims={"relation": 8})
    with pytest.raises(InputError, match="no option"):
        build_model("noco", inputs, hiden=10)
    model = build_model("noco", inputs, hidden=16, noise_size=8)
    assert model.embed().shape == (40, 32)

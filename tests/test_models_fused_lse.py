"""The fused contrastive denominators (losses._ContrastiveLSE, losses._BlockLSE) against the textbook
(B, 2B) log-softmax with autograd: values and gradients, fp32 and bf16 autocast, the small-tau fallback."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from kgalign.models.losses import icl_loss, joint_and_modality_log_probs, pair_log_probs


def _reference(emb: torch.Tensor, links: torch.Tensor, tau: float):
    za = F.normalize(emb[links[:, 0]].double(), dim=-1)
    zb = F.normalize(emb[links[:, 1]].double(), dim=-1)
    eye = torch.eye(len(links), dtype=torch.bool)
    ab = za @ zb.t() / tau
    la = torch.cat([ab, (za @ za.t() / tau).masked_fill(eye, float("-inf"))], 1)
    lb = torch.cat([ab.t(), (zb @ zb.t() / tau).masked_fill(eye, float("-inf"))], 1)
    return F.log_softmax(la, 1).diagonal(), F.log_softmax(lb, 1).diagonal()


def _reference_masked(emb: torch.Tensor, links: torch.Tensor, tau: float, present: torch.Tensor):
    """Anchors: pairs with both ends present (others 0); negatives: the present entities of the batch."""
    za = F.normalize(emb[links[:, 0]].double(), dim=-1)
    zb = F.normalize(emb[links[:, 1]].double(), dim=-1)
    pa, pb = present[links[:, 0]], present[links[:, 1]]
    eye = torch.eye(len(links), dtype=torch.bool)
    ninf = float("-inf")
    ab = za @ zb.t() / tau
    la = torch.cat([ab.masked_fill(~pb[None, :], ninf), (za @ za.t() / tau).masked_fill(eye | ~pa[None, :], ninf)], 1)
    lb = torch.cat([ab.t().masked_fill(~pa[None, :], ninf), (zb @ zb.t() / tau).masked_fill(eye | ~pb[None, :], ninf)], 1)
    valid = pa & pb
    idx = valid.nonzero().squeeze(1)  # only anchors' rows: an absent anchor's row may be all -inf

    def lse(logits):
        return torch.zeros(len(links), dtype=torch.float64).index_put((idx,), torch.logsumexp(logits[idx], 1))

    zero = torch.zeros((), dtype=torch.float64)
    return torch.where(valid, ab.diagonal() - lse(la), zero), torch.where(valid, ab.diagonal() - lse(lb), zero)


def _grads(fn, emb, links, tau, weights, **kw):
    e = emb.clone().requires_grad_(True)
    lp_ab, lp_ba = fn(e, links, tau, **kw)[:2]
    ((lp_ab * weights[0]).sum() + (lp_ba * weights[1]).sum()).backward()
    return lp_ab.detach().double(), lp_ba.detach().double(), e.grad.double()


@pytest.mark.parametrize("tau", [0.1, 0.05, 0.02])
def test_pair_log_probs_matches_the_textbook_loss(tau):
    g = torch.Generator().manual_seed(0)
    emb = torch.randn(90, 16, generator=g)
    links = torch.stack([torch.arange(30), 40 + torch.randperm(30, generator=g)], 1)
    weights = torch.rand(2, 30, generator=g)  # distinct weights per pair: every gradient path is exercised
    ref = _grads(_reference, emb.double(), links, tau, weights.double())
    got = _grads(pair_log_probs, emb, links, tau, weights)
    for r, x in zip(ref, got, strict=True):
        assert torch.allclose(r, x, rtol=1e-4, atol=1e-5), (r - x).abs().max()


@pytest.mark.parametrize("tau", [0.1, 0.02])
def test_absent_entities_are_neither_anchors_nor_negatives(tau):
    g = torch.Generator().manual_seed(4)
    emb = torch.randn(90, 16, generator=g)
    present = torch.rand(90, generator=g) > 0.3
    emb[~present] = 0.0  # what a modality's encoder gives an entity without it
    links = torch.stack([torch.arange(30), 40 + torch.randperm(30, generator=g)], 1)
    weights = torch.rand(2, 30, generator=g)
    ref = _grads(_reference_masked, emb.double(), links, tau, weights.double(), present=present)
    got = _grads(pair_log_probs, emb, links, tau, weights, present=present)
    valid = present[links[:, 0]] & present[links[:, 1]]
    assert 0 < int(valid.sum()) < 30
    assert bool((got[0][~valid] == 0).all()) and bool((got[1][~valid] == 0).all())
    for r, x in zip(ref, got, strict=True):
        assert torch.allclose(r, x, rtol=1e-4, atol=1e-5), (r - x).abs().max()
    assert torch.isfinite(got[2]).all()


def test_bf16_autocast_stays_close_and_returns_float32():
    g = torch.Generator().manual_seed(1)
    emb = torch.randn(90, 32, generator=g)
    links = torch.stack([torch.arange(30), 40 + torch.arange(30)], 1)
    weights = torch.ones(2, 30)
    ref = _grads(_reference, emb.double(), links, 0.1, weights.double())
    with torch.autocast("cpu", dtype=torch.bfloat16):
        e = emb.clone().requires_grad_(True)
        lp_ab, lp_ba, _ = pair_log_probs(e, links, 0.1)
        assert lp_ab.dtype == torch.float32 and lp_ba.dtype == torch.float32
        (lp_ab.sum() + lp_ba.sum()).backward()
    assert e.grad.dtype == torch.float32
    # bf16 products: logits carry ~2^-8 relative error, so compare loosely
    assert torch.allclose(lp_ab.double(), ref[0], atol=0.1)
    assert torch.nn.functional.cosine_similarity(e.grad.double().flatten(), ref[2].flatten(), dim=0) > 0.99


@pytest.mark.parametrize("tau", [0.1, 0.05, 0.03])
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_autocast_keeps_losses_and_gradients_close(tau, dtype):
    g = torch.Generator().manual_seed(5)
    emb = torch.randn(200, 64, generator=g)
    present = torch.rand(200, generator=g) > 0.2
    links = torch.stack([torch.arange(64), 100 + torch.arange(64)], 1)
    for pres in (None, present):
        ref = _grads(pair_log_probs, emb, links, tau, torch.ones(2, 64), present=pres)
        e = emb.clone().requires_grad_(True)
        with torch.autocast("cpu", dtype=dtype):
            lp_ab, lp_ba, valid = pair_log_probs(e, links, tau, pres)
        (lp_ab.sum() + lp_ba.sum()).backward()
        assert torch.isfinite(lp_ab).all() and torch.isfinite(e.grad).all()
        assert (lp_ab.double() - ref[0]).abs().max() < 0.15
        assert F.cosine_similarity(e.grad.double().flatten(), ref[2].flatten(), dim=0) > 0.99


@pytest.mark.parametrize("with_absent", [False, True])
def test_joint_from_blocks_matches_the_direct_joint_with_fused_denominators(with_absent):
    g = torch.Generator().manual_seed(2)
    embs = [torch.randn(60, d, generator=g) for d in (8, 12)]
    presents = [None, None]
    if with_absent:
        presents[1] = torch.rand(60, generator=g) > 0.3
        embs[1][~presents[1]] = 0.0
    w = torch.rand(60, 2, generator=g)
    links = torch.stack([torch.arange(20), 30 + torch.arange(20)], 1)

    def joint(es, ws):
        return torch.cat([ws[:, m, None] * F.normalize(e, dim=-1) for m, e in enumerate(es)], 1)

    es = [e.clone().requires_grad_(True) for e in embs]
    ws = w.clone().requires_grad_(True)
    (ab, ba), per = joint_and_modality_log_probs(es, ws, links, 0.1, presents)
    total = ab.sum() + 0.3 * ba.sum() + sum(p[0].sum() + p[1].sum() for p in per)
    total.backward()
    es2 = [e.double().clone().requires_grad_(True) for e in embs]
    ws2 = w.double().clone().requires_grad_(True)
    rab, rba = _reference(joint(es2, ws2), links, 0.1)
    ref_per = [_reference(e, links, 0.1) if p is None else _reference_masked(e, links, 0.1, p) for e, p in zip(es2, presents, strict=True)]
    (rab.sum() + 0.3 * rba.sum() + sum(p[0].sum() + p[1].sum() for p in ref_per)).backward()
    assert torch.allclose(ab.double(), rab, atol=1e-5) and torch.allclose(ba.double(), rba, atol=1e-5)
    for a, b in zip([*es, ws], [*es2, ws2], strict=True):
        assert torch.allclose(a.grad.double(), b.grad, rtol=1e-4, atol=1e-5)


def test_icl_loss_decreases_under_gradient_descent():
    g = torch.Generator().manual_seed(3)
    emb = torch.randn(40, 8, generator=g, requires_grad=True)
    links = torch.stack([torch.arange(20), 20 + torch.arange(20)], 1)
    opt = torch.optim.SGD([emb], lr=0.5)
    first = None
    for _ in range(30):
        opt.zero_grad()
        loss = icl_loss(emb, links)
        loss.backward()
        opt.step()
        first = first if first is not None else float(loss.detach())
    assert float(loss.detach()) < 0.5 * first

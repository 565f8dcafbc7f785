"""Alignment losses shared by the models: ICL, IAL and learned loss weights.

All losses take embeddings of *all* entities ``(n, d)`` and a batch of seed
links ``(B, 2)`` of global entity ids (KG1, KG2). Negatives are in-batch: for
the pair ``(a_i, b_i)`` they are the other batch entities of both graphs
(MCLEA's ICL; NoCo paper Eq. 13-14). Logits are computed in float32 so the
losses stay stable under ``torch.autocast``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def _autocast_dtype(t: Tensor) -> torch.dtype:
    """The dtype ``@`` computes in for ``t`` under the current autocast state."""
    return torch.get_autocast_dtype(t.device.type) if torch.is_autocast_enabled(t.device.type) else t.dtype


class _Gram(torch.autograd.Function):
    """``z z^T`` whose backward is one product, ``(g + g^T) z``, instead of autograd's two (``g z`` and ``g^T z``).

    Under autocast the product runs in the autocast dtype as ``@`` would, and so does its backward.
    """

    @staticmethod
    def forward(ctx, z: Tensor) -> Tensor:
        zc = z.to(_autocast_dtype(z))
        ctx.save_for_backward(zc)
        ctx.in_dtype = z.dtype
        return zc @ zc.t()

    @staticmethod
    def backward(ctx, g: Tensor) -> Tensor:
        (zc,) = ctx.saved_tensors
        return ((g + g.t()).to(zc.dtype) @ zc).to(ctx.in_dtype)


def gram(z: Tensor) -> Tensor:
    """(B, d) -> (B, B) ``z @ z.T`` with a one-product backward (same values and gradients)."""
    return _Gram.apply(z)


def _pair_logits(emb: Tensor, links: Tensor, tau: float) -> tuple[Tensor, Tensor]:
    """In-batch logits of both directions.

    Args:
        emb: (n, d) embeddings (any norm; rows are L2-normalised here).
        links: (B, 2) global ids.
    Returns:
        ``(logits_ab, logits_ba)``, each (B, 2B): column ``j < B`` is the other
        graph's ``j``-th entity (the positive at ``j == i``), column ``B + j`` the
        same graph's ``j``-th entity (``-inf`` on the diagonal: no self-negative).
    """
    za = F.normalize(emb[links[:, 0]].float(), dim=-1)
    zb = F.normalize(emb[links[:, 1]].float(), dim=-1)
    b = za.shape[0]
    eye = torch.eye(b, dtype=torch.bool, device=za.device)
    ab = za @ zb.t() / tau
    aa = (za @ za.t() / tau).masked_fill(eye, float("-inf"))
    bb = (zb @ zb.t() / tau).masked_fill(eye, float("-inf"))
    return torch.cat([ab, aa], 1), torch.cat([ab.t(), bb], 1)


# The fused terms shift their exponentials by the bound 1/tau of cosine logits instead of a max pass; below
# this temperature exp(-2/tau) could underflow float32 and the plain logsumexp path is taken.
_FUSED_MIN_TAU = 0.025


def _exp_dtype(dtype: torch.dtype, tau: float) -> torch.dtype:
    """The dtype the shifted exponentials are formed and kept in: the products' bfloat16 (its exponent range
    holds ``exp(-2/tau)``; its rounding of ``logit - 1/tau`` is below the logits' own for tau >= 0.05), float32
    for float16 (``exp(-20)`` underflows it, and the backward's ``g / d`` overflows) and for smaller tau."""
    if dtype == torch.float16 or (dtype == torch.bfloat16 and tau < 0.05):
        return torch.float32
    return dtype


def _mask_and_sum(e_ab: Tensor, e_aa: Tensor, e_bb: Tensor, pa: Tensor | None, pb: Tensor | None) -> tuple[Tensor, Tensor]:
    """Zero the absent entities' rows and columns of the exponential blocks (in place: they are neither anchors nor
    negatives) and return the float32 row sums ``d_a`` and column sums ``d_b`` of the denominators."""
    e_aa.diagonal().zero_()  # no self-negative
    e_bb.diagonal().zero_()
    if pa is not None:
        na, nb = (~pa).nonzero().squeeze(1), (~pb).nonzero().squeeze(1)
        e_ab.index_fill_(0, na, 0).index_fill_(1, nb, 0)
        e_aa.index_fill_(0, na, 0).index_fill_(1, na, 0)
        e_bb.index_fill_(0, nb, 0).index_fill_(1, nb, 0)
    d_a = e_ab.sum(1, dtype=torch.float32) + e_aa.sum(1, dtype=torch.float32)
    d_b = e_ab.sum(0, dtype=torch.float32) + e_bb.sum(1, dtype=torch.float32)
    # an absent anchor's sums are 0: its log-prob is masked out and its gradient is 0 (no 0/0)
    tiny = torch.finfo(torch.float32).tiny
    return d_a.clamp_min_(tiny), d_b.clamp_min_(tiny)


class _ContrastiveLSE(torch.autograd.Function):
    """The two denominators of :func:`pair_log_probs` from normalised ``za``, ``zb`` (B, d), in one function.

    ``lse_a[i] = log(sum_j exp(ab_ij) + sum_{j != i} exp(aa_ij))``, ``lse_b[j] = log(sum_i exp(ab_ij) + sum_{i != j}
    exp(bb_ji))`` with ``ab = za zb^T / tau``, ``aa = za za^T / tau``, ``bb = zb zb^T / tau``, the sums over the
    present entities when presence masks ``pa``, ``pb`` (B,) are given (rows of absent anchors are meaningless:
    mask them out). Same mathematics as autograd through ``logsumexp``, with less elementwise work on the (B, B)
    blocks, which is what the products leave: one exponential per block, shifted by the logits' bound ``1/tau``
    (no max pass), kept for backward instead of recomputed; the backward's block gradients are formed once each
    (``E (w_i + v_j)``), and the symmetric Gram blocks' gradient is symmetric by construction, so no transposed
    add. Products run in the autocast dtype.
    """

    @staticmethod
    def forward(ctx, za: Tensor, zb: Tensor, tau: float, pa: Tensor | None, pb: Tensor | None) -> tuple[Tensor, Tensor]:
        dt = _autocast_dtype(za)
        et = _exp_dtype(dt, tau)
        a, b = za.to(dt), zb.to(dt)
        shift = 1.0 / tau
        a_t = a / tau
        e_ab = (a_t @ b.t()).to(et).sub_(shift).exp_()
        e_aa = (a_t @ a.t()).to(et).sub_(shift).exp_()
        e_bb = ((b / tau) @ b.t()).to(et).sub_(shift).exp_()
        d_a, d_b = _mask_and_sum(e_ab, e_aa, e_bb, pa, pb)
        ctx.save_for_backward(a, b, e_ab, e_aa, e_bb, d_a, d_b)
        ctx.tau, ctx.in_dtypes = tau, (za.dtype, zb.dtype)
        return d_a.log() + shift, d_b.log() + shift

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, g_a: Tensor, g_b: Tensor):
        a, b, e_ab, e_aa, e_bb, d_a, d_b = ctx.saved_tensors
        dt, et = a.dtype, e_ab.dtype
        w = (g_a / d_a).to(et)  # d lse_a[i] / d logit = E / d_a[i]
        v = (g_b / d_b).to(et)
        g_ab = torch.mul(e_ab, v[None, :]).addcmul_(e_ab, w[:, None]).to(dt)
        g_aa = torch.mul(e_aa, w[None, :]).addcmul_(e_aa, w[:, None]).to(dt)  # aa's gradient plus its transpose
        g_bb = torch.mul(e_bb, v[None, :]).addcmul_(e_bb, v[:, None]).to(dt)
        inv = 1.0 / ctx.tau
        d_za = (g_ab @ b).add_(g_aa @ a).mul_(inv)
        d_zb = (g_ab.t() @ a).add_(g_bb @ b).mul_(inv)
        return d_za.to(ctx.in_dtypes[0]), d_zb.to(ctx.in_dtypes[1]), None, None, None


class _BlockLSE(torch.autograd.Function):
    """:class:`_ContrastiveLSE`'s denominators from given logit blocks ``ab``, ``aa``, ``bb`` (B, B) (the last two
    with ``-inf`` diagonals, left unmodified: other terms read them): one exponential per block, shifted by the
    bound ``shift`` of the logits, kept for backward (and overwritten by the gradients there: once differentiable,
    a second backward through the same graph is refused by autograd's version check)."""

    @staticmethod
    def forward(ctx, ab: Tensor, aa: Tensor, bb: Tensor, shift: float, pa: Tensor | None, pb: Tensor | None) -> tuple[Tensor, Tensor]:
        et = _exp_dtype(ab.dtype, 1.0 / shift)
        e_ab, e_aa, e_bb = (x.to(et, copy=True).sub_(shift).exp_() for x in (ab, aa, bb))
        ctx.dtypes = (ab.dtype, aa.dtype, bb.dtype)
        d_a, d_b = _mask_and_sum(e_ab, e_aa, e_bb, pa, pb)
        ctx.save_for_backward(e_ab, e_aa, e_bb, d_a, d_b)
        return d_a.log() + shift, d_b.log() + shift

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, g_a: Tensor, g_b: Tensor):
        e_ab, e_aa, e_bb, d_a, d_b = ctx.saved_tensors
        w = (g_a / d_a).to(e_ab.dtype)
        v = (g_b / d_b).to(e_ab.dtype)
        g_ab = torch.mul(e_ab, v[None, :]).addcmul_(e_ab, w[:, None])
        t_ab, t_aa, t_bb = ctx.dtypes
        return g_ab.to(t_ab), e_aa.mul_(w[:, None]).to(t_aa), e_bb.mul_(v[:, None]).to(t_bb), None, None, None


def _denominators(ab: Tensor, aa: Tensor, bb: Tensor, tau: float) -> tuple[Tensor, Tensor]:
    """``(lse_a, lse_b)`` (B,) float32 of cosine logit blocks (``|logit| <= 1/tau``), every entity present."""
    if tau < _FUSED_MIN_TAU:
        return (
            torch.logaddexp(torch.logsumexp(ab, 1), torch.logsumexp(aa, 1)).float(),
            torch.logaddexp(torch.logsumexp(ab, 0), torch.logsumexp(bb, 1)).float(),
        )
    return _BlockLSE.apply(ab, aa, bb, 1.0 / tau, None, None)


def pair_log_probs(emb: Tensor, links: Tensor, tau: float = 0.1, present: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
    """Log alignment probabilities ``log p(a_i -> b_i)`` and ``log p(b_i -> a_i)``.

    ``p(a_i -> b_i) = exp(s(a_i, b_i)/tau) / (sum_j exp(s(a_i, b_j)/tau) + sum_{j != i} exp(s(a_i, a_j)/tau))``
    with cosine similarity ``s``; the reverse direction swaps the graphs.
    Computed block-wise (no (B, 2B) concatenation or masking passes: this loss runs 11 times per NoCo
    step), the denominators by :class:`_ContrastiveLSE` when every entity is present.

    Args:
        emb: (n, d) embeddings.
        links: (B, 2) global ids.
        tau: temperature.
        present: optional BoolTensor (n,); entities without the modality are
            neither anchors nor negatives.
    Returns:
        ``(lp_ab, lp_ba, valid)``: (B,), (B,) float32 and BoolTensor (B,) marking
        pairs whose two entities are present (log-probs of other pairs are 0).
    """
    a, b = links[:, 0], links[:, 1]
    za = F.normalize(emb[a].float(), dim=-1)
    zb = F.normalize(emb[b].float(), dim=-1)
    pos = (za * zb).sum(-1) / tau
    complete = present is None or bool(present[a].all() and present[b].all())
    if tau >= _FUSED_MIN_TAU:
        if complete:
            lse_a, lse_b = _ContrastiveLSE.apply(za, zb, tau, None, None)
            return pos - lse_a, pos - lse_b, torch.ones(len(links), dtype=torch.bool, device=links.device)
        pa, pb = present[a], present[b]
        valid = pa & pb
        if not bool(valid.any()):
            attached = pos.new_zeros(len(links)) + emb.sum() * 0.0
            return attached, attached, valid
        # anchors: complete pairs; negatives: present entities of the batch
        lse_a, lse_b = _ContrastiveLSE.apply(za, zb, tau, pa, pb)
        zero = pos.new_zeros(())
        return torch.where(valid, pos - lse_a, zero), torch.where(valid, pos - lse_b, zero), valid
    if complete:
        valid = torch.ones(len(links), dtype=torch.bool, device=links.device)
        za_t = za / tau
        ab = za_t @ zb.t()
        scale = tau**-0.5  # z z^T / tau as one symmetric product
        aa = gram(za * scale)
        bb = gram(zb * scale)
        aa.diagonal().fill_(float("-inf"))  # matmul outputs: safe to edit in place
        bb.diagonal().fill_(float("-inf"))
        lse_a, lse_b = _denominators(ab, aa, bb, tau)
        return pos - lse_a, pos - lse_b, valid
    pa, pb = present[a], present[b]
    valid = pa & pb
    idx = valid.nonzero().squeeze(1)
    zeros = pos.new_zeros(len(links))
    if idx.numel() == 0:
        attached = emb.sum() * 0.0
        return zeros + attached, zeros + attached, valid
    # Anchors: complete pairs; negatives: present entities of the batch.
    lp_ab = _directional(za, zb, pa, pb, idx, pos, tau)
    lp_ba = _directional(zb, za, pb, pa, idx, pos, tau)
    return zeros.index_put((idx,), lp_ab), zeros.index_put((idx,), lp_ba), valid


def _directional(zs: Tensor, zo: Tensor, ps: Tensor, po: Tensor, idx: Tensor, pos: Tensor, tau: float) -> Tensor:
    """``log p(s_i -> o_i)`` for anchors ``idx`` with negatives among present rows.

    zs, zo: (B, d) normalised source/other-side embeddings; ps, po: bool (B,)
    presence; idx: (V,) anchor rows. Returns (V,).
    """
    anchors = zs[idx] / tau
    other = anchors @ zo[po].t()
    same = anchors @ zs[ps].t()
    self_col = (torch.cumsum(ps.long(), 0) - 1)[idx]
    same[torch.arange(len(idx), device=idx.device), self_col] = float("-inf")
    return pos[idx] - torch.logaddexp(torch.logsumexp(other, 1), torch.logsumexp(same, 1))


def icl_loss(emb: Tensor, links: Tensor, tau: float = 0.1, alpha: float = 0.5, present: Tensor | None = None) -> Tensor:
    """Intra-modal contrastive loss (MCLEA): ``-(alpha log p_ab + (1-alpha) log p_ba)``.

    Averaged over the pairs whose two entities have the modality; 0 (still
    attached to the graph) when there is none.

    Args:
        emb: (n, d); links: (B, 2); present: optional BoolTensor (n,).
    Returns:
        scalar float32 tensor.
    """
    return icl_from_log_probs(*pair_log_probs(emb, links, tau, present), alpha)


def icl_from_log_probs(lp_ab: Tensor, lp_ba: Tensor, valid: Tensor, alpha: float = 0.5) -> Tensor:
    """:func:`icl_loss` from :func:`pair_log_probs`' output: ``-(alpha lp_ab + (1-alpha) lp_ba)`` averaged over valid pairs."""
    per_pair = -(alpha * lp_ab + (1.0 - alpha) * lp_ba)
    return per_pair.sum() / valid.sum().clamp(min=1)


def teacher_logits(teacher: Tensor, links: Tensor, tau: float = 4.0) -> tuple[Tensor, Tensor]:
    """The IAL teacher's in-batch logits, detached: compute once and pass to every modality's :func:`ial_loss`.

    Returns ``(t_ab, t_ba)``, each (B, 2B), as :func:`ial_loss` computes them from ``teacher``.
    """
    with torch.no_grad():
        return _pair_logits(teacher.detach(), links, tau)


def ial_loss(
    emb: Tensor,
    teacher: Tensor | None,
    links: Tensor,
    tau: float = 4.0,
    alpha: float = 0.5,
    present: Tensor | None = None,
    teacher_logits: tuple[Tensor, Tensor] | None = None,
) -> Tensor:
    """Inter-modal alignment loss (MCLEA): KL(teacher || modality) over in-batch distributions.

    The teacher (the joint embedding) is detached, so only the modality learns
    from it. With ``present``, pairs missing the modality on either side are
    skipped and absent entities are removed from both distributions. As in MCLEA's code, the KL is averaged over all (B, 2B) entries
    (``reduction='mean'``) and both directions are mixed by ``alpha``.

    Args:
        emb: (n, d) modality embeddings; teacher: (n, D) joint embeddings;
        links: (B, 2); present: optional BoolTensor (n,) for the modality;
        teacher_logits: the output of :func:`teacher_logits` (same ``links`` and ``tau``) instead of ``teacher``.
    Returns:
        scalar float32 tensor.
    """
    s_ab, s_ba = _pair_logits(emb, links, tau)
    t_ab, t_ba = teacher_logits if teacher_logits is not None else _pair_logits(teacher.detach(), links, tau)
    if present is not None:
        pa, pb = present[links[:, 0]], present[links[:, 1]]
        keep = pa & pb
        if not bool(keep.any()):
            return emb.sum() * 0.0
        # Entities without the modality leave both distributions (anchors and columns).
        cols_ab, cols_ba = ~torch.cat([pb, pa]), ~torch.cat([pa, pb])
        s_ab, t_ab = (x[keep].masked_fill(cols_ab, float("-inf")) for x in (s_ab, t_ab))
        s_ba, t_ba = (x[keep].masked_fill(cols_ba, float("-inf")) for x in (s_ba, t_ba))

    def kl(student: Tensor, target: Tensor) -> Tensor:
        # -inf diagonal entries: log-softmax gives -inf, probabilities 0; zero them explicitly.
        ls, lt = F.log_softmax(student, -1), F.log_softmax(target, -1)
        pt = lt.exp()
        terms = torch.where(pt > 0, pt * (lt - ls), torch.zeros_like(pt))
        return terms.mean()

    return alpha * kl(s_ab, t_ab) + (1.0 - alpha) * kl(s_ba, t_ba)


class UncertaintyWeights(nn.Module):
    """Learned loss weights (Kendall et al. 2018, as in MCLEA/MEAformer).

    ``K(L_m) = exp(-s_m) * L_m + s_m`` with one learnable ``s_m`` per name,
    initialised to 0.
    """

    def __init__(self, names: list[str]):
        super().__init__()
        self.names = list(names)
        self.log_vars = nn.Parameter(torch.zeros(len(self.names)))

    def reset_parameters(self) -> None:
        nn.init.zeros_(self.log_vars)

    def forward(self, losses: dict[str, Tensor]) -> Tensor:
        """``{name: scalar}`` (a subset of ``names``) -> weighted sum (scalar)."""
        total = self.log_vars.new_zeros(())
        for i, name in enumerate(self.names):
            if name in losses:
                s = self.log_vars[i]
                total = total + torch.exp(-s) * losses[name] + s
        return total


def _block_log_probs(ab: Tensor, aa: Tensor, bb: Tensor, pos: Tensor, pa: Tensor | None, pb: Tensor | None, emb: Tensor, tau: float):
    """:func:`pair_log_probs` from the (B, B) logit blocks ``za zb^T / tau``, ``za za^T / tau``, ``zb zb^T / tau``
    (the last two with ``-inf`` diagonals).

    ``pos``: (B,) positive logits; ``pa``/``pb``: bool (B,) presence of the links' ends, or None (all
    present); ``emb``: the input, to attach a zero result to. The blocks are not modified (the joint
    term reads them too); ``tau``: their temperature (``|logit| <= 1/tau``). Returns ``(lp_ab, lp_ba, valid)`` as
    :func:`pair_log_probs`.
    """
    b = ab.shape[0]
    if pa is None or bool(pa.all() and pb.all()):
        lse_a, lse_b = _denominators(ab, aa, bb, tau)
        return pos.float() - lse_a, pos.float() - lse_b, torch.ones(b, dtype=torch.bool, device=ab.device)
    valid = pa & pb
    if not bool(valid.any()):
        attached = pos.new_zeros(b, dtype=torch.float32) + emb.sum() * 0.0
        return attached, attached, valid
    if tau >= _FUSED_MIN_TAU:
        # anchors: complete pairs; negatives: present entities of the batch
        lse_a, lse_b = _BlockLSE.apply(ab, aa, bb, 1.0 / tau, pa, pb)
        p, zero = pos.float(), pos.new_zeros((), dtype=torch.float32)
        return torch.where(valid, p - lse_a, zero), torch.where(valid, p - lse_b, zero), valid
    idx = valid.nonzero().squeeze(1)
    zeros = pos.new_zeros(b, dtype=torch.float32)
    ninf = float("-inf")
    other_ab = ab[idx].masked_fill(~pb[None, :], ninf)
    same_a = aa[idx].masked_fill(~pa[None, :], ninf)
    other_ba = ab.t()[idx].masked_fill(~pa[None, :], ninf)
    same_b = bb[idx].masked_fill(~pb[None, :], ninf)
    p = pos[idx]
    lp_ab = p - torch.logaddexp(torch.logsumexp(other_ab, 1), torch.logsumexp(same_a, 1))
    lp_ba = p - torch.logaddexp(torch.logsumexp(other_ba, 1), torch.logsumexp(same_b, 1))
    return zeros.index_put((idx,), lp_ab.float()), zeros.index_put((idx,), lp_ba.float()), valid


class _WeightedBlockSum(torch.autograd.Function):
    """``J = sum_m (u_m v_m^T) * C_m`` over (B, B) blocks ``C_m`` and row/column weights ``u``, ``v`` (B, M).

    With ``masked_diag`` the blocks' diagonals are ``-inf`` (no self-negative) and so is ``J``'s.
    Written out (instead of autograd's chain of products and sums) to read each block twice in forward and
    save nothing new for backward: this elementwise work is what the joint term costs once its matrix
    products are gone.
    """

    @staticmethod
    def forward(ctx, u: Tensor, v: Tensor, masked_diag: bool, *blocks: Tensor) -> Tensor:
        out = torch.zeros(blocks[0].shape, dtype=torch.promote_types(blocks[0].dtype, u.dtype), device=u.device)
        for m, c in enumerate(blocks):
            out.addcmul_(c * u[:, m, None], v[None, :, m])
        if masked_diag:
            out.diagonal().fill_(float("-inf"))  # -inf * 0 is nan where a weight is 0
        ctx.save_for_backward(u, v, *blocks)
        ctx.masked_diag = masked_diag
        return out

    @staticmethod
    def backward(ctx, g: Tensor):
        u, v, *blocks = ctx.saved_tensors
        du, dv, dblocks = torch.empty_like(u), torch.empty_like(v), []
        for m, c in enumerate(blocks):
            gc = g * c
            if ctx.masked_diag:
                gc.diagonal().zero_()  # 0 * -inf
            du[:, m] = gc @ v[:, m]
            dv[:, m] = gc.t() @ u[:, m]
            dblocks.append((g * u[:, m, None]).mul_(v[None, :, m]).to(c.dtype) if ctx.needs_input_grad[3 + m] else None)
        return du, dv, None, *dblocks


def joint_and_modality_log_probs(
    embs: list[Tensor], weights: Tensor, links: Tensor, tau: float = 0.1, presents: list[Tensor | None] | None = None
) -> tuple[tuple[Tensor, Tensor], list[tuple[Tensor, Tensor, Tensor]]]:
    """The joint embedding's and every modality's log-probs from one set of per-modality similarity blocks.

    For ``joint = weighted_concat(embs, weights)`` (rows ``concat_m w_m(i) x_m(i) / ||x_m(i)||``),
    ``cos(joint_i, joint_j) = sum_m w_m(i) w_m(j) cos_m(i, j) / (||joint_i|| ||joint_j||)`` with
    ``||joint_i||^2 = sum_m w_m(i)^2`` over the modalities whose row is non-zero: the joint's (B, 2B)
    logits are assembled from the modalities' (B, B) cosine blocks instead of a product over the joint's
    full width, and autograd sums both terms' gradients on each block before the one matrix-product
    backward. Same values and gradients as the direct computation (tests/test_models_losses.py).

    Args:
        embs: M tensors (n, d_m), the embeddings the joint concatenates.
        weights: (n, M) the joint's modality weights.
        links: (B, 2) global ids.
        tau: temperature.
        presents: per modality an optional BoolTensor (n,) for its own term (as :func:`pair_log_probs`);
            the joint term has no presence mask (absent modalities enter it through ``w_m = 0``).
    Returns:
        ``((lp_ab, lp_ba), per_modality)``: the joint's ``pair_log_probs(joint, links, tau)[:2]`` and,
        per modality, ``pair_log_probs(embs[m], links, tau, presents[m])``.
    """
    a, bi = links[:, 0], links[:, 1]
    presents = presents if presents is not None else [None] * len(embs)
    wa, wb = weights[a].float(), weights[bi].float()
    blocks, norm_a, norm_b = [], 0.0, 0.0
    for m, emb in enumerate(embs):
        za = F.normalize(emb[a].float(), dim=-1)
        zb = F.normalize(emb[bi].float(), dim=-1)
        scale = tau**-0.5  # z z^T / tau as one symmetric product
        aa, bb = gram(za * scale), gram(zb * scale)
        aa.diagonal().fill_(float("-inf"))  # no self-negative; filled once for both terms (no masked copies)
        bb.diagonal().fill_(float("-inf"))
        blocks.append(((za / tau) @ zb.t(), aa, bb, (za * zb).sum(-1) / tau))
        # ||x / ||x|| ||^2: 1, or 0 for an all-zero row (F.normalize maps it to 0).
        norm_a = norm_a + wa[:, m] ** 2 * (za * za).sum(-1)
        norm_b = norm_b + wb[:, m] ** 2 * (zb * zb).sum(-1)
    # Fold the joint's row norms into the per-row weights (F.normalize's eps as in pair_log_probs).
    ua = wa / norm_a.sqrt().clamp_min(1e-12)[:, None]
    ub = wb / norm_b.sqrt().clamp_min(1e-12)[:, None]
    j_ab = _WeightedBlockSum.apply(ua, ub, False, *(blk[0] for blk in blocks))
    j_aa = _WeightedBlockSum.apply(ua, ua, True, *(blk[1] for blk in blocks))
    j_bb = _WeightedBlockSum.apply(ub, ub, True, *(blk[2] for blk in blocks))
    joint = _block_log_probs(j_ab, j_aa, j_bb, j_ab.diagonal(), None, None, embs[0], tau)[:2]
    per_modality = []
    for (ab, aa, bb, pos), present, emb in zip(blocks, presents, embs, strict=True):
        pa, pb = (None, None) if present is None else (present[a], present[bi])
        per_modality.append(_block_log_probs(ab, aa, bb, pos, pa, pb, emb, tau))
    return joint, per_modality


def joint_and_icl_losses(
    embs: dict[str, Tensor],
    joint: Tensor,
    weights: Tensor,
    links: Tensor,
    presents: dict[str, Tensor | None],
    tau: float = 0.1,
    alpha: float = 0.5,
    from_blocks: bool = True,
) -> tuple[Tensor, dict[str, Tensor]]:
    """``ICL(joint)`` and ``{m: ICL(x_m)}`` for a joint that is ``weighted_concat(embs, weights)``.

    With ``from_blocks`` the joint's logits come from the modalities' similarity blocks
    (:func:`joint_and_modality_log_probs`: same values and gradients); otherwise each term is
    computed directly. embs: ``{m: (n, d_m)}``; joint: (n, sum d_m); weights: (n, M) in ``embs``'
    order; links: (B, 2); presents: ``{m: BoolTensor (n,) or None}``.
    """
    if not from_blocks:
        icl = {m: icl_loss(e, links, tau, alpha, presents[m]) for m, e in embs.items()}
        return icl_loss(joint, links, tau, alpha), icl
    (ab, ba), per = joint_and_modality_log_probs(list(embs.values()), weights, links, tau, [presents[m] for m in embs])
    l_joint = icl_from_log_probs(ab, ba, torch.ones_like(ab, dtype=torch.bool), alpha)
    return l_joint, {m: icl_from_log_probs(*lp, alpha) for m, lp in zip(embs, per, strict=True)}

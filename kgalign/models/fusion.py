"""Fusion modules: per-entity modality weights and the weighted-concatenation joint embedding.

Every module is mask-aware: a modality the entity lacks gets weight exactly 0
(its logit is ``-inf`` before the softmax), so the joint embedding of such an
entity is built from the modalities it has.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from kgalign.models.layers import mlp


def masked_softmax(logits: Tensor, mask: Tensor) -> Tensor:
    """Softmax over the last axis with ``mask`` False entries forced to 0.

    Args:
        logits: (..., M); mask: bool (..., M).
    Returns:
        (..., M) float32 weights summing to 1 over the True entries; a row without any
        (an entity with no modality at all, e.g. without the structure) is all zeros, not NaN.
    """
    some = mask.any(-1, keepdim=True)
    w = torch.softmax(logits.float().masked_fill(~(mask | ~some), float("-inf")), dim=-1)
    return w * some


def weighted_concat(embs: list[Tensor], weights: Tensor) -> Tensor:
    """Joint embedding ``concat_m(w_m * x_m / ||x_m||)`` (MCLEA, MEAformer).

    Args:
        embs: M tensors (n, d_m); weights: (n, M).
    Returns:
        (n, sum d_m).
    """
    parts = [weights[:, i : i + 1].to(x.dtype) * F.normalize(x, dim=-1) for i, x in enumerate(embs)]
    return torch.cat(parts, dim=-1)


class GlobalWeightFusion(nn.Module):
    """MCLEA's global modality weights ``softmax(theta)``, renormalised per entity over
    the modalities it has.

    Shapes:
        forward(mask (n, M) bool) -> weights (n, M)
    """

    def __init__(self, num_modalities: int):
        super().__init__()
        self.theta = nn.Parameter(torch.ones(num_modalities))

    def reset_parameters(self) -> None:
        nn.init.ones_(self.theta)

    def forward(self, mask: Tensor) -> Tensor:
        return masked_softmax(self.theta.expand(mask.shape[0], -1), mask)


class CrossModalAttentionLayer(nn.Module):
    """One BERT-style self-attention layer over an entity's modality tokens (MEAformer).

    ``H = LayerNorm(X + Dropout(W_o softmax(Q K^T / sqrt(d_h)) V))``, then an
    optional FFN block (``ffn_dim > 0``) with its own residual and LayerNorm.
    Missing modalities are masked as keys.

    Shapes:
        forward(x (n, M, d), mask (n, M)) -> (hidden (n, M, d), attention (n, heads, M, M))
    """

    def __init__(self, dim: int, heads: int = 1, dropout: float = 0.1, ffn_dim: int = 0):
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim {dim} is not divisible by heads {heads}")
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)
        self.norm = nn.LayerNorm(dim)
        self.drop = nn.Dropout(dropout)
        self.ffn = None
        if ffn_dim > 0:
            self.ffn = nn.Sequential(nn.Linear(dim, ffn_dim), nn.GELU(), nn.Linear(ffn_dim, dim), nn.Dropout(dropout))
            self.ffn_norm = nn.LayerNorm(dim)

    def forward(self, x: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        n, m, d = x.shape
        dh = d // self.heads
        q, k, v = self.qkv(x).view(n, m, 3, self.heads, dh).unbind(2)
        scores = torch.einsum("nqhd,nkhd->nhqk", q, k) / math.sqrt(dh)
        scores = scores.float().masked_fill(~mask[:, None, None, :], float("-inf"))
        attn = torch.softmax(scores, dim=-1)
        ctx = torch.einsum("nhqk,nkhd->nqhd", self.drop(attn).to(v.dtype), v).reshape(n, m, d)
        h = self.norm(x + self.drop(self.out(ctx)))
        if self.ffn is not None:
            h = self.ffn_norm(h + self.ffn(h))
        return h, attn


class CrossModalAttentionFusion(nn.Module):
    """MEAformer's fusion: attention layers over modality tokens; the attention each
    modality *receives* in the last layer gives entity-level weights.

    ``w_m = softmax_m(sum_heads sum_queries A[q, m] / sqrt(M * heads))`` where the
    sum runs over the entity's present query tokens and absent modalities get 0.

    Shapes:
        forward(x (n, M, d), mask (n, M)) -> (hidden (n, M, d), weights (n, M))
    """

    def __init__(self, dim: int, heads: int = 1, layers: int = 1, dropout: float = 0.1, ffn_dim: int = 0):
        super().__init__()
        self.layers = nn.ModuleList(CrossModalAttentionLayer(dim, heads, dropout, ffn_dim) for _ in range(layers))

    def forward(self, x: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        h, attn = x, None
        for layer in self.layers:
            h, attn = layer(h, mask)
        heads, m = attn.shape[1], attn.shape[-1]
        received = (attn * mask[:, None, :, None]).sum(dim=(1, 2)) / math.sqrt(m * heads)
        return h, masked_softmax(received, mask)


class ConfidenceFusion(nn.Module):
    """NoCo's confidence-based dynamic fusion (paper Sec. 3.3, Eq. 7-11).

    - ``Uni_Conf_m = sigmoid(MLP_m(h_m))`` per entity and modality;
    - ``Global_Conf = sigmoid(MLP_g([Uni_Conf_1..M]))`` (Algorithm 2: all
      Uni-Conf scores are the Global-Conf input);
    - ``w_m = Uni_Conf_m + Global_Conf_m`` (Eq. 7);
    - ``P_m = softmax(h_m)``, ``DU_m = mean_i |P_m,i - mean(P_m)|`` (Eq. 8-9);
    - ``RC_m = DU_m / (sum_{k != m} DU_k + eps)`` (Eq. 10), sums over present
      modalities, computed without gradient;
    - ``w~ = softmax_m(w_m * RC_m)`` over present modalities (Eq. 11).

    Args:
        dims: width of each modality's embedding.
        uni_hidden: hidden width of each Uni-Conf MLP.
        global_hidden: hidden width of the Global-Conf MLP.
        eps: calibration smoothing factor.
        du_on_unit: compute DU on L2-normalised embeddings, so RC compares the shape of each
            modality's softmax rather than the scale of its embedding (docs/models/noco.md).
    Shapes:
        forward(embs M x (n, d_m), mask (n, M)) -> dict with ``weights``,
        ``uni_conf``, ``global_conf``, ``rc`` each (n, M).
    """

    def __init__(self, dims: list[int], uni_hidden: int = 150, global_hidden: int = 32, eps: float = 1e-3, du_on_unit: bool = False):
        super().__init__()
        self.uni = nn.ModuleList(mlp([d, uni_hidden, 1]) for d in dims)
        m = len(dims)
        self.glob = mlp([m, global_hidden, m])
        self.eps = eps
        self.du_on_unit = du_on_unit

    def forward(self, embs: list[Tensor], mask: Tensor) -> dict[str, Tensor]:
        maskf = mask.float()
        uni = torch.cat([torch.sigmoid(net(x).float()) for net, x in zip(self.uni, embs, strict=False)], dim=-1) * maskf
        glob = torch.sigmoid(self.glob(uni.to(embs[0].dtype)).float())
        w = uni + glob
        # RC is a calibration measurement, not a learned path (as in PDF): no gradient.
        with torch.no_grad():
            du = torch.stack([_distribution_uniformity(F.normalize(x, dim=-1) if self.du_on_unit else x) for x in embs], dim=-1)
            du = du * maskf
        rc = du / (du.sum(-1, keepdim=True) - du + self.eps)
        return {"weights": masked_softmax(w * rc, mask), "uni_conf": uni, "global_conf": glob, "rc": rc}


def _distribution_uniformity(x: Tensor) -> Tensor:
    """Mean absolute deviation of ``softmax(x)`` from its mean (NoCo Eq. 8-9): (n, d) -> (n,)."""
    p = torch.softmax(x.float(), dim=-1)
    return (p - p.mean(-1, keepdim=True)).abs().mean(-1)

"""A learned mutual-information estimator (MINE's Donsker-Varadhan bound, separable critic).

MPSEA's CPRL uses "a custom cross-modal mutual information estimator" as a
quality check after fusion; its form is not given. We follow MINE (Belghazi et
al. 2018): ``I(U; V) >= E_P[T(u, v)] - log E_{P_U x P_V}[exp T(u, v)]``, with the
critic ``T(u, v) = f(u) . g(v) / sqrt(h)`` (two small MLPs; separable, so all
``N x N`` pairs of a batch cost one matmul). Samples of the product of the
marginals are the off-diagonal pairs of the batch. Each input row is scaled to
RMS 1 first: MPSEA's joint embedding has norm at most 1 spread over ``M * d``
entries, which a default-initialised critic would see as a constant.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from kgalign.models.layers import mlp


class MutualInformationEstimator(nn.Module):
    """Separable critic with the DV bound and a pointwise score.

    Args:
        u_dim, v_dim: widths of the two variables; hidden: critic width h.
    Shapes:
        scores(u (N, u_dim), v (N', v_dim)) -> (N, N')
        dv_bound(u (N, .), v (N, .)) -> scalar (nats)
        pointwise(u (N, .), v (N, .), negatives (K, v_dim)) -> (N,)
    """

    def __init__(self, u_dim: int, v_dim: int, hidden: int = 64):
        super().__init__()
        self.f = mlp([u_dim, hidden, hidden])
        self.g = mlp([v_dim, hidden, hidden])
        self.scale = 1.0 / math.sqrt(hidden)

    def _f(self, u: Tensor) -> Tensor:
        return self.f(rms_scaled(u)).float()

    def _g(self, v: Tensor) -> Tensor:
        return self.g(rms_scaled(v)).float()

    def scores(self, u: Tensor, v: Tensor) -> Tensor:
        return (self._f(u) @ self._g(v).t()) * self.scale

    def dv_bound(self, u: Tensor, v: Tensor) -> Tensor:
        """Donsker-Varadhan lower bound on I(U; V) from paired rows (needs N >= 2)."""
        t = self.scores(u, v)
        n = t.shape[0]
        joint = t.diagonal().mean()
        off = t.masked_select(~torch.eye(n, dtype=torch.bool, device=t.device))
        return joint - (torch.logsumexp(off, 0) - math.log(max(off.numel(), 1)))

    def pointwise(self, u: Tensor, v: Tensor, negatives: Tensor) -> Tensor:
        """``T(u_i, v_i) - log mean_k exp T(u_i, neg_k)`` per row: how much more ``u_i``
        agrees with its own ``v_i`` than with other entities' (nats, at most ``log K`` for InfoNCE-like use)."""
        fu = self._f(u)
        pos = (fu * self._g(v)).sum(-1) * self.scale
        neg = (fu @ self._g(negatives).t()) * self.scale
        return pos - (torch.logsumexp(neg, 1) - math.log(neg.shape[1]))


def rms_scaled(x: Tensor) -> Tensor:
    """Rows scaled to root-mean-square 1 (zero rows stay zero); (N, D) -> (N, D)."""
    return F.normalize(x, dim=-1) * math.sqrt(x.shape[-1])

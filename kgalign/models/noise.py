"""NoCo's modality-aware noise augmentation (paper Sec. 3.2.2, Eq. 5-6, Algorithm 1).

For every augmented modality m and step t = 0..steps-1::

    x       = h(t) + eps_m * N(0, I)                    # noise only in training
    u       = W_m x + b_m                               # Eq. 5; W_m: d -> noise_size
    h(t+1)  = x + P_out_m f(u)                          # Eq. 6, mapped back to d (+ residual)
    eps_m   <- adapt(eps_m, cos(h(t), x))               # persistent, per modality

``W_m`` is the paper's "linear transformation [...] applied to perform
dimension mapping" after the noise injection, so it maps straight to
``noise_size``; ``f`` (ReLU MLP at ``noise_size``, shared by the modalities, as
its parameter ``theta`` has no modality index) refines; ``P_out_m`` maps back.
``P_out_m`` starts at zero, so at initialisation the module only injects
noise. The residual is a documented choice (docs/models/noco.md): the paper says
the module should "retain the majority of the information of the original
representation".

The noise scale is a buffer (saved in ``state_dict``), not a gradient-trained
parameter: a scale trained on the alignment loss would shrink to 0. It is
set on the first training call so that the expected cosine between the clean
and the noised embedding equals ``target_cos``, then corrected multiplicatively
after every step toward that target (``log eps += rate * (cos - target)``).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from kgalign.models.layers import mlp


class ModalityNoiseAugment(nn.Module):
    """Iterated noise injection and refinement, per modality.

    Args:
        names: modalities to augment (others pass through ``forward`` unchanged).
        dim: embedding width d of every augmented modality.
        noise_size: width of the refinement MLP (paper: 256).
        steps: iterations Theta.
        mlp_layers: linear layers in the shared refinement MLP ``f`` (ReLU between
            and around them).
        target_cos: the cosine between clean and noised embeddings the scale aims at.
        rate: step size of the multiplicative scale correction.
        enabled: False turns noise off (the paper's "w/o NA" ablation keeps the maps).
    Shapes:
        forward({m: (n, d)}, present {m: (n,) bool} or None) -> {m: (n, d)};
        the scale statistics use only the rows where the modality is present.
    Buffers:
        ``scale`` (M,) current eps_m; ``initialised`` (M,) bool.
    """

    def __init__(
        self,
        names: list[str],
        dim: int,
        noise_size: int = 256,
        steps: int = 1,
        mlp_layers: int = 2,
        target_cos: float = 0.9,
        rate: float = 1.0,
        enabled: bool = True,
    ):
        super().__init__()
        if not 0.0 < target_cos < 1.0:
            raise ValueError(f"noise target_cos must be in (0, 1), got {target_cos}")
        self.names = list(names)
        self.steps, self.target_cos, self.rate, self.enabled = steps, target_cos, rate, enabled
        # p_in holds Eq. 5's W_m, b_m; p_out maps back to d.
        self.p_in = nn.ModuleDict({m: nn.Linear(dim, noise_size) for m in self.names})
        self.p_out = nn.ModuleDict({m: nn.Linear(noise_size, dim) for m in self.names})
        self.refine = nn.Sequential(nn.ReLU(), mlp([noise_size] * (mlp_layers + 1)), nn.ReLU())
        for m in self.names:
            nn.init.zeros_(self.p_out[m].weight)
            nn.init.zeros_(self.p_out[m].bias)
        self.register_buffer("scale", torch.ones(len(self.names)))
        self.register_buffer("initialised", torch.zeros(len(self.names), dtype=torch.bool))

    def noise_scales(self) -> dict[str, float]:
        return {m: float(self.scale[i]) for i, m in enumerate(self.names)}

    def forward(self, embs: dict[str, Tensor], present: dict[str, Tensor | None] | None = None) -> dict[str, Tensor]:
        out = dict(embs)
        for i, m in enumerate(self.names):
            h = embs[m]
            rows = None if present is None else present.get(m)
            for _ in range(self.steps):
                if self.training and self.enabled:
                    h = h + self._noise(i, h, rows)
                h = h + self.p_out[m](self.refine(self.p_in[m](h)))
            out[m] = h
        return out

    def _noise(self, i: int, h: Tensor, rows: Tensor | None) -> Tensor:
        """Draw eps_i * N(0, I) shaped like ``h`` (n, d), then adapt eps_i (no grad).

        ``rows``: optional bool (n,) selecting the rows the statistics use.
        """
        with torch.no_grad():
            hd = h.detach().float()
            if rows is not None:
                hd = hd[rows]
            if hd.shape[0] == 0:
                return torch.zeros_like(h)
            if not bool(self.initialised[i]):
                # E||h + eps xi||^2 = ||h||^2 + eps^2 d, so cos ~ target when:
                rms = hd.pow(2).sum(-1).mean().sqrt()
                self.scale[i] = (rms * math.sqrt(1.0 / self.target_cos**2 - 1.0) / math.sqrt(h.shape[-1])).clamp(min=1e-8)
                self.initialised[i] = True
            eps = self.scale[i].clone()
        noise = torch.randn_like(h) * eps.to(h.dtype)
        with torch.no_grad():
            nd = noise.detach().float() if rows is None else noise.detach().float()[rows]
            cos = F.cosine_similarity(hd, hd + nd, dim=-1).mean()
            self.scale[i] = self.scale[i] * torch.exp(self.rate * (cos - self.target_cos))
        return noise

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

from kgalign.models.layers import mlp, reset_children


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
        forward({m: (n, d)}, present {m: (n,) bool} or None) -> ({m: (n, d)}, next scales (M,) or None);
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

    def reset_parameters(self) -> None:
        for m in self.names:
            self.p_in[m].reset_parameters()
            nn.init.zeros_(self.p_out[m].weight)
            nn.init.zeros_(self.p_out[m].bias)
        reset_children(self.refine)
        self.scale.fill_(1.0)
        self.initialised.fill_(False)

    def noise_scales(self) -> dict[str, float]:
        return {m: float(self.scale[i]) for i, m in enumerate(self.names)}

    def forward(
        self, embs: dict[str, Tensor], present: dict[str, Tensor | None] | None = None
    ) -> tuple[dict[str, Tensor], dict[str, Tensor] | None]:
        """Returns the augmented embeddings and, when noise was drawn, the next state
        ``{"scale": (M,), "initialised": (M,)}``.

        The buffers are not changed here: the model passes that state to
        :meth:`update_state` after the optimizer step (DDP replicas stay identical).
        """
        out = dict(embs)
        noisy = self.training and self.enabled
        state = {"scale": self.scale.clone(), "initialised": self.initialised.clone()} if noisy else None
        for i, m in enumerate(self.names):
            h = embs[m]
            rows = None if present is None else present.get(m)
            for _ in range(self.steps):
                if noisy:
                    noise, eps = self._noise(h, rows, state["scale"][i], bool(state["initialised"][i]))
                    if eps is not None:
                        state["scale"][i], state["initialised"][i] = eps, True
                    h = h + noise
                h = h + self.p_out[m](self.refine(self.p_in[m](h)))
            out[m] = h
        return out, state

    @torch.no_grad()
    def update_state(self, state: dict[str, Tensor]) -> None:
        """Adopt the scales a training forward pass measured (the adaptive eps_m)."""
        self.scale.copy_(state["scale"])
        self.initialised.copy_(state["initialised"])

    def _noise(self, h: Tensor, rows: Tensor | None, eps: Tensor, initialised: bool) -> tuple[Tensor, Tensor | None]:
        """Draw eps * N(0, I) shaped like ``h`` (n, d); return it and the adapted eps (no grad;
        None when no row has the modality).

        ``rows``: optional bool (n,) selecting the rows the statistics use. The first
        draw sets eps so that the expected cosine between clean and noised rows is
        ``target_cos``.
        """
        with torch.no_grad():
            hd = h.detach().float()
            if rows is not None:
                hd = hd[rows]
            if hd.shape[0] == 0:
                return torch.zeros_like(h), None
            if not initialised:
                # E||h + eps xi||^2 = ||h||^2 + eps^2 d, so cos ~ target when:
                rms = hd.pow(2).sum(-1).mean().sqrt()
                eps = (rms * math.sqrt(1.0 / self.target_cos**2 - 1.0) / math.sqrt(h.shape[-1])).clamp(min=1e-8)
            eps = eps.clone()
        noise = torch.randn_like(h) * eps.to(h.dtype)
        with torch.no_grad():
            nd = noise.detach().float() if rows is None else noise.detach().float()[rows]
            cos = F.cosine_similarity(hd, hd + nd, dim=-1).mean()
            eps_next = eps * torch.exp(self.rate * (cos - self.target_cos))
        return noise, eps_next

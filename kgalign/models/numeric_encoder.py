"""DNEF: MPSEA's numeric-value encoder (the fifth modality).

MPSEA (Sec. 3.3.4): "projects scalar values into high-dimensional vector
spaces. This representation is subsequently refined through neural networks".
The equations are lost; this follows MMEA's (KSEM 2020) numeric encoder:

1. per-attribute radial basis functions ``phi_k(v) = exp(-((v - c_ak) / w_ak)^2)``
   with learnable centres and widths (MMEA's RBF, one set per attribute);
2. a two-layer ReLU network refines ``phi(v)`` into a ``d``-wide value vector;
3. the value vector is combined with a learnable embedding of the attribute
   key (concatenation, Linear, ReLU: MMEA joins key and value too, with a small CNN);
4. the facts of an entity are averaged and mapped by a last Linear.

Entities without numeric facts get a zero row (the modality is absent).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint


class DNEF(nn.Module):
    """Deep Numerical Embedding Framework.

    Args:
        num_attributes: A, numeric attribute columns.
        dim: output width d.
        kernels: K radial basis functions per attribute.
        value_range: ``(low, high)`` of the stored values; centres start evenly spaced in it.
        chunk: facts per chunk (0: all at once); with grad, each chunk's activations are
            recomputed in backward instead of kept. The result is the same up to float rounding.
    Shapes:
        forward(entity (k,), attribute (k,), value (k,), num_entities n) -> (n, dim)
    """

    def __init__(self, num_attributes: int, dim: int, kernels: int = 32, value_range: tuple[float, float] = (0.0, 1.0), chunk: int = 0):
        super().__init__()
        # Facts per checkpointed chunk in training (0: one pass that keeps every fact's activations).
        self.chunk = int(chunk)
        self.low, self.high = float(value_range[0]), float(value_range[1])
        if not self.high > self.low:
            self.high = self.low + 1.0
        self.centres = nn.Parameter(torch.empty(num_attributes, kernels))
        self.log_width = nn.Parameter(torch.empty(num_attributes, kernels))
        self.refine = nn.Sequential(nn.Linear(kernels, dim), nn.ReLU(), nn.Linear(dim, dim))
        # A raw parameter, not nn.Embedding: reset_parameters() owns its initialisation.
        self.key = nn.Parameter(torch.empty(num_attributes, dim))
        self.combine = nn.Linear(2 * dim, dim)
        self.out = nn.Linear(dim, dim)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        k = self.centres.shape[1]
        with torch.no_grad():
            self.centres.copy_(torch.linspace(self.low, self.high, k).expand_as(self.centres))
            # Neighbouring kernels overlap: width = spacing.
            self.log_width.fill_(float(torch.log(torch.tensor((self.high - self.low) / max(k - 1, 1)))))
        nn.init.normal_(self.key, std=0.1)

    def _combine(self, phi: Tensor, attribute: Tensor) -> Tensor:
        """``combine([refine(phi) || key[attribute]])`` (k, d) before its ReLU, computed in the
        cheaper, mathematically identical order: ``combine`` is linear, so its key half is applied
        to the A attribute keys once and gathered, and its value half is folded into refine's
        last Linear (one d x d matmul per fact instead of three; same parameters, same gradients
        up to rounding)."""
        first, last = self.refine[0], self.refine[2]
        dim = last.out_features
        w_val, w_key = self.combine.weight[:, :dim], self.combine.weight[:, dim:]
        per_attr = F.linear(self.key, w_key, self.combine.bias + F.linear(last.bias, w_val))  # (A, d)
        hidden = F.relu(first(phi))  # (k, d)
        return torch.addmm(per_attr[attribute], hidden, (w_val @ last.weight).t())

    def _pool(self, entity: Tensor, attribute: Tensor, value: Tensor, num_entities: int) -> Tensor:
        """(n, d): the sum of each entity's fact vectors."""
        centres = self.centres[attribute]
        width = self.log_width[attribute].exp()
        phi = torch.exp(-(((value.unsqueeze(1) - centres) / width) ** 2))  # (k, K)
        fact = F.relu(self._combine(phi, attribute))
        return fact.new_zeros(num_entities, fact.shape[1]).index_add_(0, entity, fact)

    def forward(self, entity: Tensor, attribute: Tensor, value: Tensor, num_entities: int) -> Tensor:
        dim = self.out.out_features
        if entity.numel() == 0:
            return self.out.weight.new_zeros(num_entities, dim)
        if self.chunk > 0 and entity.numel() > self.chunk:
            # The per-fact tensors (several (k, d) ones) dominate the memory when there are many facts:
            # sum the chunks' pooled rows; with grad, each chunk's facts are recomputed in backward.
            grad = torch.is_grad_enabled()
            pooled = None
            for lo in range(0, entity.numel(), self.chunk):
                sl = slice(lo, lo + self.chunk)
                args = (entity[sl], attribute[sl], value[sl], num_entities)
                part = checkpoint(self._pool, *args, use_reentrant=False) if grad else self._pool(*args)
                pooled = part if pooled is None else pooled + part
        else:
            pooled = self._pool(entity, attribute, value, num_entities)
        count = torch.bincount(entity, minlength=num_entities).clamp(min=1).unsqueeze(1)
        present = (torch.bincount(entity, minlength=num_entities) > 0).unsqueeze(1)
        out = self.out(pooled / count.to(pooled.dtype))
        return out * present.to(out.dtype)

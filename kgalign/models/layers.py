"""Encoders shared by the models: the structural GAT and per-modality projections."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def reset_children(module: nn.Module) -> None:
    """Call ``reset_parameters()`` on every child that has one; descend into the others."""
    for child in module.children():
        if hasattr(child, "reset_parameters"):
            child.reset_parameters()
        else:
            reset_children(child)


class GraphEncoder(nn.Module):
    """Learnable entity table followed by a multi-layer, multi-head graph attention network.

    Uses torch_geometric's ``GATConv`` (plain-torch path). With ``concat=True``
    each of the ``heads`` heads outputs ``dim // heads`` channels and the heads
    are concatenated, so the width stays ``dim`` while the per-edge message
    tensors are half as wide as with averaged ``dim``-wide heads (about 2x
    cheaper on CPU, docs/models/noco.md). ELU follows every layer but the last
    (MEAformer/MCLEA code). Self loops are added, as in the reference GAT.

    Args:
        num_entities: n.
        dim: embedding width d (also the output width).
        heads: attention heads per layer.
        layers: number of GATConv layers.
        concat: concatenate ``dim // heads``-wide heads (True) or average
            ``dim``-wide heads (False, the reference layout).
        attn_dropout: dropout on attention coefficients (training only).
    Shapes:
        forward(edge_index (2, E)) -> (n, dim)
    """

    def __init__(self, num_entities: int, dim: int = 300, heads: int = 2, layers: int = 2, concat: bool = True, attn_dropout: float = 0.0):
        super().__init__()
        from torch_geometric.nn import GATConv

        if concat and dim % heads:
            raise ValueError(f"dim {dim} is not divisible by heads {heads}")
        self.entity = nn.Parameter(torch.empty(num_entities, dim))
        self._init_entity()  # before the layers are built: the order of random draws fixes every seeded result
        out = dim // heads if concat else dim
        self.convs = nn.ModuleList(
            GATConv(dim, out, heads=heads, concat=concat, dropout=attn_dropout, add_self_loops=True) for _ in range(layers)
        )

    def _init_entity(self) -> None:
        # MEAformer/MCLEA: N(0, 1/n).
        nn.init.normal_(self.entity, std=1.0 / math.sqrt(max(self.entity.shape[0], 1)))

    def reset_parameters(self) -> None:
        self._init_entity()
        for conv in self.convs:
            conv.reset_parameters()

    def forward(self, edge_index: Tensor) -> Tensor:
        x = self.entity
        for i, conv in enumerate(self.convs):
            x = conv(x, edge_index)
            if i < len(self.convs) - 1:
                x = F.elu(x)
        return x


class FeatureProjection(nn.Module):
    """Linear map of one modality's features; entities without the modality get zeros.

    A zero row is not a random vector and carries no information: the fusion
    modules give such a modality weight 0 and the losses skip it (see
    docs/models/noco.md, "Missing modalities").

    Args:
        in_dim: feature width.
        out_dim: embedding width d.
        l2_input: L2-normalise feature rows first (the reference codes do this
            for image features).
    Shapes:
        forward(x (n, in_dim), mask (n,) bool) -> (n, out_dim)
    """

    def __init__(self, in_dim: int, out_dim: int, l2_input: bool = False):
        super().__init__()
        self.linear = nn.Linear(in_dim, out_dim)
        self.l2_input = l2_input

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        if self.l2_input:
            x = F.normalize(x, dim=-1)
        return self.linear(x) * mask.unsqueeze(-1).to(x.dtype)


def mlp(sizes: list[int]) -> nn.Sequential:
    """Linear layers of the given widths with ReLU between them (none after the last)."""
    mods: list[nn.Module] = []
    for i in range(len(sizes) - 1):
        mods.append(nn.Linear(sizes[i], sizes[i + 1]))
        if i < len(sizes) - 2:
            mods.append(nn.ReLU())
    return nn.Sequential(*mods)

"""Encoders shared by the models: the structural GAT and per-modality projections."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from kgalign.models.gat import CSRGraph, SparseGATConv


def reset_children(module: nn.Module) -> None:
    """Call ``reset_parameters()`` on every child that has one; descend into the others."""
    for child in module.children():
        if hasattr(child, "reset_parameters"):
            child.reset_parameters()
        else:
            reset_children(child)


class GraphEncoder(nn.Module):
    """Learnable entity table followed by a multi-layer, multi-head graph attention network.

    ``impl="sparse"`` (default) runs each layer as :class:`~kgalign.models.gat.SparseGATConv`,
    whose aggregation is a CSR product instead of per-edge message tensors;
    ``impl="pyg"`` uses torch_geometric's ``GATConv`` (plain-torch path). With
    ``weight="full"`` both compute the same function with the same parameter
    names and, under one seed, the same initial weights. With ``concat=True``
    each of the ``heads`` heads outputs ``dim // heads`` channels and the heads
    are concatenated, so the width stays ``dim`` (docs/models/noco.md). ELU
    follows every layer but the last (MEAformer/MCLEA code). Self loops are
    added, as in the reference GAT.

    ``weight="diagonal"`` is the reference codes' layer (MCLEA/MEAformer/NoCo,
    reference-implementations.md §5): ``h_k = x ⊙ w_k`` with ``w_k`` starting
    at ones, scores ``exp(-LeakyReLU(a_k·[h_i ‖ h_j]))``, no bias, ``dim``-wide
    heads averaged (so it needs ``concat=False``).

    Args:
        num_entities: n.
        dim: embedding width d (also the output width).
        heads: attention heads per layer.
        layers: number of attention layers.
        concat: concatenate ``dim // heads``-wide heads (True) or average
            ``dim``-wide heads (False, the reference layout).
        attn_dropout: dropout on attention coefficients (training only).
        impl: ``"sparse"`` or ``"pyg"``.
        weight: ``"full"`` or ``"diagonal"`` (sparse only).
        bias: a learnable bias after each layer; None = True for ``"full"``
            (``GATConv``), False for ``"diagonal"`` (reference). Adam moves a
            bias by about the learning rate per step, soon as much as the
            ``N(0, 1/n)`` entity rows: an offset shared by all entities that
            slows learning (docs/models/noco.md, *Learning per step*).
        identity_init: start each full weight at the identity (each averaged
            head the identity, the concatenated heads together the identity)
            instead of glorot, so that the layers start by passing the entity
            table through, as the diagonal layer's ones do.
    Shapes:
        forward(edge_index (2, E)) -> (n, dim)
    """

    def __init__(
        self,
        num_entities: int,
        dim: int = 300,
        heads: int = 2,
        layers: int = 2,
        concat: bool = True,
        attn_dropout: float = 0.0,
        impl: str = "sparse",
        weight: str = "full",
        bias: bool | None = None,
        identity_init: bool = False,
    ):
        super().__init__()
        if impl not in ("sparse", "pyg"):
            raise ValueError(f"impl must be 'sparse' or 'pyg', got {impl!r}")
        if bias not in (None, True, False):
            raise ValueError(f"bias must be true, false or null (the layout's default), got {bias!r}")
        if weight not in ("full", "diagonal"):
            raise ValueError(f"weight must be 'full' or 'diagonal', got {weight!r}")
        if weight == "diagonal" and impl == "pyg":
            raise ValueError("weight='diagonal' needs impl='sparse' (GATConv has no diagonal weight)")
        if weight == "diagonal" and concat:
            raise ValueError("weight='diagonal' averages dim-wide heads (the reference layout); set concat=False")
        if concat and dim % heads:
            raise ValueError(f"dim {dim} is not divisible by heads {heads}")
        if bias is None:
            bias = weight == "full"
        self.impl, self.weight = impl, weight
        self.entity = nn.Parameter(torch.empty(num_entities, dim))
        self._init_entity()  # before the layers are built: the order of random draws fixes every seeded result
        out = dim // heads if concat else dim
        if impl == "pyg":
            from torch_geometric.nn import GATConv

            self.convs = nn.ModuleList(
                GATConv(dim, out, heads=heads, concat=concat, dropout=attn_dropout, add_self_loops=True, bias=bias) for _ in range(layers)
            )
        else:
            ref = weight == "diagonal"  # the reference layer: negative score sign, no bias
            self.convs = nn.ModuleList(
                SparseGATConv(dim, out, heads, concat, attn_dropout, weight=weight, negative_score=ref, bias=bias) for _ in range(layers)
            )
        if identity_init and weight == "full":
            with torch.no_grad():
                for conv in self.convs:
                    w = conv.lin.weight  # (heads * out, dim)
                    w.copy_(torch.eye(dim, dtype=w.dtype).repeat(w.shape[0] // dim, 1))
        self._graph = None  # (edge_index, its version, CSRGraph): rebuilt only when the edges change
        # Mini-batch (kgalign.models.subgraph): the subgraph's global ids select the table's rows, or
        # precomputed outputs (layer-wise inference) replace the layers; None = the whole graph.
        self.rows: Tensor | None = None
        self.precomputed: Tensor | None = None

    def _csr_graph(self, edge_index: Tensor, num_nodes: int) -> CSRGraph:
        cached = self._graph
        if cached is None or cached[0] is not edge_index or cached[1] != edge_index._version or cached[2].num_nodes != num_nodes:
            cached = (edge_index, edge_index._version, CSRGraph(edge_index, num_nodes))
            self._graph = cached
        return cached[2]

    def _init_entity(self) -> None:
        # MEAformer/MCLEA: N(0, 1/n).
        nn.init.normal_(self.entity, std=1.0 / math.sqrt(max(self.entity.shape[0], 1)))

    def reset_parameters(self) -> None:
        self._init_entity()
        for conv in self.convs:
            conv.reset_parameters()

    def forward(self, edge_index: Tensor) -> Tensor:
        if self.precomputed is not None:
            return self.precomputed
        x = self.entity if self.rows is None else self.entity[self.rows]
        graph = edge_index if self.impl == "pyg" else self._csr_graph(edge_index, x.shape[0])
        for i, conv in enumerate(self.convs):
            x = conv(x, graph)
            if i < len(self.convs) - 1:
                x = F.elu(x)
        return x

    def layer(self, i: int, x: Tensor, edge_index: Tensor) -> Tensor:
        """Layer ``i`` alone (with its ELU unless last) on any graph: x (k, dim), edge_index (2, E) local ids -> (k, dim).

        For layer-wise inference over target chunks (kgalign.models.subgraph.embed_layerwise): a target's
        output is exact when all its incoming edges are present.
        """
        graph = edge_index if self.impl == "pyg" else CSRGraph(edge_index, x.shape[0])
        x = self.convs[i](x, graph)
        return F.elu(x) if i < len(self.convs) - 1 else x


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

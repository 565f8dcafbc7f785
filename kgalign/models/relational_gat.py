"""MPSEA's multi-weight GAT: graph attention with one transformation matrix per relation group.

MPSEA (Sec. 3.3.1) uses "dedicated linear transformation matrices" in a
two-head, two-layer GAT to narrow the "contextual gap" named by ACK-MMEA
(WWW 2023). The paper gives no equations; this module is our reading (see
docs/models/mpsea.md):

- neighbours are grouped by the *direction* of the relation (head -> tail or
  its inverse) and by its *cardinality band* (average number of neighbours an
  entity has through that relation type: functional relations such as
  "capital of" versus many-valued ones such as "starring"), the cardinality
  discrepancy ACK-MMEA names;
- every group ``g`` has its own matrix ``W_g``; the self loop and the target
  side of the attention score use ``W_0``;
- every edge type keeps its own learnable attention bias, so relations inside a
  group are still told apart at the cost of one scalar per head.

Relation *groups* rather than one matrix per relation (as in RGAT) or a basis
decomposition (R-GCN): the per-edge work of a GAT is a gather of one ``d``-wide
message per edge, and with groups it stays exactly that (the message is read
from the row of its group), while only the node-level matmul grows ``G + 1``
times. A basis decomposition would gather ``B`` messages per edge, multiplying
the dominant cost by ``B``.
"""

from __future__ import annotations

import math
import warnings

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from kgalign.models.gat import block_spmm


def cardinality_groups(index: Tensor, types: Tensor, num_entities: int, num_relations: int, bands: int = 2) -> Tensor:
    """Group id of every edge: ``direction * bands + band``.

    The band of an edge type is its rank by cardinality (edges of the type per
    distinct target entity), cut so that every band of a direction holds about
    the same number of edges. ``types >= num_relations`` are inverse edges.

    Args:
        index: LongTensor (2, E), messages flow ``index[0] -> index[1]``.
        types: LongTensor (E,) in ``0 .. 2 * num_relations - 1``.
        num_entities: n; num_relations: R; bands: cardinality bands per direction.
    Returns:
        LongTensor (E,) of group ids, renumbered ``0 .. G-1`` over the groups that occur.
    """
    if types.numel() == 0:
        return types.clone()
    num_types = int(types.max()) + 1
    counts = torch.bincount(types, minlength=num_types).double()
    pairs = torch.unique(types * num_entities + index[1])
    targets = torch.bincount(torch.div(pairs, num_entities, rounding_mode="floor"), minlength=num_types).double()
    card = counts / targets.clamp(min=1)
    direction = (torch.arange(num_types, device=types.device) >= num_relations).long()
    band = torch.zeros(num_types, dtype=torch.long, device=types.device)
    for d in (0, 1):
        ids = ((direction == d) & (counts > 0)).nonzero().squeeze(1)
        if ids.numel() == 0:
            continue
        order = ids[torch.argsort(card[ids], stable=True)]
        mass = counts[order]
        mid = (torch.cumsum(mass, 0) - mass / 2) / mass.sum()  # edge-mass quantile of each type's centre
        band[order] = (mid * bands).long().clamp(max=bands - 1)
    group = (direction * bands + band)[types]
    return torch.unique(group, return_inverse=True)[1]


def _crow(sorted_rows: Tensor, n: int) -> Tensor:
    crow = torch.zeros(n + 1, dtype=torch.long, device=sorted_rows.device)
    crow[1:] = torch.bincount(sorted_rows, minlength=n).cumsum(0)
    return crow


def _csr(crow: Tensor, col: Tensor, values: Tensor, shape: tuple[int, int]) -> Tensor:
    with warnings.catch_warnings():  # "sparse CSR support is in beta"
        warnings.simplefilter("ignore", UserWarning)
        return torch.sparse_csr_tensor(crow, col, values, shape, check_invariants=False)


class SlotAggregation:
    """CSR indices of ``blockdiag(A_1, ..., A_heads)``, ``A_k`` the (n, n * slots) attention matrix
    of head k (target ``i``, message row ``j * slots + slot``), and of its transpose.

    The aggregation ``out_i = sum_e a_e z[row_e]`` is then one SpMM for all heads
    (:func:`kgalign.models.gat.block_spmm`, whose backward is an SDDMM and the transposed
    SpMM): no ``(E, heads, channels)`` message tensor in either pass, as in kgalign's sparse GAT.

    Args:
        rows: LongTensor (E,) message rows ``src * slots + slot``; dst: LongTensor (E,) targets;
        num_nodes: n; slots: G + 1; heads: attention heads.
    Attributes:
        order: LongTensor (E,): the edge (in the given order) at each CSR position.
    """

    def __init__(self, rows: Tensor, dst: Tensor, num_nodes: int, slots: int, heads: int):
        n, n_src, e = num_nodes, num_nodes * slots, int(dst.numel())
        self.device = dst.device
        self.order = torch.argsort(dst * n_src + rows, stable=True)
        row, col = dst[self.order], rows[self.order]
        by_col = torch.argsort(col * n + row, stable=True)
        offs_e = torch.arange(heads, device=dst.device).unsqueeze(1) * e
        tail = torch.tensor([heads * e], device=dst.device)
        self.shape, self.shape_t = (heads * n, heads * n_src), (heads * n_src, heads * n)
        self.crow = torch.cat([(_crow(row, n)[:-1].unsqueeze(0) + offs_e).reshape(-1), tail])
        self.col = (col.unsqueeze(0) + torch.arange(heads, device=dst.device).unsqueeze(1) * n_src).reshape(-1)
        self.crow_t = torch.cat([(_crow(col[by_col], n_src)[:-1].unsqueeze(0) + offs_e).reshape(-1), tail])
        self.col_t = (row[by_col].unsqueeze(0) + torch.arange(heads, device=dst.device).unsqueeze(1) * n).reshape(-1)
        self.perm_t = (by_col.unsqueeze(0) + offs_e).reshape(-1)

    def matrix(self, values: Tensor) -> Tensor:
        return _csr(self.crow, self.col, values, self.shape)

    def matrix_t(self, values: Tensor) -> Tensor:
        return _csr(self.crow_t, self.col_t, values[self.perm_t], self.shape_t)


class MultiWeightGATConv(nn.Module):
    """One multi-weight graph attention layer.

    ``h_i' = sum_{j in N(i) u {i}} a_ij W_{g(ij)} x_j`` with
    ``a_ij = softmax_j(LeakyReLU(s_g . W_g x_j + t . W_0 x_i + b_{type(ij)}))`` per
    head, ``W_0`` for the self loop. Heads are concatenated (``concat=True``,
    ``out_dim // heads`` channels each) or averaged.

    Args:
        in_dim, out_dim: widths; heads: attention heads; num_groups: G;
        num_types: edge types (the self loop is type ``num_types``);
        concat: concatenate or average heads; attn_dropout: dropout on ``a``;
        bias: add a learnable output bias; identity_init: every slot starts at the identity.
    Shapes:
        forward(x (n, in_dim), src (E,), dst (E,), group (E,), etype (E,)) -> (n, out_dim);
        the edge arrays exclude self loops (added here).
    """

    def __init__(
        self,
        in_dim: int,
        out_dim: int,
        heads: int = 2,
        num_groups: int = 1,
        num_types: int = 1,
        concat: bool = True,
        attn_dropout: float = 0.0,
        bias: bool = True,
        identity_init: bool = False,
    ):
        super().__init__()
        if concat and out_dim % heads:
            raise ValueError(f"out_dim {out_dim} is not divisible by heads {heads}")
        self.heads, self.concat, self.slots = heads, concat, num_groups + 1
        self.channels = out_dim // heads if concat else out_dim
        self.in_dim, self.identity_init = in_dim, identity_init
        if identity_init and self.heads * self.channels % in_dim:
            raise ValueError(
                f"an identity start needs heads * channels ({self.heads * self.channels}) to be a multiple of in_dim ({in_dim})"
            )
        # Raw parameters, not nn.Linear: reset_parameters() owns their (shared) initialisation.
        self.weight = nn.Parameter(torch.empty(self.slots * heads * self.channels, in_dim))
        self.att_src = nn.Parameter(torch.empty(self.slots, heads, self.channels))
        self.att_dst = nn.Parameter(torch.empty(heads, self.channels))
        self.type_bias = nn.Parameter(torch.empty(num_types + 1, heads))
        self.bias = nn.Parameter(torch.empty(out_dim)) if bias else None
        self.drop = nn.Dropout(attn_dropout)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Start as the plain GAT: every slot gets the *same* Glorot matrix and attention vector,
        and training lets the groups diverge. Independent draws per slot put the self loop and
        each group in unrelated random subspaces and cost about two thirds of Hits@1 on the
        example graphs after 30 steps (docs/models/mpsea.md). With ``identity_init`` that shared
        matrix is the identity (each averaged head, or the concatenated heads together), as
        :class:`~kgalign.models.layers.GraphEncoder`'s ``identity_init``: the entity table passes
        through the layers nearly intact at the start, the reference GAT's diagonal start."""
        fan_in, fan_out = self.in_dim, self.heads * self.channels
        bound = math.sqrt(6.0 / (fan_in + fan_out))
        with torch.no_grad():
            if self.identity_init:
                w = torch.eye(fan_in).repeat(fan_out // fan_in, 1)
            else:
                w = torch.empty(fan_out, fan_in).uniform_(-bound, bound)
            self.weight.copy_(w.repeat(self.slots, 1))
            b = math.sqrt(6.0 / (self.heads + self.channels))  # PyG's glorot on (heads, channels)
            self.att_src.copy_(torch.empty(self.heads, self.channels).uniform_(-b, b).expand_as(self.att_src))
            self.att_dst.uniform_(-b, b)
        nn.init.zeros_(self.type_bias)
        if self.bias is not None:
            nn.init.zeros_(self.bias)

    def edges(self, src: Tensor, dst: Tensor, group: Tensor, etype: Tensor, n: int) -> tuple[Tensor, Tensor, Tensor]:
        """The edges with the n self loops appended: (message rows ``src * slots + slot``, targets, types), each (E + n,)."""
        loops = torch.arange(n, device=src.device)
        rows = torch.cat([src * self.slots + group + 1, loops * self.slots])
        return rows, torch.cat([dst, loops]), torch.cat([etype, loops.new_full((n,), self.type_bias.shape[0] - 1)])

    def forward(
        self, x: Tensor, src: Tensor, dst: Tensor, group: Tensor, etype: Tensor, aggregation: SlotAggregation | None = None
    ) -> Tensor:
        """``aggregation`` (built from :meth:`edges`, cached by :class:`MultiWeightGAT`) sums the
        messages with one SpMM; without it they are gathered and scattered edge by edge."""
        from torch_geometric.utils import softmax

        n, h, c = x.shape[0], self.heads, self.channels
        row, dst, etype = self.edges(src, dst, group, etype, n)
        z = F.linear(x, self.weight)  # (n, slots * h * c)
        # The attention scores are linear in x: fold the attention vectors into the weight
        # (a thin matmul instead of a pass over the (n, slots, h, c) tensor and its backward).
        w = self.weight.view(self.slots, h, c, -1)
        w_src = torch.einsum("shci,shc->shi", w, self.att_src).reshape(self.slots * h, -1)
        w_dst = torch.einsum("hci,hc->hi", w[0], self.att_dst)
        scores = F.linear(x, torch.cat([w_src, w_dst]))
        score_src = scores[:, : self.slots * h].reshape(n * self.slots, h)
        score_dst = scores[:, self.slots * h :]
        # the message of edge e is row ``row[e]`` of z
        logits = F.leaky_relu(score_src[row] + score_dst[dst] + self.type_bias[etype], 0.2)
        alpha = self.drop(softmax(logits.float(), dst, num_nodes=n))  # (E + n, h)
        if aggregation is None:
            msg = z.view(n * self.slots, h, c)[row] * alpha.unsqueeze(-1).to(z.dtype)
            out = msg.new_zeros(n, h, c).index_add_(0, dst, msg)
        else:
            stacked = z.view(n * self.slots, h, c).transpose(0, 1).reshape(h * n * self.slots, c)  # head-major, as the blocks
            values = alpha[aggregation.order].t().reshape(-1)
            out = block_spmm(values, stacked, aggregation).view(h, n, c).transpose(0, 1)
        out = out.reshape(n, h * c) if self.concat else out.mean(1)
        return out if self.bias is None else out + self.bias.to(out.dtype)


class MultiWeightGAT(nn.Module):
    """Entity table followed by ``layers`` :class:`MultiWeightGATConv` layers (ELU between).

    Args:
        num_entities: n; dim: width d; heads, layers, concat, attn_dropout: as GraphEncoder;
        index: LongTensor (2, E) typed directed edges (``RelationEdges.index``);
        types: LongTensor (E,); num_relations: R; bands: cardinality bands per direction;
        bias, identity_init: as :class:`MultiWeightGATConv`.
    Shapes:
        forward() -> (n, dim)
    """

    def __init__(
        self,
        num_entities: int,
        dim: int,
        index: Tensor,
        types: Tensor,
        num_relations: int,
        heads: int = 2,
        layers: int = 2,
        concat: bool = True,
        attn_dropout: float = 0.0,
        bands: int = 2,
        bias: bool = True,
        identity_init: bool = False,
    ):
        super().__init__()
        group = cardinality_groups(index, types, num_entities, num_relations, bands)
        compact = torch.unique(types, return_inverse=True)[1] if types.numel() else types.clone()
        num_groups = int(group.max()) + 1 if group.numel() else 1
        num_types = int(compact.max()) + 1 if compact.numel() else 1
        self.register_buffer("src", index[0].long(), persistent=False)
        self.register_buffer("dst", index[1].long(), persistent=False)
        self.register_buffer("group", group, persistent=False)
        self.register_buffer("etype", compact, persistent=False)
        self.num_groups = num_groups
        self.entity = nn.Parameter(torch.empty(num_entities, dim))
        self.convs = nn.ModuleList(
            MultiWeightGATConv(
                dim, dim, heads, num_groups, num_types, concat=concat, attn_dropout=attn_dropout, bias=bias, identity_init=identity_init
            )
            for _ in range(layers)
        )
        self.sparse = True  # aggregate with a CSR SpMM (False: per-edge gather and scatter, the first version)
        self._aggregation: SlotAggregation | None = None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # MEAformer/MCLEA: N(0, 1/n), as GraphEncoder.
        nn.init.normal_(self.entity, std=1.0 / math.sqrt(max(self.entity.shape[0], 1)))

    def aggregation(self) -> SlotAggregation | None:
        """The layers' shared CSR index (built once per device; every layer has the same slots and heads)."""
        if not self.sparse:
            return None
        agg = self._aggregation
        if agg is None or agg.device != self.src.device:
            conv, n = self.convs[0], self.entity.shape[0]
            rows, dst, _ = conv.edges(self.src, self.dst, self.group, self.etype, n)
            agg = self._aggregation = SlotAggregation(rows, dst, n, conv.slots, conv.heads)
        return agg

    def forward(self) -> Tensor:
        x = self.entity
        agg = self.aggregation()
        for i, conv in enumerate(self.convs):
            x = conv(x, self.src, self.dst, self.group, self.etype, agg)
            if i < len(self.convs) - 1:
                x = F.elu(x)
        return x

"""Graph attention whose aggregation is a sparse x dense product.

torch_geometric's ``GATConv`` (without its compiled extensions) gathers an
``(E, heads, channels)`` message tensor and scatters it back: at FB15K-DB15K
scale (700k edges) that is several hundred MB per layer and most of a
training step. Here the attention coefficients stay ``(heads, E)`` scalars:
they are the values of a CSR matrix, and the aggregation is one CSR SpMM for
all heads (a block-diagonal matrix, one block per head). The backward pass is
the transposed SpMM for the node features and a sampled dense-dense product
(SDDMM) for the coefficients, so no per-edge message tensor exists in either
direction.

:class:`SparseGATConv` with ``weight="full"`` computes what ``GATConv``
computes (self loops, LeakyReLU 0.2 on ``a_src·Wx_j + a_dst·Wx_i``, softmax
over each target's incoming edges, attention dropout, concatenated or
averaged heads, bias), with the same parameter names, so state dicts load
either way. ``weight="diagonal"`` is the MCLEA/MEAformer/NoCo reference
layer (per-dimension weight, ``exp(-LeakyReLU(.))`` scores, no bias; see
``reference-implementations.md`` §5).
"""

from __future__ import annotations

import math
import warnings

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class CSRGraph:
    """A graph's edges with self loops, sorted by target, plus what the SpMMs need.

    The edge order of ``GATConv`` ("PyG order": the given edges without self
    loops, then one loop per node) is kept as a permutation so that attention
    dropout draws the same mask as ``GATConv`` under the same seed.

    Args:
        edge_index: LongTensor (2, E), row 0 = source j, row 1 = target i
            (PyG convention).
        num_nodes: n.
    Attributes:
        row, col: LongTensor (E',): target and source of every edge in CSR
            order (sorted by target, then source); E' = E - loops + n.
        from_pyg: LongTensor (E',): PyG-order position of each CSR edge.
    """

    def __init__(self, edge_index: Tensor, num_nodes: int):
        if edge_index.dim() != 2 or edge_index.shape[0] != 2:
            raise ValueError(f"edge_index must have shape (2, E), got {tuple(edge_index.shape)}")
        if edge_index.dtype.is_floating_point or edge_index.dtype == torch.bool:
            raise ValueError(f"edge_index must hold integer node ids, got {edge_index.dtype}")
        ei = edge_index.long()
        if ei.numel() and (int(ei.min()) < 0 or int(ei.max()) >= num_nodes):
            raise ValueError(f"edge_index refers to nodes outside 0..{num_nodes - 1}")
        ei = ei[:, ei[0] != ei[1]]
        loops = torch.arange(num_nodes, device=ei.device)
        src = torch.cat([ei[0], loops])
        dst = torch.cat([ei[1], loops])
        # Stable sort by (target, source): deterministic CSR order.
        self.from_pyg = torch.argsort(dst * num_nodes + src, stable=True)
        self.row = dst[self.from_pyg]
        self.col = src[self.from_pyg]
        self.num_nodes = num_nodes
        self.num_edges = int(self.row.numel())
        by_source = torch.argsort(self.col * num_nodes + self.row, stable=True)
        self._t_perm = by_source  # CSR position of each edge of the transposed matrix
        self._crow = _crow(self.row, num_nodes)
        self._crow_t = _crow(self.col[by_source], num_nodes)
        self._col_t = self.row[by_source]
        self._blocks: dict[int, _BlockIndex] = {}

    def blocks(self, heads: int) -> _BlockIndex:
        """Index tensors of the block-diagonal (heads·n, heads·n) matrix, one block per head (cached)."""
        if heads not in self._blocks:
            self._blocks[heads] = _BlockIndex(self, heads)
        return self._blocks[heads]

    def dropout_mask(self, heads: int, p: float, dtype: torch.dtype = torch.float32) -> Tensor:
        """(heads, E') keep-mask scaled by 1/(1-p), drawn in PyG order (same RNG use as ``GATConv``)."""
        ones = torch.ones(self.num_edges, heads, dtype=dtype, device=self.row.device)
        return F.dropout(ones, p=p, training=True)[self.from_pyg].t()


def _crow(sorted_rows: Tensor, n: int) -> Tensor:
    crow = torch.zeros(n + 1, dtype=torch.long, device=sorted_rows.device)
    crow[1:] = torch.bincount(sorted_rows, minlength=n).cumsum(0)
    return crow


class _BlockIndex:
    """CSR indices of ``blockdiag(A_1, ..., A_heads)`` and of its transpose."""

    def __init__(self, g: CSRGraph, heads: int):
        n, e = g.num_nodes, g.num_edges
        dev = g.row.device
        offs_e = torch.arange(heads, device=dev).unsqueeze(1) * e
        offs_n = torch.arange(heads, device=dev).unsqueeze(1) * n
        self.shape = (heads * n, heads * n)
        self.crow = torch.cat([(g._crow[:-1].unsqueeze(0) + offs_e).reshape(-1), g._crow.new_tensor([heads * e])])
        self.col = (g.col.unsqueeze(0) + offs_n).reshape(-1)
        self.crow_t = torch.cat([(g._crow_t[:-1].unsqueeze(0) + offs_e).reshape(-1), g._crow_t.new_tensor([heads * e])])
        self.col_t = (g._col_t.unsqueeze(0) + offs_n).reshape(-1)
        self.perm_t = (g._t_perm.unsqueeze(0) + offs_e).reshape(-1)

    def matrix(self, values: Tensor) -> Tensor:
        return _csr(self.crow, self.col, values, self.shape)

    def matrix_t(self, values: Tensor) -> Tensor:
        return _csr(self.crow_t, self.col_t, values[self.perm_t], self.shape)


def _csr(crow: Tensor, col: Tensor, values: Tensor, shape) -> Tensor:
    with warnings.catch_warnings():  # "sparse CSR support is in beta"
        warnings.simplefilter("ignore", UserWarning)
        return torch.sparse_csr_tensor(crow, col, values, shape, check_invariants=False)


class _BlockSpMM(torch.autograd.Function):
    """``blockdiag(A_k) @ X`` with A's values differentiable; no (E, C) tensor in either pass."""

    @staticmethod
    def forward(ctx, values: Tensor, dense: Tensor, index: _BlockIndex) -> Tensor:
        ctx.save_for_backward(values, dense)
        ctx.index = index
        with torch.autocast(dense.device.type, enabled=False):  # autocast would make ``@`` bf16
            return index.matrix(values) @ dense

    @staticmethod
    def backward(ctx, grad: Tensor):
        values, dense = ctx.saved_tensors
        index: _BlockIndex = ctx.index
        grad = grad.contiguous()
        g_values = g_dense = None
        with torch.autocast(dense.device.type, enabled=False):
            if ctx.needs_input_grad[0]:
                # dL/dA_ij = <grad_i, X_j>, only at the stored entries (SDDMM).
                rows, cols = index.shape
                if values.numel() <= rows * cols:
                    g_values = torch.sparse.sampled_addmm(index.matrix(values), grad, dense.t(), beta=0.0).values()
                else:  # more stored entries than cells (a tiny graph with duplicate edges): torch's SDDMM refuses it
                    row_of = torch.repeat_interleave(torch.arange(rows, device=grad.device), index.crow.diff())
                    g_values = (grad[row_of] * dense[index.col]).sum(1)
            if ctx.needs_input_grad[1]:
                g_dense = index.matrix_t(values) @ grad
        return g_values, g_dense, None


def block_spmm(values: Tensor, dense: Tensor, index: _BlockIndex) -> Tensor:
    """(heads·n, C) = blockdiag(A_k) @ dense, A_k's values ``values`` (heads·E',) in block order.

    Half-precision inputs are computed in float32: CPU CSR kernels have no
    bf16 path, and the products are memory-bound, so autocast gains little here.
    """
    dtype = torch.promote_types(values.dtype, dense.dtype)
    if dtype not in (torch.float32, torch.float64):
        dtype = torch.float32
    return _BlockSpMM.apply(values.to(dtype), dense.to(dtype).contiguous(), index)


def segment_softmax(scores: Tensor, row: Tensor, num_nodes: int) -> Tensor:
    """Softmax of ``scores`` (heads, E') over the edges sharing a target ``row`` (E',)."""
    heads = scores.shape[0]
    idx = row.unsqueeze(0).expand(heads, -1)
    # The per-target maximum only guards exp() against overflow; softmax does not depend on it.
    peak = torch.full((heads, num_nodes), float("-inf"), dtype=scores.dtype, device=scores.device)
    peak = peak.scatter_reduce(1, idx, scores.detach(), "amax")
    p = (scores - peak[:, row]).exp()
    total = torch.zeros((heads, num_nodes), dtype=p.dtype, device=p.device).index_add(1, row, p)
    return p / total[:, row]


def _glorot(t: Tensor) -> None:
    bound = math.sqrt(6.0 / (t.size(-2) + t.size(-1)))
    nn.init.uniform_(t, -bound, bound)


class SparseGATConv(nn.Module):
    """One multi-head graph attention layer on a :class:`CSRGraph`.

    Args:
        in_dim: input width.
        out_dim: channels per head C.
        heads: H.
        concat: concatenate heads (output H·C) or average them (output C).
        dropout: dropout on the attention coefficients (training only).
        weight: ``"full"``: ``h = x W`` as ``GATConv`` (``lin.weight``, glorot);
            ``"diagonal"``: ``h_k = x ⊙ w_k`` (``in_dim == out_dim``, ``w``
            initialised to ones, as the reference codes).
        negative_score: score ``-LeakyReLU(.)`` (the reference codes' sign).
        bias: add a learnable bias (zeros at start).
    Shapes:
        forward(x (n, in_dim), graph) -> (n, H·C) or (n, C)
    """

    def __init__(
        self,
        in_dim: int,
        out_dim: int,
        heads: int = 1,
        concat: bool = True,
        dropout: float = 0.0,
        weight: str = "full",
        negative_score: bool = False,
        bias: bool = True,
        negative_slope: float = 0.2,
    ):
        super().__init__()
        if weight not in ("full", "diagonal"):
            raise ValueError(f"weight must be 'full' or 'diagonal', got {weight!r}")
        if weight == "diagonal" and in_dim != out_dim:
            raise ValueError(f"a diagonal weight needs in_dim == out_dim, got {in_dim} and {out_dim}")
        self.in_dim, self.out_dim, self.heads = in_dim, out_dim, heads
        self.concat, self.dropout, self.weight_kind = concat, dropout, weight
        self.negative_score, self.negative_slope = negative_score, negative_slope
        if weight == "full":
            self.lin = nn.Linear(in_dim, heads * out_dim, bias=False)
        else:
            self.diag = nn.Parameter(torch.empty(heads, out_dim))
        self.att_src = nn.Parameter(torch.empty(1, heads, out_dim))
        self.att_dst = nn.Parameter(torch.empty(1, heads, out_dim))
        self.bias = nn.Parameter(torch.empty(heads * out_dim if concat else out_dim)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        if self.weight_kind == "full":
            # GATConv's initialisation, draw for draw (its Linear draws once when
            # built, as nn.Linear does, then again here), so one seed gives the
            # same start with either implementation.
            _glorot(self.lin.weight)
            _glorot(self.att_src)
            _glorot(self.att_dst)
        else:
            # Reference: w = 1, a ~ U(±1/sqrt(2C)) over [a_dst ‖ a_src].
            nn.init.ones_(self.diag)
            bound = 1.0 / math.sqrt(2 * self.out_dim)
            nn.init.uniform_(self.att_dst, -bound, bound)
            nn.init.uniform_(self.att_src, -bound, bound)
        if self.bias is not None:
            nn.init.zeros_(self.bias)

    def forward(self, x: Tensor, graph: CSRGraph) -> Tensor:
        n, heads, c = x.shape[0], self.heads, self.out_dim
        if n != graph.num_nodes:
            raise ValueError(f"x has {n} rows, the graph has {graph.num_nodes} nodes")
        h = self.lin(x).view(n, heads, c) if self.weight_kind == "full" else x.unsqueeze(1) * self.diag
        a_src = (h * self.att_src).sum(-1).t()  # (H, n)
        a_dst = (h * self.att_dst).sum(-1).t()
        scores = F.leaky_relu(a_src[:, graph.col] + a_dst[:, graph.row], self.negative_slope)
        if self.negative_score:
            scores = -scores
        alpha = segment_softmax(scores, graph.row, n)
        if self.training and self.dropout > 0:
            alpha = alpha * graph.dropout_mask(heads, self.dropout, alpha.dtype)
        stacked = h.transpose(0, 1).reshape(heads * n, c)  # head-major, matching the blocks
        out = block_spmm(alpha.reshape(-1), stacked, graph.blocks(heads)).view(heads, n, c)
        out = out.transpose(0, 1).reshape(n, heads * c) if self.concat else out.mean(0)
        if self.bias is not None:
            out = out + self.bias
        return out

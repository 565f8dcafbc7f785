"""MPSEA's fusion transformers: the graph structure transformer and MMPF.

- :class:`GraphStructureTransformer` (paper Sec. 3.4.1): a transformer encoder
  layer (multi-head self-attention, then a two-layer ReLU FFN, each with a
  residual and LayerNorm) over an entity's modality tokens, graph token first.
  Only the graph token's output is kept: it is the graph structure embedding.
  The attention the graph token *receives* gives the graph's fusion score (the
  paper computes the graph weight "separately").
- :class:`PreSynergisticFusion` (MMPF, Sec. 3.4.2): a cross-modal attention
  layer over the other modality tokens (relation, attribute, numeric, name,
  image). Graph-structure and visual key/value pairs are injected, as
  "preparatory information", into the attention of the *textual* queries: we
  prepend them to the keys and values (GSIEA's prefix injection), each from
  its own projection and scaled by a learnable scalar initialised to 1
  (GSIEA's ``kv_weight``). The image query does not see the prefixes. The FFN
  is split: the image token goes through :class:`~kgalign.models.outlook.ImageFFN`,
  textual tokens through a two-layer ReLU FFN.

Scores follow MEAformer: the attention a token receives, summed over heads and
present queries, divided by ``sqrt(M * heads)``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from kgalign.models.outlook import ImageFFN


def _ffn(dim: int, ffn_dim: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(nn.Linear(dim, ffn_dim), nn.ReLU(), nn.Linear(ffn_dim, dim), nn.Dropout(dropout))


class GraphStructureTransformer(nn.Module):
    """Self-attention over modality tokens; returns the graph token's output and its received score.

    Args:
        dim: token width d; heads: attention heads; ffn_dim: FFN width; dropout.
    Shapes:
        forward(x (n, M, d) with the graph token at 0, mask (n, M)) -> (graph (n, d), score (n,))
    """

    def __init__(self, dim: int, heads: int = 5, ffn_dim: int = 300, dropout: float = 0.1):
        super().__init__()
        if dim % heads:
            raise ValueError(f"width {dim} is not divisible by fusion heads {heads}")
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)
        self.norm = nn.LayerNorm(dim)
        self.ffn = _ffn(dim, ffn_dim, dropout)
        self.ffn_norm = nn.LayerNorm(dim)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        n, m, d = x.shape
        dh = d // self.heads
        q, k, v = self.qkv(x).view(n, m, 3, self.heads, dh).unbind(2)
        scores = torch.einsum("nqhd,nkhd->nhqk", q, k).float() / math.sqrt(dh)
        attn = torch.softmax(scores.masked_fill(~mask[:, None, None, :], float("-inf")), -1)
        # Only the graph query's output is needed: (n, h, M) @ (n, M, h, dh).
        ctx = torch.einsum("nhk,nkhd->nhd", self.drop(attn[:, :, 0]).to(v.dtype), v).reshape(n, d)
        g = self.norm(x[:, 0] + self.drop(self.out(ctx)))
        g = self.ffn_norm(g + self.ffn(g))
        received = (attn[..., 0] * mask[:, None, :]).sum((1, 2)) / math.sqrt(m * self.heads)
        return g, received


class PreSynergisticFusion(nn.Module):
    """MMPF: cross-modal attention over the non-graph tokens with graph/visual K/V prefixes.

    Args:
        dim: token width d; heads: fusion heads (5 in the paper); ffn_dim: FFN width;
        dropout: attention/FFN dropout; image_slot: index of the image token among
        the tokens (None: no image modality); graph_prefix, image_prefix: the two
        injections (switches ``mmpf_gph``, ``mmpf_img``); image_ffn: the image
        token's FFN (None: the textual FFN for it too).
    Shapes:
        forward(x (n, S, d), mask (n, S), graph (n, d) or None)
        -> (hidden (n, S, d), score (n, S)); rows of absent tokens are zero.
    """

    def __init__(
        self,
        dim: int,
        heads: int = 5,
        ffn_dim: int = 300,
        dropout: float = 0.1,
        image_slot: int | None = None,
        graph_prefix: bool = True,
        image_prefix: bool = True,
        image_ffn: ImageFFN | None = None,
    ):
        super().__init__()
        if dim % heads:
            raise ValueError(f"width {dim} is not divisible by fusion heads {heads}")
        self.heads, self.image_slot = heads, image_slot
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)
        self.norm = nn.LayerNorm(dim)
        self.drop = nn.Dropout(dropout)
        self.graph_kv = nn.Linear(dim, 2 * dim) if graph_prefix else None
        self.image_kv = nn.Linear(dim, 2 * dim) if image_prefix and image_slot is not None else None
        n_prefix = int(self.graph_kv is not None) + int(self.image_kv is not None)
        # GSIEA's kv_weight: one learnable scale per injected modality, starting at 1.
        self.prefix_scale = nn.Parameter(torch.ones(n_prefix)) if n_prefix else None
        self.ffn = _ffn(dim, ffn_dim, dropout)
        self.ffn_norm = nn.LayerNorm(dim)
        self.image_ffn = image_ffn

    def reset_parameters(self) -> None:
        if self.prefix_scale is not None:
            nn.init.ones_(self.prefix_scale)

    def forward(self, x: Tensor, mask: Tensor, graph: Tensor | None) -> tuple[Tensor, Tensor]:
        n, s, d = x.shape
        h, dh = self.heads, d // self.heads
        q, k, v = self.qkv(x).view(n, s, 3, h, dh).unbind(2)
        keys, values, key_ok = [], [], []
        text = torch.ones(s, dtype=torch.bool, device=x.device)
        if self.image_slot is not None:
            text[self.image_slot] = False
        i = 0
        if self.graph_kv is not None and graph is not None:
            gk, gv = (t * self.prefix_scale[i].to(t.dtype) for t in self.graph_kv(graph).view(n, 2, 1, h, dh).unbind(1))
            keys.append(gk)
            values.append(gv)
            key_ok.append(torch.ones(n, 1, dtype=torch.bool, device=x.device))
            i += 1
        if self.image_kv is not None:
            img = x[:, self.image_slot]
            ik, iv = (t * self.prefix_scale[i].to(t.dtype) for t in self.image_kv(img).view(n, 2, 1, h, dh).unbind(1))
            keys.append(ik)
            values.append(iv)
            key_ok.append(mask[:, self.image_slot : self.image_slot + 1])
        p = len(keys)
        k_all = torch.cat([*keys, k], 1)  # (n, P + S, h, dh)
        v_all = torch.cat([*values, v], 1)
        # (n, S, P + S): prefixes are visible to textual queries only.
        valid = torch.cat([*key_ok, mask], 1)[:, None, :].expand(n, s, p + s).clone()
        if p:
            valid[:, ~text, :p] = False
        # An absent query may see no key at all: let it see itself (its output is zeroed below).
        eye = torch.eye(s, dtype=torch.bool, device=x.device)
        valid[:, :, p:] |= eye & ~mask[:, :, None]
        scores = torch.einsum("nqhd,nkhd->nhqk", q, k_all).float() / math.sqrt(dh)
        attn = torch.softmax(scores.masked_fill(~valid[:, None], float("-inf")), -1)
        ctx = torch.einsum("nhqk,nkhd->nqhd", self.drop(attn).to(v_all.dtype), v_all).reshape(n, s, d)
        hid = self.norm(x + self.drop(self.out(ctx)))
        parts = []
        for j in range(s):
            if j == self.image_slot and self.image_ffn is not None:
                parts.append(self.image_ffn(hid[:, j]))
            else:
                parts.append(self.ffn_norm(hid[:, j] + self.ffn(hid[:, j])))
        hid = torch.stack(parts, 1) * mask.unsqueeze(-1).to(hid.dtype)
        received = (attn[..., p:] * mask[:, None, :, None]).sum((1, 2)) / math.sqrt(s * h)
        return hid, received

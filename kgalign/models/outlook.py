"""The image transformer's FFN of MPSEA: Outlook attention and a convolution module.

MPSEA names an "OutlookerAttention" (OA) module and a convolution module in the
FFN of the image transformer; both act on one entity's image token. Outlook
attention (VOLO, Yuan et al. 2021) is defined on a 2-D grid of patch tokens;
an entity's image token is one d-wide vector, so we read it as a 1-D grid of
``grid`` patches of ``d / grid`` channels (after VGG's fc7 and the image
projection there is no spatial layout left, and the projection learns which
channels land in which patch). On that grid:

- :class:`OutlookAttention1d`: each patch predicts, from itself alone, a
  ``K x K`` attention map over its K-neighbourhood, aggregates the neighbours'
  values, and scatters the K results back onto the neighbourhood (VOLO's
  unfold/fold, summing overlaps);
- :class:`ConvModule1d`: the conformer-style module of GSIEA: pointwise conv to
  2C, GLU, depthwise conv, norm, SiLU, pointwise conv; LayerNorm in place of
  BatchNorm (no batch statistics: identical in training and evaluation, and
  across data-parallel replicas);
- :class:`ImageFFN`: ``x + OA(LN(x))``, ``x + Conv(LN(x))`` (each behind its
  switch), then the two-layer ReLU FFN with residual and LayerNorm that the
  textual tokens use.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn


class OutlookAttention1d(nn.Module):
    """VOLO outlook attention on a 1-D token grid.

    Args:
        channels: C; heads: attention heads (C divisible by heads); kernel: K (odd).
    Shapes:
        forward(x (N, L, C)) -> (N, L, C)
    """

    def __init__(self, channels: int, heads: int = 1, kernel: int = 3):
        super().__init__()
        if channels % heads or kernel % 2 == 0:
            raise ValueError(f"outlook attention: channels {channels} must divide by heads {heads} and kernel {kernel} must be odd")
        self.heads, self.kernel = heads, kernel
        self.v = nn.Linear(channels, channels, bias=False)
        self.attn = nn.Linear(channels, heads * kernel * kernel)
        self.proj = nn.Linear(channels, channels)

    def reset_parameters(self) -> None:
        for m in (self.v, self.attn, self.proj):
            m.reset_parameters()

    def forward(self, x: Tensor) -> Tensor:
        n, length, c = x.shape
        k, h, p = self.kernel, self.heads, self.kernel // 2
        hd = c // h
        v = F.pad(self.v(x), (0, 0, p, p)).unfold(1, k, 1)  # (N, L, C, K): the window of each position
        v = v.reshape(n, length, h, hd, k).transpose(-1, -2)  # (N, L, h, K, hd)
        a = (self.attn(x).view(n, length, h, k, k) * hd**-0.5).softmax(-1)
        local = a @ v  # (N, L, h, K, hd): what position l sends to its K neighbours
        # Fold: neighbour j of position l is position l + j - p; sum the overlaps.
        out = sum(F.pad(local[:, :, :, j], (0, 0, 0, 0, j, k - 1 - j)) for j in range(k))
        out = out[:, p : p + length].reshape(n, length, c)
        return self.proj(out)


class ConvModule1d(nn.Module):
    """Conformer-style convolution over a 1-D token grid.

    Args:
        channels: C; kernel: depthwise kernel size (odd).
    Shapes:
        forward(x (N, L, C)) -> (N, L, C)
    """

    def __init__(self, channels: int, kernel: int = 3):
        super().__init__()
        self.pointwise_in = nn.Conv1d(channels, 2 * channels, 1)
        self.depthwise = nn.Conv1d(channels, channels, kernel, padding=kernel // 2, groups=channels)
        self.norm = nn.LayerNorm(channels)
        self.pointwise_out = nn.Conv1d(channels, channels, 1)

    def reset_parameters(self) -> None:
        for m in (self.pointwise_in, self.depthwise, self.norm, self.pointwise_out):
            m.reset_parameters()

    def forward(self, x: Tensor) -> Tensor:
        y = F.glu(self.pointwise_in(x.transpose(1, 2)), dim=1)
        y = self.depthwise(y).transpose(1, 2)
        y = F.silu(self.norm(y)).transpose(1, 2)
        return self.pointwise_out(y).transpose(1, 2)


class ImageFFN(nn.Module):
    """The image token's FFN: optional Outlook attention and convolution, then a ReLU FFN.

    Args:
        dim: token width d (divisible by ``grid``); ffn_dim: hidden width of the FFN;
        grid: L patches the token is read as; outlook: use OA; conv: use the
        convolution module; heads, kernel: OA heads and window; conv_kernel: depthwise kernel.
    Shapes:
        forward(x (N, d)) -> (N, d)
    """

    def __init__(
        self,
        dim: int,
        ffn_dim: int,
        grid: int = 20,
        outlook: bool = True,
        conv: bool = True,
        heads: int = 1,
        kernel: int = 3,
        conv_kernel: int = 3,
        dropout: float = 0.0,
    ):
        super().__init__()
        if (outlook or conv) and dim % grid:
            raise ValueError(f"image FFN: width {dim} is not divisible by the outlook grid {grid}")
        self.grid = grid
        c = dim // grid
        self.oa = OutlookAttention1d(c, heads, kernel) if outlook else None
        self.oa_norm = nn.LayerNorm(c) if outlook else None
        self.conv = ConvModule1d(c, conv_kernel) if conv else None
        self.conv_norm = nn.LayerNorm(c) if conv else None
        self.ffn = nn.Sequential(nn.Linear(dim, ffn_dim), nn.ReLU(), nn.Linear(ffn_dim, dim), nn.Dropout(dropout))
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: Tensor) -> Tensor:
        n, d = x.shape
        if self.oa is not None or self.conv is not None:
            z = x.view(n, self.grid, d // self.grid)
            if self.oa is not None:
                z = z + self.oa(self.oa_norm(z))
            if self.conv is not None:
                z = z + self.conv(self.conv_norm(z))
            x = z.reshape(n, d)
        return self.norm(x + self.ffn(x))

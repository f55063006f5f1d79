"""Convolutional blocks: a residual block (optionally conditioned on an embedding) and
spatial self-attention, both [B,C,H,W] -> [B,C',H,W]."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def group_norm(channels: int, max_groups: int = 32) -> nn.GroupNorm:
    """GroupNorm over ``channels`` with the most groups <= max_groups that divide them."""
    groups = max(g for g in range(1, min(max_groups, channels) + 1) if channels % g == 0)
    return nn.GroupNorm(groups, channels)


class ResBlock2d(nn.Module):
    """[B,in,H,W] (+ emb [B,emb_dim]) -> [B,out,H,W]: two 3x3 convs with a skip.

    GroupNorm-SiLU-conv, plus a linear projection of ``emb`` (a timestep or class embedding)
    added per channel, then GroupNorm-SiLU-dropout-conv; the skip is a 1x1 conv when the
    channel counts differ (the DDPM U-Net's block).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        emb_dim: int | None = None,
        dropout: float = 0.0,
        max_groups: int = 32,
    ):
        super().__init__()
        for name, value in (("in_channels", in_channels), ("out_channels", out_channels)):
            if value < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")
        self.norm1 = group_norm(in_channels, max_groups)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.emb = nn.Linear(emb_dim, out_channels) if emb_dim else None
        self.norm2 = group_norm(out_channels, max_groups)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        self.skip = (
            nn.Identity()
            if in_channels == out_channels
            else nn.Conv2d(in_channels, out_channels, 1)
        )

    def forward(self, x: torch.Tensor, emb: torch.Tensor | None = None) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        if self.emb is not None:
            if emb is None:
                raise ValueError("emb is required: this block was built with emb_dim")
            h = h + self.emb(F.silu(emb))[:, :, None, None]
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        return self.skip(x) + h


class SelfAttention2d(nn.Module):
    """[B,C,H,W] -> [B,C,H,W]: multi-head self-attention over all H*W positions, residual."""

    def __init__(self, channels: int, n_heads: int = 1, max_groups: int = 32):
        super().__init__()
        if n_heads < 1 or channels % n_heads:
            raise ValueError(f"n_heads must divide channels={channels}, got {n_heads}")
        self.n_heads = n_heads
        self.norm = group_norm(channels, max_groups)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.out = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        qkv = self.qkv(self.norm(x)).reshape(b, 3, self.n_heads, c // self.n_heads, h * w)
        q, k, v = qkv.transpose(-1, -2).unbind(1)  # each [B, heads, HW, C/heads]
        y = F.scaled_dot_product_attention(q, k, v)  # [B, heads, HW, C/heads]
        return x + self.out(y.transpose(-1, -2).reshape(b, c, h, w))

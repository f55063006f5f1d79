"""Causal multi-head self-attention and a pre-norm transformer block, [B,T,dim]: output t
attends to positions <= t only (shift the inputs by one, e.g. a start token, to predict t)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class CausalSelfAttention(nn.Module):
    """[B,T,dim] -> [B,T,dim]: ``n_heads``-head attention under a causal mask."""

    def __init__(self, dim: int, n_heads: int, dropout: float = 0.0, bias: bool = True):
        super().__init__()
        if dim < 1 or n_heads < 1 or dim % n_heads:
            raise ValueError(f"n_heads must divide dim: got dim={dim}, n_heads={n_heads}")
        self.dim, self.n_heads, self.dropout = dim, n_heads, dropout
        self.qkv = nn.Linear(dim, 3 * dim, bias=bias)
        self.proj = nn.Linear(dim, dim, bias=bias)
        self.resid_dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 3 or x.shape[-1] != self.dim:
            raise ValueError(f"x must be [B,T,{self.dim}], got shape {tuple(x.shape)}")
        b, t, d = x.shape
        q, k, v = (
            self.qkv(x).reshape(b, t, 3, self.n_heads, d // self.n_heads).permute(2, 0, 3, 1, 4)
        )  # each [B, heads, T, dim/heads]
        y = F.scaled_dot_product_attention(
            q, k, v, dropout_p=self.dropout if self.training else 0.0, is_causal=True
        )
        return self.resid_dropout(self.proj(y.transpose(1, 2).reshape(b, t, d)))

    def step(
        self, x: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, t: int
    ) -> torch.Tensor:
        """forward's output at position t alone, for incremental decoding: x [B,dim] is the
        input at t; its key and value are written into the caches keys, values
        [B,heads,T,dim/heads] at t, and the query attends to positions 0 .. t of them."""
        b = x.shape[0]
        q, k, v = self.qkv(x).view(b, 3, self.n_heads, -1).unbind(1)  # each [B, heads, hd]
        keys[:, :, t], values[:, :, t] = k, v
        y = F.scaled_dot_product_attention(
            q[:, :, None], keys[:, :, : t + 1], values[:, :, : t + 1]
        )
        return self.resid_dropout(self.proj(y.reshape(b, self.dim)))


class TransformerBlock(nn.Module):
    """[B,T,dim] -> [B,T,dim]: x + attn(LN(x)), then x + MLP(LN(x)) (GPT-2's pre-norm block)."""

    def __init__(self, dim: int, n_heads: int, mlp_ratio: int = 4, dropout: float = 0.0):
        super().__init__()
        if mlp_ratio < 1:
            raise ValueError(f"mlp_ratio must be >= 1, got {mlp_ratio}")
        self.norm1 = nn.LayerNorm(dim)
        self.attention = CausalSelfAttention(dim, n_heads, dropout)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(
            nn.Linear(dim, mlp_ratio * dim),
            nn.GELU(),
            nn.Linear(mlp_ratio * dim, dim),
            nn.Dropout(dropout),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attention(self.norm1(x))
        return x + self.mlp(self.norm2(x))

    def step(
        self, x: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, t: int
    ) -> torch.Tensor:
        """forward's output [B,dim] at position t from the input x [B,dim] there, with this
        block's key and value caches (CausalSelfAttention.step)."""
        x = x + self.attention.step(self.norm1(x), keys, values, t)
        return x + self.mlp(self.norm2(x))

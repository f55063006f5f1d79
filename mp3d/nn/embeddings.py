"""Sinusoidal embeddings of timesteps and positions, and learned positions."""

from __future__ import annotations

import math

import torch
from torch import nn


def sinusoidal_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Positions or timesteps t [...] (any real) -> [..., dim]: [sin(t w_k), cos(t w_k)].

    Frequencies w_k = max_period^(-k/(dim/2)), k = 0..dim/2-1 (the Transformer's and DDPM's);
    an odd ``dim`` gets one zero column at the end.
    """
    if dim < 1:
        raise ValueError(f"dim must be >= 1, got {dim}")
    half = dim // 2
    k = torch.arange(half, dtype=torch.float32, device=t.device)
    freqs = torch.exp(-math.log(max_period) * k / max(half, 1))
    dtype = t.dtype if t.is_floating_point() else torch.float32
    angles = t.to(dtype)[..., None] * freqs.to(dtype)
    out = torch.cat([torch.sin(angles), torch.cos(angles)], dim=-1)
    if dim % 2:
        out = torch.nn.functional.pad(out, (0, 1))
    return out


class SinusoidalEmbedding(nn.Module):
    """Timesteps or positions [...] -> [..., dim] sinusoidal features (no parameters)."""

    def __init__(self, dim: int, max_period: float = 10000.0):
        super().__init__()
        if dim < 1:
            raise ValueError(f"dim must be >= 1, got {dim}")
        self.dim, self.max_period = dim, max_period

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        return sinusoidal_embedding(t, self.dim, self.max_period)


class TimestepEmbedding(nn.Module):
    """Diffusion timesteps t [B] -> [B, dim]: sinusoidal features, then Linear-SiLU-Linear."""

    def __init__(self, dim: int, sinusoidal_dim: int | None = None):
        super().__init__()
        sinusoidal_dim = dim if sinusoidal_dim is None else sinusoidal_dim
        self.sinusoidal = SinusoidalEmbedding(sinusoidal_dim)
        self.mlp = nn.Sequential(nn.Linear(sinusoidal_dim, dim), nn.SiLU(), nn.Linear(dim, dim))

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        return self.mlp(self.sinusoidal(t))


POSITION_KINDS = ("learned", "sinusoidal")


class PositionalEmbedding(nn.Module):
    """Sequence length T -> positions [T, dim] to add to tokens: learned table or sinusoidal."""

    def __init__(self, max_len: int, dim: int, kind: str = "learned"):
        super().__init__()
        if kind not in POSITION_KINDS:
            raise ValueError(f"kind must be one of {POSITION_KINDS}, got {kind!r}")
        if max_len < 1 or dim < 1:
            raise ValueError(f"max_len and dim must be >= 1, got max_len={max_len}, dim={dim}")
        self.max_len, self.dim, self.kind = max_len, dim, kind
        if kind == "learned":
            self.table = nn.Parameter(torch.randn(max_len, dim) * 0.02)
        else:
            table = sinusoidal_embedding(torch.arange(max_len), dim)
            self.register_buffer("table", table, persistent=False)

    def forward(self, length: int) -> torch.Tensor:
        if not 0 <= length <= self.max_len:
            raise ValueError(f"length must be in 0..max_len={self.max_len}, got {length}")
        return self.table[:length]

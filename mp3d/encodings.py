"""Input encodings for coordinate networks: positional encoding, random Fourier features,
spherical harmonics of directions and the multiresolution hash encoding.

`spherical_harmonics` and `hash_encode` are the ops of mp3d.ops, re-exported here."""

from __future__ import annotations

import math

import torch
from torch import nn

from mp3d._backend import Impl
from mp3d.ops.hash_encoding import hash_encode
from mp3d.ops.sh import spherical_harmonics

__all__ = [
    "FourierFeatures",
    "HashEncoding",
    "PositionalEncoding",
    "SphericalHarmonics",
    "hash_encode",
    "spherical_harmonics",
]


class PositionalEncoding(nn.Module):
    """gamma(p) = [p, sin(2^k pi p), cos(2^k pi p)] for k < n_frequencies, per coordinate.

    [..., in_dim] -> [..., out_dim] with out_dim = in_dim * (include_input + 2 n_frequencies).
    """

    def __init__(self, in_dim: int, n_frequencies: int, include_input: bool = True):
        super().__init__()
        if n_frequencies < 0:
            raise ValueError(f"n_frequencies must be >= 0, got {n_frequencies}")
        self.in_dim = in_dim
        self.include_input = include_input
        self.register_buffer(
            "frequencies", (2.0 ** torch.arange(n_frequencies)) * math.pi, persistent=False
        )
        self.out_dim = in_dim * (int(include_input) + 2 * n_frequencies)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        angles = (x[..., None, :] * self.frequencies[:, None]).flatten(-2)  # [..., K*in_dim]
        parts = [x] if self.include_input else []
        return torch.cat(parts + [torch.sin(angles), torch.cos(angles)], dim=-1)


class FourierFeatures(nn.Module):
    """Random Fourier features [cos(B p), sin(B p)] with B ~ N(0, sigma^2) fixed at creation.

    [..., in_dim] -> [..., 2 n_features]. sigma sets the bandwidth (it absorbs the 2 pi).
    """

    def __init__(self, in_dim: int, n_features: int, sigma: float, seed: int = 0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.register_buffer("B", torch.randn(n_features, in_dim, generator=g) * sigma)
        self.out_dim = 2 * n_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        projected = x @ self.B.T
        return torch.cat([torch.cos(projected), torch.sin(projected)], dim=-1)


class SphericalHarmonics(nn.Module):
    """Real spherical harmonics of unit directions up to `degree` (0..4):
    [..., 3] -> [..., (degree+1)^2] (see mp3d.ops.sh)."""

    def __init__(self, degree: int = 4):
        super().__init__()
        if isinstance(degree, bool) or not isinstance(degree, int) or not 0 <= degree <= 4:
            raise ValueError(f"degree must be an int in 0..4, got {degree!r}")
        self.degree = degree
        self.out_dim = (degree + 1) ** 2

    def forward(self, d: torch.Tensor) -> torch.Tensor:
        return spherical_harmonics(d, self.degree)


class HashEncoding(nn.Module):
    """Multiresolution hash encoding (Instant-NGP) of points in the unit cube.

    Level l has resolution floor(base * b^l) with b chosen so the last level reaches
    `finest_resolution`; its table holds min(2^log2_table_size, (res+1)^3) rows of
    `n_features` (dense indexing when the whole grid fits). [N,3] -> [N, n_levels*n_features].
    """

    def __init__(
        self,
        n_levels: int = 16,
        n_features: int = 2,
        log2_table_size: int = 19,
        base_resolution: int = 16,
        finest_resolution: int = 2048,
        impl: Impl = "auto",
    ):
        super().__init__()
        if n_levels < 1 or n_features < 1 or base_resolution < 1:
            raise ValueError("n_levels, n_features and base_resolution must be >= 1")
        if finest_resolution < base_resolution:
            raise ValueError(
                f"finest_resolution must be >= base_resolution={base_resolution}, "
                f"got {finest_resolution}"
            )
        growth = math.exp(
            (math.log(finest_resolution) - math.log(base_resolution)) / max(n_levels - 1, 1)
        )
        resolutions = [
            int(math.floor(base_resolution * growth**level)) for level in range(n_levels)
        ]
        sizes = [min(2**log2_table_size, (r + 1) ** 3) for r in resolutions]
        offsets = [0]
        for size in sizes:
            offsets.append(offsets[-1] + size)
        self.register_buffer("resolutions", torch.tensor(resolutions), persistent=False)
        self.register_buffer("offsets", torch.tensor(offsets), persistent=False)
        self.embeddings = nn.Parameter(torch.empty(offsets[-1], n_features).uniform_(-1e-4, 1e-4))
        self.n_levels, self.n_features = n_levels, n_features
        self.out_dim = n_levels * n_features
        self.impl = impl

    def _apply(self, fn, recurse=True):
        # resolutions and offsets describe the table layout and stay on the CPU.
        resolutions, offsets = self.resolutions, self.offsets
        result = super()._apply(fn, recurse)
        self.resolutions, self.offsets = resolutions, offsets
        return result

    def forward(self, points: torch.Tensor) -> torch.Tensor:
        return hash_encode(points, self.embeddings, self.resolutions, self.offsets, impl=self.impl)

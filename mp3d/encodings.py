"""Input encodings for coordinate networks: positional encoding, random Fourier features,
spherical harmonics of directions and the multiresolution hash encoding."""

from __future__ import annotations

import math

import torch
from torch import nn

from mp3d.ops.hash_encoding import hash_encode


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
        self.register_buffer("frequencies", (2.0 ** torch.arange(n_frequencies)) * math.pi,
                             persistent=False)
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
    """Real spherical harmonics of unit directions up to `degree` (0..4): [...,3] -> [...,(d+1)^2]."""

    def __init__(self, degree: int = 4):
        super().__init__()
        if not 0 <= degree <= 4:
            raise ValueError(f"degree must be in 0..4, got {degree}")
        self.degree = degree
        self.out_dim = (degree + 1) ** 2

    def forward(self, d: torch.Tensor) -> torch.Tensor:
        return spherical_harmonics(d, self.degree)


def spherical_harmonics(d: torch.Tensor, degree: int) -> torch.Tensor:
    """Real SH basis (the constants used by 3DGS/Instant-NGP) of unit vectors d [...,3]."""
    x, y, z = d.unbind(-1)
    out = [torch.full_like(x, 0.28209479177387814)]
    if degree >= 1:
        out += [-0.48860251190291987 * y, 0.48860251190291987 * z, -0.48860251190291987 * x]
    if degree >= 2:
        xx, yy, zz, xy, yz, xz = x * x, y * y, z * z, x * y, y * z, x * z
        out += [1.0925484305920792 * xy, -1.0925484305920792 * yz,
                0.31539156525252005 * (2 * zz - xx - yy), -1.0925484305920792 * xz,
                0.5462742152960396 * (xx - yy)]
    if degree >= 3:
        out += [-0.5900435899266435 * y * (3 * xx - yy), 2.890611442640554 * xy * z,
                -0.4570457994644658 * y * (4 * zz - xx - yy),
                0.3731763325901154 * z * (2 * zz - 3 * xx - 3 * yy),
                -0.4570457994644658 * x * (4 * zz - xx - yy), 1.445305721320277 * z * (xx - yy),
                -0.5900435899266435 * x * (xx - 3 * yy)]
    if degree >= 4:
        out += [2.5033429417967046 * xy * (xx - yy), -1.7701307697799304 * yz * (3 * xx - yy),
                0.9461746957575601 * xy * (7 * zz - 1), -0.6690465435572892 * yz * (7 * zz - 3),
                0.10578554691520431 * (zz * (35 * zz - 30) + 3),
                -0.6690465435572892 * xz * (7 * zz - 3), 0.47308734787878004 * (xx - yy) * (7 * zz - 1),
                -1.7701307697799304 * xz * (xx - 3 * yy),
                0.6258357354491761 * (xx * (xx - 3 * yy) - yy * (3 * xx - yy))]
    return torch.stack(out, dim=-1)


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
        impl: str = "auto",
    ):
        super().__init__()
        if n_levels < 1 or n_features < 1 or base_resolution < 1:
            raise ValueError("n_levels, n_features and base_resolution must be >= 1")
        if finest_resolution < base_resolution:
            raise ValueError(
                f"finest_resolution must be >= base_resolution={base_resolution}, "
                f"got {finest_resolution}"
            )
        growth = math.exp((math.log(finest_resolution) - math.log(base_resolution))
                          / max(n_levels - 1, 1))
        resolutions = [int(math.floor(base_resolution * growth ** level)) for level in range(n_levels)]
        sizes = [min(2 ** log2_table_size, (r + 1) ** 3) for r in resolutions]
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

"""Radiance fields: position (and view direction) -> density sigma [N] and colour rgb [N,3]."""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch
from torch import nn
from torch.profiler import record_function

from mp3d.encodings import HashEncoding, PositionalEncoding, SphericalHarmonics


class _TruncExp(torch.autograd.Function):
    """exp(x) whose gradient uses exp(min(x, 15)), so large activations cannot blow up."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return torch.exp(x)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * torch.exp(x.clamp(max=15.0))


def density_activation(name: str):
    """The activation that turns raw network output into density >= 0: softplus or trunc_exp."""
    if name == "softplus":
        return nn.functional.softplus
    if name == "trunc_exp":
        return _TruncExp.apply
    raise ValueError(f"density_activation must be 'softplus' or 'trunc_exp', got {name!r}")


def _mlp(in_dim: int, hidden: int, out_dim: int, n_hidden_layers: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    dim = in_dim
    for _ in range(n_hidden_layers):
        layers += [nn.Linear(dim, hidden), nn.ReLU(inplace=True)]
        dim = hidden
    layers.append(nn.Linear(dim, out_dim))
    return nn.Sequential(*layers)


class Field(nn.Module, ABC):
    """Common interface of radiance fields."""

    @abstractmethod
    def density(self, points: torch.Tensor) -> torch.Tensor:
        """Density sigma [N] (1/scene units) at points [N,3]."""

    @abstractmethod
    def forward(
        self,
        points: torch.Tensor,
        directions: torch.Tensor,
        ray_indices: torch.Tensor | None = None,
    ):
        """(sigma [N], rgb [N,3] in [0,1]) at points [N,3] seen along unit directions: [N,3]
        per sample, or [R,3] per ray with ray_indices [N] (each ray's encoded once)."""


def _per_sample(features: torch.Tensor, ray_indices: torch.Tensor | None) -> torch.Tensor:
    return features if ray_indices is None else features[ray_indices]


class VanillaNeRF(Field):
    """The NeRF MLP: 8 x 256 ReLU layers with a skip at the fifth; density from position only;
    encoded direction enters after the density head, then one 128-unit layer to colour."""

    def __init__(
        self,
        position_frequencies: int = 10,
        direction_frequencies: int = 4,
        width: int = 256,
        depth: int = 8,
        skip: int = 4,
        activation: str = "softplus",
    ):
        super().__init__()
        self.position_encoding = PositionalEncoding(3, position_frequencies)
        self.direction_encoding = PositionalEncoding(3, direction_frequencies)
        in_dim = self.position_encoding.out_dim
        self.skip = skip
        self.trunk = nn.ModuleList()
        for layer in range(depth):
            dim = in_dim if layer == 0 else width
            if layer == skip + 1:
                dim += in_dim
            self.trunk.append(nn.Linear(dim, width))
        self.density_head = nn.Linear(width, 1)
        self.feature = nn.Linear(width, width)
        self.colour = nn.Sequential(
            nn.Linear(width + self.direction_encoding.out_dim, width // 2),
            nn.ReLU(inplace=True),
            nn.Linear(width // 2, 3),
        )
        self.activation = density_activation(activation)

    def _trunk(self, points: torch.Tensor) -> torch.Tensor:
        encoded = self.position_encoding(points)
        h = encoded
        for layer, linear in enumerate(self.trunk):
            if layer == self.skip + 1:
                h = torch.cat([h, encoded], dim=-1)
            h = torch.relu(linear(h))
        return h

    def density(self, points: torch.Tensor) -> torch.Tensor:
        return self.activation(self.density_head(self._trunk(points))[..., 0])

    def forward(
        self,
        points: torch.Tensor,
        directions: torch.Tensor,
        ray_indices: torch.Tensor | None = None,
    ):
        h = self._trunk(points)
        sigma = self.activation(self.density_head(h)[..., 0])
        encoded = _per_sample(self.direction_encoding(directions), ray_indices)
        h = torch.cat([self.feature(h), encoded], dim=-1)
        return sigma, torch.sigmoid(self.colour(h))


class HashNeRF(Field):
    """Instant-NGP style field: hash encoding of the position in the scene box, a small density
    MLP (one output is density, the rest a geometry feature), and a small colour MLP on the
    feature and the spherical-harmonics encoding of the view direction."""

    def __init__(
        self,
        aabb: torch.Tensor,
        n_levels: int = 16,
        n_features: int = 2,
        log2_table_size: int = 19,
        base_resolution: int = 16,
        finest_resolution: int = 2048,
        hidden: int = 64,
        geometry_features: int = 15,
        direction_degree: int = 4,
        activation: str = "trunc_exp",
    ):
        super().__init__()
        self.register_buffer("aabb", torch.as_tensor(aabb, dtype=torch.float32).reshape(6))
        self.encoding = HashEncoding(
            n_levels, n_features, log2_table_size, base_resolution, finest_resolution
        )
        self.density_mlp = _mlp(self.encoding.out_dim, hidden, 1 + geometry_features, 1)
        self.direction_encoding = SphericalHarmonics(direction_degree)
        self.colour_mlp = _mlp(geometry_features + self.direction_encoding.out_dim, hidden, 3, 2)
        self.activation = density_activation(activation)

    def _normalise(self, points: torch.Tensor) -> torch.Tensor:
        low, high = self.aabb[:3], self.aabb[3:]
        return (points - low) / (high - low)

    def geometry(self, points: torch.Tensor) -> torch.Tensor:
        """The density MLP's output [N,1+F] at points [N,3]: the density before its
        activation, then the geometry feature the colour MLP takes."""
        with record_function("nerf.encoding"):
            features = self.encoding(self._normalise(points))
        return self.density_mlp(features)

    def density(self, points: torch.Tensor) -> torch.Tensor:
        return self.activation(self.geometry(points)[..., 0])

    def shade_geometry(
        self,
        geometry: torch.Tensor,
        directions: torch.Tensor,
        ray_indices: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(sigma [N], rgb [N,3]) from geometry [N,1+F] (see geometry) and directions."""
        sigma = self.activation(geometry[..., 0])
        encoded = _per_sample(self.direction_encoding(directions), ray_indices)
        colour_in = torch.cat([geometry[..., 1:], encoded], dim=-1)
        return sigma, torch.sigmoid(self.colour_mlp(colour_in))

    def forward(
        self,
        points: torch.Tensor,
        directions: torch.Tensor,
        ray_indices: torch.Tensor | None = None,
    ):
        return self.shade_geometry(self.geometry(points), directions, ray_indices)

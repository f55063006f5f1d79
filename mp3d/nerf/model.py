"""A trained-or-training NeRF: its field(s), how samples are placed, and how rays render."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.profiler import record_function

from mp3d.cameras import Camera
from mp3d.nerf.fields import HashNeRF, VanillaNeRF
from mp3d.nerf.occupancy import OccupancyGrid
from mp3d.nerf.samplers import importance_bins, merge_bins, pack_bins, ray_aabb, stratified_bins
from mp3d.ops.volume_rendering import render_rays, render_weights
from mp3d.rendering import Rendering
from mp3d.training import Config, check_choice, check_float, check_int

MODEL_KINDS = ("hash", "vanilla")


@dataclass
class ModelLayout(Config):
    """Sizes of a NeRF model's parts, shared by the training config and the model spec."""

    # hash model
    n_levels: int = 16
    log2_table_size: int = 19
    finest_resolution: int = 2048
    grid_resolution: int = 128
    march_steps: int | None = None  # steps across the box diagonal (None: chosen at training)
    alpha_threshold: float = 0.0  # samples with lower opacity are skipped
    # Samples whose rendering weight (by the culling pass) is at most this are skipped: they
    # change a pixel by less than it, and fine steps make many of them.
    weight_threshold: float = 1e-4
    # vanilla model
    n_coarse: int = 64
    n_fine: int = 128

    def validate(self) -> None:
        super().validate()
        check_int("n_levels", self.n_levels, 1, 32)
        check_int("log2_table_size", self.log2_table_size, 4, 30)
        check_int("finest_resolution", self.finest_resolution, 2)
        check_int("grid_resolution", self.grid_resolution, 1, 1024)
        if self.march_steps is not None:
            check_int("march_steps", self.march_steps, 1)
        check_float("alpha_threshold", self.alpha_threshold, 0.0, 1.0)
        check_float("weight_threshold", self.weight_threshold, 0.0, 1.0)
        check_int("n_coarse", self.n_coarse, 1)
        check_int("n_fine", self.n_fine, 0)


@dataclass
class ModelSpec(ModelLayout):
    """Everything needed to rebuild a NeRF model's modules (stored in checkpoints)."""

    kind: str = "hash"
    aabb: list[float] = field(default_factory=lambda: [-1.5, -1.5, -1.5, 1.5, 1.5, 1.5])
    near: float = 2.0
    far: float = 6.0

    def validate(self) -> None:
        super().validate()
        check_choice("model kind", self.kind, MODEL_KINDS)
        if (
            len(self.aabb) != 6
            or not all(math.isfinite(v) for v in self.aabb)
            or not all(lo < hi for lo, hi in zip(self.aabb[:3], self.aabb[3:], strict=True))
        ):
            raise ValueError(f"aabb must be [xmin, ymin, zmin, xmax, ymax, zmax], got {self.aabb}")
        check_float("near", self.near, 0.0)
        check_float("far", self.far, self.near, exclusive_minimum=True)
        if self.march_steps is None:
            self.march_steps = 512


class NeRFModel(nn.Module):
    """A radiance field plus its sampler; renders packed rays with mp3d.ops.volume_rendering."""

    def __init__(self, spec: ModelSpec):
        super().__init__()
        self.spec = spec
        aabb = torch.tensor(spec.aabb, dtype=torch.float32)
        if spec.kind == "hash":
            self.field = HashNeRF(
                aabb,
                n_levels=spec.n_levels,
                log2_table_size=spec.log2_table_size,
                finest_resolution=spec.finest_resolution,
            )
            self.grid = OccupancyGrid(aabb, resolution=spec.grid_resolution)
        else:
            self.field = VanillaNeRF()
            self.coarse_field = VanillaNeRF()
        self.register_buffer("aabb", aabb)

    @property
    def step_size(self) -> float:
        """Marching step of the hash model, in scene units."""
        extent = (self.aabb[3:] - self.aabb[:3]).norm().item()
        return extent / self.spec.march_steps

    @staticmethod
    def _points(t_starts, t_ends, ray_indices, origins, directions) -> torch.Tensor:
        """Midpoints [S,3] of packed samples."""
        mids = (t_starts + t_ends) * 0.5
        return origins[ray_indices] + directions[ray_indices] * mids[:, None]

    def _shade(self, field_module, t_starts, t_ends, ray_indices, origins, directions):
        points = self._points(t_starts, t_ends, ray_indices, origins, directions)
        return field_module(points, directions, ray_indices)

    @torch.no_grad()
    @record_function("nerf.cull")
    def _cull(self, t_starts, t_ends, ray_indices, origins, directions, n_rays):
        """Which samples can contribute, judged by a gradient-free density pass -> (keep [S]
        bool, geometry features [S,F] of the field's trunk). Dropped: near-transparent
        samples (alpha at most `alpha_threshold`), those behind an opaque surface
        (transmittance below the renderer's early-stop threshold) and those whose weight is
        at most `weight_threshold`."""
        points = self._points(t_starts, t_ends, ray_indices, origins, directions)
        geometry = self.field.geometry(points)
        sigmas = self.field.activation(geometry[..., 0])
        weights = render_weights(sigmas, t_starts, t_ends, ray_indices, n_rays)
        alphas = -torch.expm1(-sigmas * (t_ends - t_starts))
        keep = (weights > self.spec.weight_threshold) & (alphas > self.spec.alpha_threshold)
        return keep, geometry

    def render_rays(
        self,
        origins: torch.Tensor,
        directions: torch.Tensor,
        background: torch.Tensor | float,
        jitter: bool = False,
        generator: torch.Generator | None = None,
    ) -> dict[str, torch.Tensor]:
        """Renders rays [R,3] (unit directions) -> {"rgb" [R,3], "opacity" [R], "depth" [R],
        "n_samples"; for the vanilla model also "coarse_rgb" [R,3]}."""
        n_rays = origins.shape[0]
        if self.spec.kind == "hash":
            t_starts, t_ends, ray_indices = self.grid.march(
                origins,
                directions,
                self.spec.near,
                self.spec.far,
                self.step_size,
                jitter,
                generator,
            )
            keep, geometry = self._cull(t_starts, t_ends, ray_indices, origins, directions, n_rays)
            t_starts, t_ends, ray_indices = t_starts[keep], t_ends[keep], ray_indices[keep]
            with record_function("nerf.shade"):
                if torch.is_grad_enabled():
                    sigmas, rgbs = self._shade(
                        self.field, t_starts, t_ends, ray_indices, origins, directions
                    )
                else:  # nothing to differentiate: colour the culling pass's features
                    sigmas, rgbs = self.field.shade_geometry(
                        geometry[keep], directions, ray_indices
                    )
            with record_function("nerf.composite"):
                rgb, opacity, depth = render_rays(
                    sigmas, rgbs, t_starts, t_ends, ray_indices, n_rays, background=background
                )
            return {
                "rgb": rgb,
                "opacity": opacity,
                "depth": depth,
                "n_samples": torch.tensor(t_starts.shape[0]),
            }
        entry, exit_ = ray_aabb(origins, directions, self.aabb)
        near = entry.clamp(min=self.spec.near).minimum(torch.full_like(entry, self.spec.far))
        far = exit_.clamp(max=self.spec.far).maximum(near + 1e-4)
        coarse_bins = stratified_bins(near, far, self.spec.n_coarse, jitter, generator)
        packed = pack_bins(coarse_bins)
        sigmas, rgbs = self._shade(self.coarse_field, *packed, origins, directions)
        coarse_rgb, _, _, weights = render_rays(
            sigmas, rgbs, *packed, n_rays, background=background, return_weights=True
        )
        fine_edges = importance_bins(
            coarse_bins, weights.reshape(n_rays, -1), self.spec.n_fine, jitter, generator
        )
        packed = pack_bins(merge_bins(coarse_bins, fine_edges))
        sigmas, rgbs = self._shade(self.field, *packed, origins, directions)
        rgb, opacity, depth = render_rays(sigmas, rgbs, *packed, n_rays, background=background)
        return {
            "rgb": rgb,
            "opacity": opacity,
            "depth": depth,
            "coarse_rgb": coarse_rgb,
            "n_samples": torch.tensor(packed[0].shape[0]),
        }

    def forward(
        self,
        origins: torch.Tensor,
        directions: torch.Tensor,
        background: torch.Tensor | float,
        jitter: bool = False,
        generator: torch.Generator | None = None,
    ) -> dict[str, torch.Tensor]:
        """render_rays, so that DistributedDataParallel can wrap the model."""
        return self.render_rays(origins, directions, background, jitter, generator)

    @torch.no_grad()
    def render(self, camera: Camera, background=(1.0, 1.0, 1.0), chunk: int = 16384) -> Rendering:
        """Renders a full image seen by `camera`, composited on `background` (an RGB triple
        or a grey level): Rendering(rgb [H,W,3], depth [H,W], opacity [H,W])."""
        device = self.aabb.device
        origins, directions = camera.to(device).rays()
        origins, directions = origins.reshape(-1, 3), directions.reshape(-1, 3)
        bg = torch.as_tensor(background, dtype=torch.float32, device=device)
        parts = [
            self.render_rays(origins[i : i + chunk], directions[i : i + chunk], bg)
            for i in range(0, origins.shape[0], chunk)
        ]
        h, w = camera.height, camera.width
        return Rendering(
            rgb=torch.cat([p["rgb"] for p in parts]).reshape(h, w, 3),
            depth=torch.cat([p["depth"] for p in parts]).reshape(h, w),
            opacity=torch.cat([p["opacity"] for p in parts]).reshape(h, w),
        )

    @torch.no_grad()
    def density(self, points: torch.Tensor) -> torch.Tensor:
        """Density [N] of the (fine) field at world points [N,3]."""
        return self.field.density(points)

    @torch.no_grad()
    def colour(self, points: torch.Tensor, directions: torch.Tensor | None = None) -> torch.Tensor:
        """Colour [N,3] of the field at points [N,3]; seen from straight above by default."""
        if directions is None:
            directions = torch.tensor([0.0, 0.0, -1.0], device=points.device).expand_as(points)
        return self.field(points, directions)[1]

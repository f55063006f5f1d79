"""An occupancy grid over the scene box: skips empty space when placing samples."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from torch.profiler import record_function

from mp3d.ops.ray_marching import march_occupancy
from mp3d.transforms import project_points


class OccupancyGrid(nn.Module):
    """A resolution^3 grid of density estimates over aabb [6], kept as an exponential moving
    maximum of the field's density at jittered cell points; cells above `threshold`
    (in opacity over one marching step) are occupied."""

    def __init__(self, aabb: torch.Tensor, resolution: int = 64, decay: float = 0.95):
        super().__init__()
        if resolution < 2:
            raise ValueError(f"resolution must be >= 2, got {resolution}")
        self.register_buffer("aabb", torch.as_tensor(aabb, dtype=torch.float32).reshape(6))
        self.register_buffer("density", torch.zeros((resolution,) * 3))
        self.register_buffer("occupied", torch.ones((resolution,) * 3, dtype=torch.bool))
        # Cells that no training view shows to be empty (see carve); others stay unoccupied.
        self.register_buffer("hull", torch.ones((resolution,) * 3, dtype=torch.bool))
        self.resolution = resolution
        self.decay = decay

    @property
    def cell_size(self) -> torch.Tensor:
        return (self.aabb[3:] - self.aabb[:3]) / self.resolution

    def cell_centres(self) -> torch.Tensor:
        """Centres [r^3,3] of all cells, in the (x, y, z) index order of the grid."""
        axis = torch.arange(self.resolution, device=self.aabb.device)
        cells = torch.stack(torch.meshgrid(axis, axis, axis, indexing="ij"), dim=-1).reshape(-1, 3)
        return self.aabb[:3] + (cells + 0.5) * self.cell_size

    @torch.no_grad()
    def carve(
        self,
        Ks: torch.Tensor,
        viewmats: torch.Tensor,
        alphas: torch.Tensor,
        empty_below: float = 0.01,
    ) -> None:
        """Space carving from object masks: a cell is outside the hull if any view [N] sees
        its whole footprint as background (alpha [N,H,W] below `empty_below`). Views whose
        masks are all foreground (no alpha channel) carve nothing."""
        centres = self.cell_centres()
        half_diagonal = float(self.cell_size.norm()) / 2
        remaining = torch.arange(centres.shape[0], device=centres.device)  # cells in the hull
        height, width = alphas.shape[1:]
        for K, viewmat, alpha in zip(Ks, viewmats, alphas):
            if float(alpha.min()) >= empty_below:
                continue
            uv, depth = project_points(centres[remaining], K, viewmat, min_depth=1e-6)
            in_front = depth > half_diagonal
            if not bool(in_front.any()):
                continue
            # Dilate the mask by the largest footprint radius of a cell in this view.
            radius = int(torch.ceil(K[0, 0] * half_diagonal / depth[in_front].min()).item()) + 1
            grown = torch.nn.functional.max_pool2d(
                alpha[None, None], 2 * radius + 1, stride=1, padding=radius
            )[0, 0]
            col, row = uv[:, 0].floor().long(), uv[:, 1].floor().long()
            inside = in_front & (col >= 0) & (col < width) & (row >= 0) & (row < height)
            pixel = row.clamp(0, height - 1) * width + col.clamp(0, width - 1)
            remaining = remaining[~(inside & (grown.flatten()[pixel] < empty_below))]
        hull = torch.zeros(centres.shape[0], dtype=torch.bool, device=centres.device)
        hull[remaining] = True
        self.hull = hull.reshape(self.hull.shape)
        self.occupied &= self.hull

    def is_occupied(self, points: torch.Tensor) -> torch.Tensor:
        """Whether each point [N,3] lies in an occupied cell (False outside the box)."""
        relative = (points - self.aabb[:3]) / (self.aabb[3:] - self.aabb[:3])
        cells = (relative * self.resolution).floor().long()
        inside = ((cells >= 0) & (cells < self.resolution)).all(dim=-1)
        cells = cells.clamp(0, self.resolution - 1)
        return inside & self.occupied[cells[:, 0], cells[:, 1], cells[:, 2]]

    @torch.no_grad()
    @record_function("nerf.grid_update")
    def update(
        self,
        density_fn: Callable[[torch.Tensor], torch.Tensor],
        step_size: float,
        threshold: float = 0.01,
        chunk: int = 65536,
        generator: torch.Generator | None = None,
    ) -> None:
        """Re-estimates every cell's density at a jittered point and refreshes occupancy.

        A cell inside the hull is occupied when 1 - exp(-density * step_size) > threshold, or
        when its density is above the grid's mean (so dim but non-empty regions are kept).
        """
        r = self.resolution
        centres = self.cell_centres()
        jitter = torch.rand(centres.shape, generator=generator).to(self.aabb) - 0.5
        points = centres + jitter * self.cell_size
        fresh = torch.cat(
            [density_fn(points[i : i + chunk]).float() for i in range(0, points.shape[0], chunk)]
        ).reshape(r, r, r)
        self.density = torch.maximum(self.density * self.decay, fresh)
        limit = min(
            -torch.log1p(-torch.tensor(threshold)).item() / step_size, float(self.density.mean())
        )
        self.occupied = (self.density > limit) & self.hull

    @record_function("nerf.march")
    def march(
        self,
        origins: torch.Tensor,
        directions: torch.Tensor,
        near: float,
        far: float,
        step_size: float,
        jitter: bool,
        generator: torch.Generator | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Uniform steps of `step_size` along rays [R,3] within the box and [near, far], kept
        where the step's midpoint is occupied -> packed (t_starts, t_ends, ray_indices)
        (mp3d.ops.ray_marching.march_occupancy; jitter shortens each ray's first step by a
        random fraction)."""
        offsets = None
        if jitter:
            offsets = torch.rand(origins.shape[0], generator=generator).to(origins)
        return march_occupancy(
            origins, directions, self.occupied, self.aabb, near, far, step_size, offsets
        )

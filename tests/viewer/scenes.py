"""Small files for the viewer's tests: a coloured mesh, a point cloud, a ball of Gaussians."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from mp3d.splat.model import SH_C0, inverse_sigmoid
from mp3d.splat.ply import save_ply

SPLAT_COLOURS = torch.tensor([[1.0, 0.55, 0.1], [0.15, 0.35, 0.9]])  # x > 0, x <= 0


def write_mesh(path: Path) -> Path:
    """A unit-radius icosphere with red-to-blue vertex colours along x."""
    import trimesh

    mesh = trimesh.creation.icosphere(subdivisions=2)
    t = (mesh.vertices[:, 0] + 1.0) / 2.0
    colours = np.stack([255 * t, 60 + 0 * t, 255 * (1 - t), 255 + 0 * t], axis=1)
    mesh.visual.vertex_colors = colours.astype(np.uint8)
    mesh.export(path)
    return path


def write_points(path: Path, n: int = 2000) -> Path:
    """n points on a unit sphere, coloured by position, as NPZ (points, colours in [0,1])."""
    rng = np.random.default_rng(0)
    points = rng.normal(size=(n, 3))
    points /= np.linalg.norm(points, axis=1, keepdims=True)
    np.savez(path, points=points.astype(np.float32), colours=(points * 0.5 + 0.5))
    return path


def write_splats(path: Path, n: int = 4000, sh_degree: int = 1, seed: int = 0) -> Path:
    """n opaque Gaussians filling a ball of radius 0.8 at the origin, orange where x > 0 and
    blue elsewhere (SPLAT_COLOURS), with a little view-dependent colour (SH degree 1), as a
    3DGS PLY file."""
    generator = torch.Generator().manual_seed(seed)
    directions = torch.nn.functional.normalize(torch.randn(n, 3, generator=generator), dim=-1)
    means = directions * 0.8 * torch.rand(n, 1, generator=generator) ** (1 / 3)
    quats = torch.nn.functional.normalize(torch.randn(n, 4, generator=generator), dim=-1)
    log_scales = torch.full((n, 3), float(np.log(0.05)))
    opacity_logits = inverse_sigmoid(torch.full((n,), 0.9))
    sh = torch.zeros(n, (sh_degree + 1) ** 2, 3)
    colours = torch.where(means[:, :1] > 0, SPLAT_COLOURS[0], SPLAT_COLOURS[1])
    sh[:, 0] = (colours - 0.5) / SH_C0
    if sh_degree >= 1:
        sh[:, 1:, :] = 0.05 * torch.randn(n, (sh_degree + 1) ** 2 - 1, 3, generator=generator)
    return save_ply(path, means, quats, log_scales, opacity_logits, sh)

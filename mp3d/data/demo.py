"""The built-in demo scene: a textured analytic object rendered into a Blender-format folder.

Everything is computed, nothing downloaded, and the result is the same bytes every time:
three SDF primitives (a striped sphere on a checkered rounded slab, ringed by a torus whose
colour runs around it), turned into density with a sharp Laplace CDF of the signed distance
(as in VolSDF) and rendered by mp3d.ops.volume_rendering from cameras on a sphere.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from pathlib import Path

import torch
from PIL import Image
from tqdm import tqdm

from mp3d.cameras import (
    Orbit,
    image_rays,
    intrinsics_from_fov,
    invert_rigid,
    look_at,
    opencv_to_opengl,
)
from mp3d.io import to_uint8
from mp3d.ops.volume_rendering import render_rays

FOV_X = 0.6911  # the lego scene's horizontal field of view, radians
CAMERA_DISTANCE = 4.0
NEAR, FAR = 2.0, 6.0
AABB = (-1.5, -1.5, -1.5, 1.5, 1.5, 1.5)
OBJECT_SCALE = 1.4  # the primitives below are laid out in a unit box, then scaled by this
SURFACE_SHARPNESS = 0.015  # Laplace scale beta of the density, in scene units
SAMPLES_PER_RAY = 256


# ----------------------------------------------------------------------------- the object


def _sphere(p: torch.Tensor) -> torch.Tensor:
    return (p - p.new_tensor([0.0, 0.0, 0.3])).norm(dim=-1) - 0.45


def _slab(p: torch.Tensor) -> torch.Tensor:
    q = (p - p.new_tensor([0.0, 0.0, -0.35])).abs() - p.new_tensor([0.6, 0.6, 0.15])
    rounding = 0.05
    q = q + rounding
    outside = q.clamp(min=0).norm(dim=-1)
    inside = q.max(dim=-1).values.clamp(max=0)
    return outside + inside - rounding


def _torus(p: torch.Tensor) -> torch.Tensor:
    q = p - p.new_tensor([0.0, 0.0, -0.05])
    ring = torch.stack([q[..., :2].norm(dim=-1) - 0.72, q[..., 2]], dim=-1)
    return ring.norm(dim=-1) - 0.1


def demo_sdf(points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Signed distance [...] and albedo [...,3] in [0,1] of the demo object at points [...,3]."""
    points = points / OBJECT_SCALE
    distances = torch.stack([_sphere(points), _slab(points), _torus(points)], dim=-1)
    sdf, part = distances.min(dim=-1)
    x, y, z = points.unbind(-1)
    stripes = (torch.sin(18.0 * z) > 0).to(points.dtype)[..., None]
    sphere = stripes * points.new_tensor([0.95, 0.55, 0.1]) + (1 - stripes) * points.new_tensor(
        [0.95, 0.92, 0.85]
    )
    checker = ((torch.floor(4 * x) + torch.floor(4 * y)) % 2)[..., None]
    slab = checker * points.new_tensor([0.15, 0.3, 0.75]) + (1 - checker) * points.new_tensor(
        [0.9, 0.8, 0.25]
    )
    angle = torch.atan2(y, x)[..., None]
    torus = 0.5 + 0.45 * torch.cat(
        [torch.cos(angle), torch.cos(angle - 2.1), torch.cos(angle + 2.1)], dim=-1
    )
    albedo = torch.where(
        (part == 0)[..., None], sphere, torch.where((part == 1)[..., None], slab, torus)
    )
    return sdf * OBJECT_SCALE, albedo


def demo_density(sdf: torch.Tensor, beta: float = SURFACE_SHARPNESS) -> torch.Tensor:
    """Density from signed distance: (1/beta) * LaplaceCDF(-sdf; beta), in 1/scene units."""
    s = -sdf / beta
    cdf = torch.where(s <= 0, 0.5 * torch.exp(s.clamp(max=0)), 1 - 0.5 * torch.exp(-s.clamp(min=0)))
    return cdf / beta


# ----------------------------------------------------------------------------- rendering


def _ray_box(origins: torch.Tensor, directions: torch.Tensor, aabb) -> tuple[torch.Tensor, ...]:
    """Entry and exit distances [N] of rays through the box (entry > exit: a miss)."""
    low = origins.new_tensor(aabb[:3])
    high = origins.new_tensor(aabb[3:])
    safe = torch.where(directions.abs() < 1e-12, torch.full_like(directions, 1e-12), directions)
    t0, t1 = (low - origins) / safe, (high - origins) / safe
    entry = torch.minimum(t0, t1).max(dim=-1).values.clamp(min=NEAR)
    exit_ = torch.maximum(t0, t1).min(dim=-1).values.clamp(max=FAR)
    return entry, exit_


def render_demo_view(
    K: torch.Tensor, c2w: torch.Tensor, width: int, height: int, chunk: int = 4096
) -> tuple[torch.Tensor, torch.Tensor]:
    """Renders the demo object: colour [H,W,3] (not composited, premultiplied) and alpha [H,W]."""
    origins, directions = image_rays(K, c2w, width, height)
    origins, directions = origins.reshape(-1, 3), directions.reshape(-1, 3)
    rgb = torch.zeros(origins.shape[0], 3)
    alpha = torch.zeros(origins.shape[0])
    entry, exit_ = _ray_box(origins, directions, AABB)
    hit = torch.nonzero(exit_ > entry).squeeze(1)
    steps = (torch.arange(SAMPLES_PER_RAY, dtype=torch.float32) + 0.5) / SAMPLES_PER_RAY
    edges = torch.arange(SAMPLES_PER_RAY + 1, dtype=torch.float32) / SAMPLES_PER_RAY
    for start in range(0, hit.numel(), chunk):
        rays = hit[start : start + chunk]
        t0, t1 = entry[rays, None], exit_[rays, None]
        t_edges = t0 + (t1 - t0) * edges
        t_mid = t0 + (t1 - t0) * steps
        points = origins[rays, None] + directions[rays, None] * t_mid[..., None]
        sdf, albedo = demo_sdf(points)
        n = rays.numel()
        ray_indices = torch.arange(n).repeat_interleave(SAMPLES_PER_RAY)
        colour, opacity, _ = render_rays(
            demo_density(sdf).reshape(-1),
            albedo.reshape(-1, 3),
            t_edges[:, :-1].reshape(-1),
            t_edges[:, 1:].reshape(-1),
            ray_indices,
            n,
        )
        rgb[rays], alpha[rays] = colour, opacity
    return rgb.reshape(height, width, 3), alpha.reshape(height, width)


def view_directions(n: int, offset: float = 0.0) -> torch.Tensor:
    """n unit vectors spread over the sphere above z = -0.35 (Fibonacci lattice) [n,3]."""
    i = torch.arange(n, dtype=torch.float64) + 0.5 + offset
    z = 1.0 - i / n * 1.35
    radius = torch.sqrt((1 - z * z).clamp(min=0))
    golden = math.pi * (3.0 - math.sqrt(5.0))
    phi = golden * i * 7.0 / 3.0 + offset
    return torch.stack([radius * torch.cos(phi), radius * torch.sin(phi), z], dim=-1)


def orbit_c2ws(directions: torch.Tensor, distance: float = CAMERA_DISTANCE) -> torch.Tensor:
    """Camera-to-world [n,4,4] (OpenCV) of cameras at distance * directions looking at 0."""
    eyes = directions * distance
    return invert_rigid(look_at(eyes, torch.zeros_like(eyes)))


def turntable_c2ws(n_frames: int, elevation_deg: float = 25.0) -> torch.Tensor:
    """Camera-to-world [n,4,4] (OpenCV) of a full circle at fixed elevation around the object."""
    orbit = Orbit.around(radius=CAMERA_DISTANCE, elevation_deg=elevation_deg)
    return invert_rigid(orbit.viewmats(n_frames).double())


# ----------------------------------------------------------------------------- files


def _to_png(rgb_premultiplied: torch.Tensor, alpha: torch.Tensor, path: Path) -> None:
    straight = rgb_premultiplied / alpha.clamp(min=1e-6)[..., None]
    Image.fromarray(to_uint8(torch.cat([straight, alpha[..., None]], dim=-1))).save(path)


def _write_split(
    folder: Path, split: str, c2ws: torch.Tensor, K: torch.Tensor, resolution: int, progress: bool
) -> None:
    (folder / split).mkdir()
    frames = []
    for i in tqdm(
        range(c2ws.shape[0]),
        desc=f"rendering demo {split} views",
        disable=not progress,
        leave=False,
    ):
        rgb, alpha = render_demo_view(K, c2ws[i].float(), resolution, resolution)
        _to_png(rgb, alpha, folder / split / f"r_{i}.png")
        gl = opencv_to_opengl(c2ws[i])
        frames.append({"file_path": f"./{split}/r_{i}", "transform_matrix": gl.tolist()})
    meta = {"camera_angle_x": FOV_X, "near": NEAR, "far": FAR, "aabb": list(AABB), "frames": frames}
    (folder / f"transforms_{split}.json").write_text(json.dumps(meta, indent=2))


def write_demo_scene(
    out_dir: str | Path,
    n_train: int = 64,
    n_val: int = 4,
    n_test: int = 8,
    resolution: int = 100,
    progress: bool = True,
) -> Path:
    """Renders the demo scene into `out_dir` as a Blender-format folder; returns its path.

    The folder appears complete or not at all: it is written under a temporary name and
    renamed into place (replacing an older copy).
    """
    for name, value in (
        ("n_train", n_train),
        ("n_val", n_val),
        ("n_test", n_test),
        ("resolution", resolution),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be an int >= 1, got {value!r}")
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    K = intrinsics_from_fov(FOV_X, resolution, resolution)
    splits = {
        "train": orbit_c2ws(view_directions(n_train)),
        "val": orbit_c2ws(view_directions(n_val, offset=0.37)),
        "test": orbit_c2ws(view_directions(n_test, offset=0.71)),
    }
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        for split, c2ws in splits.items():
            _write_split(staging, split, c2ws, K, resolution, progress)
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(staging, out_dir)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    return out_dir


def render_turntable(
    n_frames: int = 36, resolution: int = 100, background=(1.0, 1.0, 1.0), progress: bool = True
) -> torch.Tensor:
    """Frames [F,H,W,3] of the demo object turning once, composited on `background`."""
    K = intrinsics_from_fov(FOV_X, resolution, resolution)
    bg = torch.as_tensor(background, dtype=torch.float32)
    frames = []
    for c2w in tqdm(
        turntable_c2ws(n_frames), desc="rendering turntable", disable=not progress, leave=False
    ):
        rgb, alpha = render_demo_view(K, c2w.float(), resolution, resolution)
        frames.append(rgb + (1 - alpha[..., None]) * bg)
    return torch.stack(frames).clamp(0, 1)

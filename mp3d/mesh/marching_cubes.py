"""Marching cubes over a field sampled on a grid in a box (scikit-image), to trimesh meshes."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from mp3d.io import atomic_path

MESH_SUFFIXES = (".ply", ".obj", ".glb", ".off", ".stl")


class NoSurfaceError(ValueError):
    """The level set {field = threshold} does not cross the box: nothing to mesh. Carries
    the threshold and the range of values (low, high) the field took on the grid."""

    def __init__(self, threshold: float, low: float, high: float):
        self.threshold, self.low, self.high = threshold, low, high
        self.hint = "lower" if threshold >= high else "higher"
        hint = self.hint
        super().__init__(
            f"no surface at threshold {threshold:g}: the field takes values in "
            f"[{low:.4g}, {high:.4g}] over the box; try a {hint} threshold, "
            f"strictly between them"
        )


def _trimesh():
    try:
        import trimesh
    except ImportError as error:  # pragma: no cover - trimesh is a dependency
        raise ImportError("mesh export needs trimesh: pip install trimesh") from error
    return trimesh


@torch.no_grad()
def sample_grid(
    field_fn: Callable[[torch.Tensor], torch.Tensor],
    aabb,
    resolution: int,
    chunk: int = 65536,
    device=None,
    progress: bool = True,
) -> np.ndarray:
    """Evaluates field_fn on a resolution^3 grid of points spanning aabb [6] (corners
    included) -> values [res, res, res] (x, y, z order), in chunks."""
    aabb = torch.as_tensor(aabb, dtype=torch.float32)
    axes = [torch.linspace(float(aabb[i]), float(aabb[i + 3]), resolution) for i in range(3)]
    values = np.empty(resolution**3, dtype=np.float32)
    xy = torch.stack(torch.meshgrid(axes[0], axes[1], indexing="ij"), dim=-1).reshape(-1, 2)
    # One z-slab at a time keeps memory at chunk-size whatever the resolution.
    slabs = range(resolution)
    for k in tqdm(slabs, desc="evaluating field on grid", disable=not progress, leave=False):
        points = torch.cat([xy, axes[2][k].expand(xy.shape[0], 1)], dim=-1).to(device)
        slab = torch.cat(
            [
                field_fn(points[i : i + chunk]).float().cpu()
                for i in range(0, points.shape[0], chunk)
            ]
        )
        values[k::resolution] = slab.numpy()
    return values.reshape(resolution, resolution, resolution)


def extract_mesh(
    field_fn: Callable[[torch.Tensor], torch.Tensor],
    aabb,
    resolution: int = 256,
    threshold: float = 10.0,
    colour_fn: Callable[[torch.Tensor], torch.Tensor] | None = None,
    device=None,
    progress: bool = True,
    inside: str = "above",
    allow_empty: bool = False,
):
    """Mesh of the level set {field = threshold} inside aabb, in world coordinates.

    field_fn maps points [N,3] -> values [N] (e.g. density); `inside="above"` means values
    above the threshold are inside (density), "below" for signed distance. colour_fn, if
    given, maps vertices [V,3] -> colours [V,3] in [0,1] stored as vertex colours.
    Returns a trimesh.Trimesh; raises NoSurfaceError (a ValueError that says which values
    the field took) if the level set does not cross the box, unless `allow_empty`, which
    returns an empty mesh instead.
    """
    if inside not in ("above", "below"):
        raise ValueError(f"inside must be 'above' or 'below', got {inside!r}")
    if isinstance(resolution, bool) or not isinstance(resolution, int) or resolution < 2:
        raise ValueError(f"resolution must be an int >= 2, got {resolution!r}")
    threshold = check_threshold(threshold)
    aabb = torch.as_tensor(aabb, dtype=torch.float32).reshape(6)
    values = sample_grid(field_fn, aabb, resolution, device=device, progress=progress)
    return mesh_from_grid(values, aabb, threshold, colour_fn, device, inside, allow_empty)


def check_threshold(threshold) -> float:
    """`threshold` as a finite float; ValueError naming it otherwise."""
    try:
        number = float(threshold)
    except (TypeError, ValueError, RuntimeError):
        number = math.nan
    if not math.isfinite(number):
        raise ValueError(f"threshold must be a finite number, got {threshold!r}")
    return number


def mesh_from_grid(
    values: np.ndarray,
    aabb,
    threshold: float,
    colour_fn: Callable[[torch.Tensor], torch.Tensor] | None = None,
    device=None,
    inside: str = "above",
    allow_empty: bool = False,
):
    """Marching cubes on field values [R,R,R] sampled at the R^3 grid points spanning aabb
    [6] (corners included, x, y, z order); see extract_mesh for the rest."""
    trimesh = _trimesh()
    from skimage import measure

    if inside not in ("above", "below"):
        raise ValueError(f"inside must be 'above' or 'below', got {inside!r}")
    aabb = torch.as_tensor(aabb, dtype=torch.float32).reshape(6)
    resolution = values.shape[0]
    finite = np.isfinite(values)
    if not finite.all():
        raise ValueError(
            f"the field is not finite at {int((~finite).sum())} of {values.size} grid points"
        )
    low, high = float(values.min()), float(values.max())
    if not (low < threshold < high):
        if allow_empty:
            return trimesh.Trimesh(
                vertices=np.zeros((0, 3)), faces=np.zeros((0, 3), dtype=np.int64)
            )
        raise NoSurfaceError(threshold, low, high)
    if inside == "below":
        values, threshold = -values, -threshold
    spacing = ((aabb[3:] - aabb[:3]) / (resolution - 1)).tolist()
    vertices, faces, normals, _ = measure.marching_cubes(values, level=threshold, spacing=spacing)
    vertices = vertices + aabb[:3].numpy()
    # marching_cubes orients faces towards increasing values; flip so normals point outward.
    mesh = trimesh.Trimesh(
        vertices=vertices, faces=faces[:, ::-1], vertex_normals=-normals, process=False
    )
    if colour_fn is not None and len(vertices):
        with torch.no_grad():
            points = torch.as_tensor(vertices, dtype=torch.float32, device=device)
            colours = torch.cat(
                [
                    colour_fn(points[i : i + 65536]).float().cpu()
                    for i in range(0, points.shape[0], 65536)
                ]
            )
        rgba = np.concatenate([colours.clamp(0, 1).numpy(), np.ones((len(vertices), 1))], axis=1)
        mesh.visual.vertex_colors = (rgba * 255 + 0.5).astype(np.uint8)
    return mesh


def save_mesh(mesh, path: str | Path) -> Path:
    """Writes a trimesh mesh to PLY/OBJ/GLB/OFF/STL (by suffix), atomically."""
    path = Path(path)
    if path.suffix.lower() not in MESH_SUFFIXES:
        raise ValueError(f"mesh path must end in one of {MESH_SUFFIXES}, got {path.name!r}")
    with atomic_path(path) as tmp:
        mesh.export(tmp, file_type=path.suffix.lower()[1:])
    return path

"""Multiresolution iso-surface extraction (MISE), the hierarchical extraction of Occupancy
Networks: evaluate the field on a coarse grid, subdivide only the cells the level set may
cross, and run marching cubes on the finest grid.

The final grid has `initial * 2**upsampling_steps + 1` points per axis spanning the box, the
grid extract_mesh samples at that resolution. At each level a cell is active when its eight
corners are not all on one side of the threshold; active cells are grown by one cell in
every direction (so a surface that enters a cell between its corners is not missed), and
only the grid points of active cells are evaluated at the next level. Every other point of
the finer grid takes the trilinear interpolation of its coarse cell, which stays on its
cell's side of the threshold, so no surface appears there. For a field whose surface every
coarse cell's corners (or a neighbour's) detect, the mesh is the dense grid's mesh.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from scipy import ndimage

from mp3d.mesh.marching_cubes import check_threshold, mesh_from_grid

__all__ = ["MiseResult", "extract_mesh_mise", "mise_grid"]


@dataclass
class MiseResult:
    """The finest grid's values [R,R,R] (true where evaluated, interpolated elsewhere) and
    how many field evaluations it took (a dense grid takes R^3)."""

    values: np.ndarray
    evaluations: int

    @property
    def resolution(self) -> int:
        return self.values.shape[0]


def _upsample(lattice: np.ndarray) -> np.ndarray:
    """A lattice [m,m,m] -> [2m-1]^3 with the old points kept and the new ones trilinear."""
    for axis in range(3):
        shape = list(lattice.shape)
        shape[axis] = 2 * shape[axis] - 1
        fine = np.empty(shape, dtype=lattice.dtype)
        even = [slice(None)] * 3
        odd = [slice(None)] * 3
        even[axis], odd[axis] = slice(0, None, 2), slice(1, None, 2)
        low = [slice(None)] * 3
        high = [slice(None)] * 3
        low[axis], high[axis] = slice(0, -1), slice(1, None)
        fine[tuple(even)] = lattice
        fine[tuple(odd)] = 0.5 * (lattice[tuple(low)] + lattice[tuple(high)])
        lattice = fine
    return lattice


def _active_cells(lattice: np.ndarray, threshold: float) -> np.ndarray:
    """Bool [m-1]^3: cells whose corners disagree about the side of the threshold, grown by
    one cell."""
    above = lattice > threshold
    corners = [
        above[i : i + above.shape[0] - 1, j : j + above.shape[1] - 1, k : k + above.shape[2] - 1]
        for i in (0, 1)
        for j in (0, 1)
        for k in (0, 1)
    ]
    mixed = np.logical_or.reduce(corners) & ~np.logical_and.reduce(corners)
    return ndimage.binary_dilation(mixed, structure=np.ones((3, 3, 3), dtype=bool))


def _cell_points(active: np.ndarray) -> np.ndarray:
    """Bool [2m-1]^3 on the next finer lattice: the points of the active cells [m-1]^3."""
    m = active.shape[0] + 1
    points = np.zeros((2 * m - 1,) * 3, dtype=bool)
    span = 2 * (m - 1)
    for i in range(3):
        for j in range(3):
            for k in range(3):
                points[i : i + span : 2, j : j + span : 2, k : k + span : 2] |= active
    return points


@torch.no_grad()
def _evaluate(
    field_fn, aabb: np.ndarray, resolution: int, indices: np.ndarray, chunk: int, device
) -> np.ndarray:
    """field_fn at the final-grid points with integer indices [N,3]."""
    step = (aabb[3:] - aabb[:3]) / (resolution - 1)
    points = torch.as_tensor(aabb[:3] + indices * step, dtype=torch.float32)
    values = [
        field_fn(points[i : i + chunk].to(device)).float().cpu()
        for i in range(0, len(points), chunk)
    ]
    return torch.cat(values).numpy() if values else np.zeros(0, np.float32)


def mise_grid(
    field_fn: Callable[[torch.Tensor], torch.Tensor],
    aabb,
    threshold: float,
    initial: int = 32,
    upsampling_steps: int = 3,
    chunk: int = 65536,
    device=None,
) -> MiseResult:
    """The finest grid of MISE for field_fn (points [N,3] -> values [N]) in aabb [6]:
    `initial` cells per axis, refined `upsampling_steps` times around {field = threshold}."""
    threshold = check_threshold(threshold)
    for name, value, low in (("initial", initial, 1), ("upsampling_steps", upsampling_steps, 0)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
    resolution = initial * 2**upsampling_steps + 1
    if resolution > 2049:
        raise ValueError(
            f"initial * 2**upsampling_steps + 1 must be at most 2049 grid points "
            f"per axis, got {resolution}"
        )
    box = np.asarray(torch.as_tensor(aabb, dtype=torch.float64).reshape(6))
    stride = 2**upsampling_steps
    axis = np.arange(0, resolution, stride)
    coarse = np.stack(np.meshgrid(axis, axis, axis, indexing="ij"), -1).reshape(-1, 3)
    lattice = _evaluate(field_fn, box, resolution, coarse, chunk, device)
    lattice = lattice.reshape((len(axis),) * 3)
    evaluations = lattice.size
    while stride > 1:
        active = _active_cells(lattice, threshold)
        stride //= 2
        lattice = _upsample(lattice)
        wanted = _cell_points(active)
        wanted[::2, ::2, ::2] = False  # known from the coarser level
        indices = np.argwhere(wanted)
        if len(indices):
            lattice[wanted] = _evaluate(field_fn, box, resolution, indices * stride, chunk, device)
        evaluations += len(indices)
    return MiseResult(lattice, evaluations)


def extract_mesh_mise(
    field_fn: Callable[[torch.Tensor], torch.Tensor],
    aabb,
    threshold: float,
    initial: int = 32,
    upsampling_steps: int = 3,
    inside: str = "above",
    colour_fn: Callable[[torch.Tensor], torch.Tensor] | None = None,
    device=None,
):
    """Mesh of {field = threshold} by MISE (see the module docstring) as a trimesh.Trimesh
    in world coordinates, with .metadata["evaluations"] (the field calls it took) and
    .metadata["resolution"] (grid points per axis); NoSurfaceError if nothing is found."""
    result = mise_grid(field_fn, aabb, threshold, initial, upsampling_steps, device=device)
    mesh = mesh_from_grid(
        result.values, aabb, check_threshold(threshold), colour_fn, device, inside
    )
    mesh.metadata["evaluations"] = result.evaluations
    mesh.metadata["resolution"] = result.resolution
    return mesh

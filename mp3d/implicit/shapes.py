"""A procedural family of closed shapes: random unions of signed-distance primitives.

Each shape is the union (minimum) of 2 to 4 primitives (sphere, rounded box, capsule,
torus), each with its own random rotation, size and position, meshed by marching cubes and
normalised into the unit cube as the real meshes are. Seeds index the family: the same seed
gives the same shape, and disjoint seed ranges give training shapes and shapes never seen
in training, so generalisation can be measured.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy.spatial.transform import Rotation

__all__ = ["PRIMITIVES", "procedural_sdf", "procedural_shape"]

SdfFn = Callable[[np.ndarray], np.ndarray]  # points [N,3] -> signed distance [N]


def _sphere(rng: np.random.Generator) -> SdfFn:
    radius = rng.uniform(0.12, 0.25)
    return lambda p: np.linalg.norm(p, axis=1) - radius


def _rounded_box(rng: np.random.Generator) -> SdfFn:
    half = rng.uniform(0.06, 0.22, size=3)
    rounding = rng.uniform(0.0, 0.04)

    def sdf(p: np.ndarray) -> np.ndarray:
        q = np.abs(p) - half
        outside = np.linalg.norm(np.maximum(q, 0.0), axis=1)
        return outside + np.minimum(q.max(axis=1), 0.0) - rounding

    return sdf


def _capsule(rng: np.random.Generator) -> SdfFn:
    half_length, radius = rng.uniform(0.08, 0.25), rng.uniform(0.05, 0.12)

    def sdf(p: np.ndarray) -> np.ndarray:
        along = np.clip(p[:, 2], -half_length, half_length)
        return np.linalg.norm(p - along[:, None] * np.array([0.0, 0.0, 1.0]), axis=1) - radius

    return sdf


def _torus(rng: np.random.Generator) -> SdfFn:
    major, minor = rng.uniform(0.12, 0.22), rng.uniform(0.03, 0.08)

    def sdf(p: np.ndarray) -> np.ndarray:
        ring = np.linalg.norm(p[:, :2], axis=1) - major
        return np.hypot(ring, p[:, 2]) - minor

    return sdf


PRIMITIVES: dict[str, Callable[[np.random.Generator], SdfFn]] = {
    "sphere": _sphere,
    "rounded_box": _rounded_box,
    "capsule": _capsule,
    "torus": _torus,
}


def _check_seed(seed) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be an int >= 0, got {seed!r}")
    return int(seed)


def procedural_sdf(seed: int) -> SdfFn:
    """The signed distance of shape `seed` of the family, points [N,3] -> [N] (exact
    outside the union, a bound inside it, as the minimum of exact distances is)."""
    rng = np.random.default_rng(_check_seed(seed))
    kinds = list(PRIMITIVES)
    parts = []
    for index in range(int(rng.integers(2, 5))):
        make = PRIMITIVES[kinds[int(rng.integers(len(kinds)))]]
        local = make(rng)
        rotation = Rotation.random(random_state=rng).as_matrix()
        # Later parts start near the earlier ones, so the union stays in one piece mostly.
        centre = np.zeros(3) if index == 0 else rng.uniform(-0.18, 0.18, size=3)
        parts.append((local, rotation, centre))

    def sdf(points: np.ndarray) -> np.ndarray:
        points = np.asarray(points, dtype=np.float64)
        # p_local = R^T (p - c): row vectors times R.
        return np.min([local((points - c) @ r) for local, r, c in parts], axis=0)

    return sdf


def procedural_shape(seed: int, resolution: int = 128):
    """Shape `seed` of the family as a watertight trimesh.Trimesh in the unit cube (longest
    side 1, centred), by marching cubes at `resolution`^3."""
    from mp3d.implicit.sampling import normalise_mesh
    from mp3d.mesh.marching_cubes import mesh_from_grid
    from mp3d.training import check_int

    check_int("resolution", resolution, 16, 512)
    sdf = procedural_sdf(seed)
    half = 0.8  # a part reaches at most 0.18 sqrt(3) + 0.42 (a box's corner) from the origin
    axis = np.linspace(-half, half, resolution)
    grid = np.stack(np.meshgrid(axis, axis, axis, indexing="ij"), axis=-1).reshape(-1, 3)
    values = sdf(grid).reshape(resolution, resolution, resolution)
    mesh = mesh_from_grid(values, [-half] * 3 + [half] * 3, 0.0, inside="below")
    mesh.merge_vertices()
    mesh, _ = normalise_mesh(mesh)
    mesh.metadata["name"] = f"procedural-{int(seed)}"
    return mesh

"""Ground truth for implicit-surface training from a triangle mesh.

Meshes are normalised as in Occupancy Networks: centred on their bounding box and scaled so
the longest side is 1; samples are drawn in the cube of side 1 + padding (padding 0.1),
i.e. [-0.55, 0.55]^3. `Normalisation` keeps the transform, so results map back to the mesh's
own coordinates.

Inside and outside are decided by the generalised winding number (libigl's fast winding
number), not by the parity of one ray, so meshes with holes (the scanned bunny, the teapot)
get sensible labels: a point is inside where the surface winds around it more than half.
libigl was chosen over open3d's RaycastingScene: a 16 MB wheel (open3d: about 900 MB and a
system libusb), and on the 27,864-triangle bunny 200,000 points take 0.24 s for occupancy
and 1.2 s for signed distance on this 2-core CPU.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "NEAR_SURFACE_SIGMAS",
    "PADDING",
    "Normalisation",
    "near_surface_points",
    "normalise_mesh",
    "occupancy",
    "signed_distance",
    "surface_points",
    "uniform_points",
]

PADDING = 0.1  # Occupancy Networks: samples in the cube of side 1 + padding
NEAR_SURFACE_SIGMAS = (0.005, 0.05)  # Gaussian offsets from the surface, unit-cube units


def _igl():
    try:
        import igl
    except ImportError as error:  # pragma: no cover - shown to people without libigl
        raise ImportError(
            "occupancy and signed distance need libigl: pip install libigl"
        ) from error
    return igl


@dataclass(frozen=True)
class Normalisation:
    """The map from a mesh's coordinates to the unit cube: unit = (world - centre) * scale."""

    centre: np.ndarray  # [3]
    scale: float

    @classmethod
    def of_points(cls, points) -> Normalisation:
        """The map putting the bounding box of points [N,3] at the origin, longest side 1."""
        points = np.asarray(points, dtype=np.float64)
        low, high = points.min(axis=0), points.max(axis=0)
        longest = float((high - low).max())
        if not longest > 0:
            raise ValueError("the points have no extent: they all lie at one point")
        return cls((low + high) / 2, 1.0 / longest)

    def to_unit(self, points) -> np.ndarray:
        """World points [N,3] -> unit-cube points [N,3]."""
        return (np.asarray(points, dtype=np.float64) - self.centre) * self.scale

    def to_world(self, points) -> np.ndarray:
        """Unit-cube points [N,3] -> world points [N,3]."""
        return np.asarray(points, dtype=np.float64) / self.scale + self.centre


def _mesh_arrays(mesh) -> tuple[np.ndarray, np.ndarray]:
    vertices = getattr(mesh, "vertices", None)
    faces = getattr(mesh, "faces", None)
    if vertices is None or faces is None or len(faces) == 0:
        raise ValueError("mesh must be a trimesh.Trimesh with at least one triangle")
    vertices = np.ascontiguousarray(vertices, dtype=np.float64)
    if not np.isfinite(vertices).all():
        raise ValueError("mesh vertices must be finite")
    return vertices, np.ascontiguousarray(faces, dtype=np.int64)


def _query_points(points) -> np.ndarray:
    array = np.ascontiguousarray(points, dtype=np.float64)
    if array.ndim != 2 or array.shape[1] != 3:
        raise ValueError(f"points must have shape [N, 3], got {list(array.shape)}")
    if not np.isfinite(array).all():
        raise ValueError(
            f"points must be finite, got {int((~np.isfinite(array)).sum())} NaN or infinite entries"
        )
    return array


def normalise_mesh(mesh):
    """(a copy of `mesh` in the unit cube, the Normalisation that put it there)."""
    vertices, _ = _mesh_arrays(mesh)
    normalisation = Normalisation.of_points(vertices)
    unit = mesh.copy()
    unit.vertices = normalisation.to_unit(vertices)
    return unit, normalisation


def _generator(seed: int) -> np.random.Generator:
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be an int >= 0, got {seed!r}")
    return np.random.default_rng(seed)


def _count(n: int) -> int:
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"n must be an int >= 0, got {n!r}")
    return n


def uniform_points(n: int, padding: float = PADDING, seed: int = 0) -> np.ndarray:
    """n points [n,3] uniform in the cube of side 1 + padding around the origin."""
    if not (np.isfinite(padding) and padding >= 0):
        raise ValueError(f"padding must be a finite number >= 0, got {padding!r}")
    half = 0.5 * (1.0 + padding)
    return _generator(seed).uniform(-half, half, size=(_count(n), 3))


def surface_points(mesh, n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """n points [n,3] uniform on the surface (by area) and their faces' unit normals [n,3]."""
    from mp3d.mesh.metrics import sample_surface

    _mesh_arrays(mesh)
    return (
        sample_surface(mesh, max(_count(n), 1), seed)
        if n > 0
        else (np.zeros((0, 3)), np.zeros((0, 3)))
    )


def near_surface_points(mesh, n: int, sigmas=NEAR_SURFACE_SIGMAS, seed: int = 0) -> np.ndarray:
    """n points [n,3] near the surface: surface points plus isotropic Gaussian noise, the
    points split evenly between the standard deviations `sigmas` (mesh units)."""
    sigmas = [float(s) for s in sigmas]
    if not sigmas or not all(np.isfinite(s) and s > 0 for s in sigmas):
        raise ValueError(f"sigmas must be finite numbers > 0, got {sigmas!r}")
    points, _ = surface_points(mesh, n, seed)
    scale = np.repeat(sigmas, -(-len(points) // len(sigmas)))[: len(points), None]
    return points + _generator(seed + 1).normal(size=points.shape) * scale


def occupancy(mesh, points) -> np.ndarray:
    """Bool [N]: whether each point [N,3] is inside `mesh` (generalised winding number above
    one half), correct for watertight meshes and robust for open ones."""
    vertices, faces = _mesh_arrays(mesh)
    query = _query_points(points)
    if len(query) == 0:
        return np.zeros(0, dtype=bool)
    return np.asarray(_igl().fast_winding_number(vertices, faces, query)) > 0.5


def signed_distance(mesh, points) -> np.ndarray:
    """Signed distance [N] of points [N,3] to the surface (mesh units): the distance to the
    nearest point of a triangle, negative inside (winding-number sign)."""
    vertices, faces = _mesh_arrays(mesh)
    query = _query_points(points)
    if len(query) == 0:
        return np.zeros(0)
    igl = _igl()
    distances = igl.signed_distance(
        query, vertices, faces, sign_type=igl.SIGNED_DISTANCE_TYPE_FAST_WINDING_NUMBER
    )[0]
    return np.asarray(distances, dtype=np.float64)

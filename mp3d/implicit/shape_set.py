"""Training and evaluation data for learned shape spaces (occupancy networks, DeepSDF): a
set of shapes in the unit cube, each with surface points and normals, labelled query
points (occupancy and signed distance) and its mesh.

Shapes come from a folder of meshes (each under random rotations and scales, as many
copies as asked) and from the procedural family of mp3d.implicit.shapes. A set is built
once (the winding-number labels take about a second a shape) and saved to one .npz file,
which loads without pickle.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation

from mp3d.implicit.sampling import (
    NEAR_SURFACE_SIGMAS,
    near_surface_points,
    normalise_mesh,
    occupancy,
    signed_distance,
    surface_points,
    uniform_points,
)
from mp3d.training import check_float, check_int

__all__ = [
    "ShapeSamples",
    "augmented",
    "build_shape_set",
    "load_mesh_dir",
    "load_shape_set",
    "sample_shape",
    "save_shape_set",
]

FORMAT, VERSION = "mp3d.shape_set", 1
_FIELDS = ("surface", "normals", "points", "occupancy", "sdf", "vertices", "faces")


@dataclass
class ShapeSamples:
    """One shape in the unit cube ([-0.5, 0.5]^3 around its bounding box's centre)."""

    name: str
    surface: np.ndarray  # [S,3] float32, uniform on the surface by area
    normals: np.ndarray  # [S,3] float32, the unit normals there (outward)
    points: np.ndarray  # [P,3] float32: the first n_uniform uniform in the padded cube,
    # the rest near the surface (Gaussian offsets at NEAR_SURFACE_SIGMAS)
    occupancy: np.ndarray  # [P] bool, inside by the generalised winding number
    sdf: np.ndarray  # [P] float32, signed distance (negative inside), unit-cube units
    vertices: np.ndarray  # [V,3] float32, the mesh, for surface metrics
    faces: np.ndarray  # [T,3] int64
    n_uniform: int

    @property
    def mesh(self):
        """The shape's surface as a trimesh.Trimesh."""
        import trimesh

        return trimesh.Trimesh(self.vertices, self.faces, process=False)

    @property
    def uniform(self) -> slice:
        return slice(0, self.n_uniform)

    @property
    def near(self) -> slice:
        return slice(self.n_uniform, len(self.points))


def load_mesh_dir(path: str | Path) -> list[tuple[str, object]]:
    """(file stem, trimesh.Trimesh) of every mesh file in a folder, sorted by name;
    errors name the folder (missing, or holding no mesh) or the file that does not parse."""
    from mp3d.mesh.files import MESH_READ_SUFFIXES, load_mesh

    folder = Path(path)
    if not folder.is_dir():
        raise FileNotFoundError(f"mesh folder not found: {folder}")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in MESH_READ_SUFFIXES)
    if not files:
        raise ValueError(
            f"{folder}: holds no mesh files (expected {', '.join(MESH_READ_SUFFIXES)})"
        )
    return [(file.stem, load_mesh(file)) for file in files]


def augmented(mesh, seed: int, scale_range: tuple[float, float] = (0.75, 1.0)):
    """A copy of `mesh` under a random rotation (uniform over SO(3)), put in the unit cube
    and then shrunk by a random factor in scale_range."""
    low, high = (check_float(f"scale_range[{i}]", s, 0.0, 1.0) for i, s in enumerate(scale_range))
    if not 0 < low <= high:
        raise ValueError(f"scale_range must satisfy 0 < low <= high <= 1, got {scale_range!r}")
    rng = np.random.default_rng(check_int("seed", seed, 0))
    turned = mesh.copy()
    turned.vertices = np.asarray(mesh.vertices) @ Rotation.random(random_state=rng).as_matrix().T
    unit, _ = normalise_mesh(turned)
    unit.vertices = unit.vertices * rng.uniform(low, high)
    return unit


def sample_shape(
    mesh,
    name: str,
    n_surface: int = 10_000,
    n_uniform: int = 10_000,
    n_near: int = 10_000,
    seed: int = 0,
    sigmas: Sequence[float] = NEAR_SURFACE_SIGMAS,
) -> ShapeSamples:
    """The samples of one mesh already in the unit cube (normalise_mesh or augmented)."""
    for arg, n in (("n_surface", n_surface), ("n_uniform", n_uniform), ("n_near", n_near)):
        check_int(arg, n, 1)
    surface, normals = surface_points(mesh, n_surface, seed)
    points = np.concatenate(
        [
            uniform_points(n_uniform, seed=seed + 1),
            near_surface_points(mesh, n_near, sigmas, seed + 2),
        ]
    )
    return ShapeSamples(
        name=name,
        surface=surface.astype(np.float32),
        normals=normals.astype(np.float32),
        points=points.astype(np.float32),
        occupancy=occupancy(mesh, points),
        sdf=signed_distance(mesh, points).astype(np.float32),
        vertices=np.asarray(mesh.vertices, dtype=np.float32),
        faces=np.asarray(mesh.faces, dtype=np.int64),
        n_uniform=n_uniform,
    )


def build_shape_set(
    meshes: Iterable[tuple[str, object]] = (),
    copies: int = 1,
    procedural_seeds: Iterable[int] = (),
    seed: int = 0,
    progress: bool = False,
    **sample_options,
) -> list[ShapeSamples]:
    """Samples of `copies` randomly posed copies of each (name, mesh) (named name@i; with
    copies=1 the one copy keeps the mesh's own pose, only normalised) and of the procedural
    shapes of the given seeds (named procedural-SEED). sample_options go to sample_shape."""
    from mp3d.implicit.shapes import procedural_shape

    check_int("copies", copies, 1)
    jobs = []
    for name, mesh in meshes:
        for copy in range(copies):
            jobs.append((f"{name}@{copy}", mesh, copy))
    jobs += [(f"procedural-{s}", None, s) for s in procedural_seeds]
    if not jobs:
        raise ValueError("no shapes to build: give meshes or procedural_seeds")
    iterator = jobs
    if progress:
        from tqdm import tqdm

        iterator = tqdm(jobs, desc="sampling shapes", unit="shape")
    shapes = []
    for index, (name, mesh, key) in enumerate(iterator):
        if mesh is None:
            unit = procedural_shape(key)
        elif copies == 1:
            unit, _ = normalise_mesh(mesh)
        else:
            unit = augmented(mesh, seed * 100_003 + index)
        shapes.append(sample_shape(unit, name, seed=seed * 100_003 + 7 * index, **sample_options))
    return shapes


def save_shape_set(shapes: Sequence[ShapeSamples], path: str | Path) -> Path:
    """Writes a shape set to one .npz file, atomically."""
    from mp3d.io import atomic_path

    arrays: dict[str, np.ndarray] = {
        "format": np.array(FORMAT),
        "version": np.array(VERSION),
        "names": np.array([s.name for s in shapes]),
        "n_uniform": np.array([s.n_uniform for s in shapes], dtype=np.int64),
    }
    for i, shape in enumerate(shapes):
        for field in _FIELDS:
            arrays[f"{i}/{field}"] = getattr(shape, field)
    path = Path(path)
    with atomic_path(path) as temporary:
        with open(temporary, "wb") as file:
            np.savez(file, **arrays)
    return path


def load_shape_set(path: str | Path) -> list[ShapeSamples]:
    """The shapes saved by save_shape_set (no pickle is run); errors name the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"shape set not found: {path}")
    try:
        with np.load(path, allow_pickle=False) as data:
            if str(data["format"]) != FORMAT or int(data["version"]) != VERSION:
                raise ValueError(f"{path}: not an {FORMAT} v{VERSION} file")
            names, n_uniform = data["names"].tolist(), data["n_uniform"].tolist()
            return [
                ShapeSamples(
                    name=str(name),
                    n_uniform=int(n_uniform[i]),
                    **{field: data[f"{i}/{field}"] for field in _FIELDS},
                )
                for i, name in enumerate(names)
            ]
    except (KeyError, OSError, ValueError) as error:
        if isinstance(error, ValueError) and str(path) in str(error):
            raise
        raise ValueError(f"{path}: not a readable shape set ({error})") from error

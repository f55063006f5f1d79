"""Point-cloud files: PLY (binary, with optional normals), XYZ text and NPZ, in and out.

Every reader returns (points [N,3], normals [N,3] or None) as float64 arrays and names the
file in its errors; every writer writes atomically (a temporary name, then a rename).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mp3d.io import atomic_path

__all__ = ["POINT_CLOUD_SUFFIXES", "load_point_cloud", "save_point_cloud"]

POINT_CLOUD_SUFFIXES = (".ply", ".xyz", ".npz")
_NORMAL_NAMES = ("nx", "ny", "nz")


def _checked(path: Path, points, normals) -> tuple[np.ndarray, np.ndarray | None]:
    points = np.asarray(points, dtype=np.float64)
    if points.ndim != 2 or points.shape[1] != 3:
        raise ValueError(f"{path}: points must have shape [N, 3], got {list(points.shape)}")
    if not np.isfinite(points).all():
        raise ValueError(
            f"{path}: points must be finite, got "
            f"{int((~np.isfinite(points)).any(axis=1).sum())} bad points"
        )
    if normals is not None:
        normals = np.asarray(normals, dtype=np.float64)
        if normals.shape != points.shape:
            raise ValueError(
                f"{path}: normals must have the shape of the points "
                f"{list(points.shape)}, got {list(normals.shape)}"
            )
        if not np.isfinite(normals).all():
            raise ValueError(f"{path}: normals must be finite")
    return points, normals


def _suffix(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix not in POINT_CLOUD_SUFFIXES:
        raise ValueError(
            f"{path}: point clouds are {', '.join(POINT_CLOUD_SUFFIXES)} files, "
            f"got {suffix or 'no suffix'}"
        )
    return suffix


def save_point_cloud(path: str | Path, points, normals=None) -> Path:
    """Writes points [N,3] (and normals [N,3]) to a .ply, .xyz or .npz file; returns it."""
    path = Path(path)
    suffix = _suffix(path)
    points, normals = _checked(path, points, normals)
    with atomic_path(path) as tmp:
        if suffix == ".npz":
            arrays = (
                {"points": points} if normals is None else {"points": points, "normals": normals}
            )
            with open(tmp, "wb") as handle:
                np.savez(handle, **arrays)
        elif suffix == ".xyz":
            columns = points if normals is None else np.hstack([points, normals])
            np.savetxt(tmp, columns, fmt="%.9g")
        else:
            import plyfile

            names = ["x", "y", "z"] + ([] if normals is None else list(_NORMAL_NAMES))
            vertex = np.empty(len(points), dtype=[(name, "f4") for name in names])
            columns = points if normals is None else np.hstack([points, normals])
            for i, name in enumerate(names):
                vertex[name] = columns[:, i]
            plyfile.PlyData([plyfile.PlyElement.describe(vertex, "vertex")]).write(str(tmp))
    return path


def load_point_cloud(path: str | Path) -> tuple[np.ndarray, np.ndarray | None]:
    """(points [N,3], normals [N,3] or None) of a .ply (vertex x, y, z and optional nx, ny,
    nz; faces ignored), .xyz (3 or 6 numbers a line) or .npz ("points", optional "normals")
    file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"point cloud not found: {path}")
    suffix = _suffix(path)
    try:
        if suffix == ".npz":
            with np.load(path, allow_pickle=False) as data:
                if "points" not in data:
                    raise ValueError(f"{path}: has no 'points' array (found {sorted(data)})")
                points = data["points"]
                normals = data["normals"] if "normals" in data else None
        elif suffix == ".xyz":
            columns = np.loadtxt(path, ndmin=2)
            if columns.shape[1] not in (3, 6):
                raise ValueError(
                    f"{path}: lines must hold 3 (x y z) or 6 (and nx ny nz) "
                    f"numbers, got {columns.shape[1]}"
                )
            points, normals = columns[:, :3], columns[:, 3:] if columns.shape[1] == 6 else None
        else:
            import plyfile

            data = plyfile.PlyData.read(str(path))
            if "vertex" not in data:
                raise ValueError(f"{path}: has no vertex element")
            vertex = data["vertex"]
            names = vertex.data.dtype.names
            if not {"x", "y", "z"} <= set(names):
                raise ValueError(f"{path}: vertices lack x, y, z (found {list(names)})")
            points = np.stack([vertex[name] for name in "xyz"], axis=1)
            normals = (
                np.stack([vertex[name] for name in _NORMAL_NAMES], axis=1)
                if set(_NORMAL_NAMES) <= set(names)
                else None
            )
    except Exception as error:  # a file that does not parse
        if isinstance(error, ValueError) and str(error).startswith(str(path)):
            raise  # one of the messages above
        raise ValueError(f"{path}: cannot read the point cloud ({error})") from error
    return _checked(path, points, normals)

"""Reading meshes: one loader with errors that name the file."""

from __future__ import annotations

from pathlib import Path

import numpy as np

MESH_READ_SUFFIXES = (".obj", ".ply", ".off", ".stl", ".glb", ".gltf")


def load_mesh(path: str | Path):
    """The triangle mesh in an OBJ/PLY/OFF/STL/GLB file as one trimesh.Trimesh (a scene's
    geometries concatenated); FileNotFoundError or ValueError naming the file otherwise."""
    import trimesh

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"mesh file not found: {path}")
    if path.suffix.lower() not in MESH_READ_SUFFIXES:
        raise ValueError(
            f"{path}: not a mesh file (expected one of {', '.join(MESH_READ_SUFFIXES)})"
        )
    try:
        mesh = trimesh.load(path, force="mesh", process=False)
    except Exception as error:  # trimesh raises many kinds for a file it cannot parse
        raise ValueError(f"{path}: cannot read the mesh ({error})") from error
    faces = getattr(mesh, "faces", None)
    if faces is None or len(faces) == 0:
        raise ValueError(f"{path}: holds no triangles")
    if not np.isfinite(mesh.vertices).all():
        raise ValueError(f"{path}: vertex positions must be finite")
    return mesh

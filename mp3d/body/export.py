"""Writes posed bodies: one mesh (OBJ/PLY), or an animation as a folder of per-frame meshes, the
pose parameters (.npz) and a Point Cache 2 file (.pc2) of all frames.

PC2 is the simple multi-frame vertex cache that Blender's Mesh Cache modifier (and 3ds Max,
Maya) read: apply it to the first frame's mesh to play the whole sequence. Its layout: the 12
bytes "POINTCACHE2\\0", then little-endian int32 version (1), int32 point count, float32
start frame, float32 sample rate (frames per sample), int32 sample count, then float32
[samples, points, 3].
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch

from mp3d.io import atomic_path

__all__ = ["load_point_cache", "save_animation", "save_body_mesh", "save_point_cache"]

PC2_MAGIC = b"POINTCACHE2\0"
_PC2_HEADER = struct.Struct("<12siiffi")


def _numpy(name: str, value: torch.Tensor | np.ndarray) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    if not isinstance(value, np.ndarray):
        raise ValueError(
            f"{name} must be a torch.Tensor or numpy array, got {type(value).__name__}"
        )
    return value


def _check_faces(faces: np.ndarray, n_vertices: int) -> np.ndarray:
    if faces.ndim != 2 or faces.shape[1] != 3 or not np.issubdtype(faces.dtype, np.integer):
        raise ValueError(
            f"faces must be an integer array of shape [F, 3], got {list(faces.shape)} {faces.dtype}"
        )
    if faces.size and (faces.min() < 0 or faces.max() >= n_vertices):
        raise ValueError(
            f"faces must index vertices 0..{n_vertices - 1}, got {faces.min()}..{faces.max()}"
        )
    return faces


def save_body_mesh(
    vertices: torch.Tensor | np.ndarray, faces: torch.Tensor | np.ndarray, path: str | Path
) -> Path:
    """Writes one mesh, vertices [V,3] and faces [F,3], to .obj or .ply (by suffix), atomically."""
    import trimesh

    from mp3d.mesh import save_mesh

    vertices = _numpy("vertices", vertices)
    if vertices.ndim != 2 or vertices.shape[1] != 3:
        raise ValueError(f"vertices must have shape [V, 3], got {list(vertices.shape)}")
    faces = _check_faces(_numpy("faces", faces), vertices.shape[0])
    mesh = trimesh.Trimesh(vertices=vertices.astype(np.float64), faces=faces, process=False)
    return save_mesh(mesh, path)


def save_point_cache(
    vertices: torch.Tensor | np.ndarray,
    path: str | Path,
    start_frame: float = 0.0,
    sample_rate: float = 1.0,
) -> Path:
    """Writes vertices [T,V,3] as a Point Cache 2 (.pc2) file, atomically."""
    vertices = _numpy("vertices", vertices)
    if vertices.ndim != 3 or vertices.shape[2] != 3:
        raise ValueError(f"vertices must have shape [T, V, 3], got {list(vertices.shape)}")
    n_frames, n_points = vertices.shape[:2]
    header = _PC2_HEADER.pack(PC2_MAGIC, 1, n_points, start_frame, sample_rate, n_frames)
    with atomic_path(path) as tmp, open(tmp, "wb") as file:
        file.write(header)
        file.write(np.ascontiguousarray(vertices, dtype="<f4").tobytes())
    return Path(path)


def load_point_cache(path: str | Path) -> np.ndarray:
    """Reads a Point Cache 2 (.pc2) file: vertices [T,V,3] float32."""
    data = Path(path).read_bytes()
    if len(data) < _PC2_HEADER.size or data[:12] != PC2_MAGIC:
        raise ValueError(f"{path} is not a Point Cache 2 file")
    _, _, n_points, _, _, n_frames = _PC2_HEADER.unpack_from(data)
    expected = _PC2_HEADER.size + 12 * n_points * n_frames
    if len(data) != expected:
        raise ValueError(
            f"{path}: expected {expected} bytes for {n_frames} frames of "
            f"{n_points} points, got {len(data)}"
        )
    body = np.frombuffer(data, dtype="<f4", offset=_PC2_HEADER.size)
    return body.reshape(n_frames, n_points, 3).astype(np.float32)


def save_animation(
    vertices: torch.Tensor | np.ndarray,
    faces: torch.Tensor | np.ndarray,
    out_dir: str | Path,
    params: Mapping[str, torch.Tensor | np.ndarray] | None = None,
    fps: float = 30.0,
    mesh_format: str = "obj",
) -> dict[str, Path | list[Path]]:
    """Writes an animation, vertices [T,V,3] with faces [F,3], to out_dir: frame_0000.obj...
    (or .ply), poses.npz (params, each [T,...], plus fps) and animation.pc2; returns the paths."""
    vertices = _numpy("vertices", vertices)
    if vertices.ndim != 3 or vertices.shape[2] != 3 or vertices.shape[0] == 0:
        raise ValueError(f"vertices must have shape [T>0, V, 3], got {list(vertices.shape)}")
    if mesh_format not in ("obj", "ply"):
        raise ValueError(f"mesh_format must be 'obj' or 'ply', got {mesh_format!r}")
    if not fps > 0:
        raise ValueError(f"fps must be > 0, got {fps}")
    n_frames = vertices.shape[0]
    arrays = {}
    for name, value in (params or {}).items():
        array = _numpy(f"params[{name!r}]", value)
        if array.ndim == 0 or array.shape[0] != n_frames:
            raise ValueError(
                f"params[{name!r}] must have shape [T={n_frames}, ...], got {list(array.shape)}"
            )
        arrays[name] = array
    faces = _check_faces(_numpy("faces", faces), vertices.shape[1])
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    width = max(4, len(str(n_frames - 1)))
    meshes = [
        save_body_mesh(frame, faces, out_dir / f"frame_{t:0{width}d}.{mesh_format}")
        for t, frame in enumerate(vertices)
    ]
    poses = out_dir / "poses.npz"
    with atomic_path(poses) as tmp:
        np.savez(tmp, fps=np.float64(fps), **arrays)
    cache = save_point_cache(vertices, out_dir / "animation.pc2")
    return {"meshes": meshes, "params": poses, "point_cache": cache}

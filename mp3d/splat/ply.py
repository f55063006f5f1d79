"""PLY files of Gaussians in the layout of the original 3DGS code, so scenes move both ways
between mp3d and existing viewers.

One binary little-endian ``vertex`` element of float32 properties, in this order:
x y z, nx ny nz (zeros), f_dc_0..2 (SH band 0 per channel), f_rest_* (the bands >= 1,
channel-major: every R coefficient, then every G, then every B), opacity (logit),
scale_0..2 (log), rot_0..3 (quaternion, w first, as stored, not normalised). Values are
stored before activation, exactly as the model holds them.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import plyfile
import torch

from mp3d.io import atomic_path
from mp3d.ops._validation import check_tensor

__all__ = ["load_ply", "ply_property_names", "save_ply"]


def ply_property_names(n_coeffs: int) -> list[str]:
    """The 3DGS vertex property names, in file order, for SH with n_coeffs = (degree+1)^2."""
    rest = 3 * (n_coeffs - 1)
    return (
        ["x", "y", "z", "nx", "ny", "nz"]
        + [f"f_dc_{i}" for i in range(3)]
        + [f"f_rest_{i}" for i in range(rest)]
        + ["opacity"]
        + [f"scale_{i}" for i in range(3)]
        + [f"rot_{i}" for i in range(4)]
    )


def _as_array(name: str, value: torch.Tensor, shape: tuple[int | None, ...]) -> np.ndarray:
    """`value` as a float32 numpy array, after checking its shape (None = any size)."""
    check_tensor(name, value, shape=shape)
    return value.detach().to("cpu", torch.float32).numpy()


def _vertex_columns(means, quats, log_scales, opacity_logits, sh) -> np.ndarray:
    """All properties as one float32 array [N, P] in the order of ply_property_names."""
    n = means.shape[0]
    for name, array in (
        ("quats", quats),
        ("log_scales", log_scales),
        ("opacity_logits", opacity_logits),
        ("sh", sh),
    ):
        if array.shape[0] != n:
            raise ValueError(
                f"{name} must have {n} entries (the length of means), got {array.shape[0]}"
            )
    if math.isqrt(sh.shape[1]) ** 2 != sh.shape[1] or sh.shape[1] == 0:
        raise ValueError(f"sh must have K = (degree+1)^2 coefficients, got K={sh.shape[1]}")
    rest = sh[:, 1:, :].transpose(0, 2, 1).reshape(n, -1)  # channel-major
    return np.concatenate(
        [
            means,
            np.zeros_like(means),
            sh[:, 0, :],
            rest,
            opacity_logits[:, None],
            log_scales,
            quats,
        ],
        axis=1,
    )


def save_ply(
    path: str | Path,
    means: torch.Tensor,
    quats: torch.Tensor,
    log_scales: torch.Tensor,
    opacity_logits: torch.Tensor,
    sh: torch.Tensor,
) -> Path:
    """Writes Gaussians (means [N,3], quats [N,4], log_scales [N,3], opacity_logits [N],
    sh [N,K,3]) as a 3DGS PLY file, atomically; returns the path."""
    columns = _vertex_columns(
        _as_array("means", means, (None, 3)),
        _as_array("quats", quats, (None, 4)),
        _as_array("log_scales", log_scales, (None, 3)),
        _as_array("opacity_logits", opacity_logits, (None,)),
        _as_array("sh", sh, (None, None, 3)),
    )
    names = ply_property_names(sh.shape[1])
    vertices = np.empty(columns.shape[0], dtype=[(name, "<f4") for name in names])
    for i, name in enumerate(names):
        vertices[name] = columns[:, i]
    element = plyfile.PlyElement.describe(vertices, "vertex")
    with atomic_path(path) as tmp:
        plyfile.PlyData([element], text=False, byte_order="<").write(str(tmp))
    return Path(path)


def _read_vertices(path: Path) -> np.ndarray:
    """The vertex element of a PLY file as a structured array; ValueError naming the file."""
    try:
        ply = plyfile.PlyData.read(str(path))
    except plyfile.PlyParseError as error:
        raise ValueError(f"{path} is not a readable PLY file: {error}") from error
    if "vertex" not in [element.name for element in ply.elements]:
        raise ValueError(f"{path} has no 'vertex' element")
    return ply["vertex"].data


def _n_coeffs(path: Path, names: tuple[str, ...]) -> int:
    """K = (degree+1)^2 from the number of f_rest_* properties in the file."""
    n_rest = sum(name.startswith("f_rest_") for name in names)
    n_coeffs = n_rest // 3 + 1
    if n_rest % 3 or math.isqrt(n_coeffs) ** 2 != n_coeffs:
        raise ValueError(
            f"{path} has {n_rest} f_rest_* properties; 3DGS files have "
            f"3 * ((degree+1)^2 - 1) of them"
        )
    return n_coeffs


def _check_values(path: Path, vertices: np.ndarray, names: list[str]) -> None:
    """ValueError naming the file, the property and the first vertex if any of `names` holds
    a non-finite value, or if a vertex's quaternion rot_0..3 is zero (no rotation)."""
    for name in names:
        bad = ~np.isfinite(vertices[name])
        if bad.any():
            first = int(np.argmax(bad))
            raise ValueError(
                f"{path}: property {name!r} must be finite, got "
                f"{float(vertices[name][first])} at vertex {first} ({int(bad.sum())} "
                f"of {len(vertices)} vertices are not finite)"
            )
    norms = sum(vertices[f"rot_{i}"].astype(np.float64) ** 2 for i in range(4))
    zero = norms == 0
    if zero.any():
        raise ValueError(
            f"{path}: quaternion rot_0..3 must be non-zero, got 0 at vertex "
            f"{int(np.argmax(zero))} ({int(zero.sum())} of {len(vertices)} vertices)"
        )


def load_ply(path: str | Path) -> dict[str, torch.Tensor]:
    """Reads a 3DGS PLY file into float32 tensors: means [N,3], quats [N,4], log_scales [N,3],
    opacity_logits [N] and sh [N,K,3] (values as stored, before activation). ValueError
    naming the file if it is not such a file or holds non-finite values or zero quaternions."""
    path = Path(path)
    vertices = _read_vertices(path)
    names = vertices.dtype.names
    n_coeffs = _n_coeffs(path, names)
    missing = [name for name in ply_property_names(n_coeffs) if name not in names]
    if missing:
        raise ValueError(f"{path} lacks the 3DGS vertex properties {missing}")

    n = len(vertices)

    def columns(*wanted: str) -> torch.Tensor:
        stacked = np.empty((n, len(wanted)), dtype=np.float32)
        for i, name in enumerate(wanted):
            stacked[:, i] = vertices[name]
        return torch.from_numpy(stacked)

    _check_values(path, vertices, ply_property_names(n_coeffs))
    dc = columns("f_dc_0", "f_dc_1", "f_dc_2")[:, None, :]
    rest = columns(*(f"f_rest_{i}" for i in range(3 * (n_coeffs - 1))))
    rest = rest.reshape(n, 3, n_coeffs - 1).transpose(1, 2)
    return {
        "means": columns("x", "y", "z"),
        "quats": columns("rot_0", "rot_1", "rot_2", "rot_3"),
        "log_scales": columns("scale_0", "scale_1", "scale_2"),
        "opacity_logits": columns("opacity")[:, 0],
        "sh": torch.cat([dc, rest], dim=1).contiguous(),
    }

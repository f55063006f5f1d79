"""Rotations (quaternion, axis-angle, rotation matrix) and pinhole projection, batched.

Conventions, one for the whole package:

- Rotation matrices act on column vectors, x' = R x, in a right-handed frame; det R = +1.
- Quaternions are w-first, q = (w, x, y, z) = (cos(t/2), sin(t/2) u) for the rotation by t
  about the unit axis u. Any non-zero q stands for the rotation of q / |q|; q and -q are the
  same rotation, and the functions that return quaternions return unit ones with w >= 0.
- Axis-angle vectors are t u: the angle t in radians times the unit axis u (right-hand
  rule); the zero vector is the identity. matrix_to_axis_angle returns angles in [0, pi].
- Cameras follow mp3d's OpenCV convention: x right, y down, z forward; `viewmat` is the 4x4
  world-to-camera transform, `K` the 3x3 pixel intrinsics, pixel centres at +0.5.

Every function takes any number of leading batch dimensions ("..."), works in float32 and
float64 on any device, and is differentiable. Near the zero rotation the axis-angle
conversions switch to Taylor series, so their values and gradients are exact and finite at
exactly zero (where pose fitting usually starts).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

__all__ = [
    "axis_angle_to_matrix",
    "axis_angle_to_quaternion",
    "axis_rotation",
    "matrix_to_axis_angle",
    "matrix_to_quaternion",
    "project_points",
    "quaternion_to_axis_angle",
    "quaternion_to_matrix",
    "skew",
    "standardize_quaternion",
]

# Below this angle (radians) the axis-angle conversions use Taylor series. Their first
# omitted terms are O(t^6): below float64 round-off at this size.
SMALL_ANGLE = 1e-3


def _check(name: str, value: object, tail: Sequence[int]) -> torch.Tensor:
    """Raises ValueError unless value is a float tensor of shape [..., *tail]."""
    if not isinstance(value, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
    tail = tuple(tail)
    if value.dim() < len(tail) or tuple(value.shape[value.dim() - len(tail) :]) != tail:
        text = ", ".join(str(s) for s in tail)
        raise ValueError(f"{name} must have shape [..., {text}], got {list(value.shape)}")
    if not value.is_floating_point():
        raise ValueError(f"{name} must be a floating-point tensor, got {value.dtype}")
    return value


# ----------------------------------------------------------------------------- axis-angle


def skew(vectors: torch.Tensor) -> torch.Tensor:
    """Cross-product matrices [...,3,3] of vectors [...,3]: skew(v) @ x == cross(v, x)."""
    _check("vectors", vectors, (3,))
    x, y, z = vectors.unbind(-1)
    zero = torch.zeros_like(x)
    rows = (zero, -z, y, z, zero, -x, -y, x, zero)
    return torch.stack(rows, dim=-1).unflatten(-1, (3, 3))


def _angle_factors(angle_sq: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(sin(t)/t, (1 - cos t)/t^2) of t^2 [...], by Taylor series for t < SMALL_ANGLE.

    The square root never sees 0 (the series branch takes 1 instead), so no NaN gradient
    leaks through torch.where at the zero rotation.
    """
    small = angle_sq < SMALL_ANGLE**2
    angle = torch.sqrt(torch.where(small, torch.ones_like(angle_sq), angle_sq))
    t2, t4 = angle_sq, angle_sq * angle_sq
    sinc = torch.where(small, 1.0 - t2 / 6.0 + t4 / 120.0, torch.sin(angle) / angle)
    half = 0.5 * angle  # (1 - cos t) / t^2 = sin(t/2)^2 / (2 (t/2)^2): no cancellation
    cosc = torch.where(small, 0.5 - t2 / 24.0 + t4 / 720.0, 0.5 * (torch.sin(half) / half) ** 2)
    return sinc, cosc


def axis_angle_to_matrix(rot_vecs: torch.Tensor) -> torch.Tensor:
    """Rotation matrices [...,3,3] of axis-angle vectors [...,3] (radians), by Rodrigues:

    R = I + sin(t)/t K + (1 - cos t)/t^2 K^2 = cos(t) I + sin(t)/t K + (1 - cos t)/t^2 v v^T

    with K = skew(v) and t = |v|; exact and smooth at t = 0 (Taylor series below
    SMALL_ANGLE), valid for any angle, including t >= pi.
    """
    _check("rot_vecs", rot_vecs, (3,))
    angle_sq = (rot_vecs * rot_vecs).sum(dim=-1)
    sinc, cosc = _angle_factors(angle_sq)
    cos = 1.0 - cosc * angle_sq
    eye = torch.eye(3, dtype=rot_vecs.dtype, device=rot_vecs.device)
    outer = rot_vecs.unsqueeze(-1) * rot_vecs.unsqueeze(-2)
    return (
        cos[..., None, None] * eye
        + sinc[..., None, None] * skew(rot_vecs)
        + cosc[..., None, None] * outer
    )


def axis_angle_to_quaternion(rot_vecs: torch.Tensor) -> torch.Tensor:
    """Unit quaternions [...,4] (w, x, y, z; w >= 0 for angles up to pi) of axis-angle
    vectors [...,3] (radians): (cos(t/2), sin(t/2)/t v)."""
    _check("rot_vecs", rot_vecs, (3,))
    angle_sq = (rot_vecs * rot_vecs).sum(dim=-1)
    small = angle_sq < SMALL_ANGLE**2
    angle = torch.sqrt(torch.where(small, torch.ones_like(angle_sq), angle_sq))
    half_sinc = torch.where(
        small, 0.5 - angle_sq / 48.0 + angle_sq * angle_sq / 3840.0, torch.sin(0.5 * angle) / angle
    )  # sin(t/2) / t
    cos_half = torch.where(
        small, 1.0 - angle_sq / 8.0 + angle_sq * angle_sq / 384.0, torch.cos(0.5 * angle)
    )
    return torch.cat([cos_half.unsqueeze(-1), half_sinc.unsqueeze(-1) * rot_vecs], dim=-1)


def quaternion_to_axis_angle(quats: torch.Tensor) -> torch.Tensor:
    """Axis-angle vectors [...,3] (radians, angle in [0, pi]) of quaternions [...,4]
    (w, x, y, z; normalised here, q and -q give the same vector)."""
    _check("quats", quats, (4,))
    q = standardize_quaternion(quats)
    w, xyz = q[..., 0], q[..., 1:]
    sin_half_sq = (xyz * xyz).sum(dim=-1)
    small = sin_half_sq < SMALL_ANGLE**2
    sin_half = torch.sqrt(torch.where(small, torch.ones_like(sin_half_sq), sin_half_sq))
    angle = 2.0 * torch.atan2(sin_half, w)
    # angle / sin(t/2) = 2 atan(s/w) / s = 2/w - 2 s^2 / (3 w^3) + 2 s^4 / (5 w^5) - ...; w is
    # close to 1 wherever s is small, since w >= 0 and w^2 + s^2 = 1.
    w_safe = torch.where(small, w, torch.ones_like(w))
    s2 = sin_half_sq
    series = 2.0 / w_safe - 2.0 * s2 / (3.0 * w_safe**3) + 2.0 * s2 * s2 / (5.0 * w_safe**5)
    factor = torch.where(small, series, angle / sin_half)
    return factor.unsqueeze(-1) * xyz


# ----------------------------------------------------------------------------- quaternions


def standardize_quaternion(quats: torch.Tensor) -> torch.Tensor:
    """Unit quaternions [...,4] with w >= 0 of quaternions [...,4] (w, x, y, z; non-zero):
    the same rotations, one representative each."""
    _check("quats", quats, (4,))
    q = torch.nn.functional.normalize(quats, dim=-1)
    return torch.where(q[..., :1] < 0, -q, q)


def quaternion_to_matrix(quats: torch.Tensor) -> torch.Tensor:
    """Rotation matrices [...,3,3] of quaternions [...,4] (w, x, y, z; normalised here)."""
    _check("quats", quats, (4,))
    w, x, y, z = torch.nn.functional.normalize(quats, dim=-1).unbind(-1)
    rows = (
        1 - 2 * (y * y + z * z),
        2 * (x * y - w * z),
        2 * (x * z + w * y),
        2 * (x * y + w * z),
        1 - 2 * (x * x + z * z),
        2 * (y * z - w * x),
        2 * (x * z - w * y),
        2 * (y * z + w * x),
        1 - 2 * (x * x + y * y),
    )
    return torch.stack(rows, dim=-1).unflatten(-1, (3, 3))


def matrix_to_quaternion(matrices: torch.Tensor) -> torch.Tensor:
    """Unit quaternions [...,4] (w, x, y, z; w >= 0) of rotation matrices [...,3,3].

    Each of the four candidate rows below is 4 q_k q for one component q_k; the row of the
    largest q_k^2 is taken, so the division is well conditioned for every angle (the trace
    formula alone fails near pi).
    """
    _check("matrices", matrices, (3, 3))
    m = matrices.flatten(-2)
    m00, m01, m02, m10, m11, m12, m20, m21, m22 = m.unbind(-1)
    candidates = torch.stack(
        [
            torch.stack([1 + m00 + m11 + m22, m21 - m12, m02 - m20, m10 - m01], dim=-1),
            torch.stack([m21 - m12, 1 + m00 - m11 - m22, m01 + m10, m02 + m20], dim=-1),
            torch.stack([m02 - m20, m01 + m10, 1 - m00 + m11 - m22, m12 + m21], dim=-1),
            torch.stack([m10 - m01, m02 + m20, m12 + m21, 1 - m00 - m11 + m22], dim=-1),
        ],
        dim=-2,
    )  # [...,4,4]
    best = torch.diagonal(candidates, dim1=-2, dim2=-1).argmax(dim=-1)  # [...]
    index = best[..., None, None].expand(*best.shape, 1, 4)
    row = torch.gather(candidates, -2, index).squeeze(-2)
    return standardize_quaternion(row)


def matrix_to_axis_angle(matrices: torch.Tensor) -> torch.Tensor:
    """Axis-angle vectors [...,3] (radians, angle in [0, pi]) of rotation matrices [...,3,3]."""
    return quaternion_to_axis_angle(matrix_to_quaternion(matrices))


def axis_rotation(
    axis: str,
    angle: float | torch.Tensor,
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Rotation matrices [...,3,3] by angle [...] (radians, a float gives [3,3]) about the
    coordinate axis "x", "y" or "z" (right-hand rule)."""
    if axis not in ("x", "y", "z"):
        raise ValueError(f"axis must be 'x', 'y' or 'z', got {axis!r}")
    if not isinstance(angle, torch.Tensor):
        if not isinstance(angle, int | float) or not math.isfinite(angle):
            raise ValueError(f"angle must be a finite number or a tensor, got {angle!r}")
        angle = torch.tensor(float(angle), dtype=dtype or torch.get_default_dtype(), device=device)
    elif dtype is not None or device is not None:
        angle = angle.to(dtype=dtype, device=device)
    c, s = torch.cos(angle), torch.sin(angle)
    one, zero = torch.ones_like(c), torch.zeros_like(c)
    rows = {
        "x": (one, zero, zero, zero, c, -s, zero, s, c),
        "y": (c, zero, s, zero, one, zero, -s, zero, c),
        "z": (c, -s, zero, s, c, zero, zero, zero, one),
    }[axis]
    return torch.stack(rows, dim=-1).unflatten(-1, (3, 3))


# ----------------------------------------------------------------------------- projection


def project_points(
    points: torch.Tensor,
    K: torch.Tensor,
    viewmat: torch.Tensor | None = None,
    min_depth: float | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pixel coordinates [...,N,2] and camera depth z [...,N] of points [...,N,3] seen through
    intrinsics K [...,3,3] (pixels) from viewmat [...,4,4] (world-to-camera; None: points
    already in the camera frame). Batch dimensions broadcast. Depths below min_depth (model
    units; None: no clamp) are clamped before the division, keeping points at or behind the
    camera finite; the returned depth is never clamped."""
    _check("points", points, (3,))
    _check("K", K, (3, 3))
    if viewmat is not None:
        _check("viewmat", viewmat, (4, 4))
        points = points @ viewmat[..., :3, :3].transpose(-1, -2) + viewmat[..., None, :3, 3]
    depth = points[..., 2]
    homogeneous = points @ K.transpose(-1, -2)
    divisor = depth if min_depth is None else depth.clamp(min=min_depth)
    return homogeneous[..., :2] / divisor.unsqueeze(-1), depth

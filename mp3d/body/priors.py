"""Priors and the robust loss of SMPLify-style body fitting (mp3d.body.fit).

- gmof: Geman-McClure, rho(r) = sigma^2 r^2 / (sigma^2 + r^2) of squared residuals r^2: r^2
  for residuals well below sigma pixels, saturating at sigma^2 for outliers.
- The pose prior is a diagonal Gaussian fitted to poses drawn uniformly within per-joint
  limits (`JOINT_LIMITS`): mean mu at the centre of each axis-angle component's range and
  standard deviation s = range / sqrt(12), the moments of the uniform distribution, so no
  sample set is needed. No licensed GMM data is used.
- The angle prior penalises elbows and knees bending the wrong way: h = max(0, hyperextension
  angle) (`HYPEREXTENSION` names the axis and sign for the built-in body, found by posing it:
  the forearms fold forwards on -y (left) and +y (right) rotations, the shins backwards on
  +x). SMPLify penalises exp(+-theta) itself; exp(h) - 1 is instead exactly zero for natural
  bends and grows exponentially past the straight limb.
- The shape prior is |beta|^2 (SMPL's betas are unit-variance).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import torch

from mp3d.body.skeleton import SMPL_JOINT_NAMES

__all__ = [
    "HYPEREXTENSION",
    "JOINT_LIMITS",
    "angle_prior",
    "gmof",
    "joint_limits",
    "pose_prior",
    "pose_prior_params",
    "shape_prior",
]

# Plausible ranges (radians) of each axis-angle component (x, y, z) in the joint's parent
# frame, for the body's left side and centre line; the right side mirrors them (x kept, y and
# z negated and swapped). Axes of the T-pose: y up, the body facing +z, its left on +x.
_LEFT_AND_CENTRE_LIMITS: dict[str, tuple[tuple[float, float], ...]] = {
    "hip": ((-1.5, 0.4), (-0.5, 0.5), (-0.3, 0.7)),  # -x: thigh forward, +z: outward
    "knee": ((0.0, 2.2), (-0.1, 0.1), (-0.1, 0.1)),  # +x: shin backward
    "ankle": ((-0.4, 0.6), (-0.3, 0.3), (-0.25, 0.25)),
    "foot": ((-0.3, 0.3), (-0.1, 0.1), (-0.1, 0.1)),
    "collar": ((-0.2, 0.2), (-0.25, 0.15), (-0.15, 0.3)),
    "shoulder": ((-0.8, 0.8), (-1.2, 0.6), (-1.4, 0.9)),  # -y: arm forward, -z: arm down
    "elbow": ((-0.5, 0.5), (-2.3, 0.0), (-0.1, 0.1)),  # -y: forearm forward
    "wrist": ((-0.6, 0.6), (-0.6, 0.6), (-0.5, 0.5)),
    "hand": ((-0.3, 0.3), (-0.3, 0.3), (-0.3, 0.3)),
    "spine1": ((-0.3, 0.6), (-0.4, 0.4), (-0.3, 0.3)),  # +x: lean forward
    "spine2": ((-0.2, 0.4), (-0.3, 0.3), (-0.2, 0.2)),
    "spine3": ((-0.2, 0.3), (-0.3, 0.3), (-0.2, 0.2)),
    "neck": ((-0.4, 0.5), (-0.6, 0.6), (-0.3, 0.3)),
    "head": ((-0.3, 0.3), (-0.4, 0.4), (-0.2, 0.2)),
}
# Joints the table does not name (models with other skeletons) get this range on every axis.
_DEFAULT_LIMIT = (-0.5, 0.5)


def _limits_of(name: str) -> tuple[tuple[float, float], ...]:
    side, _, part = name.partition("_")
    if side == "left" and part in _LEFT_AND_CENTRE_LIMITS:
        return _LEFT_AND_CENTRE_LIMITS[part]
    if side == "right" and part in _LEFT_AND_CENTRE_LIMITS:
        (xl, xh), (yl, yh), (zl, zh) = _LEFT_AND_CENTRE_LIMITS[part]
        return ((xl, xh), (-yh, -yl), (-zh, -zl))
    return _LEFT_AND_CENTRE_LIMITS.get(name, (_DEFAULT_LIMIT,) * 3)


JOINT_LIMITS: dict[str, tuple[tuple[float, float], ...]] = {
    name: _limits_of(name) for name in SMPL_JOINT_NAMES[1:]
}

# (axis, sign): the joint bends the wrong way when sign * theta[axis] > 0.
HYPEREXTENSION: dict[str, tuple[int, float]] = {
    "left_elbow": (1, 1.0),
    "right_elbow": (1, -1.0),
    "left_knee": (0, -1.0),
    "right_knee": (0, -1.0),
}


def gmof(residual_sq: torch.Tensor, sigma: float) -> torch.Tensor:
    """Geman-McClure rho = sigma^2 r^2 / (sigma^2 + r^2) of squared residuals r^2 [...]
    (pixels^2, sigma in pixels): r^2 near zero, sigma^2 for outliers; same shape."""
    if not sigma > 0:
        raise ValueError(f"sigma must be > 0 pixels, got {sigma}")
    sigma_sq = sigma * sigma
    return sigma_sq * residual_sq / (sigma_sq + residual_sq)


def joint_limits(
    joint_names: Sequence[str], dtype: torch.dtype = torch.float32
) -> tuple[torch.Tensor, torch.Tensor]:
    """Lower and upper limits [3(J-1)] (radians) of body_pose for joints named joint_names
    (root first, not posed by body_pose), from JOINT_LIMITS; unknown names get +-0.5."""
    ranges = [JOINT_LIMITS.get(name, (_DEFAULT_LIMIT,) * 3) for name in joint_names[1:]]
    flat = torch.tensor([axis for joint in ranges for axis in joint], dtype=dtype)  # [3(J-1),2]
    return flat[:, 0].contiguous(), flat[:, 1].contiguous()


def pose_prior_params(
    joint_names: Sequence[str], dtype: torch.dtype = torch.float32
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and standard deviation [3(J-1)] (radians) of the Gaussian pose prior: the moments
    of a uniform distribution within the joint limits (centre, range / sqrt(12))."""
    low, high = joint_limits(joint_names, dtype)
    return 0.5 * (low + high), (high - low) / math.sqrt(12.0)


def pose_prior(body_pose: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """Gaussian pose prior [B]: sum of ((body_pose - mean) / std)^2 over body_pose [B,P]."""
    return (((body_pose - mean) / std) ** 2).sum(dim=1)


def shape_prior(betas: torch.Tensor) -> torch.Tensor:
    """Shape prior [B]: |betas|^2 of betas [B,S] (SMPL's betas are unit-variance)."""
    return (betas * betas).sum(dim=1)


def angle_prior(body_pose: torch.Tensor, joint_names: Sequence[str]) -> torch.Tensor:
    """Angle prior [B]: sum over elbows and knees of (exp(h) - 1)^2, h = max(0, angle bent the
    wrong way) in radians (HYPEREXTENSION), of body_pose [B,3(J-1)]; zero for natural bends."""
    columns, signs = _hyperextension_columns(tuple(joint_names), body_pose.dtype, body_pose.device)
    if columns is None:
        return body_pose.new_zeros(body_pose.shape[0])
    angles = body_pose.index_select(1, columns) * signs  # [B,K], > 0: bent the wrong way
    return (torch.expm1(angles.clamp(min=0.0)) ** 2).sum(dim=1)


@functools.lru_cache(maxsize=32)
def _hyperextension_columns(
    joint_names: tuple[str, ...], dtype: torch.dtype, device: torch.device
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """body_pose columns [K] (int64) and signs [K] of the HYPEREXTENSION joints a model has."""
    columns, signs = [], []
    for name, (axis, sign) in HYPEREXTENSION.items():
        if name in joint_names and joint_names.index(name) > 0:
            columns.append(3 * (joint_names.index(name) - 1) + axis)
            signs.append(sign)
    if not columns:
        return None, None
    return (torch.tensor(columns, device=device), torch.tensor(signs, dtype=dtype, device=device))

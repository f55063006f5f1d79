"""Evaluating body fits: Procrustes alignment, (PA-)MPJPE, and bodies sampled from a model
with their projected keypoints (synthetic fitting problems)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from mp3d.body.priors import joint_limits
from mp3d.body.smpl import SMPL, JointModel
from mp3d.transforms import axis_rotation, matrix_to_axis_angle, project_points

__all__ = [
    "SyntheticBodies",
    "mpjpe",
    "pa_mpjpe",
    "procrustes_align",
    "sample_bodies",
    "sample_poses",
]

# ----------------------------------------------------------------------------- metrics


def procrustes_align(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """pred [B,J,3] moved by the similarity transform (scale, rotation, translation) that
    best fits it to target [B,J,3] in least squares."""
    if pred.shape != target.shape or pred.dim() != 3 or pred.shape[-1] != 3:
        raise ValueError(
            f"pred and target must both have shape [B, J, 3], got "
            f"{list(pred.shape)} and {list(target.shape)}"
        )
    mu_pred, mu_target = pred.mean(dim=1, keepdim=True), target.mean(dim=1, keepdim=True)
    p, t = pred - mu_pred, target - mu_target
    u, s, vh = torch.linalg.svd(p.transpose(1, 2) @ t)  # [B,3,3]: sum_j p_j t_j^T
    v = vh.transpose(1, 2)
    sign = torch.sign(torch.linalg.det(v @ u.transpose(1, 2)))
    sign = torch.where(sign == 0, torch.ones_like(sign), sign)
    d = torch.ones_like(s)
    d[:, 2] = sign
    rotation = v @ torch.diag_embed(d) @ u.transpose(1, 2)
    scale = (d * s).sum(dim=1) / (p * p).sum(dim=(1, 2)).clamp(min=1e-12)
    return scale[:, None, None] * p @ rotation.transpose(1, 2) + mu_target


def mpjpe(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean per-joint position error [B] (model units) between joints [B,J,3]."""
    if pred.shape != target.shape:
        raise ValueError(
            f"pred and target must have the same shape, got {list(pred.shape)} "
            f"and {list(target.shape)}"
        )
    return (pred - target).norm(dim=-1).mean(dim=-1)


def pa_mpjpe(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """MPJPE [B] after Procrustes alignment (scale, rotation, translation) of pred [B,J,3]."""
    return mpjpe(procrustes_align(pred, target), target)


# ----------------------------------------------------------------------------- synthetic data


def sample_poses(
    n: int,
    joint_names: Sequence[str],
    generator: torch.Generator | None = None,
    scale: float = 1.0,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """n body poses [n,3(J-1)] (axis-angle, radians), each component uniform within its joint
    limits (JOINT_LIMITS) shrunk towards the rest pose by `scale` in [0, 1]."""
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if not 0.0 <= scale <= 1.0:
        raise ValueError(f"scale must be in [0, 1], got {scale}")
    low, high = joint_limits(joint_names, torch.float64)
    u = torch.rand(n, low.shape[0], generator=generator, dtype=torch.float64)
    return (scale * (low + u * (high - low))).to(dtype)


@dataclass
class SyntheticBodies:
    """Bodies drawn from a model and their keypoints, as sample_bodies makes them; all in the
    camera frame (camera at the origin looking down +z)."""

    betas: torch.Tensor  # [N,S]
    body_pose: torch.Tensor  # [N,3(J-1)]
    global_orient: torch.Tensor  # [N,3]
    transl: torch.Tensor  # [N,3]
    joints: torch.Tensor  # [N,J,3] true 3D joints
    keypoints: torch.Tensor  # [N,J,2] projected joints plus noise, pixels
    clean_keypoints: torch.Tensor  # [N,J,2] projected joints, pixels
    K: torch.Tensor  # [N,3,3]
    width: int
    height: int

    def params(self) -> dict[str, torch.Tensor]:
        """betas, body_pose, global_orient and transl, ready for SMPL.forward(**params)."""
        return {
            "betas": self.betas,
            "body_pose": self.body_pose,
            "global_orient": self.global_orient,
            "transl": self.transl,
        }


def sample_bodies(
    model: SMPL | JointModel,
    n: int,
    generator: torch.Generator | None = None,
    *,
    n_betas: int = 10,
    beta_std: float = 1.0,
    pose_scale: float = 1.0,
    noise_px: float = 2.0,
    width: int = 1000,
    height: int = 1000,
    focal: float = 1000.0,
    distance: tuple[float, float] = (3.0, 6.0),
    yaw: tuple[float, float] = (-math.pi, math.pi),
    tilt: float = 0.15,
) -> SyntheticBodies:
    """n random bodies in front of a camera: betas ~ N(0, beta_std^2), poses uniform within
    the joint limits (sample_poses), upright (+-tilt radians of lean and roll) and turned by a
    yaw drawn from `yaw` (0: facing the camera), pelvis at a depth drawn from `distance`
    (model units) near the image centre; keypoints are the joints projected with isotropic
    Gaussian noise of noise_px pixels per axis."""
    joints_model = model if isinstance(model, JointModel) else JointModel(model)
    if n <= 0:
        raise ValueError(f"n must be > 0, got {n}")
    if not (noise_px >= 0 and beta_std >= 0 and focal > 0 and width > 0 and height > 0):
        raise ValueError("noise_px and beta_std must be >= 0; focal, width, height > 0")
    if not 0 < distance[0] <= distance[1]:
        raise ValueError(f"distance must be (near, far) with 0 < near <= far, got {distance}")
    dtype, device = joints_model.dtype, joints_model.device
    g = generator

    def uniform(low: float, high: float, *shape: int) -> torch.Tensor:
        return low + (high - low) * torch.rand(*shape, generator=g, dtype=torch.float64)

    n_betas = min(n_betas, joints_model.n_betas)
    betas = beta_std * torch.randn(n, n_betas, generator=g, dtype=torch.float64)
    body_pose = sample_poses(n, joints_model.joint_names, g, pose_scale, torch.float64)
    rotations = []
    for y, pitch, roll in zip(
        uniform(*yaw, n).tolist(),
        uniform(-tilt, tilt, n).tolist(),
        uniform(-tilt, tilt, n).tolist(),
        strict=True,
    ):
        roll_z = axis_rotation("z", roll, dtype=torch.float64)
        rotations.append(
            roll_z
            @ axis_rotation("x", math.pi + pitch, dtype=torch.float64)
            @ axis_rotation("y", y, dtype=torch.float64)
        )
    global_orient = matrix_to_axis_angle(torch.stack(rotations))
    depth = uniform(*distance, n)
    offset = torch.stack([uniform(-0.15, 0.15, n) * width, uniform(-0.1, 0.1, n) * height], 1)
    pelvis = torch.cat([offset / focal * depth[:, None], depth[:, None]], dim=1)
    like = {"dtype": dtype, "device": device}
    betas, body_pose, global_orient = (t.to(**like) for t in (betas, body_pose, global_orient))
    transl = pelvis.to(**like) - joints_model.rest_joints(betas)[:, 0]
    K = (
        torch.tensor(
            [[focal, 0.0, 0.5 * width], [0.0, focal, 0.5 * height], [0.0, 0.0, 1.0]], **like
        )
        .expand(n, 3, 3)
        .contiguous()
    )
    with torch.no_grad():
        joints = joints_model(betas, body_pose, global_orient, transl)
        clean, _ = project_points(joints, K)
    noise = noise_px * torch.randn(clean.shape, generator=g, dtype=torch.float64).to(**like)
    return SyntheticBodies(
        betas=betas,
        body_pose=body_pose,
        global_orient=global_orient,
        transl=transl,
        joints=joints,
        keypoints=clean + noise,
        clean_keypoints=clean,
        K=K,
        width=width,
        height=height,
    )

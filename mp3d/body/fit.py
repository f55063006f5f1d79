"""Fitting SMPL to 2D keypoints by SMPLify-style staged optimisation.

Keypoints are the pixel coordinates [B,J,2] of the model's J joints (24 for SMPL, in the
model's joint order) seen by a pinhole camera in mp3d's OpenCV convention: x right, y down,
z forward, pixel centres at +0.5, intrinsics K [3,3]. Without a `viewmat` the camera sits at
the origin looking down +z and the fitted parameters are in camera coordinates; with one
(world-to-camera [4,4]) they are in world coordinates.

The SMPLify objective of one person, minimised over betas, body_pose, global_orient, transl:

    E = sum_j c_j rho(|pi(J_j) - x_j|) / keypoint_std^2        robust reprojection
      + w_pose  sum_k ((theta_k - mu_k) / s_k)^2                 pose prior
      + w_shape |beta|^2                                          shape prior
      + w_angle sum_{elbows, knees} (exp(h) - 1)^2                angle prior

- rho is Geman-McClure, rho(r) = sigma^2 r^2 / (sigma^2 + r^2) (`gmof`): r^2 for residuals
  well below sigma pixels, saturating at sigma^2 for outliers.
- The pose prior is a diagonal Gaussian fitted to poses drawn uniformly within per-joint
  limits (`JOINT_LIMITS`): mean mu at the centre of each axis-angle component's range and
  standard deviation s = range / sqrt(12), the moments of the uniform distribution, so no
  sample set is needed. No licensed GMM data is used.
- The angle prior penalises elbows and knees bending the wrong way: h = max(0, hyperextension
  angle) (`HYPEREXTENSION` names the axis and sign for the built-in body, found by posing it:
  the forearms fold forwards on -y (left) and +y (right) rotations, the shins backwards on
  +x). SMPLify penalises exp(+-theta) itself; exp(h) - 1 is instead exactly zero for natural
  bends and grows exponentially past the straight limb.
- Dividing the data term by keypoint_std^2 (the assumed keypoint noise, pixels) makes E a
  negative log-posterior up to a factor 2, so the prior weights do not depend on image size.

Stages (`fit_smplify`): (0) depth by similar triangles, z = torso length in the model over
its length in the image (normalised by the focal length), the pelvis back-projected at that
depth, mean shape, rest pose, the body upright and facing the camera turned to `yaw_starts`
headings; (1) global orientation and translation from the torso joints only (hips, spine,
neck, collars, shoulders); (2) every parameter, the priors weighted by `prior_schedule`
(decreasing) times their base weights. Each heading is carried through all stages as a
person of its own and the one with the lowest final E is kept: a body that faces away or
sideways then needs no lucky start.

The optimiser is Adam (`SMPLifyConfig.optimizer`; LBFGS with a strong-Wolfe line search is
the alternative). Adam's update is element-wise, so the people of a batch (and the headings)
are fitted independently, exactly as one at a time, and each costs one gradient per
iteration; LBFGS's shared line search and curvature history couple them. On the 100 bodies
of bench/quality_body_fit.py (one CPU thread) Adam's 450 iterations gave 35.7 mm PA-MPJPE in
9.7 s, LBFGS's 250 iterations 48.3 mm in 8.2 s (150 iterations: 56.4 mm in 4.9 s).

Learned gradient descent is in mp3d.body.lgd, evaluation helpers (Procrustes-aligned
joint errors, sampled bodies) in mp3d.body.evaluation, keypoint files in mp3d.body.keypoints.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from mp3d.body.skeleton import SMPL_JOINT_NAMES
from mp3d.body.smpl import SMPL, batch_rigid_transform, batch_rodrigues

__all__ = [
    "HYPEREXTENSION",
    "JOINT_LIMITS",
    "TORSO_JOINTS",
    "FitResult",
    "JointModel",
    "SMPLifyConfig",
    "angle_prior",
    "axis_angle_to_matrix",
    "fit_smplify",
    "gmof",
    "initial_depth",
    "joint_limits",
    "matrix_to_axis_angle",
    "pose_prior",
    "pose_prior_params",
    "project_points",
    "shape_prior",
]


# Joints whose keypoints stage 1 fits (orientation and translation from the torso).
TORSO_JOINTS: tuple[str, ...] = (
    "pelvis", "left_hip", "right_hip", "spine1", "spine2", "spine3", "neck", "left_collar",
    "right_collar", "left_shoulder", "right_shoulder",
)

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
    name: _limits_of(name) for name in SMPL_JOINT_NAMES[1:]}

# (axis, sign): the joint bends the wrong way when sign * theta[axis] > 0.
HYPEREXTENSION: dict[str, tuple[int, float]] = {
    "left_elbow": (1, 1.0), "right_elbow": (1, -1.0), "left_knee": (0, -1.0),
    "right_knee": (0, -1.0),
}

# Depths below this (model units) are clamped before dividing by them in the projection.
_MIN_DEPTH = 1e-3
# Adam steps over which fit_smplify's stages ramp the step size up.
_WARMUP = 10


# ----------------------------------------------------------------------------- rotations


def axis_angle_to_matrix(rot_vecs: torch.Tensor) -> torch.Tensor:
    """Rotation matrices [...,3,3] from axis-angle vectors [...,3] (radians)."""
    return batch_rodrigues(rot_vecs.reshape(-1, 3)).view(*rot_vecs.shape[:-1], 3, 3)


def matrix_to_axis_angle(matrices: torch.Tensor) -> torch.Tensor:
    """Axis-angle vectors [...,3] (angle in [0, pi]) of rotation matrices [...,3,3]."""
    m = matrices.reshape(-1, 3, 3)
    # Quaternion by the largest of four candidate denominators (stable for every angle).
    trace = m[:, 0, 0] + m[:, 1, 1] + m[:, 2, 2]
    candidates = torch.stack([1.0 + trace, 1.0 + m[:, 0, 0] - m[:, 1, 1] - m[:, 2, 2],
                              1.0 - m[:, 0, 0] + m[:, 1, 1] - m[:, 2, 2],
                              1.0 - m[:, 0, 0] - m[:, 1, 1] + m[:, 2, 2]], dim=1)
    best = candidates.argmax(dim=1)
    quats = torch.empty(m.shape[0], 4, dtype=m.dtype, device=m.device)
    for case in range(4):
        rows = best == case
        if not bool(rows.any()):
            continue
        r = m[rows]
        s = 2.0 * torch.sqrt(candidates[rows, case].clamp(min=1e-12))  # 4 * the big component
        if case == 0:
            q = [0.25 * s, (r[:, 2, 1] - r[:, 1, 2]) / s, (r[:, 0, 2] - r[:, 2, 0]) / s,
                 (r[:, 1, 0] - r[:, 0, 1]) / s]
        elif case == 1:
            q = [(r[:, 2, 1] - r[:, 1, 2]) / s, 0.25 * s, (r[:, 0, 1] + r[:, 1, 0]) / s,
                 (r[:, 0, 2] + r[:, 2, 0]) / s]
        elif case == 2:
            q = [(r[:, 0, 2] - r[:, 2, 0]) / s, (r[:, 0, 1] + r[:, 1, 0]) / s, 0.25 * s,
                 (r[:, 1, 2] + r[:, 2, 1]) / s]
        else:
            q = [(r[:, 1, 0] - r[:, 0, 1]) / s, (r[:, 0, 2] + r[:, 2, 0]) / s,
                 (r[:, 1, 2] + r[:, 2, 1]) / s, 0.25 * s]
        quats[rows] = torch.stack(q, dim=1)
    quats = quats * torch.where(quats[:, :1] < 0, -1.0, 1.0)  # w >= 0: angle in [0, pi]
    sin_half = quats[:, 1:].norm(dim=1)
    angle = 2.0 * torch.atan2(sin_half, quats[:, 0])
    # angle / sin(angle / 2), which tends to 2 as the angle goes to zero.
    factor = torch.where(sin_half > 1e-8, angle / sin_half.clamp(min=1e-12),
                         torch.full_like(angle, 2.0))
    return (quats[:, 1:] * factor[:, None]).view(*matrices.shape[:-2], 3)


def _rotation_x(angle: float, **like) -> torch.Tensor:
    c, s = math.cos(angle), math.sin(angle)
    return torch.tensor([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]], **like)


def _rotation_y(angle: float, **like) -> torch.Tensor:
    c, s = math.cos(angle), math.sin(angle)
    return torch.tensor([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]], **like)


# ----------------------------------------------------------------------------- joints, camera


class JointModel:
    """The posed joints of an SMPL model without its mesh: the joint regressor applied to the
    shape blend shapes once (J(beta) = J_0 + D beta), then forward kinematics. Equal to
    SMPL.forward(...).joints, at a fraction of the cost (pose correctives move no joint)."""

    def __init__(self, model: SMPL) -> None:
        if not isinstance(model, SMPL):
            raise ValueError(f"model must be an mp3d.body.SMPL, got {type(model).__name__}")
        with torch.no_grad():
            self.template = model.J_regressor @ model.v_template  # [J,3]
            self.dirs = torch.einsum("jv,vcs->jcs", model.J_regressor, model.shapedirs)  # [J,3,S]
        self.parents = list(model.parents)
        self.joint_names = tuple(model.joint_names)
        self.n_joints = model.n_joints
        self.n_betas = model.n_betas
        self.dtype = model.v_template.dtype
        self.device = model.v_template.device

    def rest_joints(self, betas: torch.Tensor) -> torch.Tensor:
        """Rest-pose joints [B,J,3] of shapes betas [B,S<=n_betas]."""
        return self.template + torch.einsum("jcs,bs->bjc", self.dirs[..., :betas.shape[1]], betas)

    def __call__(self, betas: torch.Tensor, body_pose: torch.Tensor, global_orient: torch.Tensor,
                 transl: torch.Tensor) -> torch.Tensor:
        """Posed joints [B,J,3] from betas [B,S], body_pose [B,3(J-1)], global_orient [B,3]
        (axis-angle, radians) and transl [B,3]."""
        return self.posed(betas, body_pose, axis_angle_to_matrix(global_orient), transl)

    def posed(self, betas: torch.Tensor, body_pose: torch.Tensor, root_rotation: torch.Tensor,
              transl: torch.Tensor) -> torch.Tensor:
        """Posed joints [B,J,3] with the root's rotation given as a matrix [B,3,3]."""
        n_batch = body_pose.shape[0]
        rest = self.rest_joints(betas)
        rot_mats = batch_rodrigues(body_pose.reshape(-1, 3)).view(n_batch, self.n_joints - 1, 3, 3)
        rot_mats = torch.cat([root_rotation[:, None], rot_mats], dim=1)
        world, _ = batch_rigid_transform(rot_mats, rest, self.parents)
        return world[..., :3, 3] + transl[:, None]


def project_points(points: torch.Tensor, K: torch.Tensor, viewmat: torch.Tensor | None = None
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """Pixel coordinates [B,N,2] and camera depth [B,N] of points [B,N,3] seen through K
    [B,3,3] from viewmat [B,4,4] (world-to-camera; None: the camera frame)."""
    if viewmat is not None:
        points = points @ viewmat[:, :3, :3].transpose(1, 2) + viewmat[:, None, :3, 3]
    depth = points[..., 2]
    homogeneous = points @ K.transpose(1, 2)
    return homogeneous[..., :2] / depth.clamp(min=_MIN_DEPTH)[..., None], depth


# ----------------------------------------------------------------------------- priors, robust loss


def gmof(residual_sq: torch.Tensor, sigma: float) -> torch.Tensor:
    """Geman-McClure rho = sigma^2 r^2 / (sigma^2 + r^2) of squared residuals r^2 [...]
    (pixels^2, sigma in pixels): r^2 near zero, sigma^2 for outliers; same shape."""
    if not sigma > 0:
        raise ValueError(f"sigma must be > 0 pixels, got {sigma}")
    sigma_sq = sigma * sigma
    return sigma_sq * residual_sq / (sigma_sq + residual_sq)


def joint_limits(joint_names: Sequence[str], dtype: torch.dtype = torch.float32
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """Lower and upper limits [3(J-1)] (radians) of body_pose for joints named joint_names
    (root first, not posed by body_pose), from JOINT_LIMITS; unknown names get +-0.5."""
    ranges = [JOINT_LIMITS.get(name, (_DEFAULT_LIMIT,) * 3) for name in joint_names[1:]]
    flat = torch.tensor([axis for joint in ranges for axis in joint], dtype=dtype)  # [3(J-1),2]
    return flat[:, 0].contiguous(), flat[:, 1].contiguous()


def pose_prior_params(joint_names: Sequence[str], dtype: torch.dtype = torch.float32
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
    total = torch.zeros(body_pose.shape[0], dtype=body_pose.dtype, device=body_pose.device)
    for name, (axis, sign) in HYPEREXTENSION.items():
        if name not in joint_names or joint_names.index(name) == 0:
            continue
        angle = sign * body_pose[:, 3 * (joint_names.index(name) - 1) + axis]
        total = total + torch.expm1(angle.clamp(min=0.0)) ** 2
    return total


# ----------------------------------------------------------------------------- inputs


def _tensor(name: str, value: torch.Tensor | np.ndarray | Sequence, dtype: torch.dtype,
            device: torch.device) -> torch.Tensor:
    if isinstance(value, np.ndarray | list | tuple):
        try:
            value = torch.as_tensor(np.asarray(value, dtype=np.float64))
        except (TypeError, ValueError) as error:
            raise ValueError(f"{name} must be numeric, got {error}") from None
    if not isinstance(value, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor or numpy array, got "
                         f"{type(value).__name__}")
    if not (value.is_floating_point() or value.dtype in (torch.int32, torch.int64)):
        raise ValueError(f"{name} must be a float tensor, got {value.dtype}")
    value = value.detach().to(device=device, dtype=dtype)
    if not bool(torch.isfinite(value).all()):
        raise ValueError(f"{name} has non-finite values")
    return value


def _batched(name: str, value: torch.Tensor, tail: tuple[int, ...], text: str) -> torch.Tensor:
    """value with shape [*tail] or [B,*tail], returned as [B,*tail]."""
    if tuple(value.shape) == tail:
        return value.unsqueeze(0)
    if value.dim() == len(tail) + 1 and tuple(value.shape[1:]) == tail:
        return value
    raise ValueError(f"{name} must have shape [{text}] or [B, {text}], got {list(value.shape)}")


def _broadcast(name: str, value: torch.Tensor, n_batch: int) -> torch.Tensor:
    if value.shape[0] == n_batch:
        return value
    if value.shape[0] == 1:
        return value.expand(n_batch, *value.shape[1:])
    raise ValueError(f"{name} has batch size {value.shape[0]}, but keypoints have {n_batch}")


def _check_inputs(
    joints: JointModel, keypoints, K, confidences, viewmat
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """keypoints [B,J,2], K [B,3,3], confidences [B,J], viewmat [B,4,4] or None, validated."""
    like = {"dtype": joints.dtype, "device": joints.device}
    n_joints = joints.n_joints
    keypoints = _batched("keypoints", _tensor("keypoints", keypoints, **like), (n_joints, 2),
                         f"{n_joints}, 2] (pixel x, y of the model's {n_joints} joints")
    n_batch = keypoints.shape[0]
    if n_batch == 0:
        raise ValueError("keypoints must hold at least one person, got batch size 0")
    K = _broadcast("K", _batched("K", _tensor("K", K, **like), (3, 3), "3, 3"), n_batch)
    bottom = torch.tensor([0.0, 0.0, 1.0], **like)
    if not bool((K[:, 2] == bottom).all()) or not bool(((K[:, 0, 0] > 0) & (K[:, 1, 1] > 0)).all()):
        raise ValueError("K must be pixel intrinsics [[fx, s, cx], [0, fy, cy], [0, 0, 1]] with "
                         "fx, fy > 0")
    if confidences is None:
        confidences = torch.ones(n_batch, n_joints, **like)
    else:
        confidences = _broadcast("confidences", _batched(
            "confidences", _tensor("confidences", confidences, **like), (n_joints,),
            f"{n_joints}"), n_batch)
        if bool((confidences < 0).any()):
            raise ValueError("confidences must be >= 0")
    if bool(((confidences > 0).sum(dim=1) < 2).any()):
        raise ValueError("confidences: every person needs at least 2 joints with confidence > 0")
    if viewmat is not None:
        viewmat = _broadcast("viewmat", _batched(
            "viewmat", _tensor("viewmat", viewmat, **like), (4, 4), "4, 4"), n_batch)
        rotation = viewmat[:, :3, :3]
        eye = torch.eye(3, **like)
        bottom4 = torch.tensor([0.0, 0.0, 0.0, 1.0], **like)
        if (not bool((viewmat[:, 3] == bottom4).all())
                or float((rotation @ rotation.transpose(1, 2) - eye).abs().max()) > 1e-4
                or bool((torch.linalg.det(rotation) < 0).any())):
            raise ValueError("viewmat must be a rigid world-to-camera transform [[R, t], [0, 1]] "
                             "with R a rotation")
    return keypoints, K, confidences, viewmat


def _joint_mask(joint_names: Sequence[str], names: Sequence[str], **like) -> torch.Tensor:
    return torch.tensor([1.0 if name in names else 0.0 for name in joint_names], **like)


# ----------------------------------------------------------------------------- initialisation


def _normalised(keypoints: torch.Tensor, K: torch.Tensor) -> torch.Tensor:
    """Keypoints [B,J,2] in pixels -> normalised image coordinates (x/z, y/z) [B,J,2]."""
    homogeneous = torch.cat([keypoints, torch.ones_like(keypoints[..., :1])], dim=-1)
    return torch.linalg.solve(K, homogeneous.transpose(1, 2)).transpose(1, 2)[..., :2]


def _torso_length(points: torch.Tensor, names: Sequence[str]) -> torch.Tensor:
    """Distance [B] between the midpoints of the shoulders and of the hips of points [B,J,D]."""
    index = names.index
    shoulders = 0.5 * (points[:, index("left_shoulder")] + points[:, index("right_shoulder")])
    hips = 0.5 * (points[:, index("left_hip")] + points[:, index("right_hip")])
    return (shoulders - hips).norm(dim=-1)


def _spread(points: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """RMS distance [B] of points [B,J,D] from their weighted centroid (weights [B,J] >= 0)."""
    w = weights / weights.sum(dim=1, keepdim=True)
    centre = (w[..., None] * points).sum(dim=1, keepdim=True)
    return torch.sqrt((w * ((points - centre) ** 2).sum(dim=-1)).sum(dim=1))


def initial_depth(joints: JointModel, keypoints: torch.Tensor, K: torch.Tensor,
                  confidences: torch.Tensor, betas: torch.Tensor | None = None) -> torch.Tensor:
    """Camera depth [B] of the body by similar triangles: model torso length (shoulder centre
    to hip centre, rest pose) over its length in normalised image coordinates; where a torso
    joint is missing, the spread of the confident joints over the rest body's frontal spread."""
    n_batch = keypoints.shape[0]
    if betas is None:
        betas = torch.zeros(n_batch, 0, dtype=joints.dtype, device=joints.device)
    rest = joints.rest_joints(betas)  # [B,J,3]
    image = _normalised(keypoints, K)
    seen = (confidences > 0).to(joints.dtype)
    # Spread-based estimate for everyone, the torso ratio where its four joints are seen.
    depth = _spread(rest[..., :2], seen) / _spread(image, seen).clamp(min=1e-9)
    names = joints.joint_names
    needed = ("left_shoulder", "right_shoulder", "left_hip", "right_hip")
    if all(name in names for name in needed):
        columns = [names.index(name) for name in needed]
        has_torso = (confidences[:, columns] > 0).all(dim=1)
        torso_image = _torso_length(image, names)
        ok = has_torso & (torso_image > 1e-9)
        depth = torch.where(ok, _torso_length(rest, names) / torso_image.clamp(min=1e-9), depth)
    return depth


def _anchor_pixel(joints: JointModel, keypoints: torch.Tensor, confidences: torch.Tensor
                  ) -> torch.Tensor:
    """Per person, the pixel [B,2] to put the pelvis on: the root keypoint if seen, else the
    midpoint of the hips if both are seen, else the confident joints' centroid."""
    names = joints.joint_names
    seen = (confidences > 0).to(keypoints.dtype)
    w = seen / seen.sum(dim=1, keepdim=True)
    anchor = (w[..., None] * keypoints).sum(dim=1)
    if "left_hip" in names and "right_hip" in names:
        left, right = names.index("left_hip"), names.index("right_hip")
        both = (confidences[:, left] > 0) & (confidences[:, right] > 0)
        hips = 0.5 * (keypoints[:, left] + keypoints[:, right])
        anchor = torch.where(both[:, None], hips, anchor)
    return torch.where((confidences[:, 0] > 0)[:, None], keypoints[:, 0], anchor)


def _camera_start(joints: JointModel, keypoints: torch.Tensor, K: torch.Tensor,
                  confidences: torch.Tensor) -> torch.Tensor:
    """Camera-frame pelvis position [B,3] to start from: the anchor pixel at the depth of
    similar triangles."""
    depth = initial_depth(joints, keypoints, K, confidences)
    ray = _normalised(_anchor_pixel(joints, keypoints, confidences)[:, None], K)[:, 0]
    return torch.cat([ray, torch.ones_like(ray[:, :1])], dim=1) * depth[:, None]


def _to_world(rotation: torch.Tensor, pelvis: torch.Tensor, viewmat: torch.Tensor | None
              ) -> tuple[torch.Tensor, torch.Tensor]:
    """Root rotation [B,3,3] and pelvis position [B,3] in the camera frame -> the world frame
    of viewmat [B,4,4] (unchanged without one)."""
    if viewmat is None:
        return rotation, pelvis
    r_view = viewmat[:, :3, :3]
    world_rotation = r_view.transpose(1, 2) @ rotation
    world_pelvis = ((pelvis - viewmat[:, :3, 3])[:, None] @ r_view)[:, 0]
    return world_rotation, world_pelvis


def _initial_params(joints: JointModel, keypoints: torch.Tensor, K: torch.Tensor,
                    confidences: torch.Tensor, viewmat: torch.Tensor | None, n_betas: int,
                    yaws: Sequence[float]) -> dict[str, torch.Tensor]:
    """Starting parameters [len(yaws)*B, ...] (start-major): mean shape, zero body pose, the
    body upright, facing the camera turned by each yaw, its pelvis on the image at the depth
    of similar triangles."""
    like = {"dtype": joints.dtype, "device": joints.device}
    n_batch = keypoints.shape[0]
    betas = torch.zeros(n_batch, n_betas, **like)
    pelvis_camera = _camera_start(joints, keypoints, K, confidences)
    root_rest = joints.rest_joints(betas)[:, 0]  # [B,3]
    upright = _rotation_x(math.pi, **like)  # body y up -> camera -y (image up), facing -z
    orients, transls = [], []
    for yaw in yaws:
        rotation_camera = (_rotation_y(yaw, **like) @ upright).expand(n_batch, 3, 3)
        rotation, pelvis = _to_world(rotation_camera, pelvis_camera, viewmat)
        orients.append(matrix_to_axis_angle(rotation))
        transls.append(pelvis - root_rest)
    n_starts = len(yaws)
    return {
        "betas": betas.repeat(n_starts, 1),
        "body_pose": torch.zeros(n_starts * n_batch, 3 * (joints.n_joints - 1), **like),
        "global_orient": torch.cat(orients),
        "transl": torch.cat(transls),
    }


# ----------------------------------------------------------------------------- SMPLify


@dataclass
class SMPLifyConfig:
    """Weights, schedule and optimiser of fit_smplify (see the module docstring for E)."""

    sigma: float = 100.0  # Geman-McClure scale, pixels
    keypoint_std: float = 4.0  # assumed keypoint noise, pixels: the data term's unit
    n_betas: int = 10  # shape coefficients fitted (at most the model's)
    pose_weight: float = 1.0
    shape_weight: float = 1.0
    angle_weight: float = 20.0
    # Stage 2 runs once per entry, the priors' weights multiplied by it (decreasing).
    prior_schedule: tuple[float, ...] = (10.0, 3.0, 1.0)
    torso_iterations: int = 100  # stage 1
    iterations: tuple[int, ...] = (100, 100, 150)  # stage 2, per prior_schedule entry
    optimizer: str = "adam"  # "adam" or "lbfgs"
    lr: float = 0.03  # Adam's step size (LBFGS: 1 with a strong-Wolfe line search)
    yaw_starts: int = 4  # starting headings (turns about the camera's vertical axis), each
    # fitted through every stage; the lowest final E wins

    def validate(self) -> None:
        """Raises ValueError naming the first setting out of range."""
        for name in ("sigma", "keypoint_std", "lr"):
            if not getattr(self, name) > 0:
                raise ValueError(f"config.{name} must be > 0, got {getattr(self, name)}")
        for name in ("pose_weight", "shape_weight", "angle_weight"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"config.{name} must be >= 0, got {getattr(self, name)}")
        if self.n_betas < 0:
            raise ValueError(f"config.n_betas must be >= 0, got {self.n_betas}")
        if len(self.prior_schedule) != len(self.iterations) or not self.iterations:
            raise ValueError("config.prior_schedule and config.iterations must have the same "
                             f"length >= 1, got {len(self.prior_schedule)} and "
                             f"{len(self.iterations)}")
        if any(w < 0 for w in self.prior_schedule):
            raise ValueError(f"config.prior_schedule must be >= 0, got {self.prior_schedule}")
        if self.torso_iterations < 0 or any(n < 0 for n in self.iterations):
            raise ValueError("config.torso_iterations and config.iterations must be >= 0")
        if self.optimizer not in ("adam", "lbfgs"):
            raise ValueError(f"config.optimizer must be 'adam' or 'lbfgs', got "
                             f"{self.optimizer!r}")
        if self.yaw_starts < 1:
            raise ValueError(f"config.yaw_starts must be >= 1, got {self.yaw_starts}")


@dataclass
class FitResult:
    """What fit_smplify returns; B people (B = 1 for unbatched keypoints)."""

    betas: torch.Tensor  # [B,S]
    body_pose: torch.Tensor  # [B,3(J-1)] axis-angle, radians
    global_orient: torch.Tensor  # [B,3] axis-angle, radians
    transl: torch.Tensor  # [B,3] model units (world frame with a viewmat, else camera frame)
    joints: torch.Tensor  # [B,J,3] fitted joints in the same frame
    projected: torch.Tensor  # [B,J,2] fitted joints in the image, pixels
    joint_errors: torch.Tensor  # [B,J] reprojection error of each joint, pixels
    initial_joint_errors: torch.Tensor  # [B,J] the same at the start of stage 2
    confidences: torch.Tensor  # [B,J] the confidences fitted with
    final_loss: torch.Tensor  # [B] objective E at the end (last prior weights)
    # Stage name -> E at each iteration, of each person's best heading, mean over people.
    losses: dict[str, list[float]] = field(default_factory=dict)
    seconds: float = 0.0

    def params(self) -> dict[str, torch.Tensor]:
        """betas, body_pose, global_orient and transl, ready for SMPL.forward(**params)."""
        return {"betas": self.betas, "body_pose": self.body_pose,
                "global_orient": self.global_orient, "transl": self.transl}

    def mean_error(self) -> torch.Tensor:
        """Confidence-weighted mean reprojection error [B] in pixels over joints with c > 0."""
        weights = self.confidences
        return (weights * self.joint_errors).sum(dim=1) / weights.sum(dim=1)


class _Objective:
    """Terms of the SMPLify objective E for fixed keypoints, camera and confidences."""

    def __init__(self, joints: JointModel, keypoints: torch.Tensor, K: torch.Tensor,
                 confidences: torch.Tensor, viewmat: torch.Tensor | None,
                 config: SMPLifyConfig) -> None:
        self.joints, self.keypoints, self.K = joints, keypoints, K
        self.confidences, self.viewmat, self.config = confidences, viewmat, config
        self.prior_mean, self.prior_std = (t.to(joints.device) for t in pose_prior_params(
            joints.joint_names, joints.dtype))

    def data_of_joints(self, posed: torch.Tensor) -> torch.Tensor:
        """Robust reprojection term [B] of posed joints [B,J,3]."""
        pixels, _ = project_points(posed, self.K, self.viewmat)
        residual_sq = ((pixels - self.keypoints) ** 2).sum(dim=-1)
        rho = gmof(residual_sq, self.config.sigma)
        return (self.confidences * rho).sum(dim=1) / self.config.keypoint_std ** 2

    def data(self, params: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Robust reprojection term [B] of SMPL parameters."""
        return self.data_of_joints(self.joints(**params))

    def priors(self, betas: torch.Tensor, body_pose: torch.Tensor) -> torch.Tensor:
        """Pose, shape and angle priors [B] at their base weights."""
        c = self.config
        return (c.pose_weight * pose_prior(body_pose, self.prior_mean, self.prior_std)
                + c.shape_weight * shape_prior(betas)
                + c.angle_weight * angle_prior(body_pose, self.joints.joint_names))

    def total(self, params: Mapping[str, torch.Tensor], prior_scale: float) -> torch.Tensor:
        """E [B] with the priors' base weights multiplied by prior_scale."""
        energy = self.data(params)
        if prior_scale > 0:
            energy = energy + prior_scale * self.priors(params["betas"], params["body_pose"])
        return energy


def _minimise(objective: Callable[[], torch.Tensor], tensors: list[torch.Tensor],
              iterations: int, config: SMPLifyConfig, history: list[float],
              reduce: Callable[[torch.Tensor], float] | None = None) -> None:
    """Minimises the sum over people of objective() [B] over tensors, in place; appends the
    per-iteration value (default: mean over people) to history."""
    if iterations == 0 or not tensors:
        return
    reduce = reduce or (lambda per: float(per.mean()))
    if config.optimizer == "adam":
        optimiser = torch.optim.Adam(tensors, lr=config.lr)
        # A short linear warm-up (Adam's first steps are full-size whatever the gradient),
        # then cosine decay to a tenth: big steps to cross basins, small ones to settle.
        warmup = min(_WARMUP, iterations // 4)

        def factor(i: int) -> float:
            if i < warmup:
                return (i + 1) / (warmup + 1)
            return 0.1 + 0.45 * (1.0 + math.cos(math.pi * (i - warmup) / (iterations - warmup)))

        schedule = torch.optim.lr_scheduler.LambdaLR(optimiser, factor)
        for _ in range(iterations):
            optimiser.zero_grad(set_to_none=True)
            per = objective()
            per.sum().backward()
            optimiser.step()
            schedule.step()
            history.append(reduce(per.detach()))
        return
    optimiser = torch.optim.LBFGS(tensors, lr=1.0, max_iter=iterations, history_size=20,
                                  line_search_fn="strong_wolfe", tolerance_grad=1e-9,
                                  tolerance_change=1e-12)

    def closure() -> torch.Tensor:
        optimiser.zero_grad(set_to_none=True)
        per = objective()
        history.append(reduce(per.detach()))
        loss = per.sum()
        loss.backward()
        return loss

    optimiser.step(closure)


def fit_smplify(
    model: SMPL,
    keypoints: torch.Tensor | np.ndarray,
    K: torch.Tensor | np.ndarray,
    confidences: torch.Tensor | np.ndarray | None = None,
    viewmat: torch.Tensor | np.ndarray | None = None,
    config: SMPLifyConfig | None = None,
    progress: bool = False,
) -> FitResult:
    """Fits betas, body_pose, global_orient and transl to keypoints [B?,J,2] (pixels) with
    confidences [B?,J] (default 1), intrinsics K [B?,3,3] and an optional viewmat [B?,4,4],
    by SMPLify's staged robust optimisation; people in a batch are fitted independently.

    The tensors are small ([B,24,3]): on a CPU, torch.set_num_threads(1) is often faster."""
    start_time = time.perf_counter()
    config = config or SMPLifyConfig()
    config.validate()
    joints = JointModel(model)
    keypoints, K, confidences, viewmat = _check_inputs(joints, keypoints, K, confidences,
                                                       viewmat)
    n_batch = keypoints.shape[0]
    n_betas = min(config.n_betas, joints.n_betas)
    like = {"dtype": joints.dtype, "device": joints.device}
    losses: dict[str, list[float]] = {}

    # Every heading is fitted as its own person (start-major); the best final E wins.
    yaws = [2.0 * math.pi * k / config.yaw_starts for k in range(config.yaw_starts)]
    n_starts = len(yaws)
    params = _initial_params(joints, keypoints, K, confidences, viewmat, n_betas, yaws)

    def repeat(t: torch.Tensor | None) -> torch.Tensor | None:
        return None if t is None else t.repeat(n_starts, *([1] * (t.dim() - 1)))

    def best_of_starts(per: torch.Tensor) -> float:
        return float(per.view(n_starts, n_batch).min(dim=0).values.mean())

    # Stage 1: orientation and translation from the torso joints (every joint for a person
    # with fewer than two torso joints seen).
    torso_conf = confidences * _joint_mask(joints.joint_names, TORSO_JOINTS, **like)
    use_torso = ((torso_conf > 0).sum(dim=1) >= 2)[:, None]
    stage1 = _Objective(joints, repeat(keypoints), repeat(K),
                        repeat(torch.where(use_torso, torso_conf, confidences)),
                        repeat(viewmat), config)
    objective = _Objective(joints, repeat(keypoints), repeat(K), repeat(confidences),
                           repeat(viewmat), config)
    for name in ("global_orient", "transl"):
        params[name].requires_grad_(True)
    history: list[float] = []
    _minimise(lambda: stage1.data(params), [params["global_orient"], params["transl"]],
              config.torso_iterations, config, history, reduce=best_of_starts)
    losses["torso"] = history
    with torch.no_grad():
        initial_errors = _reprojection_errors(joints, params, repeat(keypoints), repeat(K),
                                              repeat(viewmat))

    # Stage 2: everything, the priors weighted less and less.
    for tensor in params.values():
        tensor.requires_grad_(True)
    from tqdm import tqdm

    stages = list(zip(config.prior_schedule, config.iterations, strict=True))
    for k, (scale, iterations) in enumerate(tqdm(stages, desc="fitting", disable=not progress,
                                                 leave=False)):
        history = []
        trainable = [p for name, p in params.items() if name != "betas" or n_betas > 0]
        _minimise(lambda scale=scale: objective.total(params, scale), trainable, iterations,
                  config, history, reduce=best_of_starts)
        losses[f"full_{k + 1}_prior_x{scale:g}"] = history

    with torch.no_grad():
        final_all = objective.total({n: p.detach() for n, p in params.items()},
                                    config.prior_schedule[-1])
        best = final_all.view(n_starts, n_batch).argmin(dim=0)  # [B]
        pick = best * n_batch + torch.arange(n_batch, device=best.device)
        params = {name: p.detach()[pick] for name, p in params.items()}
        posed = joints(**params)
        projected, _ = project_points(posed, K, viewmat)
    return FitResult(
        betas=params["betas"], body_pose=params["body_pose"],
        global_orient=params["global_orient"], transl=params["transl"], joints=posed,
        projected=projected, joint_errors=(projected - keypoints).norm(dim=-1),
        initial_joint_errors=initial_errors[pick], confidences=confidences,
        final_loss=final_all[pick], losses=losses,
        seconds=time.perf_counter() - start_time)


def _reprojection_errors(joints: JointModel, params: Mapping[str, torch.Tensor],
                         keypoints: torch.Tensor, K: torch.Tensor,
                         viewmat: torch.Tensor | None) -> torch.Tensor:
    pixels, _ = project_points(joints(**params), K, viewmat)
    return (pixels - keypoints).norm(dim=-1)

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

- rho is Geman-McClure (`gmof`); the pose, shape and angle priors and the joint limits they
  come from are in mp3d.body.priors (all re-exported here).
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
9.7 s, LBFGS's 250 iterations 48.3 mm in 8.2 s (150 iterations: 56.4 mm in 4.9 s), before
the fused forward kinematics and fused Adam; since then Adam's fit of the same 100 bodies
took 5.7 s (36.2 mm; the code before took 15.4 s, 36.9 mm, on the same busy machine), and
one person alone about 0.5-0.8 s (bench/bench_body.py --fits).

Learned gradient descent is in mp3d.body.lgd, evaluation helpers (Procrustes-aligned
joint errors, sampled bodies) in mp3d.body.evaluation, keypoint files in mp3d.body.keypoints,
the result type in mp3d.body.result, the rotations and projection in mp3d.transforms.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from mp3d.body.priors import (
    HYPEREXTENSION,
    JOINT_LIMITS,
    angle_prior,
    gmof,
    joint_limits,
    pose_prior,
    pose_prior_params,
    shape_prior,
)
from mp3d.body.result import FitResult
from mp3d.body.smpl import SMPL, JointModel
from mp3d.training import Config
from mp3d.transforms import (
    axis_angle_to_matrix,
    axis_rotation,
    matrix_to_axis_angle,
    project_points,
)

__all__ = [
    "HYPEREXTENSION",
    "JOINT_LIMITS",
    "TORSO_JOINTS",
    "FitResult",
    "JointModel",
    "MIN_DEPTH",
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
    "pelvis",
    "left_hip",
    "right_hip",
    "spine1",
    "spine2",
    "spine3",
    "neck",
    "left_collar",
    "right_collar",
    "left_shoulder",
    "right_shoulder",
)

# Depths below this (model units) are clamped before dividing by them in the projection.
MIN_DEPTH = 1e-3
# Adam steps over which fit_smplify's stages ramp the step size up.
_WARMUP = 10


# ----------------------------------------------------------------------------- inputs


def _tensor(
    name: str, value: torch.Tensor | np.ndarray | Sequence, dtype: torch.dtype, device: torch.device
) -> torch.Tensor:
    if isinstance(value, np.ndarray | list | tuple):
        try:
            value = torch.as_tensor(np.asarray(value, dtype=np.float64))
        except (TypeError, ValueError) as error:
            raise ValueError(f"{name} must be numeric, got {error}") from None
    if not isinstance(value, torch.Tensor):
        raise ValueError(
            f"{name} must be a torch.Tensor or numpy array, got {type(value).__name__}"
        )
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
    keypoints = _batched(
        "keypoints",
        _tensor("keypoints", keypoints, **like),
        (n_joints, 2),
        f"{n_joints}, 2] (pixel x, y of the model's {n_joints} joints",
    )
    n_batch = keypoints.shape[0]
    if n_batch == 0:
        raise ValueError("keypoints must hold at least one person, got batch size 0")
    K = _broadcast("K", _batched("K", _tensor("K", K, **like), (3, 3), "3, 3"), n_batch)
    bottom = torch.tensor([0.0, 0.0, 1.0], **like)
    if not bool((K[:, 2] == bottom).all()) or not bool(((K[:, 0, 0] > 0) & (K[:, 1, 1] > 0)).all()):
        raise ValueError(
            "K must be pixel intrinsics [[fx, s, cx], [0, fy, cy], [0, 0, 1]] with fx, fy > 0"
        )
    if confidences is None:
        confidences = torch.ones(n_batch, n_joints, **like)
    else:
        confidences = _broadcast(
            "confidences",
            _batched(
                "confidences",
                _tensor("confidences", confidences, **like),
                (n_joints,),
                f"{n_joints}",
            ),
            n_batch,
        )
        if bool((confidences < 0).any()):
            raise ValueError("confidences must be >= 0")
    if bool(((confidences > 0).sum(dim=1) < 2).any()):
        raise ValueError("confidences: every person needs at least 2 joints with confidence > 0")
    if viewmat is not None:
        viewmat = _broadcast(
            "viewmat",
            _batched("viewmat", _tensor("viewmat", viewmat, **like), (4, 4), "4, 4"),
            n_batch,
        )
        rotation = viewmat[:, :3, :3]
        eye = torch.eye(3, **like)
        bottom4 = torch.tensor([0.0, 0.0, 0.0, 1.0], **like)
        if (
            not bool((viewmat[:, 3] == bottom4).all())
            or float((rotation @ rotation.transpose(1, 2) - eye).abs().max()) > 1e-4
            or bool((torch.linalg.det(rotation) < 0).any())
        ):
            raise ValueError(
                "viewmat must be a rigid world-to-camera transform [[R, t], [0, 1]] "
                "with R a rotation"
            )
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


def initial_depth(
    joints: JointModel,
    keypoints: torch.Tensor,
    K: torch.Tensor,
    confidences: torch.Tensor,
    betas: torch.Tensor | None = None,
) -> torch.Tensor:
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


def _anchor_pixel(
    joints: JointModel, keypoints: torch.Tensor, confidences: torch.Tensor
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


def _camera_start(
    joints: JointModel, keypoints: torch.Tensor, K: torch.Tensor, confidences: torch.Tensor
) -> torch.Tensor:
    """Camera-frame pelvis position [B,3] to start from: the anchor pixel at the depth of
    similar triangles."""
    depth = initial_depth(joints, keypoints, K, confidences)
    ray = _normalised(_anchor_pixel(joints, keypoints, confidences)[:, None], K)[:, 0]
    return torch.cat([ray, torch.ones_like(ray[:, :1])], dim=1) * depth[:, None]


def _to_world(
    rotation: torch.Tensor, pelvis: torch.Tensor, viewmat: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Root rotation [B,3,3] and pelvis position [B,3] in the camera frame -> the world frame
    of viewmat [B,4,4] (unchanged without one)."""
    if viewmat is None:
        return rotation, pelvis
    r_view = viewmat[:, :3, :3]
    world_rotation = r_view.transpose(1, 2) @ rotation
    world_pelvis = ((pelvis - viewmat[:, :3, 3])[:, None] @ r_view)[:, 0]
    return world_rotation, world_pelvis


def _initial_params(
    joints: JointModel,
    keypoints: torch.Tensor,
    K: torch.Tensor,
    confidences: torch.Tensor,
    viewmat: torch.Tensor | None,
    n_betas: int,
    yaws: Sequence[float],
) -> dict[str, torch.Tensor]:
    """Starting parameters [len(yaws)*B, ...] (start-major): mean shape, zero body pose, the
    body upright, facing the camera turned by each yaw, its pelvis on the image at the depth
    of similar triangles."""
    like = {"dtype": joints.dtype, "device": joints.device}
    n_batch = keypoints.shape[0]
    betas = torch.zeros(n_batch, n_betas, **like)
    pelvis_camera = _camera_start(joints, keypoints, K, confidences)
    root_rest = joints.rest_joints(betas)[:, 0]  # [B,3]
    upright = axis_rotation("x", math.pi, **like)  # body y up -> camera -y (image up), facing -z
    orients, transls = [], []
    for yaw in yaws:
        rotation_camera = (axis_rotation("y", yaw, **like) @ upright).expand(n_batch, 3, 3)
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
class SMPLifyConfig(Config):
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
        """Raises ValueError naming the first setting out of range (run on construction)."""
        super().validate()
        for name in ("sigma", "keypoint_std", "lr"):
            if not getattr(self, name) > 0:
                raise ValueError(f"config.{name} must be > 0, got {getattr(self, name)}")
        for name in ("pose_weight", "shape_weight", "angle_weight"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"config.{name} must be >= 0, got {getattr(self, name)}")
        if self.n_betas < 0:
            raise ValueError(f"config.n_betas must be >= 0, got {self.n_betas}")
        if len(self.prior_schedule) != len(self.iterations) or not self.iterations:
            raise ValueError(
                "config.prior_schedule and config.iterations must have the same "
                f"length >= 1, got {len(self.prior_schedule)} and "
                f"{len(self.iterations)}"
            )
        if any(w < 0 for w in self.prior_schedule):
            raise ValueError(f"config.prior_schedule must be >= 0, got {self.prior_schedule}")
        if self.torso_iterations < 0 or any(n < 0 for n in self.iterations):
            raise ValueError("config.torso_iterations and config.iterations must be >= 0")
        if self.optimizer not in ("adam", "lbfgs"):
            raise ValueError(f"config.optimizer must be 'adam' or 'lbfgs', got {self.optimizer!r}")
        if self.yaw_starts < 1:
            raise ValueError(f"config.yaw_starts must be >= 1, got {self.yaw_starts}")


class _Objective:
    """Terms of the SMPLify objective E for fixed keypoints, camera and confidences."""

    def __init__(
        self,
        joints: JointModel,
        keypoints: torch.Tensor,
        K: torch.Tensor,
        confidences: torch.Tensor,
        viewmat: torch.Tensor | None,
        config: SMPLifyConfig,
    ) -> None:
        self.joints, self.keypoints, self.K = joints, keypoints, K
        self.confidences, self.viewmat, self.config = confidences, viewmat, config
        self.prior_mean, self.prior_std = (
            t.to(joints.device) for t in pose_prior_params(joints.joint_names, joints.dtype)
        )

    def data_of_joints(self, posed: torch.Tensor) -> torch.Tensor:
        """Robust reprojection term [B] of posed joints [B,J,3]."""
        pixels, _ = project_points(posed, self.K, self.viewmat, min_depth=MIN_DEPTH)
        residual_sq = ((pixels - self.keypoints) ** 2).sum(dim=-1)
        rho = gmof(residual_sq, self.config.sigma)
        return (self.confidences * rho).sum(dim=1) / self.config.keypoint_std**2

    def data(self, params: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Robust reprojection term [B] of SMPL parameters."""
        return self.data_of_joints(self.joints(**params))

    def priors(self, betas: torch.Tensor, body_pose: torch.Tensor) -> torch.Tensor:
        """Pose, shape and angle priors [B] at their base weights."""
        c = self.config
        return (
            c.pose_weight * pose_prior(body_pose, self.prior_mean, self.prior_std)
            + c.shape_weight * shape_prior(betas)
            + c.angle_weight * angle_prior(body_pose, self.joints.joint_names)
        )

    def total(self, params: Mapping[str, torch.Tensor], prior_scale: float) -> torch.Tensor:
        """E [B] with the priors' base weights multiplied by prior_scale."""
        energy = self.data(params)
        if prior_scale > 0:
            energy = energy + prior_scale * self.priors(params["betas"], params["body_pose"])
        return energy


def _minimise(
    objective: Callable[[], torch.Tensor],
    tensors: list[torch.Tensor],
    iterations: int,
    config: SMPLifyConfig,
    history: list[float],
    reduce: Callable[[torch.Tensor], float] | None = None,
) -> None:
    """Minimises the sum over people of objective() [B] over tensors, in place; appends the
    per-iteration value (default: mean over people) to history."""
    if iterations == 0 or not tensors:
        return
    reduce = reduce or (lambda per: float(per.mean()))
    if config.optimizer == "adam":
        # fused: one kernel for every tensor's update, the same arithmetic as the loop of
        # small ops it replaces (which took half of each iteration's time on a CPU).
        fused = all(t.device.type in ("cpu", "cuda") for t in tensors)
        optimiser = torch.optim.Adam(tensors, lr=config.lr, fused=fused)
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
    optimiser = torch.optim.LBFGS(
        tensors,
        lr=1.0,
        max_iter=iterations,
        history_size=20,
        line_search_fn="strong_wolfe",
        tolerance_grad=1e-9,
        tolerance_change=1e-12,
    )

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
    config = config if config is not None else SMPLifyConfig()
    if not isinstance(config, SMPLifyConfig):
        raise ValueError(f"config must be an SMPLifyConfig, got {type(config).__name__}")
    config.validate()  # again: fields may have been changed since it was made
    joints = JointModel(model, validate=False)
    keypoints, K, confidences, viewmat = _check_inputs(joints, keypoints, K, confidences, viewmat)
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
    stage1 = _Objective(
        joints,
        repeat(keypoints),
        repeat(K),
        repeat(torch.where(use_torso, torso_conf, confidences)),
        repeat(viewmat),
        config,
    )
    objective = _Objective(
        joints, repeat(keypoints), repeat(K), repeat(confidences), repeat(viewmat), config
    )
    for name in ("global_orient", "transl"):
        params[name].requires_grad_(True)
    history: list[float] = []
    _minimise(
        lambda: stage1.data(params),
        [params["global_orient"], params["transl"]],
        config.torso_iterations,
        config,
        history,
        reduce=best_of_starts,
    )
    losses["torso"] = history
    with torch.no_grad():
        initial_errors = _reprojection_errors(
            joints, params, repeat(keypoints), repeat(K), repeat(viewmat)
        )

    # Stage 2: everything, the priors weighted less and less.
    for tensor in params.values():
        tensor.requires_grad_(True)
    from tqdm import tqdm

    stages = list(zip(config.prior_schedule, config.iterations, strict=True))
    for k, (scale, iterations) in enumerate(
        tqdm(stages, desc="fitting", disable=not progress, leave=False)
    ):
        history = []
        trainable = [p for name, p in params.items() if name != "betas" or n_betas > 0]
        _minimise(
            lambda scale=scale: objective.total(params, scale),
            trainable,
            iterations,
            config,
            history,
            reduce=best_of_starts,
        )
        losses[f"full_{k + 1}_prior_x{scale:g}"] = history

    with torch.no_grad():
        final_all = objective.total(
            {n: p.detach() for n, p in params.items()}, config.prior_schedule[-1]
        )
        best = final_all.view(n_starts, n_batch).argmin(dim=0)  # [B]
        pick = best * n_batch + torch.arange(n_batch, device=best.device)
        params = {name: p.detach()[pick] for name, p in params.items()}
        posed = joints(**params)
        projected, _ = project_points(posed, K, viewmat, min_depth=MIN_DEPTH)
    return FitResult(
        betas=params["betas"],
        body_pose=params["body_pose"],
        global_orient=params["global_orient"],
        transl=params["transl"],
        joints=posed,
        projected=projected,
        joint_errors=(projected - keypoints).norm(dim=-1),
        initial_joint_errors=initial_errors[pick],
        confidences=confidences,
        final_loss=final_all[pick],
        losses=losses,
        seconds=time.perf_counter() - start_time,
    )


def _reprojection_errors(
    joints: JointModel,
    params: Mapping[str, torch.Tensor],
    keypoints: torch.Tensor,
    K: torch.Tensor,
    viewmat: torch.Tensor | None,
) -> torch.Tensor:
    pixels, _ = project_points(joints(**params), K, viewmat, min_depth=MIN_DEPTH)
    return (pixels - keypoints).norm(dim=-1)

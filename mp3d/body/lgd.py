"""Learned gradient descent for body fitting (`train_lgd`, `fit_lgd`), after Song et al.,
"Human Body Model Fitting by Learned Gradient Descent" (ECCV 2020): a small MLP maps the
gradient of the SMPLify objective (mp3d.body.fit), the current parameters and the keypoints
to a parameter update, trained on bodies sampled from the model to minimise the 3D joint
error after T unrolled updates. `gradient_descent` is the plain baseline it is compared with.
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from mp3d.body.evaluation import mpjpe, sample_bodies
from mp3d.body.fit import (
    MIN_DEPTH,
    SMPLifyConfig,
    _anchor_pixel,
    _camera_start,
    _check_inputs,
    _normalised,
    _Objective,
    _spread,
    _to_world,
)
from mp3d.body.smpl import SMPL, JointModel
from mp3d.io import atomic_path
from mp3d.training import Config
from mp3d.transforms import (
    axis_angle_to_matrix,
    axis_rotation,
    matrix_to_axis_angle,
    project_points,
)

__all__ = [
    "DescentResult",
    "LGDConfig",
    "LGDNet",
    "LGDTrainResult",
    "fit_lgd",
    "gradient_descent",
    "train_lgd",
]

# ----------------------------------------------------------------------------- learned descent


@dataclass
class DescentResult:
    """What fit_lgd and gradient_descent return; B people."""

    betas: torch.Tensor  # [B,S]
    body_pose: torch.Tensor  # [B,3(J-1)]
    global_orient: torch.Tensor  # [B,3]
    transl: torch.Tensor  # [B,3] (world frame with a viewmat, else camera frame)
    joints: torch.Tensor  # [B,J,3] fitted joints in the same frame
    joint_errors: torch.Tensor  # [B,J] reprojection error of each joint, pixels
    trajectory: list[torch.Tensor]  # joints [B,J,3] (camera frame) before step 1, after each step
    energies: list[float]  # E (mean over people) before step 1 and after each step
    seconds: float = 0.0

    def params(self) -> dict[str, torch.Tensor]:
        """betas, body_pose, global_orient and transl, ready for SMPL.forward(**params)."""
        return {
            "betas": self.betas,
            "body_pose": self.body_pose,
            "global_orient": self.global_orient,
            "transl": self.transl,
        }


class _DescentProblem:
    """The fitting problem of learned and plain gradient descent, in the camera frame, over
    theta = [betas (S), body_pose (3(J-1)), omega (3), x, y, s]: root rotation R_0 exp(omega)
    (R_0: upright, facing the camera), pelvis at (x, y, e^s) (model units; s: log depth), so
    that a unit step in any of them moves the keypoints by comparable amounts."""

    def __init__(
        self,
        joints: JointModel,
        keypoints: torch.Tensor,
        K: torch.Tensor,
        confidences: torch.Tensor,
        n_betas: int,
        config: SMPLifyConfig,
    ) -> None:
        self.joints, self.n_betas = joints, n_betas
        self.objective = _Objective(joints, keypoints, K, confidences, None, config)
        like = {"dtype": joints.dtype, "device": joints.device}
        n_batch = keypoints.shape[0]
        pelvis = _camera_start(joints, keypoints, K, confidences)
        self.start = torch.cat(
            [
                torch.zeros(n_batch, n_betas + 3 * (joints.n_joints - 1) + 3, **like),
                pelvis[:, :2],
                torch.log(pelvis[:, 2:]),
            ],
            dim=1,
        )
        self.upright = axis_rotation("x", math.pi, **like).expand(n_batch, 3, 3)
        # Keypoints for the network: normalised image coordinates about the anchor, over
        # their spread; with the anchor, log spread and the confidences.
        image = _normalised(keypoints, K)
        seen = (confidences > 0).to(joints.dtype)
        spread = _spread(image, seen).clamp(min=1e-9)
        anchor = _normalised(_anchor_pixel(joints, keypoints, confidences)[:, None], K)
        centred = (image - anchor) / spread[:, None, None] * seen[..., None]
        self.features = torch.cat(
            [centred.flatten(1), confidences, anchor[:, 0], torch.log(spread)[:, None]], dim=1
        )

    @property
    def n_params(self) -> int:
        """Length P of theta."""
        return self.start.shape[1]

    def split(self, theta: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """betas [B,S], body_pose [B,3(J-1)], root rotation [B,3,3], pelvis [B,3] of theta."""
        s, p = self.n_betas, 3 * (self.joints.n_joints - 1)
        betas, body_pose = theta[:, :s], theta[:, s : s + p]
        rotation = self.upright @ axis_angle_to_matrix(theta[:, s + p : s + p + 3])
        pelvis = torch.cat([theta[:, -3:-1], torch.exp(theta[:, -1:])], dim=1)
        return betas, body_pose, rotation, pelvis

    def posed(self, theta: torch.Tensor) -> torch.Tensor:
        """Camera-frame joints [B,J,3] of theta [B,P]."""
        betas, body_pose, rotation, pelvis = self.split(theta)
        transl = pelvis - self.joints.rest_joints(betas)[:, 0]
        return self.joints.posed(betas, body_pose, rotation, transl)

    def energy(self, theta: torch.Tensor) -> torch.Tensor:
        """E [B] (data term and priors at their base weights) of theta [B,P]."""
        betas, body_pose = theta[:, : self.n_betas], theta[:, self.n_betas : -6]
        return self.objective.data_of_joints(self.posed(theta)) + self.objective.priors(
            betas, body_pose
        )

    def gradient(self, theta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """E [B] and dE/dtheta [B,P] at theta, both detached."""
        with torch.enable_grad():
            point = theta.detach().requires_grad_(True)
            energy = self.energy(point)
            (grad,) = torch.autograd.grad(energy.sum(), point)
        return energy.detach(), grad

    def result(
        self,
        theta: torch.Tensor,
        viewmat: torch.Tensor | None,
        trajectory: list[torch.Tensor],
        energies: list[float],
        seconds: float,
    ) -> DescentResult:
        """SMPL parameters (in viewmat's world frame if given) of the final theta [B,P]."""
        with torch.no_grad():
            betas, body_pose, rotation, pelvis = self.split(theta)
            rotation, pelvis = _to_world(rotation, pelvis, viewmat)
            transl = pelvis - self.joints.rest_joints(betas)[:, 0]
            global_orient = matrix_to_axis_angle(rotation)
            posed = self.joints(betas, body_pose, global_orient, transl)
            pixels, _ = project_points(posed, self.objective.K, viewmat, min_depth=MIN_DEPTH)
            errors = (pixels - self.objective.keypoints).norm(dim=-1)
        return DescentResult(
            betas=betas.detach(),
            body_pose=body_pose.detach(),
            global_orient=global_orient,
            transl=transl,
            joints=posed,
            joint_errors=errors,
            trajectory=trajectory,
            energies=energies,
            seconds=seconds,
        )


def gradient_descent(
    model: SMPL,
    keypoints: torch.Tensor | np.ndarray,
    K: torch.Tensor | np.ndarray,
    confidences: torch.Tensor | np.ndarray | None = None,
    viewmat: torch.Tensor | np.ndarray | None = None,
    steps: int = 100,
    lr: float = 1e-3,
    config: SMPLifyConfig | None = None,
) -> DescentResult:
    """Plain gradient descent theta <- theta - lr dE/dtheta on the problem of fit_lgd (same
    start, parameters and energy E) for `steps` steps; the baseline LGD is measured against."""
    if steps < 0:
        raise ValueError(f"steps must be >= 0, got {steps}")
    if not lr > 0:
        raise ValueError(f"lr must be > 0, got {lr}")
    config = config or SMPLifyConfig()
    config.validate()
    return _descend(
        model,
        keypoints,
        K,
        confidences,
        viewmat,
        steps,
        config,
        lambda problem, theta, grad: -lr * grad,
    )


def _descend(
    model: SMPL,
    keypoints,
    K,
    confidences,
    viewmat,
    steps: int,
    config: SMPLifyConfig,
    update: Callable[[_DescentProblem, torch.Tensor, torch.Tensor], torch.Tensor],
) -> DescentResult:
    start_time = time.perf_counter()
    joints = JointModel(model, validate=False)
    keypoints, K, confidences, viewmat = _check_inputs(joints, keypoints, K, confidences, viewmat)
    problem = _DescentProblem(
        joints, keypoints, K, confidences, min(config.n_betas, joints.n_betas), config
    )
    theta = problem.start
    trajectory, energies = [], []
    with torch.no_grad():
        for _ in range(steps):
            energy, grad = problem.gradient(theta)
            trajectory.append(problem.posed(theta))
            energies.append(float(energy.mean()))
            theta = theta + update(problem, theta, grad)
        trajectory.append(problem.posed(theta))
        energies.append(float(problem.energy(theta).mean()))
    return problem.result(theta, viewmat, trajectory, energies, time.perf_counter() - start_time)


class LGDNet(nn.Module):
    """The update network of learned gradient descent: an MLP from (asinh of dE/dtheta [B,P],
    theta [B,P], keypoint features [B,F]) to an update of theta [B,P]."""

    def __init__(
        self,
        n_params: int,
        n_features: int,
        hidden: int = 256,
        layers: int = 2,
        steps: int = 4,
        objective: Mapping[str, object] | None = None,
    ) -> None:
        super().__init__()
        if min(n_params, n_features, hidden, layers, steps) < 1:
            raise ValueError("n_params, n_features, hidden, layers and steps must be >= 1")
        self.hparams = {
            "n_params": n_params,
            "n_features": n_features,
            "hidden": hidden,
            "layers": layers,
            "steps": steps,
            "objective": dict(objective or {}),
        }
        widths = [2 * n_params + n_features] + [hidden] * layers
        blocks: list[nn.Module] = []
        for width_in, width_out in itertools.pairwise(widths):
            blocks += [nn.Linear(width_in, width_out), nn.SiLU()]
        self.body = nn.Sequential(*blocks)
        self.head = nn.Linear(hidden, n_params)
        with torch.no_grad():  # start as (almost) no update
            self.head.weight.mul_(0.01)
            self.head.bias.zero_()

    @property
    def steps(self) -> int:
        """Number of updates T the network was trained to take."""
        return int(self.hparams["steps"])

    def objective_config(self) -> SMPLifyConfig:
        """The weights of the energy E whose gradient the network was trained on."""
        return SMPLifyConfig(**self.hparams["objective"])

    def forward(
        self, grad: torch.Tensor, theta: torch.Tensor, features: torch.Tensor
    ) -> torch.Tensor:
        """Update [B,P] from dE/dtheta [B,P], theta [B,P] and keypoint features [B,F]."""
        return self.head(self.body(torch.cat([torch.asinh(grad), theta, features], dim=1)))

    def save(self, path: str | Path) -> Path:
        """Writes the weights and hyper-parameters to path (torch.save), atomically."""
        with atomic_path(path) as tmp:
            torch.save({"hparams": self.hparams, "state_dict": self.state_dict()}, tmp)
        return Path(path)

    @classmethod
    def load(cls, path: str | Path) -> LGDNet:
        """An LGDNet read from a file LGDNet.save wrote."""
        data = torch.load(path, map_location="cpu", weights_only=True)
        net = cls(**data["hparams"])
        net.load_state_dict(data["state_dict"])
        return net


def _objective_fields(config: SMPLifyConfig) -> dict[str, object]:
    keep = ("sigma", "keypoint_std", "n_betas", "pose_weight", "shape_weight", "angle_weight")
    return {name: getattr(config, name) for name in keep}


def fit_lgd(
    model: SMPL,
    net: LGDNet,
    keypoints: torch.Tensor | np.ndarray,
    K: torch.Tensor | np.ndarray,
    confidences: torch.Tensor | np.ndarray | None = None,
    viewmat: torch.Tensor | np.ndarray | None = None,
    steps: int | None = None,
) -> DescentResult:
    """Fits keypoints [B?,J,2] (pixels; confidences [B?,J], K [B?,3,3], viewmat [B?,4,4]) by
    `steps` (default: the trained T) learned updates theta <- theta + net(dE/dtheta, theta, x)."""
    if not isinstance(net, LGDNet):
        raise ValueError(f"net must be an LGDNet, got {type(net).__name__}")
    steps = net.steps if steps is None else steps
    if steps < 0:
        raise ValueError(f"steps must be >= 0, got {steps}")
    net_dtype = next(net.parameters()).dtype

    def update(problem: _DescentProblem, theta: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
        if problem.n_params != net.hparams["n_params"]:
            raise ValueError(
                f"net was trained for {net.hparams['n_params']} parameters, this "
                f"model and config have {problem.n_params}"
            )
        args = (grad, theta, problem.features)
        return net(*(a.to(net_dtype) for a in args)).to(theta.dtype)

    return _descend(
        model, keypoints, K, confidences, viewmat, steps, net.objective_config(), update
    )


@dataclass
class LGDConfig(Config):
    """Training of the learned-gradient-descent network (train_lgd)."""

    steps: int = 4  # unrolled updates T
    hidden: int = 256
    layers: int = 2
    batch_size: int = 64
    iterations: int = 3000
    minutes: float | None = 2.0  # stop after this much wall time, even before `iterations`
    lr: float = 1e-3
    grad_clip: float = 1.0
    seed: int = 0
    # Synthetic bodies (sample_bodies keyword arguments): poses within half the joint limits,
    # headings within 45 degrees of facing the camera, 2-pixel keypoint noise.
    sampling: dict = field(
        default_factory=lambda: {
            "pose_scale": 0.5,
            "yaw": (-math.pi / 4, math.pi / 4),
            "noise_px": 2.0,
        }
    )
    objective: SMPLifyConfig = field(default_factory=SMPLifyConfig)

    def validate(self) -> None:
        """Raises ValueError naming the first setting out of range (run on construction)."""
        super().validate()
        for name in ("steps", "hidden", "layers", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"config.{name} must be >= 1, got {getattr(self, name)}")
        if self.iterations < 0:
            raise ValueError(f"config.iterations must be >= 0, got {self.iterations}")
        if self.minutes is not None and not self.minutes > 0:
            raise ValueError(f"config.minutes must be > 0 or None, got {self.minutes}")
        if not (self.lr > 0 and self.grad_clip > 0):
            raise ValueError("config.lr and config.grad_clip must be > 0")
        self.objective.validate()


@dataclass
class LGDTrainResult:
    """What train_lgd returns."""

    net: LGDNet
    losses: list[float]  # training loss per iteration: step-weighted root-relative MPJPE, m
    final_errors: list[float]  # root-relative MPJPE after the last step, per iteration, m
    iterations: int
    seconds: float


def _root_relative_error(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean over people of the root-relative MPJPE of joints [B,J,3] (model units)."""
    return mpjpe(pred - pred[:, :1], target - target[:, :1]).mean()


def train_lgd(
    model: SMPL,
    config: LGDConfig | None = None,
    progress: bool = False,
    checkpoint: str | Path | None = None,
) -> LGDTrainResult:
    """Trains an LGDNet on bodies sampled from the model (sample_bodies): T updates from the
    similar-triangles start, loss sum_t (t/T) root-relative MPJPE(theta_t) / sum_t (t/T),
    backpropagated through the unrolled updates (dE/dtheta enters as an input)."""
    config = config or LGDConfig()
    config.validate()
    joints = JointModel(model, validate=False)
    generator = torch.Generator().manual_seed(config.seed)
    torch_state = torch.random.get_rng_state()
    torch.manual_seed(config.seed)
    n_betas = min(config.objective.n_betas, joints.n_betas)
    probe = sample_bodies(
        joints, 1, torch.Generator().manual_seed(0), n_betas=n_betas, **config.sampling
    )
    n_params = _DescentProblem(
        joints,
        probe.keypoints,
        probe.K,
        torch.ones(1, joints.n_joints, dtype=joints.dtype),
        n_betas,
        config.objective,
    ).n_params
    n_features = 3 * joints.n_joints + 3
    net = LGDNet(
        n_params,
        n_features,
        config.hidden,
        config.layers,
        config.steps,
        _objective_fields(config.objective),
    ).to(dtype=joints.dtype)
    torch.random.set_rng_state(torch_state)
    optimiser = torch.optim.Adam(net.parameters(), lr=config.lr)
    weights = [(t + 1) / config.steps for t in range(config.steps)]
    losses, finals = [], []
    start_time = time.perf_counter()
    from tqdm import tqdm

    bar = tqdm(total=config.iterations, desc="training LGD", disable=not progress, leave=False)
    iteration = 0
    while iteration < config.iterations:
        if config.minutes is not None and time.perf_counter() - start_time > 60 * config.minutes:
            break
        data = sample_bodies(
            joints, config.batch_size, generator, n_betas=n_betas, **config.sampling
        )
        problem = _DescentProblem(
            joints,
            data.keypoints,
            data.K,
            torch.ones_like(data.keypoints[..., 0]),
            n_betas,
            config.objective,
        )
        theta = problem.start
        loss = torch.zeros((), dtype=joints.dtype)
        for weight in weights:
            _, grad = problem.gradient(theta)
            theta = theta + net(grad, theta, problem.features)
            error = mpjpe(problem.posed(theta), data.joints).mean()
            loss = loss + weight * error
        loss = loss / sum(weights)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(net.parameters(), config.grad_clip)
        optimiser.step()
        losses.append(float(loss.detach()))
        finals.append(float(error.detach()))
        iteration += 1
        bar.update(1)
        bar.set_postfix(mpjpe_mm=f"{1000 * finals[-1]:.0f}")
    bar.close()
    net.eval()
    if checkpoint is not None:
        net.save(checkpoint)
    return LGDTrainResult(
        net=net,
        losses=losses,
        final_errors=finals,
        iterations=iteration,
        seconds=time.perf_counter() - start_time,
    )

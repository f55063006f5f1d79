"""The SMPL body model: shape and pose blend shapes, joint regression, forward kinematics and
linear blend skinning (through the mp3d.ops.skinning kernel).

    v_shaped = T + B_S(beta)                         rest mesh of this body shape
    J        = J_regressor v_shaped                  rest joints
    R_k      = Rodrigues(theta_k)                    local joint rotations
    v_posed  = v_shaped + B_P(R(theta) - I)          pose correctives (9 values per non-root joint)
    G_k      = G_parent(k) [R_k | J_k - J_parent(k)] forward kinematics along the tree
    vertices = LBS(v_posed, W, G_k G_k(theta_0)^-1) + transl

Lengths are in the units of the model file (metres for SMPL and the built-in body), y up,
axis-angle rotations in radians.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from mp3d._backend import IMPLS
from mp3d.body.model_file import load_model_file, validate_model
from mp3d.body.skeleton import SMPL_JOINT_NAMES, parents_from_kintree
from mp3d.ops import skinning
from mp3d.transforms import axis_angle_to_matrix

__all__ = [
    "BUILTIN_BODY",
    "SMPL",
    "JointModel",
    "SMPLOutput",
    "batch_rigid_transform",
    "batch_rodrigues",
    "blend_shapes",
    "pose_features",
    "vertices2joints",
]

BUILTIN_BODY = Path(__file__).resolve().parent / "data" / "builtin_body.npz"


# ----------------------------------------------------------------------------- functions


def blend_shapes(betas: torch.Tensor, shapedirs: torch.Tensor) -> torch.Tensor:
    """Shape offsets [B,V,3] from betas [B,S] and shape directions [V,3,S]."""
    return torch.einsum("bs,vcs->bvc", betas, shapedirs)


def vertices2joints(J_regressor: torch.Tensor, vertices: torch.Tensor) -> torch.Tensor:
    """Joint locations [B,J,3] regressed from vertices [B,V,3] by J_regressor [J,V]."""
    return torch.einsum("jv,bvc->bjc", J_regressor, vertices)


def batch_rodrigues(rot_vecs: torch.Tensor) -> torch.Tensor:
    """Rotation matrices [N,3,3] from axis-angle vectors [N,3] (radians); exact and smooth at
    the zero rotation. The same as mp3d.transforms.axis_angle_to_matrix (any batch shape)."""
    return axis_angle_to_matrix(rot_vecs)


def pose_features(rot_mats: torch.Tensor) -> torch.Tensor:
    """Pose-corrective features [B,9(J-1)]: R_k - I of every non-root joint, row-major."""
    n_batch = rot_mats.shape[0]
    eye = torch.eye(3, dtype=rot_mats.dtype, device=rot_mats.device)
    return (rot_mats[:, 1:] - eye).reshape(n_batch, -1)


def batch_rigid_transform(
    rot_mats: torch.Tensor, joints: torch.Tensor, parents: list[int]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Forward kinematics: world transforms G [B,J,4,4] and skinning transforms
    A = G G(theta_0)^-1 [B,J,4,4] from local rotations [B,J,3,3], rest joints [B,J,3] and
    parent indices [J] (each parent before its children; -1 for the root)."""
    n_batch, n_joints = joints.shape[:2]
    offsets = joints.clone()
    offsets[:, 1:] = joints[:, 1:] - joints[:, parents[1:]]  # joint relative to its parent
    local = torch.zeros(n_batch, n_joints, 4, 4, dtype=joints.dtype, device=joints.device)
    local[..., :3, :3] = rot_mats
    local[..., :3, 3] = offsets
    local[..., 3, 3] = 1.0
    chain = [local[:, 0]]
    for j in range(1, n_joints):
        chain.append(torch.matmul(chain[parents[j]], local[:, j]))
    world = torch.stack(chain, dim=1)  # [B,J,4,4]
    # G(theta_0) is the translation by the rest joint, so G G(theta_0)^-1 moves the rest joint
    # to the posed one: translation t - R J.
    moved = world[..., :3, 3] - torch.matmul(world[..., :3, :3], joints.unsqueeze(-1)).squeeze(-1)
    skin = torch.cat([world[..., :3, :3], moved.unsqueeze(-1)], dim=-1)
    skin = torch.cat([skin, world[..., 3:, :]], dim=-2)
    return world, skin


# ----------------------------------------------------------------------------- model


@dataclass
class SMPLOutput:
    """What SMPL.forward returns (lengths in model units, translation included)."""

    vertices: torch.Tensor  # [B,V,3] posed mesh
    joints: torch.Tensor  # [B,J,3] posed joints
    faces: torch.Tensor  # [F,3] int64 triangle vertex indices
    joint_transforms: torch.Tensor  # [B,J,4,4] world transform G_k of each joint's frame
    skinning_transforms: torch.Tensor  # [B,J,4,4] G_k G_k(theta_0)^-1 that LBS applies (before
    # transl, which is added to the skinned vertices)
    rest_vertices: torch.Tensor  # [B,V,3] shaped rest mesh with pose correctives, unposed


class SMPL(nn.Module):
    """An SMPL-family body model from an official file (.pkl or .npz), a dict of its arrays,
    or, without either, mp3d's built-in procedural body (24 joints, SMPL's skeleton)."""

    def __init__(
        self,
        model_path: str | Path | Mapping[str, np.ndarray] | None = None,
        dtype: torch.dtype = torch.float32,
        *,
        impl: str = "auto",
    ) -> None:
        super().__init__()
        if dtype not in (torch.float32, torch.float64):
            raise ValueError(f"dtype must be torch.float32 or torch.float64, got {dtype}")
        if impl not in IMPLS:
            raise ValueError(f"impl must be one of {IMPLS}, got {impl!r}")
        if model_path is None:
            model_path = BUILTIN_BODY
        if isinstance(model_path, Mapping):
            arrays = validate_model(model_path)
            self.model_path: Path | None = None
        else:
            arrays = load_model_file(model_path)
            self.model_path = Path(model_path)
        self.impl = impl
        parents = parents_from_kintree(arrays["kintree_table"])
        self.parents: list[int] = [int(p) for p in parents]
        n_vertices, n_joints = arrays["weights"].shape
        self.joint_names: tuple[str, ...] = SMPL_JOINT_NAMES if n_joints == len(
            SMPL_JOINT_NAMES) else tuple(f"joint_{j}" for j in range(n_joints))

        def floats(array: np.ndarray) -> torch.Tensor:
            return torch.as_tensor(np.ascontiguousarray(array), dtype=dtype)

        self.register_buffer("v_template", floats(arrays["v_template"]))  # [V,3]
        self.register_buffer("shapedirs", floats(arrays["shapedirs"]))  # [V,3,S]
        # [P,3V]: pose features times this give the flattened per-vertex offsets.
        self.register_buffer("posedirs", floats(arrays["posedirs"].reshape(3 * n_vertices, -1).T))
        self.register_buffer("J_regressor", floats(arrays["J_regressor"]))  # [J,V]
        self.register_buffer("lbs_weights", floats(arrays["weights"]))  # [V,J]
        self.register_buffer("faces", torch.as_tensor(arrays["f"], dtype=torch.int64))  # [F,3]
        self.register_buffer("parents_tensor", torch.as_tensor(parents))  # [J]

    @property
    def n_betas(self) -> int:
        """Number of shape directions S the model has."""
        return self.shapedirs.shape[-1]

    @property
    def n_joints(self) -> int:
        """Number of joints J (24 for SMPL)."""
        return self.lbs_weights.shape[1]

    @property
    def n_vertices(self) -> int:
        """Number of mesh vertices V."""
        return self.v_template.shape[0]

    def extra_repr(self) -> str:
        source = str(self.model_path) if self.model_path is not None else "arrays"
        return (f"{source}: {self.n_vertices} vertices, {self.faces.shape[0]} faces, "
                f"{self.n_joints} joints, {self.n_betas} betas, dtype={self.v_template.dtype}")

    def body_pose_from(self, rotations: Mapping[str | int, Sequence[float]]) -> torch.Tensor:
        """body_pose [1,3(J-1)] (axis-angle, radians) from {joint name or index: (rx, ry, rz)};
        joints not named stay at rest. The root's rotation is global_orient, not body_pose."""
        pose = torch.zeros(1, 3 * (self.n_joints - 1), dtype=self.v_template.dtype,
                           device=self.v_template.device)
        for joint, rotation in rotations.items():
            if isinstance(joint, str) and joint in self.joint_names:
                index = self.joint_names.index(joint)
            elif isinstance(joint, int) and 0 <= joint < self.n_joints:
                index = joint
            else:
                raise ValueError(f"unknown joint {joint!r}: expected one of "
                                 f"{', '.join(self.joint_names)} or an index "
                                 f"0..{self.n_joints - 1}")
            if index == 0:
                raise ValueError(f"{self.joint_names[0]} is the root joint: rotate it with "
                                 "global_orient")
            values = [float(v) for v in rotation]
            if len(values) != 3:
                raise ValueError(f"rotation of {self.joint_names[index]} must be 3 axis-angle "
                                 f"values, got {len(values)}")
            pose[0, 3 * (index - 1):3 * index] = torch.tensor(values, dtype=pose.dtype)
        return pose

    def _check(self, name: str, value: torch.Tensor | None, width: int | None, n_batch: int,
               text: str) -> None:
        """Raises ValueError unless value is None or a finite [n_batch, width] model tensor."""
        if value is None:
            return
        if not isinstance(value, torch.Tensor):
            raise ValueError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
        if value.dim() != 2 or (width is not None and value.shape[1] != width):
            raise ValueError(f"{name} must have shape [B, {text}], got {list(value.shape)}")
        if value.shape[0] != n_batch:
            raise ValueError(f"{name} must have shape [{n_batch}, {text}] (batch size "
                             f"{n_batch} from the other arguments), got {list(value.shape)}")
        if value.dtype != self.v_template.dtype:
            raise ValueError(f"{name} must have dtype {self.v_template.dtype} (the model's), "
                             f"got {value.dtype}")
        if value.device != self.v_template.device:
            raise ValueError(f"{name} must be on {self.v_template.device} (the model's device), "
                             f"got {value.device}")
        if not bool(torch.isfinite(value).all()):
            raise ValueError(f"{name} has non-finite values")

    def forward(
        self,
        betas: torch.Tensor | None = None,
        body_pose: torch.Tensor | None = None,
        global_orient: torch.Tensor | None = None,
        transl: torch.Tensor | None = None,
    ) -> SMPLOutput:
        """Posed body from betas [B,S<=n_betas], body_pose [B,3(J-1)] and global_orient [B,3]
        (axis-angle, radians), transl [B,3]; missing ones are zeros, B from those given."""
        n_pose = 3 * (self.n_joints - 1)
        given = {"betas": betas, "body_pose": body_pose, "global_orient": global_orient,
                 "transl": transl}
        n_batch = next((int(v.shape[0]) for v in given.values()
                        if isinstance(v, torch.Tensor) and v.dim() == 2), 1)
        self._check("betas", betas, None, n_batch, f"S] with S <= {self.n_betas}")
        if betas is not None and betas.shape[1] > self.n_betas:
            raise ValueError(f"betas must have shape [{n_batch}, S] with S <= {self.n_betas} "
                             f"(the model's shape directions), got {list(betas.shape)}")
        self._check("body_pose", body_pose, n_pose, n_batch,
                    f"{n_pose}] (axis-angle of {self.n_joints - 1} joints)")
        self._check("global_orient", global_orient, 3, n_batch, "3] (axis-angle)")
        self._check("transl", transl, 3, n_batch, "3]")
        zeros = {"dtype": self.v_template.dtype, "device": self.v_template.device}
        if betas is None:
            betas = torch.zeros(n_batch, 0, **zeros)
        if body_pose is None:
            body_pose = torch.zeros(n_batch, n_pose, **zeros)
        if global_orient is None:
            global_orient = torch.zeros(n_batch, 3, **zeros)

        v_shaped = self.v_template + blend_shapes(betas, self.shapedirs[..., :betas.shape[1]])
        rest_joints = vertices2joints(self.J_regressor, v_shaped)  # [B,J,3]
        full_pose = torch.cat([global_orient, body_pose], dim=1).reshape(-1, 3)
        rot_mats = batch_rodrigues(full_pose).view(n_batch, self.n_joints, 3, 3)
        pose_offsets = torch.matmul(pose_features(rot_mats), self.posedirs)
        v_posed = v_shaped + pose_offsets.view(n_batch, self.n_vertices, 3)
        world, skin = batch_rigid_transform(rot_mats, rest_joints, self.parents)
        vertices = skinning.lbs(v_posed, self.lbs_weights, skin, impl=self.impl)
        if transl is not None:  # after skinning: exact even where weights sum to 1 - 1e-8
            shift = torch.zeros_like(world)
            shift[..., :3, 3] = transl.unsqueeze(1)
            world = world + shift
            vertices = vertices + transl.unsqueeze(1)
        return SMPLOutput(vertices=vertices, joints=world[..., :3, 3], faces=self.faces,
                          joint_transforms=world, skinning_transforms=skin,
                          rest_vertices=v_posed)


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
        rot_mats = axis_angle_to_matrix(body_pose.reshape(n_batch, self.n_joints - 1, 3))
        rot_mats = torch.cat([root_rotation[:, None], rot_mats], dim=1)
        world, _ = batch_rigid_transform(rot_mats, rest, self.parents)
        return world[..., :3, 3] + transl[:, None]


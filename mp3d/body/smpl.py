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

from mp3d._backend import IMPLS, Impl
from mp3d.body.model_file import load_model_file, validate_model
from mp3d.body.skeleton import SMPL_JOINT_NAMES, parents_from_kintree
from mp3d.ops import skinning
from mp3d.ops._validation import checks_enabled
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
    rot_mats: torch.Tensor, joints: torch.Tensor, parents: Sequence[int]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Forward kinematics: world transforms G [B,J,4,4] and skinning transforms
    A = G G(theta_0)^-1 [B,J,4,4] from local rotations [B,J,3,3], rest joints [B,J,3] and
    parent indices [J] (each parent before its children; -1 for the root). The same as
    mp3d.ops.skinning.forward_kinematics, which also takes axis-angle rotations."""
    _, world, skin = skinning.forward_kinematics(rot_mats, joints, parents)
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
        impl: Impl = "auto",
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
        self.joint_names: tuple[str, ...] = (
            SMPL_JOINT_NAMES
            if n_joints == len(SMPL_JOINT_NAMES)
            else tuple(f"joint_{j}" for j in range(n_joints))
        )

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
        # The kinematics kernel reads the parents on the host: a CPU copy that .to() leaves
        # alone (no device-to-host copy per call on a GPU).
        self.parents_cpu = torch.as_tensor(self.parents, dtype=torch.int64)
        self._precompute()

    def _precompute(self) -> None:
        """Derived constants (non-persistent buffers, recomputed from the model's arrays):
        forward needs no joint regression over the mesh, no identity subtraction and one
        matrix product for both blend shapes. Computed in float64, stored in the model's
        dtype; the skinning weights were validated when the model was loaded."""
        n_vertices, n_joints = self.n_vertices, self.n_joints
        dtype = self.v_template.dtype
        regressor = self.J_regressor.double()
        shapedirs = self.shapedirs.double()
        posedirs = self.posedirs.double()  # [9(J-1), 3V]
        # Rest joints are linear in betas: J(beta) = J_R T + (J_R S) beta.
        self.register_buffer(
            "joint_template", (regressor @ self.v_template.double()).to(dtype), persistent=False
        )  # [J,3]
        joint_dirs = torch.einsum("jv,vcs->scj", regressor, shapedirs)  # [S,3,J]
        self.register_buffer(
            "joint_dirs",
            joint_dirs.transpose(1, 2).reshape(self.n_betas, 3 * n_joints).to(dtype),
            persistent=False,
        )  # [S,3J]
        # v_posed = T + S beta + P (R - I) = (T - P I) + [P; S] [R; beta]: the pose features
        # are then the rotation matrices themselves, read in place.
        identity = torch.eye(3, dtype=torch.float64).flatten().repeat(n_joints - 1)  # [9(J-1)]
        base = self.v_template.double().flatten() - identity @ posedirs
        self.register_buffer("blend_base", base.to(dtype), persistent=False)  # [3V]
        shape_rows = shapedirs.permute(2, 0, 1).reshape(self.n_betas, 3 * n_vertices)
        self.register_buffer(
            "blend_dirs", torch.cat([posedirs, shape_rows]).to(dtype), persistent=False
        )  # [9(J-1)+S, 3V]

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
        return (
            f"{source}: {self.n_vertices} vertices, {self.faces.shape[0]} faces, "
            f"{self.n_joints} joints, {self.n_betas} betas, dtype={self.v_template.dtype}"
        )

    def body_pose_from(self, rotations: Mapping[str | int, Sequence[float]]) -> torch.Tensor:
        """body_pose [1,3(J-1)] (axis-angle, radians) from {joint name or index: (rx, ry, rz)};
        joints not named stay at rest. The root's rotation is global_orient, not body_pose."""
        pose = torch.zeros(
            1, 3 * (self.n_joints - 1), dtype=self.v_template.dtype, device=self.v_template.device
        )
        for joint, rotation in rotations.items():
            if isinstance(joint, str) and joint in self.joint_names:
                index = self.joint_names.index(joint)
            elif isinstance(joint, int) and 0 <= joint < self.n_joints:
                index = joint
            else:
                raise ValueError(
                    f"unknown joint {joint!r}: expected one of "
                    f"{', '.join(self.joint_names)} or an index "
                    f"0..{self.n_joints - 1}"
                )
            if index == 0:
                raise ValueError(
                    f"{self.joint_names[0]} is the root joint: rotate it with global_orient"
                )
            values = [float(v) for v in rotation]
            if len(values) != 3:
                raise ValueError(
                    f"rotation of {self.joint_names[index]} must be 3 axis-angle "
                    f"values, got {len(values)}"
                )
            pose[0, 3 * (index - 1) : 3 * index] = torch.tensor(values, dtype=pose.dtype)
        return pose

    def _check(
        self, name: str, value: torch.Tensor | None, width: int | None, n_batch: int, text: str
    ) -> None:
        """Raises ValueError unless value is None or a [n_batch, width] tensor of the model's
        dtype and device (finiteness: _check_finite)."""
        if value is None:
            return
        if not isinstance(value, torch.Tensor):
            raise ValueError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
        if value.dim() != 2 or (width is not None and value.shape[1] != width):
            raise ValueError(f"{name} must have shape [B, {text}], got {list(value.shape)}")
        if value.shape[0] != n_batch:
            raise ValueError(
                f"{name} must have shape [{n_batch}, {text}] (batch size "
                f"{n_batch} from the other arguments), got {list(value.shape)}"
            )
        if value.dtype != self.v_template.dtype:
            raise ValueError(
                f"{name} must have dtype {self.v_template.dtype} (the model's), got {value.dtype}"
            )
        if value.device != self.v_template.device:
            raise ValueError(
                f"{name} must be on {self.v_template.device} (the model's device), "
                f"got {value.device}"
            )

    @staticmethod
    def _check_finite(tensors: Mapping[str, torch.Tensor | None]) -> None:
        """Raises ValueError naming the first of tensors with a NaN or infinite entry; one
        host read for all of them (the common case: all finite)."""
        given = {name: t for name, t in tensors.items() if t is not None}
        if not given:
            return
        if bool(torch.isfinite(torch.cat([t.reshape(-1) for t in given.values()])).all()):
            return
        for name, tensor in given.items():
            if not bool(torch.isfinite(tensor).all()):
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
        given = {
            "betas": betas,
            "body_pose": body_pose,
            "global_orient": global_orient,
            "transl": transl,
        }
        n_batch = next(
            (
                int(v.shape[0])
                for v in given.values()
                if isinstance(v, torch.Tensor) and v.dim() == 2
            ),
            1,
        )
        self._check("betas", betas, None, n_batch, f"S] with S <= {self.n_betas}")
        if betas is not None and betas.shape[1] > self.n_betas:
            raise ValueError(
                f"betas must have shape [{n_batch}, S] with S <= {self.n_betas} "
                f"(the model's shape directions), got {list(betas.shape)}"
            )
        self._check(
            "body_pose",
            body_pose,
            n_pose,
            n_batch,
            f"{n_pose}] (axis-angle of {self.n_joints - 1} joints)",
        )
        self._check("global_orient", global_orient, 3, n_batch, "3] (axis-angle)")
        self._check("transl", transl, 3, n_batch, "3]")
        if checks_enabled():
            self._check_finite(given)
        zeros = {"dtype": self.v_template.dtype, "device": self.v_template.device}
        if betas is None:
            betas = torch.zeros(n_batch, 0, **zeros)
        if body_pose is None:
            body_pose = torch.zeros(n_batch, n_pose, **zeros)
        if global_orient is None:
            global_orient = torch.zeros(n_batch, 3, **zeros)

        n_joints, n_betas = self.n_joints, betas.shape[1]
        rest_joints = torch.addmm(
            self.joint_template.flatten(), betas, self.joint_dirs[:n_betas]
        ).view(n_batch, n_joints, 3)
        full_pose = torch.cat([global_orient, body_pose], dim=1).view(n_batch, n_joints, 3)
        rot_mats, world, skin = skinning.forward_kinematics(
            full_pose, rest_joints, self.parents_cpu, impl=self.impl, validate=False
        )
        # The non-root rotation matrices, row-major, are the pose features (a strided view).
        features = rot_mats.flatten(2)[:, 1:].flatten(1)
        coefficients = torch.cat([features, betas], dim=1) if n_betas else features
        n_rows = coefficients.shape[1]
        v_posed = torch.addmm(self.blend_base, coefficients, self.blend_dirs[:n_rows]).view(
            n_batch, self.n_vertices, 3
        )
        vertices = skinning.lbs(v_posed, self.lbs_weights, skin, impl=self.impl, validate=False)
        if transl is not None:  # after skinning: exact even where weights sum to 1 - 1e-8
            shift = torch.nn.functional.pad(transl, (0, 1)).view(n_batch, 1, 4, 1)
            world = world + torch.nn.functional.pad(shift, (3, 0))
            vertices = vertices + transl.unsqueeze(1)
        return SMPLOutput(
            vertices=vertices,
            joints=world[..., :3, 3],
            faces=self.faces,
            joint_transforms=world,
            skinning_transforms=skin,
            rest_vertices=v_posed,
        )


class JointModel:
    """The posed joints of an SMPL model without its mesh: rest joints linear in the betas
    (J(beta) = J_0 + D beta, the joint regressor applied to the blend shapes once), then
    forward kinematics. Equal to SMPL.forward(...).joints, at a fraction of the cost (pose
    correctives move no joint). validate=False skips the value checks of the inputs (e.g.
    in an optimiser's inner loop); None follows mp3d.set_checks."""

    def __init__(self, model: SMPL, *, validate: bool | None = None) -> None:
        if not isinstance(model, SMPL):
            raise ValueError(f"model must be an mp3d.body.SMPL, got {type(model).__name__}")
        self.template = model.joint_template.flatten()  # [3J]
        self.dirs = model.joint_dirs  # [S,3J]
        self.parents = list(model.parents)
        self.parents_cpu = model.parents_cpu
        self.joint_names = tuple(model.joint_names)
        self.n_joints = model.n_joints
        self.n_betas = model.n_betas
        self.dtype = model.v_template.dtype
        self.device = model.v_template.device
        self.impl = model.impl
        self.validate = validate

    def rest_joints(self, betas: torch.Tensor) -> torch.Tensor:
        """Rest-pose joints [B,J,3] of shapes betas [B,S<=n_betas]."""
        return torch.addmm(self.template, betas, self.dirs[: betas.shape[1]]).view(
            betas.shape[0], self.n_joints, 3
        )

    def __call__(
        self,
        betas: torch.Tensor,
        body_pose: torch.Tensor,
        global_orient: torch.Tensor,
        transl: torch.Tensor,
    ) -> torch.Tensor:
        """Posed joints [B,J,3] from betas [B,S], body_pose [B,3(J-1)], global_orient [B,3]
        (axis-angle, radians) and transl [B,3]."""
        n_batch = body_pose.shape[0]
        pose = torch.cat([global_orient, body_pose], dim=1).view(n_batch, self.n_joints, 3)
        return self._posed(pose, betas, transl)

    def posed(
        self,
        betas: torch.Tensor,
        body_pose: torch.Tensor,
        root_rotation: torch.Tensor,
        transl: torch.Tensor,
    ) -> torch.Tensor:
        """Posed joints [B,J,3] with the root's rotation given as a matrix [B,3,3]."""
        n_batch = body_pose.shape[0]
        rot_mats = axis_angle_to_matrix(body_pose.view(n_batch, self.n_joints - 1, 3))
        return self._posed(torch.cat([root_rotation[:, None], rot_mats], dim=1), betas, transl)

    def _posed(
        self, rotations: torch.Tensor, betas: torch.Tensor, transl: torch.Tensor
    ) -> torch.Tensor:
        _, world, _ = skinning.forward_kinematics(
            rotations,
            self.rest_joints(betas),
            self.parents_cpu,
            impl=self.impl,
            validate=self.validate,
        )
        return world[..., :3, 3] + transl[:, None]

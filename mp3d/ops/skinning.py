"""Linear blend skinning (LBS), the last step of SMPL-style body models, and the forward
kinematics that gives it its per-joint transforms.

Every vertex follows a blend of its joints' rigid transforms:

    y_bv = sum_j w_vj (A_bj[:3, :3] x_bv + A_bj[:3, 3])

with rest vertices x [B,V,3] (or [V,3] shared by the batch), skinning weights w [V,J] whose
rows sum to 1, and per-joint 4x4 transforms A [B,J,4,4] (for SMPL, G_j(theta) G_j(theta_0)^-1;
their bottom rows are ignored). The compiled kernels blend each vertex's transform in
registers and never build the [B,V,4,4] tensor that the torch reference does.

Forward kinematics (`forward_kinematics`) turns local joint rotations R_j (axis-angle or
matrices), rest joints J_j and a parent list into world transforms G_j = G_parent [R_j | J_j -
J_parent] and skinning transforms A_j = G_j G_j(theta_0)^-1 = [G_j rotation | G_j translation -
G_j rotation J_j]; its compiled CPU kernel is one autograd node per call instead of ~100 small
tensor ops (on CUDA tensors the torch reference runs: the chain is sequential and tiny).

Both ops' compiled backward passes have a correct double backward: with create_graph=True
they differentiate the torch reference instead (slower, and rare).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from mp3d._backend import Impl, resolve_impl
from mp3d.ops._validation import (
    FLOAT_DTYPES,
    check_finite,
    check_same_device,
    check_same_dtype,
    check_tensor,
    value_checks,
)
from mp3d.transforms import axis_angle_to_matrix

__all__ = [
    "WEIGHT_SUM_TOLERANCE",
    "forward_kinematics",
    "kinematics_reference",
    "lbs",
    "reference",
]

FAMILY = "skinning"
KINEMATICS_FAMILY = "kinematics"  # a family of its own: it has no CUDA kernel
# How far a row of weights may sum from 1 (float32 round-off of a few dozen joints is ~1e-6).
WEIGHT_SUM_TOLERANCE = 1e-4


# ----------------------------------------------------------------------------- reference


def reference(
    vertices: torch.Tensor, weights: torch.Tensor, transforms: torch.Tensor
) -> torch.Tensor:
    """The torch reference: posed vertices [B,V,3] from per-vertex blended 4x4 transforms."""
    n_batch, n_vertices = transforms.shape[0], weights.shape[0]
    blended = torch.einsum("vj,bjmn->bvmn", weights, transforms)  # [B,V,4,4]
    homogeneous = torch.cat([vertices, torch.ones_like(vertices[..., :1])], dim=-1)
    homogeneous = homogeneous.expand(n_batch, n_vertices, 4)  # [B,V,4]
    return torch.matmul(blended[..., :3, :], homogeneous.unsqueeze(-1)).squeeze(-1)


# ----------------------------------------------------------------------------- kernels


class _SkinKernel(torch.autograd.Function):
    """The compiled kernels (C++ CPU or CUDA) behind one autograd node."""

    @staticmethod
    def forward(ctx, vertices, weights, transforms):
        ctx.save_for_backward(vertices, weights, transforms)
        return torch.ops.mp3d.lbs_fwd(vertices, weights, transforms)

    @staticmethod
    def backward(ctx, grad_posed):
        vertices, weights, transforms = ctx.saved_tensors
        needs = ctx.needs_input_grad[:3]
        if torch.is_grad_enabled():
            # create_graph=True: differentiate the reference so that the gradients are
            # themselves differentiable (second order is rare and may use more memory).
            return _reference_vjp(grad_posed, (vertices, weights, transforms), needs)
        grad_vertices, grad_weights, grad_transforms = torch.ops.mp3d.lbs_bwd(
            grad_posed.contiguous(), vertices, weights, transforms, *needs
        )
        return (
            grad_vertices if needs[0] else None,
            grad_weights if needs[1] else None,
            grad_transforms if needs[2] else None,
        )


def _reference_vjp(
    grad_posed: torch.Tensor, inputs: tuple[torch.Tensor, ...], needs: tuple[bool, ...]
) -> tuple[torch.Tensor | None, ...]:
    """Vector-Jacobian product of the reference, with a graph (for double backward)."""
    wanted = [t for t, need in zip(inputs, needs) if need]
    with torch.enable_grad():
        posed = reference(*inputs)
        grads = iter(torch.autograd.grad(posed, wanted, grad_posed, create_graph=True))
    return tuple(next(grads) if need else None for need in needs)


# ----------------------------------------------------------------------------- public API


def _validate(
    vertices: torch.Tensor, weights: torch.Tensor, transforms: torch.Tensor, values: bool
) -> None:
    check_tensor("weights", weights, shape=(None, None), dtypes=FLOAT_DTYPES)
    n_vertices, n_joints = weights.shape
    check_tensor("transforms", transforms, shape=(None, n_joints, 4, 4))
    n_batch = transforms.shape[0]
    check_tensor("vertices", vertices)
    if tuple(vertices.shape) not in ((n_batch, n_vertices, 3), (n_vertices, 3)):
        raise ValueError(
            f"vertices must have shape [{n_batch}, {n_vertices}, 3] or [{n_vertices}, 3] "
            f"(B from transforms, V from weights), got {list(vertices.shape)}"
        )
    tensors = {"vertices": vertices, "weights": weights, "transforms": transforms}
    check_same_dtype(tensors)
    check_same_device(tensors)
    if not values:
        return
    with torch.no_grad():
        for name, tensor in tensors.items():
            check_finite(name, tensor)
        if n_vertices == 0:
            return
        error = (weights.sum(dim=1) - 1.0).abs()
        worst = int(error.argmax())
        if float(error[worst]) > WEIGHT_SUM_TOLERANCE:
            raise ValueError(
                f"weights rows must sum to 1 (within {WEIGHT_SUM_TOLERANCE:g}), got row {worst} "
                f"summing to {float(weights[worst].sum()):.6g}"
            )


def lbs(
    vertices: torch.Tensor,
    weights: torch.Tensor,
    transforms: torch.Tensor,
    impl: Impl = "auto",
    *,
    validate: bool | None = None,
) -> torch.Tensor:
    """Posed vertices [B,V,3] from vertices [B,V,3] or [V,3], weights [V,J], transforms [B,J,4,4].

    y_bv = sum_j w_vj A_bj[:3, :] (x_bv, 1): weights rows sum to 1, the transforms' bottom
    rows are ignored, lengths keep the vertices' units. Differentiable in all three inputs.
    validate=False skips the value checks (finite inputs, weight rows summing to 1), e.g. for
    weights checked once when a model was built; None follows mp3d.set_checks. Shapes, dtypes
    and devices are always checked.
    """
    _validate(vertices, weights, transforms, value_checks(validate))
    if resolve_impl(impl, vertices.device, FAMILY) == "torch":
        return reference(vertices, weights, transforms)
    return _SkinKernel.apply(vertices.contiguous(), weights.contiguous(), transforms.contiguous())


# ----------------------------------------------------------------------------- kinematics


def kinematics_reference(
    rotations: torch.Tensor, joints: torch.Tensor, parents: Sequence[int]
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The torch reference of forward_kinematics: (rot_mats [B,J,3,3], world [B,J,4,4],
    skin [B,J,4,4]) of rotations [B,J,3] (axis-angle) or [B,J,3,3], joints [B,J,3], parents."""
    rot_mats = axis_angle_to_matrix(rotations) if rotations.dim() == 3 else rotations
    n_batch, n_joints = joints.shape[:2]
    bottom = torch.zeros(n_batch, 1, 4, dtype=joints.dtype, device=joints.device)
    bottom[..., 3] = 1.0
    rotation = [rot_mats[:, 0]]
    translation = [joints[:, 0]]
    for j in range(1, n_joints):
        p = parents[j]
        offset = joints[:, j] - joints[:, p]  # the joint relative to its parent, at rest
        rotation.append(rotation[p] @ rot_mats[:, j])
        translation.append((rotation[p] @ offset.unsqueeze(-1)).squeeze(-1) + translation[p])
    g_rot = torch.stack(rotation, dim=1)  # [B,J,3,3]
    g_t = torch.stack(translation, dim=1)  # [B,J,3]
    moved = g_t - (g_rot @ joints.unsqueeze(-1)).squeeze(-1)  # G G(theta_0)^-1's translation
    bottom = bottom.unsqueeze(1).expand(n_batch, n_joints, 1, 4)
    world = torch.cat([torch.cat([g_rot, g_t.unsqueeze(-1)], dim=-1), bottom], dim=-2)
    skin = torch.cat([torch.cat([g_rot, moved.unsqueeze(-1)], dim=-1), bottom], dim=-2)
    return rot_mats, world, skin


class _KinematicsKernel(torch.autograd.Function):
    """The compiled CPU kernel behind one autograd node."""

    @staticmethod
    def forward(ctx, rotations, joints, parents):
        ctx.save_for_backward(rotations, joints, parents)
        return tuple(torch.ops.mp3d.kinematics_fwd(rotations, joints, parents))

    @staticmethod
    def backward(ctx, grad_rot_mats, grad_world, grad_skin):
        rotations, joints, parents = ctx.saved_tensors
        needs = ctx.needs_input_grad[:2]
        if torch.is_grad_enabled():  # create_graph=True: differentiable gradients
            grads = (grad_rot_mats, grad_world, grad_skin)
            wanted = [t for t, need in zip((rotations, joints), needs, strict=True) if need]
            with torch.enable_grad():
                outputs = kinematics_reference(rotations, joints, parents.tolist())
                found = iter(torch.autograd.grad(outputs, wanted, grads, create_graph=True))
            return (*(next(found) if need else None for need in needs), None)
        grad_rotations, grad_joints = torch.ops.mp3d.kinematics_bwd(
            grad_rot_mats.contiguous(),
            grad_world.contiguous(),
            grad_skin.contiguous(),
            rotations,
            joints,
            parents,
        )
        return (grad_rotations if needs[0] else None, grad_joints if needs[1] else None, None)


def _parents_tensor(
    parents: Sequence[int] | torch.Tensor, n_joints: int, values: bool
) -> torch.Tensor:
    """parents as a contiguous int64 CPU tensor [J]; values: check that each joint comes after
    its parent (parents[0] = -1, 0 <= parents[j] < j)."""
    if isinstance(parents, torch.Tensor):
        if parents.dtype != torch.int64 or parents.dim() != 1:
            raise ValueError(
                f"parents must be a 1-D int64 tensor or a list of ints, got "
                f"{parents.dtype} of shape {list(parents.shape)}"
            )
        tensor = parents.to("cpu").contiguous()
    else:
        try:
            tensor = torch.tensor([int(p) for p in parents], dtype=torch.int64)
        except (TypeError, ValueError):
            raise ValueError(f"parents must be a list of ints, got {parents!r}") from None
    if tensor.shape[0] != n_joints:
        raise ValueError(
            f"parents must have {n_joints} entries (J from joints), got {tensor.shape[0]}"
        )
    if values and n_joints > 0:
        below = tensor < torch.arange(n_joints)
        if int(tensor[0]) != -1 or not bool(below.all()) or not bool((tensor[1:] >= 0).all()):
            raise ValueError(
                f"parents must list each joint after its parent (parents[0] = -1, "
                f"0 <= parents[j] < j), got {tensor.tolist()}"
            )
    return tensor


def forward_kinematics(
    rotations: torch.Tensor,
    joints: torch.Tensor,
    parents: Sequence[int] | torch.Tensor,
    impl: Impl = "auto",
    *,
    validate: bool | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Local rotation matrices [B,J,3,3], world transforms G [B,J,4,4] and skinning transforms
    A = G G(theta_0)^-1 [B,J,4,4] of a kinematic tree, from local joint rotations [B,J,3]
    (axis-angle, radians) or [B,J,3,3], rest joints [B,J,3] (any length unit, kept) and
    parents [J] (each joint after its parent, -1 for the root, joint 0).

    G_0 = [R_0 | J_0], G_j = G_parent(j) [R_j | J_j - J_parent(j)]: G_j's translation is the
    posed joint; A_j moves the rest joint J_j to it (what lbs applies). Bottom rows are
    [0, 0, 0, 1]. Differentiable in rotations and joints, to any order. validate=False skips
    the value checks (finite inputs, parents' order); None follows mp3d.set_checks.
    """
    check_tensor("joints", joints, shape=(None, None, 3), dtypes=FLOAT_DTYPES)
    n_batch, n_joints = joints.shape[:2]
    check_tensor("rotations", rotations)
    if tuple(rotations.shape) not in ((n_batch, n_joints, 3), (n_batch, n_joints, 3, 3)):
        raise ValueError(
            f"rotations must have shape [{n_batch}, {n_joints}, 3] (axis-angle) or "
            f"[{n_batch}, {n_joints}, 3, 3] (B, J from joints), got "
            f"{list(rotations.shape)}"
        )
    tensors = {"joints": joints, "rotations": rotations}
    check_same_dtype(tensors)
    check_same_device(tensors)
    values = value_checks(validate)
    parents_tensor = _parents_tensor(parents, n_joints, values)
    if values:
        with torch.no_grad():
            for name, tensor in tensors.items():
                check_finite(name, tensor)
    chosen = resolve_impl(impl, joints.device, KINEMATICS_FAMILY)
    if chosen != "cpp":  # the chain has no CUDA kernel: on CUDA tensors the reference runs
        return kinematics_reference(rotations, joints, parents_tensor.tolist())
    return _KinematicsKernel.apply(rotations.contiguous(), joints.contiguous(), parents_tensor)

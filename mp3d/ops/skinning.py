"""Linear blend skinning (LBS), the last step of SMPL-style body models.

Every vertex follows a blend of its joints' rigid transforms:

    y_bv = sum_j w_vj (A_bj[:3, :3] x_bv + A_bj[:3, 3])

with rest vertices x [B,V,3] (or [V,3] shared by the batch), skinning weights w [V,J] whose
rows sum to 1, and per-joint 4x4 transforms A [B,J,4,4] (for SMPL, G_j(theta) G_j(theta_0)^-1;
their bottom rows are ignored). The compiled kernels blend each vertex's transform in
registers and never build the [B,V,4,4] tensor that the torch reference does.
"""

from __future__ import annotations

import torch

from mp3d._backend import resolve_impl
from mp3d.ops._validation import (
    FLOAT_DTYPES,
    check_finite,
    check_same_device,
    check_same_dtype,
    check_tensor,
)

__all__ = ["WEIGHT_SUM_TOLERANCE", "lbs", "reference"]

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


def _validate(vertices: torch.Tensor, weights: torch.Tensor, transforms: torch.Tensor) -> None:
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
    impl: str = "auto",
) -> torch.Tensor:
    """Posed vertices [B,V,3] from vertices [B,V,3] or [V,3], weights [V,J], transforms [B,J,4,4].

    y_bv = sum_j w_vj A_bj[:3, :] (x_bv, 1): weights rows sum to 1, the transforms' bottom
    rows are ignored, lengths keep the vertices' units. Differentiable in all three inputs.
    """
    _validate(vertices, weights, transforms)
    if resolve_impl(impl, vertices.device) == "torch":
        return reference(vertices, weights, transforms)
    return _SkinKernel.apply(vertices.contiguous(), weights.contiguous(), transforms.contiguous())

"""Multiresolution hash encoding (Instant-NGP) of 3D points.

Level l has a grid of resolution ``resolutions[l]`` over the unit cube (vertices 0..res on
each axis) and a table of ``offsets[l+1] - offsets[l]`` rows of ``embeddings``. A level whose
(res+1)^3 vertices fit in its table indexes them densely (x + y (res+1) + z (res+1)^2);
otherwise vertices are hashed: (x * 1 XOR y * 2654435761 XOR z * 805459861) mod size.
Each point's feature at a level is the trilinear interpolation of its cell's 8 corner rows.

The compiled kernels differentiate twice: the backward kernel is an autograd node whose own
backward is a kernel too (hash_encode_bwd_bwd), so second derivatives (an eikonal loss on
the points gradient, trained through the embeddings) run on them; a third derivative raises
NotImplementedError. The torch reference differentiates to any order.
"""

from __future__ import annotations

import torch

from mp3d._backend import Impl, resolve_impl
from mp3d.ops._validation import (
    FLOAT_DTYPES,
    ValueChecks,
    check_fits_in_memory,
    check_same_device,
    check_same_dtype,
    check_tensor,
    value_checks,
)

__all__ = ["hash_encode", "reference", "PRIMES"]

FAMILY = "hash_encoding"

PRIMES = (1, 2654435761, 805459861)
# (res+1)^3 must fit in int64 where the kernels compare it with the table size.
MAX_RESOLUTION = 2**20
# The 8 corners of a cell as (dx, dy, dz), in the order bit 0 = x, bit 1 = y, bit 2 = z.
_CORNERS = torch.tensor([[(c >> 0) & 1, (c >> 1) & 1, (c >> 2) & 1] for c in range(8)])


def level_indices(corner: torch.Tensor, resolution: int, size: int) -> torch.Tensor:
    """Table row (within its level) of integer grid vertices corner [...,3]."""
    side = resolution + 1
    if side**3 <= size:
        return corner[..., 0] + side * (corner[..., 1] + side * corner[..., 2])
    x, y, z = corner[..., 0], corner[..., 1], corner[..., 2]
    hashed = (x * PRIMES[0]) ^ (y * PRIMES[1]) ^ (z * PRIMES[2])
    return hashed % size


def reference(
    points: torch.Tensor, embeddings: torch.Tensor, resolutions: torch.Tensor, offsets: torch.Tensor
) -> torch.Tensor:
    """Pure-torch hash encoding: points [N,3] in [0,1] -> features [N, L*F]."""
    points = points.clamp(0.0, 1.0)
    corners = _CORNERS.to(points.device)
    features = []
    for level, resolution in enumerate(resolutions.tolist()):
        begin, end = int(offsets[level]), int(offsets[level + 1])
        scaled = points * resolution
        cell = scaled.detach().floor().long().clamp(max=resolution - 1)  # [N,3]
        frac = scaled - cell  # [N,3], in [0,1]
        vertex = cell[:, None, :] + corners  # [N,8,3]
        rows = begin + level_indices(vertex, resolution, end - begin)  # [N,8]
        # Trilinear weight of each corner: prod over axes of frac or (1 - frac).
        weights = torch.where(corners.bool(), frac[:, None, :], 1.0 - frac[:, None, :]).prod(-1)
        features.append((embeddings[rows] * weights[..., None]).sum(dim=1))  # [N,F]
    return torch.cat(features, dim=-1)


class _EncodeKernel(torch.autograd.Function):
    """The compiled kernels (C++ CPU or CUDA) behind one autograd node."""

    @staticmethod
    def forward(ctx, points, embeddings, resolutions, offsets):
        ctx.save_for_backward(points, embeddings, resolutions, offsets)
        return torch.ops.mp3d.hash_encode_fwd(points, embeddings, resolutions, offsets)

    @staticmethod
    def backward(ctx, grad_features):
        points, embeddings, resolutions, offsets = ctx.saved_tensors
        points_grad = ctx.needs_input_grad[0]
        grad_embeddings, grad_points = _EncodeBackward.apply(
            grad_features.contiguous(), points, embeddings, resolutions, offsets, points_grad
        )
        return (
            grad_points if points_grad else None,
            grad_embeddings if ctx.needs_input_grad[1] else None,
            None,
            None,
        )


class _EncodeBackward(torch.autograd.Function):
    """The backward kernel as a node of its own (recorded with create_graph=True), whose
    backward runs the double backward kernel."""

    @staticmethod
    def forward(ctx, grad_features, points, embeddings, resolutions, offsets, points_grad):
        ctx.save_for_backward(grad_features, points, embeddings, resolutions, offsets)
        ctx.set_materialize_grads(False)  # an unused output's gradient stays None: skipped
        grad_embeddings, grad_points = torch.ops.mp3d.hash_encode_bwd(
            grad_features, points, embeddings, resolutions, offsets, points_grad
        )
        if not points_grad:
            ctx.mark_non_differentiable(grad_points)  # [0,3], never returned
        return grad_embeddings, grad_points

    @staticmethod
    def backward(ctx, gg_embeddings, gg_points):
        grad_features, points, embeddings, resolutions, offsets = ctx.saved_tensors
        needs = ctx.needs_input_grad[:3]
        if gg_points is not None and gg_points.shape[0] != points.shape[0]:
            gg_points = None  # the [0,3] placeholder of a points gradient not asked for
        if (gg_embeddings is None and gg_points is None) or not any(needs):
            return None, None, None, None, None, None
        d_grad_features, d_points, d_embeddings = _EncodeDoubleBackward.apply(
            grad_features,
            points,
            embeddings,
            resolutions,
            offsets,
            None if gg_embeddings is None else gg_embeddings.contiguous(),
            None if gg_points is None else gg_points.contiguous(),
            needs,
        )
        return (
            d_grad_features if needs[0] else None,
            d_points if needs[1] else None,
            d_embeddings if needs[2] and gg_points is not None else None,
            None,
            None,
            None,
        )


class _EncodeDoubleBackward(torch.autograd.Function):
    """The double backward kernel as a node whose own backward (a third derivative) raises
    NotImplementedError."""

    @staticmethod
    def forward(ctx, grad_features, points, embeddings, resolutions, offsets, gg_e, gg_p, needs):
        if not hasattr(torch.ops.mp3d, "hash_encode_bwd_bwd"):  # an mp3d._C built before it
            raise NotImplementedError(
                "mp3d.ops.hash_encoding: this build of mp3d._C has no double backward kernel "
                "(hash_encode_bwd_bwd): rebuild it (pip install --no-build-isolation -e .) or "
                "pass impl='torch'"
            )
        return torch.ops.mp3d.hash_encode_bwd_bwd(
            grad_features, points, embeddings, resolutions, offsets, gg_e, gg_p, *needs
        )

    @staticmethod
    def backward(ctx, *grads):
        raise NotImplementedError(
            "mp3d.ops.hash_encoding: the compiled kernels give first and second derivatives "
            "only (a gradient of the double backward cannot be differentiated again); pass "
            "impl='torch' for third derivatives"
        )


def _validate(points, embeddings, resolutions, offsets, validate: bool | None) -> None:
    """Shapes, dtypes, devices and the level layout (CPU tensors: reading them costs no
    device synchronisation) always; the points' finiteness when value_checks(validate)."""
    check_tensor("points", points, shape=(None, 3), dtypes=FLOAT_DTYPES)
    check_tensor("embeddings", embeddings, shape=(None, None))
    check_same_dtype({"points": points, "embeddings": embeddings})
    check_tensor("resolutions", resolutions, shape=(None,), dtypes=(torch.int64,))
    n_levels = resolutions.shape[0]
    check_tensor("offsets", offsets, shape=(n_levels + 1,), dtypes=(torch.int64,))
    check_same_device({"points": points, "embeddings": embeddings})
    if resolutions.device.type != "cpu" or offsets.device.type != "cpu":
        raise ValueError("resolutions and offsets must be CPU tensors (they describe the layout)")
    levels, bounds = resolutions.tolist(), offsets.tolist()
    if n_levels == 0 or not all(1 <= r <= MAX_RESOLUTION for r in levels):
        raise ValueError(
            f"resolutions must be in 1..{MAX_RESOLUTION} with at least one level, got {levels}"
        )
    increasing = all(bounds[i + 1] > bounds[i] for i in range(n_levels))
    if bounds[0] != 0 or not increasing or bounds[-1] != embeddings.shape[0]:
        raise ValueError(
            f"offsets must start at 0, increase, and end at embeddings.shape[0]="
            f"{embeddings.shape[0]}, got {bounds}"
        )
    n_out = points.shape[0] * n_levels * embeddings.shape[1]
    check_fits_in_memory(
        f"encoding {points.shape[0]} points into {n_levels} levels of "
        f"{embeddings.shape[1]} features",
        n_out,
        points.dtype,
        points.device,
    )
    checks = ValueChecks(value_checks(validate))
    checks.finite("points", points)
    checks.run()


def hash_encode(
    points: torch.Tensor,
    embeddings: torch.Tensor,
    resolutions: torch.Tensor,
    offsets: torch.Tensor,
    impl: Impl = "auto",
    validate: bool | None = None,
) -> torch.Tensor:
    """Hash-encodes points [N,3] in the unit cube (clamped to it) -> features [N, L*F].

    embeddings [E,F]: all levels' tables stacked; resolutions [L] and offsets [L+1] (int64,
    CPU) give each level's grid resolution and its rows [offsets[l], offsets[l+1]).
    validate: check that the points are finite whatever set_checks says (None: as it says).
    Differentiable twice through the compiled kernels (e.g. torch.autograd.grad(...,
    create_graph=True) for an eikonal loss, then .backward() into the embeddings); a third
    derivative raises NotImplementedError there, while impl="torch" goes to any order.
    """
    _validate(points, embeddings, resolutions, offsets, validate)
    if resolve_impl(impl, points.device, FAMILY) == "torch":
        return reference(points, embeddings, resolutions, offsets)
    return _EncodeKernel.apply(
        points.contiguous(), embeddings.contiguous(), resolutions.contiguous(), offsets.contiguous()
    )

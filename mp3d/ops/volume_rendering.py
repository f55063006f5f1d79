"""Volume rendering of packed ray samples (emission-absorption model).

Samples of all rays live in flat tensors: sample i belongs to ray ``ray_indices[i]``,
covers ``[t_starts[i], t_ends[i]]`` along it, and has density ``sigmas[i]`` and colour
``rgbs[i]``. ``ray_indices`` is sorted, so each ray's samples are contiguous and in
increasing t. For sample i of a ray:

    alpha_i = 1 - exp(-sigma_i (t_end_i - t_start_i))
    T_i     = prod_{j<i} (1 - alpha_j)
    w_i     = T_i alpha_i

Samples whose transmittance T_i has fallen below ``early_stop_eps`` get weight 0
(gradients are exact for the samples used).
"""

from __future__ import annotations

import torch

from mp3d._backend import Impl, resolve_impl
from mp3d.checks import check_int
from mp3d.ops._autograd import backward_kernel
from mp3d.ops._validation import (
    FLOAT_DTYPES,
    ValueChecks,
    check_fits_in_memory,
    check_length,
    check_same_device,
    check_same_dtype,
    check_scalar,
    check_tensor,
    value_checks,
)

__all__ = ["render_weights", "render_rays", "ray_offsets", "reference"]

FAMILY = "volume_rendering"


def ray_offsets(ray_indices: torch.Tensor, n_rays: int) -> torch.Tensor:
    """Start of each ray's samples: offsets [R+1] with ray r owning [offsets[r], offsets[r+1])."""
    bounds = torch.arange(n_rays + 1, device=ray_indices.device, dtype=torch.int64)
    return torch.searchsorted(ray_indices, bounds)


# ----------------------------------------------------------------------------- reference


def _weights_reference(
    sigmas: torch.Tensor,
    t_starts: torch.Tensor,
    t_ends: torch.Tensor,
    ray_indices: torch.Tensor,
    n_rays: int,
    early_stop_eps: float,
) -> torch.Tensor:
    """Pure-torch weights [S]: rays are scattered into a padded [R, max_samples] grid,
    where the transmittance is an exclusive cumulative sum along each row."""
    if sigmas.numel() == 0:
        return sigmas * 0.0  # empty, but still attached to the autograd graph
    offsets = ray_offsets(ray_indices, n_rays)
    position = torch.arange(sigmas.numel(), device=sigmas.device) - offsets[ray_indices]
    max_samples = int((offsets[1:] - offsets[:-1]).max())
    tau = sigmas * (t_ends - t_starts)
    padded = tau.new_zeros(n_rays, max_samples).index_put((ray_indices, position), tau)
    optical_depth = torch.cumsum(padded, dim=1) - padded  # sum_{j<i} tau_j
    transmittance = torch.exp(-optical_depth)[ray_indices, position]
    alphas = -torch.expm1(-tau)
    used = transmittance.detach() >= early_stop_eps
    return transmittance * alphas * used


def reference(
    sigmas: torch.Tensor,
    rgbs: torch.Tensor | None,
    t_starts: torch.Tensor,
    t_ends: torch.Tensor,
    ray_indices: torch.Tensor,
    n_rays: int,
    early_stop_eps: float = 1e-4,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The torch reference: (weights [S], rgb [R,3] without background, opacity [R], depth [R])."""
    weights = _weights_reference(sigmas, t_starts, t_ends, ray_indices, n_rays, early_stop_eps)
    opacity = weights.new_zeros(n_rays).index_add(0, ray_indices, weights)
    midpoints = (t_starts + t_ends) * 0.5
    depth = weights.new_zeros(n_rays).index_add(0, ray_indices, weights * midpoints)
    if rgbs is None:
        rgb = weights.new_zeros(0, 3)
    else:
        rgb = weights.new_zeros(n_rays, 3).index_add(0, ray_indices, weights[:, None] * rgbs)
    return weights, rgb, opacity, depth


# ----------------------------------------------------------------------------- kernels


class _RenderKernel(torch.autograd.Function):
    """The compiled kernels (C++ CPU or CUDA) behind one autograd node."""

    @staticmethod
    def forward(ctx, sigmas, rgbs, t_starts, t_ends, offsets, early_stop_eps):
        weights, rgb, opacity, depth = torch.ops.mp3d.volume_render_fwd(
            sigmas, rgbs, t_starts, t_ends, offsets, early_stop_eps
        )
        ctx.save_for_backward(sigmas, rgbs, t_starts, t_ends, offsets, weights)
        ctx.early_stop_eps = early_stop_eps
        ctx.set_materialize_grads(False)
        return weights, rgb, opacity, depth

    @staticmethod
    def backward(ctx, grad_weights, grad_rgb, grad_opacity, grad_depth):
        sigmas, rgbs, t_starts, t_ends, offsets, weights = ctx.saved_tensors
        t_grads = ctx.needs_input_grad[2] or ctx.needs_input_grad[3]

        def prepared(grad):
            return None if grad is None else grad.contiguous()

        grad_sigmas, grad_rgbs, grad_t_starts, grad_t_ends = backward_kernel(
            FAMILY,
            torch.ops.mp3d.volume_render_bwd,
            prepared(grad_weights),
            prepared(grad_rgb) if rgbs is not None else None,
            prepared(grad_opacity),
            prepared(grad_depth),
            sigmas,
            rgbs,
            t_starts,
            t_ends,
            offsets,
            weights,
            ctx.early_stop_eps,
            t_grads,
        )
        return (
            grad_sigmas,
            grad_rgbs if rgbs is not None and ctx.needs_input_grad[1] else None,
            grad_t_starts if ctx.needs_input_grad[2] else None,
            grad_t_ends if ctx.needs_input_grad[3] else None,
            None,
            None,
        )


# ----------------------------------------------------------------------------- public API


def _validate(
    sigmas: torch.Tensor,
    rgbs: torch.Tensor | None,
    t_starts: torch.Tensor,
    t_ends: torch.Tensor,
    ray_indices: torch.Tensor,
    n_rays: int,
    early_stop_eps: float,
    background: torch.Tensor | float | None,
    validate: bool | None,
) -> tuple[int, float, torch.Tensor | None]:
    """Checks every argument; returns n_rays, early_stop_eps and the background as a tensor
    broadcastable to [R,3] (or None). Value checks (finite, sorted, in range) run when
    value_checks(validate), all read back in one synchronisation."""
    check_tensor("sigmas", sigmas, shape=(None,), dtypes=FLOAT_DTYPES)
    n_samples = sigmas.shape[0]
    tensors = {"sigmas": sigmas, "t_starts": t_starts, "t_ends": t_ends}
    check_tensor("t_starts", t_starts, shape=(None,))
    check_tensor("t_ends", t_ends, shape=(None,))
    check_length("t_starts", t_starts, n_samples, "sigmas")
    check_length("t_ends", t_ends, n_samples, "sigmas")
    if rgbs is not None:
        check_tensor("rgbs", rgbs, shape=(None, 3))
        check_length("rgbs", rgbs, n_samples, "sigmas")
        tensors["rgbs"] = rgbs
    check_same_dtype(tensors)
    check_tensor("ray_indices", ray_indices, shape=(None,), dtypes=(torch.int64,))
    check_length("ray_indices", ray_indices, n_samples, "sigmas")
    check_same_device({**tensors, "ray_indices": ray_indices})
    n_rays = check_int("n_rays", n_rays, minimum=0)
    early_stop_eps = check_scalar("early_stop_eps", early_stop_eps, minimum=0.0, below=1.0)
    # rgb [R,3], opacity [R], depth [R] (and offsets [R+1] int64, as wide as two floats)
    check_fits_in_memory(f"rendering {n_rays} rays", 7 * n_rays, sigmas.dtype, sigmas.device)
    checks = ValueChecks(value_checks(validate))
    bg = _background_for(background, n_rays, sigmas, checks)
    if n_samples > 0:
        checks.finite("sigmas", sigmas, minimum=0.0)
        checks.finite("t_starts", t_starts)
        checks.finite("t_ends", t_ends)
        if rgbs is not None:
            checks.finite("rgbs", rgbs)
        checks.add(
            ((t_ends.detach() - t_starts.detach()).min(),),
            lambda v: _intervals_judge(v, t_starts, t_ends),
        )
        if n_samples > 1:
            checks.add(
                (torch.diff(ray_indices).amin(),),
                lambda v: _sorted_judge(v, ray_indices),
            )
        checks.add(torch.aminmax(ray_indices), lambda v: _range_judge(v, n_rays))
    checks.run()
    return n_rays, early_stop_eps, bg


def _intervals_judge(values: list[float], t_starts: torch.Tensor, t_ends: torch.Tensor) -> None:
    if values[0] >= 0:
        return
    bad = int(torch.nonzero(t_ends.detach() < t_starts.detach())[0, 0])
    raise ValueError(
        f"t_ends must be >= t_starts, got t_ends[{bad}]={float(t_ends[bad]):g} < "
        f"t_starts[{bad}]={float(t_starts[bad]):g}"
    )


def _sorted_judge(values: list[float], ray_indices: torch.Tensor) -> None:
    if values[0] >= 0:
        return
    bad = int(torch.nonzero(ray_indices[1:] < ray_indices[:-1])[0, 0]) + 1
    raise ValueError(
        f"ray_indices must be sorted (samples of a ray contiguous), got "
        f"ray_indices[{bad}]={int(ray_indices[bad])} after {int(ray_indices[bad - 1])}"
    )


def _range_judge(values: list[float], n_rays: int) -> None:
    lo, hi = int(values[0]), int(values[1])
    if lo < 0 or hi >= n_rays:
        raise ValueError(f"ray_indices must be in [0, n_rays={n_rays}), got range [{lo}, {hi}]")


def _render(
    sigmas, rgbs, t_starts, t_ends, ray_indices, n_rays, early_stop_eps, background, impl, validate
):
    n_rays, early_stop_eps, bg = _validate(
        sigmas, rgbs, t_starts, t_ends, ray_indices, n_rays, early_stop_eps, background, validate
    )
    path = resolve_impl(impl, sigmas.device, FAMILY)
    if path == "torch":
        out = reference(sigmas, rgbs, t_starts, t_ends, ray_indices, n_rays, early_stop_eps)
    else:
        offsets = ray_offsets(ray_indices, n_rays)
        out = _RenderKernel.apply(
            sigmas.contiguous(),
            None if rgbs is None else rgbs.contiguous(),
            t_starts.contiguous(),
            t_ends.contiguous(),
            offsets,
            early_stop_eps,
        )
    return (*out, bg)


def render_weights(
    sigmas: torch.Tensor,
    t_starts: torch.Tensor,
    t_ends: torch.Tensor,
    ray_indices: torch.Tensor,
    n_rays: int,
    early_stop_eps: float = 1e-4,
    impl: Impl = "auto",
    validate: bool | None = None,
) -> torch.Tensor:
    """Compositing weights w_i = T_i alpha_i [S] of packed samples (sigma in 1/length units).

    early_stop_eps in [0, 1); validate: run the value checks (finite, sorted, in range)
    whatever set_checks says (None: as set_checks says).
    """
    weights, _, _, _, _ = _render(
        sigmas, None, t_starts, t_ends, ray_indices, n_rays, early_stop_eps, None, impl, validate
    )
    return weights


def _background_for(
    background, n_rays: int, like: torch.Tensor, checks: ValueChecks
) -> torch.Tensor | None:
    """Background as a tensor broadcastable to [R,3] of `like`'s dtype, or None for none
    (black); its finiteness is queued on `checks`."""
    if background is None:
        return None
    if not isinstance(background, torch.Tensor):
        if isinstance(background, (list, tuple)):
            for i, value in enumerate(background):
                check_scalar(f"background[{i}]", value)
        else:
            check_scalar("background", background)
        background = torch.as_tensor(background, dtype=like.dtype, device=like.device)
    if background.dim() == 0:
        background = background.expand(3)
    if background.shape not in ((3,), (n_rays, 3)):
        raise ValueError(
            f"background must be a scalar, [3] or [n_rays={n_rays}, 3], "
            f"got {list(background.shape)}"
        )
    if background.device != like.device:
        raise ValueError(f"background must be on {like.device}, got {background.device}")
    if not background.dtype.is_floating_point:
        raise ValueError(f"background must be a floating-point tensor, got {background.dtype}")
    checks.finite("background", background)
    return background.to(like.dtype)


def render_rays(
    sigmas: torch.Tensor,
    rgbs: torch.Tensor,
    t_starts: torch.Tensor,
    t_ends: torch.Tensor,
    ray_indices: torch.Tensor,
    n_rays: int,
    background: torch.Tensor | float | None = None,
    early_stop_eps: float = 1e-4,
    impl: Impl = "auto",
    return_weights: bool = False,
    validate: bool | None = None,
) -> tuple[torch.Tensor, ...]:
    """Composites packed samples into (rgb [R,3], opacity [R], depth [R]), plus the
    weights [S] when return_weights (gradients flow through all of them).

    rgb = sum_i w_i c_i + (1 - opacity) background; opacity = sum_i w_i;
    depth = sum_i w_i (t_start_i + t_end_i) / 2 (0 for rays with no samples).
    background: a finite scalar, [3] or [R,3] (None: black). validate: as in render_weights.
    """
    if rgbs is None:
        raise ValueError("rgbs must be a tensor of shape [S, 3], got None")
    weights, rgb, opacity, depth, bg = _render(
        sigmas,
        rgbs,
        t_starts,
        t_ends,
        ray_indices,
        n_rays,
        early_stop_eps,
        background,
        impl,
        validate,
    )
    if bg is not None:
        rgb = rgb + (1.0 - opacity)[:, None] * bg
    return (rgb, opacity, depth, weights) if return_weights else (rgb, opacity, depth)

"""3D Gaussian splatting: projection, spherical-harmonic colour and rasterization.

Each Gaussian has a mean, a rotation (quaternion, w first), positive per-axis scales, an
opacity in [0, 1] and a colour (RGB or SH coefficients). It projects to a 2D Gaussian in
pixels (EWA splatting: perspective linearised at the mean, plus a 0.3 px^2 low-pass), and
each pixel composites the 2D Gaussians front to back by camera depth:

    alpha_i = min(0.99, opacity_i exp(-d^T conic_i d / 2)),  d = pixel centre - mean2d_i
    T_i     = prod_{j<i} (1 - alpha_j)
    w_i     = T_i alpha_i

A Gaussian with alpha_i < 1/255 at a pixel is skipped there; compositing stops before the
Gaussian that would bring the transmittance below 1e-4 (the rule of the original 3DGS
rasterizer). Cameras follow the OpenCV convention of mp3d: `viewmat` world-to-camera 4x4,
`K` 3x3 in pixels, the centre of pixel (i, j) at (i + 0.5, j + 0.5).

The kernels (C++ on CPU, CUDA on GPU) bin the projected Gaussians into 16x16-pixel tiles,
each tile's list sorted by depth, and composite each pixel from its tile's list; a Gaussian
is listed in every tile where its alpha can reach 1/255, so they draw exactly what the dense
reference draws. Gradients of `viewmat` and `K` are only available with impl="torch".
"""

from __future__ import annotations

import math

import torch
from torch.profiler import record_function

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
from mp3d.ops.sh import spherical_harmonics
from mp3d.transforms import quaternion_to_matrix

__all__ = [
    "project_gaussians",
    "quaternion_to_rotation",
    "rasterize",
    "rasterize_reference",
    "rasterize_splats",
    "sh_colors",
]

FAMILY = "gaussians"
LOW_PASS = 0.3  # px^2 added to the 2D covariance: every splat covers about a pixel
ALPHA_MAX = 0.99
ALPHA_MIN = 1.0 / 255.0
TRANSMITTANCE_MIN = 1e-4
MAX_SH_DEGREE = 3
TILE_SIZE = 16
RADIUS_MAX = 2**30  # px: radii are int32; the kernels clamp the same way


# ----------------------------------------------------------------------------- projection


def quaternion_to_rotation(quats: torch.Tensor) -> torch.Tensor:
    """Rotation matrices [N,3,3] of quaternions [N,4] (w, x, y, z; normalised here): the
    reference's name for mp3d.transforms.quaternion_to_matrix."""
    return quaternion_to_matrix(quats)


def _covariances3d(quats: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
    """World-space covariances Sigma = R S S^T R^T [N,3,3]."""
    rs = quaternion_to_rotation(quats) * scales[:, None, :]
    return rs @ rs.transpose(1, 2)


def _projection_jacobians(means_cam: torch.Tensor, K: torch.Tensor) -> torch.Tensor:
    """Jacobians [N,2,3] of (x, y, z) -> (fx x / z + cx, fy y / z + cy) at camera-space means."""
    x, y, z = means_cam.unbind(-1)
    fx, fy = K[0, 0], K[1, 1]
    zero = torch.zeros_like(z)
    rows = [fx / z, zero, -fx * x / (z * z), zero, fy / z, -fy * y / (z * z)]
    return torch.stack(rows, dim=-1).reshape(-1, 2, 3)


def _conics(cov2d: torch.Tensor) -> torch.Tensor:
    """Upper triangle (a, b, c) [N,3] of the inverses of symmetric 2x2 matrices [N,2,2]."""
    a, b, c = cov2d[:, 0, 0], cov2d[:, 0, 1], cov2d[:, 1, 1]
    det = a * c - b * b
    return torch.stack([c / det, -b / det, a / det], dim=-1)


def _radii(cov2d: torch.Tensor) -> torch.Tensor:
    """ceil(3 sqrt(largest eigenvalue)) [N] (int32, at most RADIUS_MAX) of symmetric 2x2
    matrices [N,2,2]."""
    a, b, c = cov2d[:, 0, 0], cov2d[:, 0, 1], cov2d[:, 1, 1]
    mid = 0.5 * (a + c)
    largest = mid + torch.sqrt(torch.clamp(mid * mid - (a * c - b * b), min=0.0))
    radii = torch.ceil(3.0 * torch.sqrt(largest))
    return torch.clamp(radii, max=float(RADIUS_MAX)).to(torch.int32)


def _project(means, quats, scales, viewmat, K, width, height, near):
    """project_gaussians without the input checks."""
    rotation, translation = viewmat[:3, :3], viewmat[:3, 3]
    means_cam = means @ rotation.T + translation
    in_front = means_cam[:, 2] > near
    # Culled Gaussians are projected at depth 1 instead, so nothing divides by ~0 (their
    # outputs are discarded, but NaN would still poison the gradients through torch.where).
    safe_z = torch.where(in_front, means_cam[:, 2], torch.ones_like(means_cam[:, 2]))
    safe_cam = torch.cat([means_cam[:, :2], safe_z[:, None]], dim=-1)
    means2d = safe_cam[:, :2] / safe_z[:, None] * torch.stack([K[0, 0], K[1, 1]]) + K[:2, 2]
    jw = _projection_jacobians(safe_cam, K) @ rotation
    cov2d = jw @ _covariances3d(quats, scales) @ jw.transpose(1, 2)
    cov2d = cov2d + LOW_PASS * torch.eye(2, dtype=cov2d.dtype, device=cov2d.device)
    radii = _radii(cov2d.detach())
    u, v = means2d.detach().unbind(-1)
    on_image = (u + radii > 0) & (u - radii < width) & (v + radii > 0) & (v - radii < height)
    visible = in_front & on_image
    return means2d, _conics(cov2d), means_cam[:, 2], radii * visible, visible


def project_gaussians(
    means: torch.Tensor,
    quats: torch.Tensor,
    scales: torch.Tensor,
    viewmat: torch.Tensor,
    K: torch.Tensor,
    width: int,
    height: int,
    near: float = 0.01,
    impl: Impl = "auto",
    validate: bool | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Projects Gaussians (means [N,3], quats [N,4], positive scales [N,3]) into a camera
    of width x height pixels; Gaussians closer than `near` (> 0, camera z) are culled.

    Returns means2d [N,2] (pixels), conics [N,3] (a, b, c of the inverse 2D covariance
    [[a, b], [b, c]]), depths [N] (camera z), radii [N] (int32, 3 sigma of the larger axis,
    0 when culled) and visible [N] (bool: in front of `near` and the 3-sigma box overlaps
    the image). validate: run the value checks whatever set_checks says (None: as it says).
    """
    checks = ValueChecks(value_checks(validate))
    _check_gaussians(means, quats, scales, checks)
    width, height, near = _check_camera(viewmat, K, width, height, near, means, checks)
    checks.run()
    if resolve_impl(impl, means.device, FAMILY) == "torch":
        return _project(means, quats, scales, viewmat, K, width, height, near)
    _check_no_camera_grads(viewmat, K)
    means2d, conics, depths, radii = _ProjectKernel.apply(
        means, quats, scales, viewmat, K, width, height, near
    )
    return means2d, conics, depths, radii, radii > 0


# ----------------------------------------------------------------------------- colour


def _sh_colors(sh: torch.Tensor, directions: torch.Tensor, degree: int) -> torch.Tensor:
    """sh_colors without the input checks."""
    n_coeffs = (degree + 1) ** 2
    unit = torch.nn.functional.normalize(directions, dim=-1)
    basis = spherical_harmonics(unit, degree)  # [N, n_coeffs]
    colors = (basis[:, :, None] * sh[:, :n_coeffs, :]).sum(dim=1) + 0.5
    return torch.clamp(colors, min=0.0)


def sh_colors(
    sh: torch.Tensor,
    directions: torch.Tensor,
    degree: int,
    impl: Impl = "auto",
    validate: bool | None = None,
) -> torch.Tensor:
    """RGB [N,3] = max(SH_degree(directions) . sh + 0.5, 0) of sh [N,K,3] and directions [N,3].

    Directions need not be unit length; only the first (degree+1)^2 of the K coefficients
    are used (K >= (degree+1)^2, degree in 0..3). validate: as in project_gaussians.
    """
    checks = ValueChecks(value_checks(validate))
    _check_sh(sh, degree, checks)
    check_tensor("directions", directions, shape=(None, 3), dtypes=FLOAT_DTYPES)
    check_length("directions", directions, sh.shape[0], "sh")
    check_same_device({"sh": sh, "directions": directions})
    check_same_dtype({"sh": sh, "directions": directions})
    checks.finite("directions", directions)
    checks.run()
    if resolve_impl(impl, sh.device, FAMILY) == "torch":
        return _sh_colors(sh, directions, degree)
    return _ShKernel.apply(sh, directions, degree)


# ----------------------------------------------------------------------------- rasterization


def _pixel_centres(width: int, height: int, like: torch.Tensor) -> torch.Tensor:
    """Pixel centres [H*W,2] (x, y) in row-major order."""
    ys, xs = torch.meshgrid(
        torch.arange(height, dtype=like.dtype, device=like.device) + 0.5,
        torch.arange(width, dtype=like.dtype, device=like.device) + 0.5,
        indexing="ij",
    )
    return torch.stack([xs.reshape(-1), ys.reshape(-1)], dim=-1)


def _splat_alphas(pixels, means2d, conics, opacities):
    """Alphas [P,N] of every Gaussian at every pixel, capped and cut as in the module doc."""
    dx = pixels[:, None, 0] - means2d[None, :, 0]
    dy = pixels[:, None, 1] - means2d[None, :, 1]
    a, b, c = conics.unbind(-1)
    mahalanobis = a * dx * dx + 2.0 * b * dx * dy + c * dy * dy
    alphas = torch.clamp(opacities * torch.exp(-0.5 * mahalanobis), max=ALPHA_MAX)
    return torch.where(alphas.detach() >= ALPHA_MIN, alphas, torch.zeros_like(alphas))


def _composite_weights(alphas: torch.Tensor) -> torch.Tensor:
    """Weights [P,N] of alphas [P,N] sorted front to back, with the transmittance stop."""
    after = torch.cumprod(1.0 - alphas, dim=1)  # transmittance behind each Gaussian
    before = torch.cat([torch.ones_like(after[:, :1]), after[:, :-1]], dim=1)
    used = after.detach() >= TRANSMITTANCE_MIN  # a prefix: `after` only decreases
    return before * alphas * used


def rasterize_reference(
    means2d: torch.Tensor,
    conics: torch.Tensor,
    colors: torch.Tensor,
    opacities: torch.Tensor,
    depths: torch.Tensor,
    width: int,
    height: int,
    background: torch.Tensor | float | None = None,
    chunk_pixels: int = 4096,
    validate: bool | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Dense torch rasterization of 2D Gaussians (means2d [N,2], conics [N,3], colors [N,3],
    opacities [N] in [0,1], depths [N]) into rgb [H,W,3], alpha [H,W] and depth [H,W].

    rgb = sum_i w_i c_i + (1 - alpha) background; alpha = sum_i w_i;
    depth = sum_i w_i depth_i (not divided by alpha: 0 where nothing was hit).
    Every Gaussian is evaluated at every pixel, `chunk_pixels` pixels at a time.
    validate: as in project_gaussians.
    """
    checks = ValueChecks(value_checks(validate))
    width, height = _check_splats(means2d, conics, colors, opacities, depths, width, height, checks)
    chunk_pixels = check_int("chunk_pixels", chunk_pixels, minimum=1)
    bg = _background_for(background, means2d, checks)
    checks.run()
    return _rasterize_dense(
        means2d, conics, colors, opacities, depths, width, height, bg, chunk_pixels
    )


def _rasterize_dense(
    means2d, conics, colors, opacities, depths, width, height, background, chunk_pixels: int = 4096
):
    """rasterize_reference without the input checks; background a [3] tensor or None."""
    order = torch.argsort(depths.detach(), stable=True)
    means2d, conics, colors = means2d[order], conics[order], colors[order]
    opacities, depths = opacities[order], depths[order]
    pixels = _pixel_centres(width, height, means2d)
    rgb, alpha, depth = [], [], []
    for start in range(0, pixels.shape[0], chunk_pixels):
        weights = _composite_weights(
            _splat_alphas(pixels[start : start + chunk_pixels], means2d, conics, opacities)
        )
        rgb.append(weights @ colors)
        alpha.append(weights.sum(dim=1))
        depth.append(weights @ depths)
    rgb = torch.cat(rgb).reshape(height, width, 3)
    alpha = torch.cat(alpha).reshape(height, width)
    depth = torch.cat(depth).reshape(height, width)
    if background is not None:
        rgb = rgb + (1.0 - alpha)[..., None] * background
    return rgb, alpha, depth


# ----------------------------------------------------------------------------- kernels


def _contiguous(*tensors: torch.Tensor) -> list[torch.Tensor]:
    return [t.contiguous() for t in tensors]


class _ProjectKernel(torch.autograd.Function):
    """project_gaussians on mp3d._C: (means2d, conics, depths, radii), radii int32."""

    @staticmethod
    def forward(ctx, means, quats, scales, viewmat, K, width, height, near):
        means, quats, scales, viewmat, K = _contiguous(means, quats, scales, viewmat, K)
        with record_function("splat.project"):
            means2d, conics, depths, radii = torch.ops.mp3d.gaussians_project_fwd(
                means, quats, scales, viewmat, K, width, height, near
            )
        ctx.save_for_backward(means, quats, scales, viewmat, K)
        ctx.near = near
        ctx.mark_non_differentiable(radii)
        return means2d, conics, depths, radii

    @staticmethod
    def backward(ctx, grad_means2d, grad_conics, grad_depths, _grad_radii):
        means, quats, scales, viewmat, K = ctx.saved_tensors
        with record_function("splat.project_backward"):
            grads = backward_kernel(
                FAMILY,
                torch.ops.mp3d.gaussians_project_bwd,
                *_contiguous(grad_means2d, grad_conics, grad_depths),
                means,
                quats,
                scales,
                viewmat,
                K,
                ctx.near,
            )
        return (*grads, None, None, None, None, None)


class _ShKernel(torch.autograd.Function):
    """sh_colors on mp3d._C."""

    @staticmethod
    def forward(ctx, sh, directions, degree):
        sh, directions = _contiguous(sh, directions)
        ctx.save_for_backward(sh, directions)
        ctx.degree = degree
        with record_function("splat.sh"):
            return torch.ops.mp3d.gaussians_sh_fwd(sh, directions, degree)

    @staticmethod
    def backward(ctx, grad_colors):
        sh, directions = ctx.saved_tensors
        with record_function("splat.sh_backward"):
            grad_sh, grad_directions = backward_kernel(
                FAMILY,
                torch.ops.mp3d.gaussians_sh_bwd,
                grad_colors.contiguous(),
                sh,
                directions,
                ctx.degree,
                ctx.needs_input_grad[1],
            )
        return grad_sh, grad_directions if ctx.needs_input_grad[1] else None, None


class _RasterizeKernel(torch.autograd.Function):
    """Tile binning and rasterization on mp3d._C: (rgb, alpha, depth) with black background.

    Only Gaussians with radii > 0 are drawn.
    """

    @staticmethod
    def forward(ctx, means2d, conics, colors, opacities, depths, radii, width, height):
        splats = _contiguous(means2d, conics, colors, opacities, depths)
        with record_function("splat.bin"):
            tile_offsets, gaussian_ids = torch.ops.mp3d.gaussians_tile_bin(
                splats[0],
                splats[1],
                splats[3],
                splats[4],
                radii.contiguous(),
                width,
                height,
                TILE_SIZE,
            )
        with record_function("splat.rasterize"):
            rgb, alpha, depth, transmittance, n_visited = torch.ops.mp3d.gaussians_rasterize_fwd(
                *splats, tile_offsets, gaussian_ids, width, height, TILE_SIZE
            )
        ctx.save_for_backward(*splats, tile_offsets, gaussian_ids, transmittance, n_visited)
        ctx.size = (width, height)
        return rgb, alpha, depth

    @staticmethod
    def backward(ctx, grad_rgb, grad_alpha, grad_depth):
        *splats, tile_offsets, gaussian_ids, transmittance, n_visited = ctx.saved_tensors
        with record_function("splat.rasterize_backward"):
            grads = backward_kernel(
                FAMILY,
                torch.ops.mp3d.gaussians_rasterize_bwd,
                *_contiguous(grad_rgb, grad_alpha, grad_depth),
                *splats,
                tile_offsets,
                gaussian_ids,
                transmittance,
                n_visited,
                *ctx.size,
                TILE_SIZE,
            )
        return (*grads, None, None, None)


def rasterize_splats(
    means2d: torch.Tensor,
    conics: torch.Tensor,
    colors: torch.Tensor,
    opacities: torch.Tensor,
    depths: torch.Tensor,
    width: int,
    height: int,
    background: torch.Tensor | float | None = None,
    impl: Impl = "auto",
    validate: bool | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """rgb [H,W,3], alpha [H,W], depth [H,W] of 2D Gaussians (means2d [N,2] px, conics [N,3],
    colors [N,3], opacities [N] in [0,1], depths [N]): rasterize_reference's contract, run by
    the tile kernels unless impl="torch". validate: as in project_gaussians."""
    checks = ValueChecks(value_checks(validate))
    width, height = _check_splats(means2d, conics, colors, opacities, depths, width, height, checks)
    bg = _background_for(background, means2d, checks)
    checks.run()
    if resolve_impl(impl, means2d.device, FAMILY) == "torch":
        return _rasterize_dense(means2d, conics, colors, opacities, depths, width, height, bg)
    radii = torch.ones(means2d.shape[0], dtype=torch.int32, device=means2d.device)
    rgb, alpha, depth = _RasterizeKernel.apply(
        means2d, conics, colors, opacities, depths, radii, width, height
    )
    if bg is not None:
        rgb = rgb + (1.0 - alpha)[..., None] * bg
    return rgb, alpha, depth


def _check_no_camera_grads(viewmat: torch.Tensor, K: torch.Tensor) -> None:
    for name, tensor in (("viewmat", viewmat), ("K", K)):
        if tensor.requires_grad:
            raise ValueError(
                f"{name} requires grad, but the Gaussian kernels give no camera gradients; "
                f"detach it or pass impl='torch'"
            )


# ----------------------------------------------------------------------------- validation
#
# Shape, dtype and device checks run on every call; value checks (finite, ranges) are queued
# on a ValueChecks and read back in one synchronisation, and only when value_checks(validate).


def _check_gaussians(means, quats, scales, checks: ValueChecks) -> None:
    check_tensor("means", means, shape=(None, 3), dtypes=FLOAT_DTYPES)
    check_tensor("quats", quats, shape=(None, 4))
    check_tensor("scales", scales, shape=(None, 3))
    check_length("quats", quats, means.shape[0], "means")
    check_length("scales", scales, means.shape[0], "means")
    tensors = {"means": means, "quats": quats, "scales": scales}
    check_same_dtype(tensors)
    check_same_device(tensors)
    checks.finite("means", means)
    checks.finite("quats", quats)
    checks.finite("scales", scales, above=0.0, hint="activated, e.g. exp of log-scales")
    if quats.numel():
        checks.add((torch.linalg.vector_norm(quats.detach(), dim=-1).amin(),), _judge_quats)


def _judge_quats(values: list[float]) -> None:
    if values[0] == 0.0:
        raise ValueError("quats must have non-zero norm, got a zero quaternion")


def _check_image_size(width: object, height: object, like: torch.Tensor) -> tuple[int, int]:
    """width and height are ints >= 1 whose image (rgb, alpha, depth and the kernels'
    per-pixel transmittance and count: 7 values a pixel) fits in the device's memory."""
    width = check_int("width", width, minimum=1)
    height = check_int("height", height, minimum=1)
    check_fits_in_memory(f"a {width}x{height} image", 7 * width * height, like.dtype, like.device)
    return width, height


def _check_camera(
    viewmat, K, width, height, near, like: torch.Tensor, checks: ValueChecks
) -> tuple[int, int, float]:
    check_tensor("viewmat", viewmat, shape=(4, 4))
    check_tensor("K", K, shape=(3, 3))
    tensors = {"means": like, "viewmat": viewmat, "K": K}
    check_same_dtype(tensors)
    check_same_device(tensors)
    width, height = _check_image_size(width, height, like)
    near = check_scalar("near", near, above=0.0)
    checks.finite("viewmat", viewmat)
    checks.finite("K", K)
    checks.add((K.detach().diagonal()[:2].min(),), lambda v: _judge_focal_lengths(v, K))
    return width, height, near


def _judge_focal_lengths(values: list[float], K: torch.Tensor) -> None:
    if not values[0] > 0.0:
        fx, fy = float(K[0, 0]), float(K[1, 1])
        raise ValueError(f"K must have positive focal lengths, got fx={fx:g}, fy={fy:g}")


def _check_splats(
    means2d, conics, colors, opacities, depths, width, height, checks: ValueChecks
) -> tuple[int, int]:
    check_tensor("means2d", means2d, shape=(None, 2), dtypes=FLOAT_DTYPES)
    n = means2d.shape[0]
    for name, tensor, shape in (
        ("conics", conics, (None, 3)),
        ("colors", colors, (None, 3)),
        ("opacities", opacities, (None,)),
        ("depths", depths, (None,)),
    ):
        check_tensor(name, tensor, shape=shape)
        check_length(name, tensor, n, "means2d")
    tensors = {
        "means2d": means2d,
        "conics": conics,
        "colors": colors,
        "opacities": opacities,
        "depths": depths,
    }
    check_same_dtype(tensors)
    check_same_device(tensors)
    width, height = _check_image_size(width, height, means2d)
    checks.finite("means2d", means2d)
    checks.finite("conics", conics)
    checks.finite("colors", colors)
    checks.finite("depths", depths)
    _queue_opacities(opacities, checks)
    return width, height


def _check_sh_degree(degree: object) -> int:
    if isinstance(degree, bool) or not isinstance(degree, int) or not 0 <= degree <= MAX_SH_DEGREE:
        raise ValueError(f"sh_degree must be an int in 0..{MAX_SH_DEGREE}, got {degree!r}")
    return degree


def _check_sh(sh, degree, checks: ValueChecks, name: str = "sh") -> None:
    check_tensor(name, sh, shape=(None, None, 3), dtypes=FLOAT_DTYPES)
    _check_sh_degree(degree)
    if sh.shape[1] < (degree + 1) ** 2:
        raise ValueError(
            f"{name} must have at least (degree+1)^2 = {(degree + 1) ** 2} coefficients for "
            f"degree {degree}, got {sh.shape[1]}"
        )
    checks.finite(name, sh)


def _sh_degree_of(colors: torch.Tensor, sh_degree: int | None) -> int | None:
    """The SH degree to evaluate for `colors`, or None when colors are RGB [N,3]."""
    if colors.dim() == 2:
        check_tensor("colors", colors, shape=(None, 3))
        if sh_degree is not None:
            raise ValueError(
                f"sh_degree needs colors as SH coefficients [N, K, 3], got colors of shape "
                f"{list(colors.shape)} and sh_degree={sh_degree!r}"
            )
        return None
    check_tensor("colors", colors, shape=(None, None, 3))
    if sh_degree is not None:
        return _check_sh_degree(sh_degree)
    degree = math.isqrt(colors.shape[1]) - 1
    if (degree + 1) ** 2 != colors.shape[1]:
        raise ValueError(
            f"colors as SH must have K = (degree+1)^2 coefficients, got K={colors.shape[1]}"
        )
    return _check_sh_degree(degree)


def _background_for(background, like: torch.Tensor, checks: ValueChecks) -> torch.Tensor | None:
    """Background as a [3] tensor of `like`'s dtype and device, or None (black); a Python
    number (or sequence of them) is checked here, a tensor's entries on `checks`."""
    if background is None:
        return None
    if not isinstance(background, torch.Tensor):
        if isinstance(background, (list, tuple)):
            for i, value in enumerate(background):
                check_scalar(f"background[{i}]", value)
        else:
            check_scalar("background", background)
    elif background.dtype.is_complex:
        raise ValueError(f"background must be a real tensor, got {background.dtype}")
    background = torch.as_tensor(background, dtype=like.dtype, device=like.device)
    if background.dim() == 0:
        background = background.expand(3)
    if background.shape != (3,):
        raise ValueError(f"background must be a scalar or [3], got {list(background.shape)}")
    checks.finite("background", background)
    return background


def _queue_opacities(opacities, checks: ValueChecks) -> None:
    checks.finite(
        "opacities", opacities, minimum=0.0, maximum=1.0, hint="activated, e.g. sigmoid of logits"
    )


def _check_opacities(opacities, like: torch.Tensor, checks: ValueChecks) -> None:
    check_tensor("opacities", opacities, shape=(None,))
    check_length("opacities", opacities, like.shape[0], "means")
    _queue_opacities(opacities, checks)


# ----------------------------------------------------------------------------- public API


def _colors_seen_from_camera(colors, means, viewmat, sh_degree, evaluate) -> torch.Tensor:
    """RGB [N,3]: `colors` itself, or its SH evaluated towards each mean from the camera
    with `evaluate(sh, directions, degree)`."""
    if sh_degree is None:
        return colors
    rotation, translation = viewmat[:3, :3], viewmat[:3, 3]
    camera_centre = -rotation.T @ translation
    return evaluate(colors, means - camera_centre, sh_degree)


def rasterize(
    means: torch.Tensor,
    quats: torch.Tensor,
    scales: torch.Tensor,
    opacities: torch.Tensor,
    colors: torch.Tensor,
    viewmat: torch.Tensor,
    K: torch.Tensor,
    width: int,
    height: int,
    sh_degree: int | None = None,
    background: torch.Tensor | float | None = None,
    near: float = 0.01,
    impl: Impl = "auto",
    validate: bool | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
    """Renders Gaussians (means [N,3], quats [N,4], positive scales [N,3], opacities [N] in
    [0,1], colors RGB [N,3] or SH [N,K,3]) into rgb [H,W,3], alpha [H,W], depth [H,W].

    With SH colors, `sh_degree` (0..3, default: all of K) picks how many bands are used,
    seen along the direction from the camera centre to each mean. Gaussians closer than
    `near` (> 0, camera z) or whose 3-sigma box misses the image are culled. background: a
    finite scalar or [3] (None: black). validate: run the value checks (finite, ranges)
    whatever set_checks says (None: as it says); all are read back in one synchronisation.
    `info` holds means2d [N,2] (call .retain_grad() on it for densification), conics [N,3],
    depths [N], radii [N] and visible [N] (bool), all over the N input Gaussians.
    """
    checks = ValueChecks(value_checks(validate))
    _check_gaussians(means, quats, scales, checks)
    width, height, near = _check_camera(viewmat, K, width, height, near, means, checks)
    _check_opacities(opacities, means, checks)
    degree = _sh_degree_of(colors, sh_degree)
    if degree is not None:
        _check_sh(colors, degree, checks, name="colors")
    else:
        checks.finite("colors", colors)
    check_length("colors", colors, means.shape[0], "means")
    tensors = {"means": means, "opacities": opacities, "colors": colors}
    check_same_dtype(tensors)
    check_same_device(tensors)
    bg = _background_for(background, means, checks)
    checks.run()

    if resolve_impl(impl, means.device, FAMILY) == "torch":
        means2d, conics, depths, radii, visible = _project(
            means, quats, scales, viewmat, K, width, height, near
        )
        rgbs = _colors_seen_from_camera(colors, means, viewmat, degree, _sh_colors)
        keep = torch.nonzero(visible).squeeze(1)
        rgb, alpha, depth = _rasterize_dense(
            means2d[keep],
            conics[keep],
            rgbs[keep],
            opacities[keep],
            depths[keep],
            width,
            height,
            bg,
        )
    else:
        _check_no_camera_grads(viewmat, K)
        means2d, conics, depths, radii = _ProjectKernel.apply(
            means, quats, scales, viewmat, K, width, height, near
        )
        visible = radii > 0
        rgbs = _colors_seen_from_camera(colors, means, viewmat, degree, _ShKernel.apply)
        rgb, alpha, depth = _RasterizeKernel.apply(
            means2d, conics, rgbs, opacities, depths, radii, width, height
        )
        if bg is not None:
            rgb = rgb + (1.0 - alpha)[..., None] * bg
    info = {
        "means2d": means2d,
        "conics": conics,
        "depths": depths,
        "radii": radii,
        "visible": visible,
    }
    return rgb, alpha, depth, info

"""The SSIM of the training loss, computed for large images at a fraction of the cost of
mp3d.metrics.ssim (same definition: 11x11 Gaussian window of sigma 1.5, valid region,
C1 = 0.01^2, C2 = 0.03^2, mean over pixels and channels).

mp3d.metrics.ssim blurs five maps with a dense 11x11 depthwise convolution and lets autograd
differentiate it: at 800x800 that is about 0.36 s a step on one core, as much as a third of
a splatting step. Here the Gaussian window is applied as two 11-tap passes (it is
separable), on the [H, W*C] rows of the channel-last image (no permute), one strip of rows
at a time so that a strip's five maps stay in cache; and the gradient is computed in the
same pass from its closed form,

    d mean(S) / dx = (G^T d_mu + 2 x G^T d_xx + y G^T d_xy) / n,
    d_mu = 2 mu_y (A2 - A1) / (B1 B2) + 2 mu_x S (1 / B2 - 1 / B1),
    d_xx = -S / B2,   d_xy = 2 A1 / (B1 B2),

(S = A1 A2 / (B1 B2) with A1 = 2 mu_x mu_y + C1, A2 = 2 cov + C2, B1 = mu_x^2 + mu_y^2 + C1,
B2 = var_x + var_y + C2; G^T the transposed blur), instead of differentiating every blur.

On CPU tensors the same computation runs as one C++ kernel (csrc/ssim/ssim_cpu.cpp: the
five maps blurred and combined row by row in cache, then the transposed blur gathered per
input row), 1.8-2.2x as fast as these strips of torch ops on 2 threads (bench/bench_ssim.py),
which stay its reference and the path of CUDA tensors (``impl``: "auto", "cpp" or "torch",
as for the other op families).
"""

from __future__ import annotations

import torch

from mp3d._backend import Impl, resolve_impl
from mp3d.metrics import ssim

__all__ = ["FAMILY", "STRIP_BYTES", "ssim_loss_value", "training_ssim"]

C1, C2 = 0.01**2, 0.03**2
WINDOW, SIGMA = 11, 1.5
STRIP_BYTES = 4 << 20  # a strip's five blurred maps: about the L2/L3 share of one core
FAMILY = "ssim"  # the kernel family of mp3d._backend


def _window(size: int, sigma: float) -> list[float]:
    """Normalised 1D Gaussian taps (their outer product is mp3d.metrics' 2D window)."""
    x = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    return (g / g.sum()).tolist()


def _blur_valid(maps: torch.Tensor, taps: list[float], channels: int, rows: int) -> torch.Tensor:
    """Valid separable blur of maps [k, rows + w - 1, W*c] -> [k, rows, (W - w + 1)*c]."""
    w = len(taps)
    out_width = (maps.shape[-1] // channels - w + 1) * channels
    across = maps[..., :out_width] * taps[0]
    for i in range(1, w):
        across.add_(maps[..., i * channels : i * channels + out_width], alpha=taps[i])
    down = across[:, :rows] * taps[0]
    for i in range(1, w):
        down.add_(across[:, i : i + rows], alpha=taps[i])
    return down


def _blur_transposed(maps: torch.Tensor, taps: list[float], channels: int) -> torch.Tensor:
    """The transpose of _blur_valid: [k, R, W'*c] -> [k, R + w - 1, (W' + w - 1)*c]."""
    w = len(taps)
    k, rows, in_width = maps.shape
    across = maps.new_zeros(k, rows, in_width + (w - 1) * channels)
    for i in range(w):
        across[..., i * channels : i * channels + in_width].add_(maps, alpha=taps[i])
    down = maps.new_zeros(k, rows + w - 1, across.shape[-1])
    for i in range(w):
        down[:, i : i + rows].add_(across, alpha=taps[i])
    return down


def _strip_rows(width: int, channels: int, out_rows: int, strip_bytes: int) -> int:
    """Output rows per strip so that five maps of a strip take about strip_bytes."""
    per_row = 5 * width * channels * 4
    return max(8, min(out_rows, strip_bytes // per_row - (WINDOW - 1)))


@torch.no_grad()
def ssim_loss_value(
    prediction: torch.Tensor,
    target: torch.Tensor,
    need_grad: bool = True,
    strip_bytes: int = STRIP_BYTES,
    impl: Impl = "auto",
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Mean SSIM (scalar tensor) of images [H,W,C] (at least 11x11, the same floating dtype
    and device) and, with need_grad, its gradient with respect to `prediction` [H,W,C]: the
    C++ kernel on CPU tensors, else torch strips of strip_bytes (see the module docstring)."""
    _check_images(prediction, target)
    path = resolve_impl(impl, prediction.device, FAMILY)
    if path == "cpp" and prediction.dtype not in (torch.float32, torch.float64):
        if impl == "cpp":
            raise ValueError(f"impl='cpp' takes float32 or float64 images, got {prediction.dtype}")
        path = "torch"
    if path == "cpp":
        value, grad = torch.ops.mp3d.ssim_fwd(
            prediction.contiguous(), target.contiguous(), bool(need_grad)
        )
        return value, grad if need_grad else None
    return _ssim_strips(prediction, target, need_grad, strip_bytes)


def _check_images(prediction: torch.Tensor, target: torch.Tensor) -> None:
    if prediction.dim() != 3 or min(prediction.shape[:2]) < WINDOW:
        raise ValueError(
            f"prediction must be an image [H,W,C] of at least {WINDOW}x{WINDOW}, "
            f"got shape {tuple(prediction.shape)}"
        )
    if target.shape != prediction.shape:
        raise ValueError(
            f"target must have the shape of prediction {tuple(prediction.shape)}, "
            f"got {tuple(target.shape)}"
        )
    if not prediction.dtype.is_floating_point or target.dtype != prediction.dtype:
        raise ValueError(
            "prediction and target must share a floating dtype, "
            f"got {prediction.dtype} and {target.dtype}"
        )
    if target.device != prediction.device:
        raise ValueError(
            f"target must be on prediction's device {prediction.device}, got {target.device}"
        )


def _ssim_strips(
    prediction: torch.Tensor, target: torch.Tensor, need_grad: bool, strip_bytes: int
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """ssim_loss_value in torch ops, strip_bytes of blurred maps at a time."""
    height, width, channels = prediction.shape
    taps = _window(WINDOW, SIGMA)
    x = prediction.reshape(height, width * channels)
    y = target.reshape(height, width * channels)
    out_rows = height - WINDOW + 1
    n = out_rows * (width - WINDOW + 1) * channels
    strip = _strip_rows(width, channels, out_rows, strip_bytes)
    total = x.new_zeros((), dtype=torch.float64)
    grad = torch.zeros_like(x) if need_grad else None
    for top in range(0, out_rows, strip):
        rows = min(strip, out_rows - top)
        xs, ys = x[top : top + rows + WINDOW - 1], y[top : top + rows + WINDOW - 1]
        maps = torch.stack([xs, ys, xs * xs, ys * ys, xs * ys])
        mu_x, mu_y, e_xx, e_yy, e_xy = _blur_valid(maps, taps, channels, rows).unbind(0)
        mu_xy = mu_x * mu_y
        a1 = 2.0 * mu_xy + C1
        a2 = 2.0 * (e_xy - mu_xy) + C2
        mu_sq = mu_x * mu_x + mu_y * mu_y
        b1 = mu_sq + C1
        b2 = e_xx + e_yy - mu_sq + C2
        inverse = torch.reciprocal(b1 * b2)
        s = a1 * a2 * inverse
        total += s.sum(dtype=torch.float64)
        if need_grad:
            d_mu = 2.0 * mu_y * (a2 - a1) * inverse + 2.0 * mu_x * s * (1.0 / b2 - 1.0 / b1)
            d_xx = -s / b2
            d_xy = 2.0 * a1 * inverse
            back = _blur_transposed(torch.stack([d_mu, d_xx, d_xy]), taps, channels)
            grad[top : top + rows + WINDOW - 1] += back[0] + 2.0 * xs * back[1] + ys * back[2]
    value = (total / n).to(prediction.dtype)
    if grad is not None:
        grad = grad.div_(n).reshape(height, width, channels)
    return value, grad


class _TrainingSSIM(torch.autograd.Function):
    @staticmethod
    def forward(ctx, prediction, target, impl):
        value, grad = ssim_loss_value(prediction, target, ctx.needs_input_grad[0], impl=impl)
        ctx.save_for_backward(grad)
        return value

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_value):
        (grad,) = ctx.saved_tensors
        return grad * grad_value, None, None


def training_ssim(
    prediction: torch.Tensor, target: torch.Tensor, impl: Impl = "auto"
) -> torch.Tensor:
    """Mean SSIM (scalar tensor, differentiable in `prediction`) of images [H,W,C] in [0,1]:
    mp3d.metrics.ssim's value, fast (see the module docstring; impl as in ssim_loss_value);
    falls back to it when the target needs a gradient or the images are not [H,W,C] of at
    least 11x11."""
    if (
        prediction.dim() != 3
        or prediction.shape != target.shape
        or min(prediction.shape[:2]) < WINDOW
        or target.requires_grad
        or not prediction.dtype.is_floating_point
    ):
        return ssim(prediction, target)
    return _TrainingSSIM.apply(
        prediction.contiguous(), target.contiguous().to(prediction.dtype), impl
    )

"""Image quality metrics on float images in [0,1], shape [H,W,C] or [B,H,W,C]."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def mse_to_psnr(mse: float | torch.Tensor) -> float:
    """PSNR in dB of a mean squared error for signals in [0,1]."""
    mse = float(mse)
    return float("inf") if mse <= 0 else -10.0 * math.log10(mse)


def psnr(prediction: torch.Tensor, target: torch.Tensor) -> float:
    """Peak signal-to-noise ratio in dB (peak 1) over all pixels and channels."""
    if prediction.shape != target.shape:
        raise ValueError(
            f"prediction shape {list(prediction.shape)} != target shape {list(target.shape)}"
        )
    return mse_to_psnr(torch.mean((prediction.float() - target.float()) ** 2))


def _gaussian_window(size: int, sigma: float, channels: int, device, dtype) -> torch.Tensor:
    x = torch.arange(size, device=device, dtype=dtype) - (size - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    g = g / g.sum()
    return (g[:, None] * g[None, :]).expand(channels, 1, size, size).contiguous()


def ssim_map(
    prediction: torch.Tensor, target: torch.Tensor, window: int = 11, sigma: float = 1.5
) -> torch.Tensor:
    """Per-pixel SSIM [B,C,H',W'] (Gaussian window, valid region) of [B,H,W,C] images."""
    x = prediction.permute(0, 3, 1, 2)
    y = target.permute(0, 3, 1, 2)
    channels = x.shape[1]
    w = _gaussian_window(window, sigma, channels, x.device, x.dtype)

    def blur(t):
        return F.conv2d(t, w, groups=channels)

    c1, c2 = 0.01**2, 0.03**2
    mu_x, mu_y = blur(x), blur(y)
    var_x = blur(x * x) - mu_x**2
    var_y = blur(y * y) - mu_y**2
    cov = blur(x * y) - mu_x * mu_y
    return ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / (
        (mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2)
    )


def ssim(
    prediction: torch.Tensor, target: torch.Tensor, window: int = 11, sigma: float = 1.5
) -> torch.Tensor:
    """Mean structural similarity of images [H,W,C] or [B,H,W,C] in [0,1] (differentiable)."""
    if prediction.shape != target.shape:
        raise ValueError(
            f"prediction shape {list(prediction.shape)} != target shape {list(target.shape)}"
        )
    if prediction.dim() == 3:
        prediction, target = prediction[None], target[None]
    if prediction.dim() != 4 or min(prediction.shape[1:3]) < window:
        raise ValueError(
            f"images must be [B,H,W,C] with H, W >= {window}, got {list(prediction.shape)}"
        )
    return ssim_map(prediction, target, window, sigma).mean()

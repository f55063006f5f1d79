"""The training loss's SSIM: the value and gradient of mp3d.metrics.ssim, strip by strip,
and the loss built on it."""

from __future__ import annotations

import pytest
import torch

from mp3d.metrics import ssim
from mp3d.splat import splat_loss
from mp3d.splat.ssim import ssim_loss_value, training_ssim


def _images(height: int, width: int, seed: int = 0, dtype=torch.float32):
    generator = torch.Generator().manual_seed(seed)
    target = torch.rand(height, width, 3, generator=generator, dtype=dtype)
    # A prediction near the target, as in training, and one far from it.
    noise = 0.1 * torch.randn(height, width, 3, generator=generator, dtype=dtype)
    return (target + noise).clamp(0, 1), target


@pytest.mark.parametrize("shape", [(11, 11), (24, 37), (64, 48)])
@pytest.mark.parametrize("strip_bytes", [1, 1 << 30])  # 8-row strips, one strip
def test_value_and_gradient_match_metrics_ssim(shape, strip_bytes):
    prediction, target = _images(*shape)
    prediction.requires_grad_()
    expected = ssim(prediction, target)
    (expected_grad,) = torch.autograd.grad(expected, prediction)
    value, grad = ssim_loss_value(prediction.detach(), target, strip_bytes=strip_bytes)
    assert torch.allclose(value, expected, atol=2e-6), (float(value), float(expected))
    scale = float(expected_grad.abs().max())
    assert torch.allclose(grad, expected_grad, atol=1e-5 * scale, rtol=0)


def test_training_ssim_backpropagates_the_closed_form():
    prediction, target = _images(30, 26, seed=3)
    prediction.requires_grad_()
    (2.0 * training_ssim(prediction, target)).backward()
    got = prediction.grad.clone()
    prediction.grad = None
    (2.0 * ssim(prediction, target)).backward()
    assert torch.allclose(got, prediction.grad, atol=1e-5 * float(prediction.grad.abs().max()))


def test_gradcheck_in_float64():
    prediction, target = _images(13, 14, seed=5, dtype=torch.float64)
    prediction.requires_grad_()
    assert torch.autograd.gradcheck(lambda p: training_ssim(p, target), (prediction,))


def test_no_gradient_work_without_grad_and_fallbacks():
    prediction, target = _images(20, 20, seed=7)
    value, grad = ssim_loss_value(prediction, target, need_grad=False)
    assert grad is None and torch.allclose(value, ssim(prediction, target), atol=2e-6)
    # Batched images and a target that needs a gradient go to mp3d.metrics.ssim.
    batch = torch.stack([prediction, target])
    assert torch.allclose(training_ssim(batch, batch.flip(0)), ssim(batch, batch.flip(0)))
    wanted = target.clone().requires_grad_()
    training_ssim(prediction, wanted).backward()
    assert wanted.grad is not None
    identical = training_ssim(target, target)
    assert abs(float(identical) - 1.0) < 1e-6


def test_splat_loss_is_l1_and_dssim():
    prediction, target = _images(16, 18, seed=9)
    loss = splat_loss(prediction, target, 0.2)
    expected = 0.8 * (prediction - target).abs().mean() + 0.2 * (1 - ssim(prediction, target))
    assert torch.allclose(loss, expected, atol=1e-6)

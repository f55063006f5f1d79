"""PSNR and SSIM."""

from __future__ import annotations

import math

import pytest
import torch

from mp3d.metrics import psnr, ssim


def test_psnr_known_value():
    a = torch.zeros(8, 8, 3)
    b = torch.full((8, 8, 3), 0.1)
    assert psnr(a, b) == pytest.approx(20.0)
    assert math.isinf(psnr(a, a))
    with pytest.raises(ValueError, match="prediction shape"):
        psnr(a, b[:4])


def test_ssim_properties():
    g = torch.Generator().manual_seed(0)
    image = torch.rand(32, 32, 3, generator=g)
    assert float(ssim(image, image)) == pytest.approx(1.0, abs=1e-6)
    noisy = (image + 0.2 * torch.randn(32, 32, 3, generator=g)).clamp(0, 1)
    slightly = (image + 0.02 * torch.randn(32, 32, 3, generator=g)).clamp(0, 1)
    assert float(ssim(image, noisy)) < float(ssim(image, slightly)) < 1.0
    # Batched and differentiable
    prediction = noisy[None].clone().requires_grad_()
    (1 - ssim(prediction, image[None])).backward()
    assert prediction.grad.shape == (1, 32, 32, 3)
    with pytest.raises(ValueError, match="H, W >= 11"):
        ssim(torch.rand(8, 8, 3), torch.rand(8, 8, 3))

"""The training loss's SSIM: the value and gradient of mp3d.metrics.ssim, strip by strip in
torch and in the C++ kernel, and the loss built on it."""

from __future__ import annotations

import pytest
import torch

from mp3d import _backend
from mp3d.metrics import ssim
from mp3d.ops.ssim import ssim_loss_value, training_ssim
from mp3d.splat import splat_loss

needs_cpp = pytest.mark.skipif(
    _backend.kernel_missing("ssim", "cpu") is not None, reason="no compiled ssim kernel"
)
IMPLS = ["torch", pytest.param("cpp", marks=needs_cpp)]


def _images(height: int, width: int, seed: int = 0, dtype=torch.float32):
    generator = torch.Generator().manual_seed(seed)
    target = torch.rand(height, width, 3, generator=generator, dtype=dtype)
    # A prediction near the target, as in training, and one far from it.
    noise = 0.1 * torch.randn(height, width, 3, generator=generator, dtype=dtype)
    return (target + noise).clamp(0, 1), target


@pytest.mark.parametrize("shape", [(11, 11), (24, 37), (64, 48)])
@pytest.mark.parametrize(
    "impl, strip_bytes",
    [("torch", 1), ("torch", 1 << 30), pytest.param("cpp", None, marks=needs_cpp)],
)  # torch: 8-row strips, one strip
def test_value_and_gradient_match_metrics_ssim(shape, impl, strip_bytes):
    prediction, target = _images(*shape)
    prediction.requires_grad_()
    expected = ssim(prediction, target)
    (expected_grad,) = torch.autograd.grad(expected, prediction)
    options = {} if strip_bytes is None else {"strip_bytes": strip_bytes}
    value, grad = ssim_loss_value(prediction.detach(), target, impl=impl, **options)
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


@pytest.mark.parametrize("impl", IMPLS)
def test_gradcheck_in_float64(impl):
    prediction, target = _images(13, 14, seed=5, dtype=torch.float64)
    prediction.requires_grad_()
    assert torch.autograd.gradcheck(lambda p: training_ssim(p, target, impl), (prediction,))


@needs_cpp
@pytest.mark.parametrize("shape", [(11, 11, 1), (40, 23, 3), (57, 64, 2), (130, 90, 3)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_kernel_matches_the_torch_strips(shape, dtype):
    # Taller than the kernel's 16-row strips, with ragged last strips and 1-3 channels.
    generator = torch.Generator().manual_seed(11)
    target = torch.rand(shape, generator=generator, dtype=dtype)
    prediction = (target + 0.2 * torch.randn(shape, generator=generator, dtype=dtype)).clamp(0, 1)
    value, grad = ssim_loss_value(prediction, target, impl="torch")
    kernel_value, kernel_grad = ssim_loss_value(prediction, target, impl="cpp")
    tight = dtype == torch.float64
    assert abs(float(kernel_value - value)) < (1e-12 if tight else 1e-6)
    scale = float(grad.abs().max())
    assert torch.allclose(kernel_grad, grad, rtol=0, atol=(1e-12 if tight else 1e-5) * scale)
    assert kernel_value.dtype == dtype and kernel_grad.shape == shape


@needs_cpp
def test_kernel_value_does_not_depend_on_the_thread_count():
    prediction, target = _images(100, 60, seed=13)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = ssim_loss_value(prediction, target, impl="cpp")
        torch.set_num_threads(2)
        two = ssim_loss_value(prediction, target, impl="cpp")
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(one[0], two[0]) and torch.equal(one[1], two[1])


@pytest.mark.parametrize("impl", IMPLS)
def test_bad_images_are_named(impl):
    prediction, target = _images(20, 20)
    with pytest.raises(ValueError, match="prediction must be an image"):
        ssim_loss_value(prediction[:10], target[:10], impl=impl)
    with pytest.raises(ValueError, match="prediction must be an image"):
        ssim_loss_value(prediction[..., 0], target[..., 0], impl=impl)
    with pytest.raises(ValueError, match="target must have the shape"):
        ssim_loss_value(prediction, target[:, :19], impl=impl)
    with pytest.raises(ValueError, match="share a floating dtype"):
        ssim_loss_value(prediction, target.double(), impl=impl)
    with pytest.raises(ValueError, match="share a floating dtype"):
        ssim_loss_value((prediction * 255).int(), (target * 255).int(), impl=impl)


@needs_cpp
def test_the_kernel_checks_its_inputs():
    prediction, target = _images(20, 20)
    with pytest.raises(ValueError, match="impl='cpp' takes float32 or float64"):
        ssim_loss_value(prediction.half(), target.half(), impl="cpp")
    op = torch.ops.mp3d.ssim_fwd
    with pytest.raises(ValueError, match="contiguous"):
        op(prediction.transpose(0, 1), target, True)
    with pytest.raises(ValueError, match="dtype"):
        op(prediction, target.double(), True)
    with pytest.raises(ValueError, match="at least 11x11"):
        op(prediction[:5], target[:5], True)
    value, grad = op(prediction, target, False)
    assert grad.numel() == 0 and value.dim() == 0


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

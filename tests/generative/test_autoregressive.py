"""Autoregressive image models: each logit depends on exactly the pixels its order allows
(autograd Jacobians on random inputs), the gated PixelCNN has no blind spot (and the same
check catches a plain PixelCNN's), the NLL is the sum of per-pixel Bernoulli NLLs, the
likelihood sums to one over every 3x3 image, the step-by-step sampling path computes the
same logits, samples follow the model's distribution, a few training steps lower the NLL
on MNIST (synthetic digits without it), and bad arguments are refused by name."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
import torch

from mp3d.data.mnist import MNIST, evaluation_view, load_mnist
from mp3d.generative import GenerativeConfig, model_spec, models, train_generative
from mp3d.generative.autoregressive import (
    FVSBN,
    MADE,
    NADE,
    GatedPixelCNN,
    PixelCNN,
    PixelTransformer,
    WaveNet,
)

MNIST_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "mnist"
NAMES = ["fvsbn", "nade", "made", "pixelcnn", "gated-pixelcnn", "wavenet", "transformer"]

# Tiny versions of every model (keyword options, as the registry passes them).
TINY = {
    "fvsbn": {},
    "nade": {"hidden": 12},
    "made": {"hidden_sizes": [24, 24], "n_masks": 3},
    "made-order-agnostic": {"hidden_sizes": [24], "n_masks": 3, "order_agnostic": True},
    "pixelcnn": {"channels": 6, "n_layers": 2, "first_kernel_size": 3, "head_channels": 8},
    "gated-pixelcnn": {"channels": 6, "n_layers": 3, "first_kernel_size": 3, "head_channels": 8},
    "wavenet": {"residual_channels": 6, "skip_channels": 8, "dilations": [1, 2, 4, 8]},
    "transformer": {"dim": 16, "n_layers": 2, "n_heads": 2},
}
CLASSES = {
    "fvsbn": FVSBN,
    "nade": NADE,
    "made": MADE,
    "made-order-agnostic": MADE,
    "pixelcnn": PixelCNN,
    "gated-pixelcnn": GatedPixelCNN,
    "wavenet": WaveNet,
    "transformer": PixelTransformer,
}


pytestmark = pytest.mark.usefixtures("one_thread")


def generator(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def tiny(name: str, image_shape=(1, 6, 6), sharpen: float = 0.0, seed: int = 0):
    """A tiny float64 model; ``sharpen`` > 0 redraws its weights N(0, sharpen^2) so that
    its conditionals are far from uniform (a fresh model's are nearly 1/2)."""
    torch.manual_seed(seed)
    model = CLASSES[name](**TINY[name], image_shape=image_shape).double()
    if sharpen:
        with torch.no_grad():
            for p in model.parameters():
                p.normal_(0.0, sharpen, generator=generator(seed + p.numel()))
    return model.eval()


def all_binary_images(height: int, width: int) -> torch.Tensor:
    grid = torch.tensor(list(itertools.product([0.0, 1.0], repeat=height * width)))
    return grid.view(-1, 1, height, width).double()


# --- dependency structure -------------------------------------------------------------------


def jacobian_pattern(model, height: int, width: int) -> torch.Tensor:
    """bool [D, D]: logit i depends on input pixel j (flat raster indices), from autograd on
    random real inputs: one vector-Jacobian product per output, batched, random cotangents."""
    d = height * width
    x = torch.rand(3, 1, height, width, generator=generator(1), dtype=torch.float64)
    x.requires_grad_(True)
    logits = model.logits(x).flatten(1)  # [3, D]
    cotangents = torch.zeros(d, *logits.shape, dtype=logits.dtype)
    for i in range(d):
        cotangents[i, :, i] = torch.randn(3, generator=generator(i), dtype=logits.dtype)
    (grads,) = torch.autograd.grad(logits, x, cotangents, is_grads_batched=True)
    return (grads.flatten(2) != 0).any(1)  # [D outputs, D inputs]


def before_in(order: torch.Tensor) -> torch.Tensor:
    """bool [D, D]: j comes strictly before i in the generation order."""
    position = torch.empty_like(order)
    position[order] = torch.arange(len(order))
    return position[None, :] < position[:, None]


def raster_window(height, width, radius, extra_row=0) -> torch.Tensor:
    """bool [D, D]: j before i in raster order, at most ``radius`` columns away (to the left,
    in i's own row) and at most radius + extra_row rows above: all the earlier pixels within
    a receptive field of that radius."""
    flat = torch.arange(height * width)
    r, c = flat.div(width, rounding_mode="floor"), flat % width
    rows_up, cols_right = r[:, None] - r[None, :], c[None, :] - c[:, None]  # [i, j]
    window = (cols_right.abs() <= radius) & (rows_up <= radius + extra_row)
    return before_in(flat) & window


def assert_autoregressive(pattern: torch.Tensor, allowed: torch.Tensor, every: bool = True):
    """No dependency on any j that is not allowed, and some on the allowed ones: for every
    logit that may see a pixel (``every``), else for most of the allowed pairs (MADE's
    random hidden degrees may leave a conditional with only its bias)."""
    assert not (pattern & ~allowed).any(), "a logit depends on a pixel not before it"
    has_allowed = allowed.any(1)
    if every:
        assert pattern[has_allowed].any(1).all(), "a logit ignores every pixel it may see"
    else:
        assert pattern.sum() >= 0.5 * allowed.sum()
    assert not pattern[~has_allowed].any()


def assert_sees_every_earlier_pixel(model, height: int, width: int, extra_row: int) -> None:
    """No blind spot: logit i depends on every pixel before i within the receptive field
    (``extra_row``: rows it reaches beyond its radius; the gated stack's vertical stack is
    shifted down by one row)."""
    pattern = jacobian_pattern(model, height, width)
    expected = raster_window(height, width, model.receptive_radius, extra_row)
    assert_autoregressive(pattern, expected)
    missing = expected & ~pattern
    assert not missing.any(), f"blind spot: (i, j) = {missing.nonzero()[:4].tolist()} unseen"


@pytest.mark.parametrize("name", ["fvsbn", "nade", "transformer"])
def test_dense_models_depend_on_exactly_every_earlier_pixel(name):
    model = tiny(name, sharpen=0.5)  # (FVSBN starts with zero weights)
    pattern = jacobian_pattern(model, 6, 6)
    assert torch.equal(pattern, before_in(torch.arange(36)))


@pytest.mark.parametrize("name", ["made", "made-order-agnostic"])
def test_made_depends_only_on_earlier_pixels_in_every_masks_order(name):
    model = tiny(name)
    orders = set()
    for index in range(model.n_masks):
        model.net.set_mask(index)
        order = model.order()
        assert torch.equal(order.sort().values, torch.arange(36))
        assert_autoregressive(jacobian_pattern(model, 6, 6), before_in(order), every=False)
        orders.add(tuple(order.tolist()))
    assert len(orders) == (model.n_masks if name == "made-order-agnostic" else 1)


def test_wavenet_sees_exactly_its_receptive_field_of_earlier_pixels():
    model = tiny("wavenet")  # kernel 2, dilations 1, 2, 4, 8: 2 + 15 = 17 pixels back
    assert model.receptive_field == 17
    pattern = jacobian_pattern(model, 6, 6)
    i, j = torch.arange(36)[:, None], torch.arange(36)[None, :]
    assert torch.equal(pattern, (j < i) & (j >= i - 17))
    # the registered default sees the whole 784-pixel image
    spec = model_spec("wavenet")
    assert spec.make(**spec.options).receptive_field >= 784


def test_pixelcnn_is_autoregressive_but_has_a_blind_spot():
    model = tiny("pixelcnn", (1, 9, 9))  # radius 1 + 2 = 3
    pattern = jacobian_pattern(model, 9, 9)
    assert_autoregressive(pattern, raster_window(9, 9, model.receptive_radius))
    # the same check as the gated model's fails here: the test can tell
    with pytest.raises(AssertionError, match="blind spot"):
        assert_sees_every_earlier_pixel(model, 9, 9, extra_row=0)


def test_gated_pixelcnn_has_no_blind_spot():
    model = tiny("gated-pixelcnn", (1, 9, 9))  # radius 1 + 1 + 1 = 3
    assert model.receptive_radius == 3
    assert_sees_every_earlier_pixel(model, 9, 9, extra_row=1)


# --- likelihood ---------------------------------------------------------------------------


def bernoulli_nll_by_hand(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    p = torch.sigmoid(logits)
    return -(x * torch.log(p) + (1 - x) * torch.log(1 - p)).flatten(1).sum(1)


@pytest.mark.parametrize("name", list(TINY))
def test_nll_is_the_sum_of_per_pixel_bernoulli_nlls(name):
    model = tiny(name, sharpen=0.5)
    x = torch.bernoulli(torch.full((4, 1, 6, 6), 0.4, dtype=torch.float64), generator=generator())
    nll = model.nll(x)
    assert nll.shape == (4,) and model.nll_kind == "exact"
    if isinstance(model, MADE):  # the ensemble: -log mean_k p_k(x)
        per_mask = []
        for index in range(model.n_masks):
            model.net.set_mask(index)
            per_mask.append(bernoulli_nll_by_hand(model.logits(x), x))
            torch.testing.assert_close(model.mask_nll(x), per_mask[-1])
        per_mask = torch.stack(per_mask)
        by_hand = -torch.log(torch.exp(-per_mask).mean(0))
        assert (nll <= per_mask.mean(0) + 1e-9).all()  # what training minimises bounds it
    else:
        by_hand = bernoulli_nll_by_hand(model.logits(x), x)
    torch.testing.assert_close(nll, by_hand, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("name", list(TINY))
def test_likelihood_sums_to_one_over_every_3x3_image(name):
    model = tiny(name, (1, 3, 3), sharpen=1.0)
    images = all_binary_images(3, 3)  # all 512
    with torch.no_grad():
        total = torch.exp(-model.nll(images)).sum()
    assert abs(float(total) - 1.0) < 1e-5


# --- sampling -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(TINY))
def test_step_by_step_sampling_path_computes_the_same_logits(name):
    # 9x11 with receptive radius 3: the convolutional models' windows lie inside the image
    model = tiny(name, (1, 9, 11), sharpen=0.5)
    x = torch.bernoulli(torch.full((3, 1, 9, 11), 0.5, dtype=torch.float64), generator=generator())
    for index in range(getattr(model, "n_masks", 1)):
        if isinstance(model, MADE):
            model.net.set_mask(index)
        with torch.no_grad():
            expected = model.logits(x)
        torch.testing.assert_close(model.sequential_logits(x), expected, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("name", list(TINY))
def test_samples_follow_the_model_distribution(name):
    model = tiny(name, (1, 2, 2), sharpen=1.0)
    images = all_binary_images(2, 2)
    with torch.no_grad():
        probs = torch.exp(-model.nll(images))
    samples = model.sample(4000, generator=generator(3))
    assert torch.equal(samples, model.sample(4000, generator=generator(3)))  # fixed by the seed
    codes = (samples.flatten(1) * torch.tensor([8.0, 4.0, 2.0, 1.0]).double()).sum(1).long()
    freq = torch.bincount(codes, minlength=16).double() / len(codes)
    assert 0.5 * (freq - probs).abs().sum() < 0.05  # total variation (expected ~0.02)
    # a cold temperature is (nearly) greedy: every sample the same image
    cold = model.sample(16, temperature=1e-4, generator=generator(4))
    if not isinstance(model, MADE):  # (MADE draws a mask set per sample)
        assert (cold == cold[0]).all()


@pytest.mark.parametrize("name", NAMES)
def test_samples_of_28x28_models_are_binary_images(name):
    options = TINY[name]
    if name == "wavenet":
        options = {**options, "dilations": [1, 4, 16]}
    torch.manual_seed(0)
    model = CLASSES[name](**options).eval()
    samples = model.sample(2, generator=generator(5))
    assert samples.shape == (2, 1, 28, 28) and samples.dtype == torch.float32
    assert set(samples.unique().tolist()) <= {0.0, 1.0}


# --- training -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def digits() -> MNIST:
    """The shared MNIST digits when present, else synthetic ones (bars plus noise)."""
    if MNIST_DIR.is_dir():
        return load_mnist(MNIST_DIR, n_train=512, n_eval=1000)
    rng = np.random.default_rng(0)
    images = np.zeros((700, 28, 28), dtype=np.uint8)
    for i, image in enumerate(images):
        column = 6 + 4 * (i % 4)
        image[4:24, column : column + 3] = 255
        image[rng.random((28, 28)) < 0.03] = 255
    labels = (np.arange(700) % 4).astype(np.uint8)
    return MNIST(images[:512], labels[:512], images[512:], labels[512:], "synthetic bars")


@pytest.mark.parametrize("name", NAMES)
def test_a_few_training_steps_lower_the_nll(name, digits):
    options = TINY[name]
    config = GenerativeConfig(model=name, steps=10, batch_size=8, lr=3e-3, log_every=100)
    test = evaluation_view(digits.test_images[:32], "binarised")
    torch.manual_seed(config.seed)  # the same initial weights as train_generative's
    spec = model_spec(name)
    fresh = spec.make(**{**spec.options, **options})
    with torch.no_grad():
        before = float(fresh.eval().nll(test).mean())
    model = train_generative(digits, config, progress=False, options=options)
    with torch.no_grad():
        after = float(model.nll(test).mean())
    assert after < before - 5.0, (before, after)
    assert model.train_stats["steps"] == 10


def test_made_trains_a_new_mask_set_each_step_and_keeps_the_mask_in_eval():
    model = tiny("made")
    x = torch.bernoulli(torch.full((4, 1, 6, 6), 0.5, dtype=torch.float64), generator=generator())
    model.train()
    seen = []
    for _ in range(4):
        model.loss(x)
        seen.append(int(model.net.mask_index))
    assert seen == [1, 2, 0, 1]
    model.eval()
    model.loss(x)
    model.nll(x)
    assert int(model.net.mask_index) == 1


def test_registered_models_are_binarised_28x28_with_exact_nll():
    assert set(NAMES) <= set(models())
    for name in NAMES:
        spec = model_spec(name)
        assert spec.view == "binarised"
        model = spec.make(**spec.options)
        assert model.image_shape == (1, 28, 28) and model.nll_kind == "exact", name


# --- refused arguments --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cls", "options", "match"),
    [
        (FVSBN, {"image_shape": (3, 28, 28)}, "image_shape"),
        (NADE, {"image_shape": (1, 0, 28)}, "image_shape"),
        (NADE, {"hidden": 0}, "hidden"),
        (MADE, {"hidden_sizes": []}, "hidden_sizes"),
        (MADE, {"n_masks": 0}, "n_masks"),
        (MADE, {"connectivity": "dense"}, "connectivity"),
        (PixelCNN, {"channels": 0}, "channels"),
        (PixelCNN, {"kernel_size": 4}, "kernel_size"),
        (GatedPixelCNN, {"first_kernel_size": 2}, "first_kernel_size"),
        (GatedPixelCNN, {"n_layers": 0}, "n_layers"),
        (WaveNet, {"dilations": []}, "dilations"),
        (WaveNet, {"residual_channels": -1}, "residual_channels"),
        (PixelTransformer, {"dim": 32, "n_heads": 3}, "n_heads"),
        (PixelTransformer, {"dropout": 1.5}, "dropout"),
    ],
)
def test_bad_constructor_arguments_are_refused_by_name(cls, options, match):
    with pytest.raises(ValueError, match=match):
        cls(**{"image_shape": (1, 4, 4), **options})


def test_bad_inputs_to_nll_and_sample_are_refused_by_name():
    model = tiny("fvsbn", (1, 4, 4))
    with pytest.raises(ValueError, match=r"x must have shape \[B, 1, 4, 4\]"):
        model.nll(torch.zeros(2, 1, 4, 5, dtype=torch.float64))
    with pytest.raises(ValueError, match="temperature"):
        model.sample(2, temperature=0.0)
    with pytest.raises(ValueError, match="n must"):
        model.sample(0)

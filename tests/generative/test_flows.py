"""Normalizing flows: every layer and every model inverted exactly, log-determinants equal to
log|det J| of autograd's full Jacobian, a 2D flow's density integrating to 1 on a grid,
actnorm's data-dependent initialisation, NLL as the hand composition of flow, logit and
prior, falling losses on a few steps, samples' shape and range, state round trips and
refused arguments."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from mp3d.data.mnist import MNIST, dequantise, load_mnist, logit_transform
from mp3d.generative import GenerativeConfig, evaluate_nll, model_spec, train_generative
from mp3d.generative.flows import (
    NICE,
    SPECS,
    ActNorm,
    BatchNormFlow,
    Coupling,
    Flatten,
    FlowSequence,
    Glow,
    ImageFlow,
    InvConv1x1,
    MixtureLogisticCDF,
    RealNVP,
    Scaling,
    Split,
    Squeeze,
    Unsqueeze,
    alternating_mask,
    checkerboard_mask,
    data_dependent_init,
    half_mask,
)
from mp3d.nn import MLP

MNIST_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "mnist"


pytestmark = pytest.mark.usefixtures("one_thread")


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@torch.no_grad()
def randomise(module: nn.Module, scale: float = 0.3, seed: int = 0) -> nn.Module:
    """Moves every parameter off its (often identity) initial value."""
    g = gen(seed)
    for p in module.parameters():
        p.add_(scale * torch.randn(p.shape, generator=g, dtype=p.dtype))
    return module


def conv_net(in_channels: int, out_channels: int, hidden: int = 4) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(in_channels, hidden, 3, padding=1),
        nn.Tanh(),
        nn.Conv2d(hidden, out_channels, 3, padding=1),
    )


def jacobian_logdet(f, x: torch.Tensor) -> torch.Tensor:
    """log|det df/dx| per batch item [B] of f: [1,*shape] -> [1,*shape'] (same size)."""
    values = []
    for item in x:

        def flat(v, item=item):
            return f(v.view(1, *item.shape)).reshape(-1)

        jac = torch.autograd.functional.jacobian(flat, item.reshape(-1))
        sign, logabs = torch.linalg.slogdet(jac)
        assert sign != 0
        values.append(logabs)
    return torch.stack(values)


def check_flow(flow, x: torch.Tensor, inverse_tol: float = 1e-5) -> None:
    """inverse(forward(x)) == x and logdet == log|det J| (autograd) on every item of x."""
    y, logdet = flow(x)
    assert y.numel() == x.numel() and logdet.shape == (x.shape[0],)
    torch.testing.assert_close(flow.inverse(y), x, atol=inverse_tol, rtol=0)
    expected = jacobian_logdet(lambda v: flow(v)[0], x)
    torch.testing.assert_close(logdet, expected, atol=1e-8, rtol=1e-8)


# --- layers ------------------------------------------------------------------------------------


def _split_inner(channels):
    return Coupling(checkerboard_mask(channels, 4, 4), conv_net(channels, 2 * channels))


LAYERS = {
    "additive coupling (vector, alternating)": (
        lambda: Coupling(alternating_mask(8), MLP(4, [16], 4, nn.Tanh), "additive"),
        (8,),
    ),
    "affine coupling (vector, half, tanh)": (
        lambda: Coupling(half_mask(7, 1), MLP(3, [16], 8, nn.Tanh), "affine", "tanh"),
        (7,),
    ),
    "affine coupling (checkerboard, tanh)": (
        lambda: Coupling(checkerboard_mask(2, 4, 4, 1), conv_net(2, 4), "affine", "tanh"),
        (2, 4, 4),
    ),
    "affine coupling (channel, sigmoid)": (
        lambda: Coupling(half_mask(4), conv_net(2, 4), "affine", "sigmoid"),
        (4, 4, 4),
    ),
    "affine coupling (channel, exp)": (
        lambda: Coupling(half_mask(3, 1), conv_net(1, 4), "affine", "exp"),
        (3, 4, 4),
    ),
    "additive coupling (checkerboard)": (
        lambda: Coupling(checkerboard_mask(1, 4, 4), conv_net(1, 1), "additive"),
        (1, 4, 4),
    ),
    "scaling": (lambda: Scaling(8), (8,)),
    "mixture of logistics CDF (image)": (lambda: MixtureLogisticCDF((2, 3, 3), 4), (2, 3, 3)),
    "mixture of logistics CDF (vector)": (lambda: MixtureLogisticCDF(5, 1), (5,)),
    "scaling with shift (image)": (lambda: Scaling((2, 3, 3), shift=True), (2, 3, 3)),
    "actnorm (image)": (lambda: ActNorm(3), (3, 4, 4)),
    "actnorm (vector)": (lambda: ActNorm(5), (5,)),
    "invconv LU (image)": (lambda: InvConv1x1(4, gen(1)), (4, 4, 4)),
    "invconv LU (vector)": (lambda: InvConv1x1(6, gen(2)), (6,)),
    "batch norm (eval)": (lambda: BatchNormFlow(3).eval(), (3, 4, 4)),
    "squeeze": (lambda: Squeeze(), (2, 4, 4)),
    "unsqueeze": (lambda: Unsqueeze(), (4, 2, 2)),
    "flatten": (lambda: Flatten((2, 3, 3)), (2, 3, 3)),
    "split (standard prior)": (lambda: Split(4, _split_inner(2)), (4, 4, 4)),
    "split (learned prior)": (
        lambda: Split(4, _split_inner(2), conv_net(2, 4)),
        (4, 4, 4),
    ),
    "multi-scale (squeeze, split, unsqueeze)": (
        lambda: FlowSequence(
            Squeeze(),
            Coupling(half_mask(4), conv_net(2, 4)),
            Split(4, _split_inner(2), conv_net(2, 4)),
            Unsqueeze(),
        ),
        (1, 8, 8),
    ),
}


@pytest.mark.parametrize("name", LAYERS)
def test_layer_inverts_and_its_logdet_is_the_jacobians(name):
    make, shape = LAYERS[name]
    torch.manual_seed(0)
    flow = randomise(make()).double()
    if isinstance(flow, BatchNormFlow):
        flow.running_mean.normal_(generator=gen(3))
        flow.running_var.uniform_(0.5, 2.0, generator=gen(4))
    x = torch.randn(3, *shape, generator=gen(5), dtype=torch.float64)
    check_flow(flow, x)


def test_coupling_leaves_the_masked_part_unchanged_and_conditions_on_it_only():
    torch.manual_seed(0)
    mask = checkerboard_mask(1, 4, 4)
    flow = randomise(Coupling(mask, conv_net(1, 2))).double()
    x = torch.randn(2, 1, 4, 4, dtype=torch.float64)
    y, _ = flow(x)
    assert torch.equal(y[:, mask], x[:, mask])
    x2 = x.clone()
    x2[:, ~mask] += 1.0  # the changed part does not condition its own transform
    y2, logdet2 = flow(x2)
    assert torch.allclose(logdet2, flow(x)[1])
    assert torch.equal(y2[:, mask], x[:, mask])


def test_batch_norm_uses_batch_statistics_in_training_and_running_ones_after():
    flow = BatchNormFlow(2, momentum=0.5)
    x = 3.0 + 2.0 * torch.randn(64, 2, 3, 3, generator=gen())
    y, logdet = flow(x)
    assert y.mean((0, 2, 3)).abs().max() < 1e-5
    torch.testing.assert_close(y.var((0, 2, 3), correction=0), torch.ones(2), atol=1e-3, rtol=0)
    torch.testing.assert_close(
        logdet,
        torch.full((64,), 9 * float(-0.5 * torch.log(x.var((0, 2, 3), correction=0) + 1e-4).sum())),
    )
    assert (flow.running_mean > 1.0).all()  # moved half way to the batch mean of ~3
    flow.eval()
    check_flow(flow.double(), x[:2].double())


# --- the density of a 2D flow ------------------------------------------------------------------


def test_a_2d_flow_density_integrates_to_one_on_a_grid():
    torch.manual_seed(0)
    flow = FlowSequence(
        ActNorm(2),
        Coupling(half_mask(2), MLP(1, [16], 2, nn.Tanh), "affine", "tanh"),
        InvConv1x1(2, gen(1)),
        Coupling(half_mask(2, 1), MLP(1, [16], 1, nn.Tanh), "additive"),
        Coupling(alternating_mask(2), MLP(1, [16], 2, nn.Tanh), "affine", "sigmoid"),
        BatchNormFlow(2).eval(),
        Scaling(2),
    )
    flow = randomise(flow, 0.5).double()
    side, n = 20.0, 800
    axis = torch.linspace(-side, side, n, dtype=torch.float64)
    grid = torch.stack(torch.meshgrid(axis, axis, indexing="ij"), -1).reshape(-1, 2)
    with torch.no_grad():
        z, logdet = flow(grid)
        density = torch.exp(ImageFlow.log_prior(z) + logdet)
    cell = (axis[1] - axis[0]) ** 2
    mass = float(density.sum() * cell)
    assert abs(mass - 1.0) < 5e-3, mass
    # and the flow is far from the identity: the density is not the standard normal's
    standard = torch.exp(ImageFlow.log_prior(grid))
    assert float((density - standard).abs().sum() * cell) > 0.1


# --- actnorm's data-dependent initialisation ----------------------------------------------------


def test_actnorm_data_dependent_init_standardises_the_init_batch():
    layer = ActNorm(3)
    x = torch.randn(32, 3, 5, 5, generator=gen()) * torch.tensor([0.5, 2.0, 7.0]).view(1, 3, 1, 1)
    x = x + torch.tensor([1.0, -3.0, 10.0]).view(1, 3, 1, 1)
    y, _ = layer(x)
    assert torch.equal(y, x)  # identity until initialised
    with data_dependent_init(layer):
        y, logdet = layer(x)
    torch.testing.assert_close(y.mean((0, 2, 3)), torch.zeros(3), atol=1e-5, rtol=0)
    torch.testing.assert_close(y.std((0, 2, 3), correction=0), torch.ones(3), atol=1e-5, rtol=0)
    assert not layer.init_pending
    y2, _ = layer(x + 1.0)  # initialised once: later batches do not move it
    torch.testing.assert_close(y2, y + torch.exp(layer.log_scale).view(1, 3, 1, 1))


def test_scaling_data_dependent_init_standardises_each_entry_down_to_min_std():
    std = torch.tensor([0.5, 2.0, 7.0, 0.01])
    x = torch.randn(256, 4, generator=gen()) * std + torch.tensor([1.0, -3.0, 10.0, -2.9])
    layer = Scaling(4, shift=True, min_std=0.3)
    with data_dependent_init(layer):
        y, logdet = layer(x)
    torch.testing.assert_close(y.mean(0), torch.zeros(4), atol=1e-5, rtol=0)
    sample_std = x.std(0, correction=0)
    expected = sample_std / sample_std.clamp_min(0.3)
    torch.testing.assert_close(y.std(0, correction=0), expected, atol=1e-5, rtol=1e-5)
    assert expected[3] < 0.1  # the nearly constant entry is not blown up
    plain = Scaling(4)  # without shift: unit root mean square
    with data_dependent_init(plain):
        y, _ = plain(x)
    assert torch.all(y.pow(2).mean(0).sqrt() <= 1 + 1e-5)


def test_mixture_cdf_init_makes_a_quantisation_bins_uniform_logistic():
    # An always-background pixel: dequantised values uniform in the bottom bin, in logit
    # space (what an affine coupling cannot reshape). After the data-dependent init,
    # sigmoid(y) of fresh values is about uniform on (0, 1): y about standard logistic.
    low, high = math.log(0.05 / 0.95), math.log(0.0535 / 0.9465)
    batch = low + (high - low) * torch.rand(256, 1, generator=gen(), dtype=torch.float64)
    fresh = low + (high - low) * torch.rand(4096, 1, generator=gen(1), dtype=torch.float64)
    layer = MixtureLogisticCDF(1, components=8).double().requires_grad_(False)
    before = torch.sigmoid(layer(fresh)[0]).flatten().sort().values
    with data_dependent_init(layer):
        layer(batch)
    y, logdet = layer(fresh)
    after = torch.sigmoid(y).flatten().sort().values
    uniform = (torch.arange(4096, dtype=torch.float64) + 0.5) / 4096

    def ks(values):  # Kolmogorov-Smirnov distance to Uniform(0, 1)
        return float((values - uniform).abs().max())

    assert ks(before) > 0.4 and ks(after) < 0.12, (ks(before), ks(after))
    # the bin is 0.07 wide in logit units: stretching it to a unit logistic gains about
    # log(1 / 0.07) nats, which the log-determinant carries
    assert float(logdet.mean()) > 2.0
    # a value far outside the batch (a stroke where the batch had none) stays finite and
    # moderate, held by the broad component 0
    far, _ = layer(torch.tensor([[2.9]], dtype=torch.float64))
    assert math.isfinite(float(far)) and abs(float(far)) < 60.0


def test_mixture_cdf_inverse_is_exact_in_float32_far_into_the_tails():
    torch.manual_seed(0)
    layer = randomise(MixtureLogisticCDF((3,), components=5), 1.0)
    y = torch.tensor([[-30.0, 0.0, 25.0], [-3.0, 1e-3, 8.0]])
    torch.testing.assert_close(layer(layer.inverse(y))[0], y, atol=1e-4, rtol=1e-5)


def test_fresh_couplings_are_the_identity():
    torch.manual_seed(0)
    x = torch.rand(2, 1, 28, 28, generator=gen())
    y, _ = logit_transform(x)
    for model in (NICE(hidden=8, depth=1), RealNVP(hidden=4, blocks=1, batch_norm=False)):
        z, logdet = model.flow(y)
        torch.testing.assert_close(z.reshape(y.shape), y, atol=1e-6, rtol=0)
        assert torch.equal(logdet, torch.zeros(2))
    glow_net = Glow(levels=1, steps=1, hidden=4).flow.flows[3].net
    assert torch.equal(glow_net(torch.randn(1, 2, 14, 14)), torch.zeros(1, 4, 14, 14))


def test_glow_on_train_start_initialises_every_actnorm_from_the_data():
    torch.manual_seed(0)
    model = Glow(levels=2, steps=2, hidden=8, image_shape=(1, 8, 8))
    outputs = {}
    actnorms = [m for m in model.modules() if isinstance(m, ActNorm)]
    assert len(actnorms) == 4
    hooks = [
        m.register_forward_hook(lambda m, i, o, k=k: outputs.__setitem__(k, o[0]))
        for k, m in enumerate(actnorms)
    ]
    x = torch.rand(64, 1, 8, 8, generator=gen())
    model.on_train_start(x)
    for hook in hooks:
        hook.remove()
    for out in outputs.values():
        torch.testing.assert_close(
            out.mean((0, 2, 3)), torch.zeros(out.shape[1]), atol=1e-4, rtol=0
        )
        torch.testing.assert_close(
            out.std((0, 2, 3), correction=0), torch.ones(out.shape[1]), atol=1e-4, rtol=0
        )
    assert not any(m.init_pending for m in actnorms)


# --- full models ----------------------------------------------------------------------------------


def tiny_models() -> dict[str, ImageFlow]:
    torch.manual_seed(0)
    return {
        "nice": NICE(couplings=3, hidden=8, depth=2, image_shape=(1, 4, 4)),
        "realnvp": RealNVP(
            scales=2, couplings=2, hidden=4, blocks=1, batch_norm=False, image_shape=(1, 4, 4)
        ),
        "realnvp-elementwise": RealNVP(
            scales=2, couplings=1, hidden=4, elementwise=3, image_shape=(1, 4, 4)
        ).eval(),
        "realnvp-bn": RealNVP(
            scales=2, couplings=1, hidden=4, blocks=1, batch_norm=True, image_shape=(1, 4, 4)
        ).eval(),
        "glow": Glow(levels=2, steps=2, hidden=4, image_shape=(1, 4, 4)),
        "glow-additive": Glow(
            levels=1,
            steps=2,
            hidden=4,
            coupling="additive",
            learned_prior=False,
            image_shape=(2, 2, 2),
        ),
    }


TINY = list(tiny_models())


@pytest.fixture(scope="module")
def tiny():
    return {name: randomise(m, 0.2).double() for name, m in tiny_models().items()}


def pixels_like(model: ImageFlow, n: int = 2, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, *model.image_shape, generator=gen(seed), dtype=torch.float64)


@pytest.mark.parametrize("name", TINY)
def test_model_inverts_and_its_logdet_is_the_jacobians(tiny, name):
    model = tiny[name]
    x = pixels_like(model)
    z, logdet = model.encode(x)
    torch.testing.assert_close(model.decode(z), x, atol=1e-10, rtol=0)
    expected = jacobian_logdet(lambda v: model.encode(v)[0], x)
    torch.testing.assert_close(logdet, expected, atol=1e-8, rtol=1e-8)
    y, _ = logit_transform(x)
    check_flow(model.flow, y)


@pytest.mark.parametrize("name", TINY)
def test_nll_is_prior_flow_logdet_and_logit_jacobian_composed(tiny, name):
    model = tiny[name]
    x = pixels_like(model, 3, seed=1)
    y, logdet_logit = logit_transform(x, model.alpha)
    z, logdet_flow = model.flow(y)
    d = x[0].numel()
    expected = 0.5 * z.flatten(1).pow(2).sum(1) + 0.5 * d * math.log(2 * math.pi)
    expected = expected - logdet_flow - logdet_logit
    torch.testing.assert_close(model.nll(x), expected)
    loss, parts = model.loss(x)
    torch.testing.assert_close(loss, expected.mean())
    assert parts["nll"] == pytest.approx(float(expected.mean().detach()))


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_default_models_invert_on_digits_in_float32(spec):
    torch.manual_seed(0)
    model = randomise(spec.make(**spec.options), 0.01).eval()
    x = torch.rand(2, 1, 28, 28, generator=gen())
    model.on_train_start(x)
    with torch.no_grad():
        z, logdet = model.encode(x)
        assert torch.isfinite(logdet).all()
        torch.testing.assert_close(model.decode(z), x, atol=1e-5, rtol=0)


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_samples_have_the_shape_and_range_of_the_digits(spec):
    assert model_spec(spec.name) is spec and spec.view == "dequantised"
    torch.manual_seed(0)
    model = spec.make(**spec.options).eval()
    assert model.view == "dequantised" and model.nll_kind == "exact"
    samples = model.sample(3, 0.7, gen(1))
    assert samples.shape == (3, 1, 28, 28) and samples.dtype == torch.float32
    assert samples.min() >= 0 and samples.max() <= 1
    torch.testing.assert_close(model.sample(3, 0.7, gen(1)), samples)  # seeded


def test_samples_whose_inverse_overflows_are_drawn_again(tiny, monkeypatch):
    model = tiny["glow"]
    decode = model.decode

    def overflowing(z):  # rows with a large first latent overflow, as a flow's far tail can
        x = decode(z)
        return torch.where(z.flatten(1)[:, :1, None, None] > 0.5, float("nan"), x)

    monkeypatch.setattr(model, "decode", overflowing)
    samples = model.sample(64, 1.0, gen(3))
    assert samples.shape == (64, *model.image_shape) and torch.isfinite(samples).all()
    monkeypatch.setattr(model, "decode", lambda z: torch.full_like(decode(z), float("inf")))
    with pytest.raises(ValueError, match="64 of 64 samples still decode to non-finite"):
        model.sample(64, 1.0, gen(3))


def test_sampling_decodes_gaussian_latents_at_the_temperature(tiny):
    model = tiny["glow"]
    z = torch.randn((4, *model.latent_shape), generator=gen(2), dtype=torch.float64)
    expected = model.decode(0.5 * z).clamp(0, 1)
    torch.testing.assert_close(model.sample(4, 0.5, gen(2)), expected)
    assert model.sample(0).shape == (0, *model.image_shape)
    assert model.nll(pixels_like(model, 0)).shape == (0,)


@pytest.mark.parametrize("name", TINY)
def test_state_dict_round_trip_keeps_the_density(tiny, name):
    model = tiny[name]
    torch.manual_seed(123)  # another random 1x1 convolution start
    fresh = tiny_models()[name].double()
    fresh.load_state_dict(model.state_dict())
    x = pixels_like(model)
    torch.testing.assert_close(fresh.eval().nll(x), model.eval().nll(x))


# --- training -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def digits() -> torch.Tensor:
    """32 dequantised digits [32,1,28,28]: the shared MNIST if present, else random pixels."""
    if (MNIST_DIR / "mnist-9k-images-idx3-ubyte.gz").is_file():
        pixels = torch.from_numpy(load_mnist(MNIST_DIR).train_images[:32])
    else:
        pixels = torch.randint(0, 256, (32, 28, 28), generator=gen(), dtype=torch.uint8)
    return dequantise(pixels, gen(1)).unsqueeze(1)


TRAINABLE = {
    "nice": lambda: NICE(couplings=2, hidden=32, depth=1),
    "realnvp": lambda: RealNVP(scales=2, couplings=1, hidden=4, blocks=1),
    "glow": lambda: Glow(levels=2, steps=1, hidden=8),
}


@pytest.mark.parametrize("name", TRAINABLE)
def test_a_few_training_steps_lower_the_loss(digits, name):
    torch.manual_seed(0)
    model = TRAINABLE[name]()
    model.on_train_start(digits)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    with torch.no_grad():
        before = float(model.nll(digits).mean())
    for _ in range(8):
        loss, _ = model.loss(digits)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        after = float(model.nll(digits).mean())
    assert math.isfinite(after) and after < before - 10.0, (before, after)


def test_train_generative_runs_a_flow_and_scores_it_in_bits_per_dim():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (40, 28, 28), dtype=np.uint8)
    data = MNIST(images[:32], np.zeros(32, np.uint8), images[32:], np.zeros(8, np.uint8), "rand")
    config = GenerativeConfig(model="glow", steps=3, batch_size=16, log_every=1)
    options = {"levels": 2, "steps": 1, "hidden": 4}
    model = train_generative(data, config, progress=False, options=options)
    assert isinstance(model, Glow) and model.train_stats["steps"] == 3
    scores = evaluate_nll(model, data.test_images, batch_size=4)
    d = 784
    assert scores["bits_per_dim"] == pytest.approx(
        (scores["nats"] + d * math.log(256)) / (d * math.log(2))
    )
    assert 0 < scores["bits_per_dim"] < 12 and scores["nll_kind"] == "exact"


# --- refused arguments ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "make, name",
    [
        (lambda: NICE(couplings=0), "couplings"),
        (lambda: NICE(hidden=0), "hidden"),
        (lambda: NICE(depth=1.5), "depth"),
        (lambda: NICE(alpha=0.5), "alpha"),
        (lambda: NICE(image_shape=(28, 28)), "image_shape"),
        (lambda: NICE(shift=1), "shift"),
        (lambda: Scaling(4, min_std=0.0), "min_std"),
        (lambda: MixtureLogisticCDF(4, components=0), "components"),
        (lambda: MixtureLogisticCDF(4, min_scale=0.0), "min_scale"),
        (lambda: RealNVP(elementwise=-1), "elementwise"),
        (lambda: RealNVP(scales=4), "scales"),
        (lambda: RealNVP(scales=0), "scales"),
        (lambda: RealNVP(blocks=-1), "blocks"),
        (lambda: RealNVP(batch_norm="yes"), "batch_norm"),
        (lambda: RealNVP(hidden=0), "hidden"),
        (lambda: Glow(levels=3), "levels"),
        (lambda: Glow(steps=0), "steps"),
        (lambda: Glow(coupling="spline"), "coupling"),
        (lambda: Glow(learned_prior=1), "learned_prior"),
        (lambda: Glow(alpha=0.0), "alpha"),
        (lambda: Coupling(half_mask(4), nn.Identity(), transform="mixed"), "transform"),
        (lambda: Coupling(half_mask(4), nn.Identity(), scale="softplus"), "scale"),
        (lambda: Coupling(torch.ones(4, dtype=torch.bool), nn.Identity()), "mask"),
        (lambda: ActNorm(0), "channels"),
        (lambda: InvConv1x1(0), "channels"),
        (lambda: Split(1, nn.Identity()), "channels"),
        (lambda: BatchNormFlow(2, momentum=0.0), "momentum"),
    ],
)
def test_bad_constructor_arguments_are_refused_by_name(make, name):
    with pytest.raises(ValueError, match=name):
        make()


def test_bad_inputs_are_refused(tiny):
    model = tiny["glow"]
    with pytest.raises(ValueError, match="x must have shape"):
        model.nll(torch.rand(2, 1, 5, 4, dtype=torch.float64))
    with pytest.raises(ValueError, match="temperature"):
        model.sample(2, 0.0)
    with pytest.raises(ValueError, match="unconditional"):
        model.sample(2, labels=torch.zeros(2))
    with pytest.raises(ValueError, match="Squeeze"):
        Squeeze()(torch.zeros(1, 1, 3, 4))
    with pytest.raises(ValueError, match="ActNorm"):
        ActNorm(3)(torch.zeros(1, 2, 4, 4))
    with pytest.raises(ValueError, match="Coupling"):
        Coupling(checkerboard_mask(1, 4, 4), nn.Identity())(torch.zeros(1, 1, 4, 5))

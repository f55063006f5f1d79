"""Latent-variable models (mp3d.generative.latent, .vqvae): the VAE's closed-form KL,
reparameterised draws, importance-sampled NLL below the negative ELBO, beta only in the
training loss; the VQ-VAE's nearest-entry quantisation, straight-through gradients, EMA
codebook, autoregressive prior and its upper bound on -log p(x); for all: training lowers
the loss, samples in {0,1}, refused arguments."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from mp3d.data.mnist import MNIST, evaluation_view, load_mnist
from mp3d.generative import GenerativeConfig, model_spec, train_generative
from mp3d.generative.base import bernoulli_log_prob
from mp3d.generative.latent import SPECS, VAE, gaussian_kl
from mp3d.generative.vqvae import VQVAE, CodePrior, VectorQuantizer

MNIST_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "mnist"

TINY = {
    "vae": {"latent_dim": 4, "hidden": (32,)},
    "beta-vae": {"latent_dim": 4, "hidden": (32,)},
    "vqvae": {
        "codebook_size": 8,
        "code_dim": 4,
        "width": 4,
        "res_blocks": 0,
        "prior_channels": 8,
        "prior_layers": 2,
    },
}


pytestmark = pytest.mark.usefixtures("one_thread")


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.fixture(scope="module")
def digits() -> torch.Tensor:
    """256 binarised images [256,1,28,28]: real digits when the shared MNIST is here, else
    random binary images."""
    if (MNIST_DIR / "mnist-9k-images-idx3-ubyte.gz").is_file():
        return evaluation_view(load_mnist(MNIST_DIR).train_images[:256], "binarised")
    return (torch.rand(256, 1, 28, 28, generator=gen(1)) < 0.15).float()


def tiny(name: str, **overrides):
    spec = model_spec(name)
    torch.manual_seed(0)
    return spec.make(**{**spec.options, **TINY[name], **overrides})


# --- VAE ---------------------------------------------------------------------------------------


def test_kl_is_the_closed_form_of_diagonal_gaussians(digits):
    mean, log_std = torch.randn(5, 3, generator=gen()), 0.5 * torch.randn(5, 3, generator=gen(1))
    q = torch.distributions.Normal(mean, log_std.exp())
    p = torch.distributions.Normal(torch.zeros(3), torch.ones(3))
    expected = torch.distributions.kl_divergence(q, p).sum(-1)
    torch.testing.assert_close(gaussian_kl(mean, log_std), expected)
    # by Monte Carlo: E_q[log q(z) - log p(z)]
    z = q.sample((50_000,))
    mc = (q.log_prob(z) - p.log_prob(z)).sum(-1).mean(0)
    torch.testing.assert_close(gaussian_kl(mean, log_std), mc, atol=0.05, rtol=0.02)
    # the model's KL is that of its encoder's output
    vae = tiny("vae")
    m, s = vae.encode(digits[:4])
    torch.testing.assert_close(vae.elbo_parts(digits[:4])["kl"], gaussian_kl(m, s))


def test_reparameterised_draws_have_the_encoders_mean_and_std(digits):
    vae = tiny("vae")
    with torch.no_grad():
        mean, log_std = vae.encode(digits[:3])
        log_std = log_std + torch.linspace(-1, 1, log_std.numel()).view_as(log_std)
    z = VAE.reparameterise(mean, log_std, 40_000, gen())  # [k, B, L]
    std = log_std.exp()
    torch.testing.assert_close(z.mean(0), mean, atol=float(4 * std.max() / 200), rtol=0)
    torch.testing.assert_close(z.std(0), std, atol=0, rtol=0.03)
    # differentiable: dz/dmean = 1, dz/dlog_std = sigma eps = z - mean
    m, s = mean.clone().requires_grad_(), log_std.clone().requires_grad_()
    z = VAE.reparameterise(m, s, None, gen(2))
    z.sum().backward()
    torch.testing.assert_close(m.grad, torch.ones_like(m))
    torch.testing.assert_close(s.grad, (z - m).detach())


def test_importance_sampled_nll_is_at_most_the_negative_elbo(digits):
    vae = tiny("vae")
    train(vae, digits, 30)
    x = digits[:6]
    neg_elbo = -vae.elbo(x, k=2000, generator=gen(0))
    nll = vae.nll(x, k=500, generator=gen(1))
    assert nll.shape == (6,) and torch.isfinite(nll).all()
    assert float(nll.mean()) < float(neg_elbo.detach().mean()) - 0.1
    # k = 1 is an unbiased estimate of -ELBO (the KL by Monte Carlo instead of closed form)
    with torch.no_grad():
        log_w = vae.log_weights(x, 4000, gen(2))  # [k, B]
    torch.testing.assert_close(-log_w.mean(0), neg_elbo, atol=0.0, rtol=0.01)
    # chunks of 7 draws (6 images, nll_chunk 42) combine to the log-sum-exp of all 30
    assert vae.nll_samples == 1000
    vae.nll_chunk = 42
    chunked = vae.nll(x, k=30, generator=gen(3))
    g = gen(3)
    with torch.no_grad():
        log_w = torch.cat([vae.log_weights(x, m, g) for m in (7, 7, 7, 7, 2)])
    torch.testing.assert_close(chunked, math.log(30) - torch.logsumexp(log_w, 0))


def test_beta_weights_only_the_kl_of_the_training_loss(digits):
    plain, heavy = tiny("vae"), tiny("beta-vae")
    assert (plain.beta, heavy.beta) == (1.0, 4.0)
    heavy.load_state_dict(plain.state_dict())
    x = digits[:8]
    for method in ("elbo", "nll"):
        a = getattr(plain, method)(x, k=7, generator=gen())
        b = getattr(heavy, method)(x, k=7, generator=gen())
        torch.testing.assert_close(a, b)
    torch.manual_seed(3)
    loss_plain, parts_plain = plain.loss(x)
    torch.manual_seed(3)
    loss_heavy, parts_heavy = heavy.loss(x)
    assert parts_plain == parts_heavy
    kl = parts_plain["kl"]
    torch.testing.assert_close(
        float(loss_heavy.detach() - loss_plain.detach()), 3.0 * kl, rtol=1e-5, atol=1e-4
    )
    assert parts_plain["neg_elbo"] == pytest.approx(parts_plain["reconstruction"] + kl)


def test_bernoulli_log_prob_sums_pixels():
    logits, x = torch.randn(2, 1, 3, 3), (torch.rand(2, 1, 3, 3) < 0.5).float()
    expected = torch.distributions.Bernoulli(logits=logits).log_prob(x).sum((1, 2, 3))
    torch.testing.assert_close(bernoulli_log_prob(logits, x), expected)


def test_the_conv_vae_runs_and_bounds():
    vae = VAE(latent_dim=3, arch="conv", width=4, image_shape=(1, 8, 8))
    x = (torch.rand(4, 1, 8, 8, generator=gen()) < 0.3).float()
    loss, parts = vae.loss(x)
    loss.backward()
    assert set(parts) == {"reconstruction", "kl", "neg_elbo"}
    assert float(vae.nll(x, k=64).mean()) <= float(-vae.elbo(x, k=64).detach().mean()) + 0.5


# --- VQ-VAE ------------------------------------------------------------------------------------


def test_quantisation_picks_the_nearest_entry():
    quantizer = VectorQuantizer(16, 3)
    z_e = torch.randn(4, 3, 5, 6, generator=gen())
    z_q, codes = quantizer(z_e)
    flat = z_e.permute(0, 2, 3, 1).reshape(-1, 3)
    expected = torch.cdist(flat, quantizer.codebook).argmin(1)
    assert codes.shape == (4, 5, 6) and torch.equal(codes.flatten(), expected)
    torch.testing.assert_close(z_q.permute(0, 2, 3, 1).reshape(-1, 3), quantizer.codebook[expected])
    assert not z_q.requires_grad


def test_straight_through_gradient_reaches_the_encoder_and_not_the_codebook(digits):
    model = tiny("vqvae", commitment=0.0)
    model.on_train_start(digits[:32])
    seen = {}

    def keep_output(module, inputs, output):
        output.retain_grad()
        seen["z_e"] = output

    def keep_input(module, inputs):
        inputs[0].retain_grad()
        seen["z_in"] = inputs[0]

    model.encoder.register_forward_hook(keep_output)
    model.decoder.register_forward_pre_hook(keep_input)
    model.eval()  # no EMA step here
    t = model.terms(digits[:8])
    t["reconstruction"].sum().backward()
    # the decoder's gradient with respect to its input is passed to z_e unchanged
    torch.testing.assert_close(seen["z_e"].grad, seen["z_in"].grad)
    assert float(seen["z_e"].grad.abs().sum()) > 0
    assert all(float(p.grad.abs().sum()) > 0 for p in model.encoder.parameters())
    # the codebook is no parameter: no gradient, untouched by the optimiser
    assert not model.quantizer.codebook.requires_grad and model.quantizer.codebook.grad is None
    names = {name for name, _ in model.named_parameters()}
    assert not any(name.startswith("quantizer.") for name in names)


def test_the_codebook_moves_only_by_its_ema_step(digits):
    model = tiny("vqvae")
    model.on_train_start(digits[:32])
    x = digits[32:64]
    model.train()
    with torch.no_grad():
        z_e = model.encode(x)
    expected = VectorQuantizer(8, 4, model.quantizer.decay, dead_threshold=0.0)
    expected.load_state_dict(model.quantizer.state_dict())
    _, codes = expected(z_e, update=True)
    model.quantizer.dead_threshold = 0.0
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    loss, _ = model.loss(x)  # the EMA step of this batch, from the same encoder outputs
    torch.testing.assert_close(model.quantizer.codebook, expected.codebook)
    before = model.quantizer.codebook.clone()
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()  # encoder, decoder and prior move; the codebook does not
    assert torch.equal(model.quantizer.codebook, before)
    model.eval()
    model.loss(x)  # no EMA step in eval mode
    assert torch.equal(model.quantizer.codebook, before)


def test_ema_moves_codes_to_the_mean_of_their_assigned_outputs():
    quantizer = VectorQuantizer(3, 2, decay=0.8, dead_threshold=0.0)
    quantizer.set_codes(torch.tensor([[0.0, 0.0], [5.0, 5.0], [-9.0, 9.0]]))
    cluster = torch.tensor([1.0, -1.0]) + 0.2 * torch.randn(50, 2, generator=gen())
    target = cluster.mean(0)
    z_e = cluster.T.reshape(1, 2, 5, 10)
    distances = []
    for _ in range(30):
        _, codes = quantizer(z_e, update=True)
        assert (codes == 0).all()  # all assigned to the code at the origin
        distances.append(float((quantizer.codebook[0] - target).norm()))
    assert all(b < a for a, b in zip(distances, distances[1:]))
    assert distances[-1] < 0.01
    # codes assigned nothing keep their place (EMA sums and counts decay together)
    torch.testing.assert_close(quantizer.codebook[1], torch.tensor([5.0, 5.0]), rtol=0.02, atol=0)
    # one EMA step by hand: N = g N + (1-g) n, m = g m + (1-g) sum z, e = m / smoothed N
    n, m = quantizer.cluster_size.clone(), quantizer.embed_sum.clone()
    quantizer(z_e, update=True)
    n = 0.8 * n + 0.2 * torch.tensor([50.0, 0, 0])
    m = 0.8 * m + 0.2 * torch.stack([cluster.sum(0), torch.zeros(2), torch.zeros(2)])
    smoothed = (n + 1e-5) / (n.sum() + 3e-5) * n.sum()
    torch.testing.assert_close(quantizer.codebook, m / smoothed[:, None])


def test_dead_codes_restart_at_encoder_outputs():
    quantizer = VectorQuantizer(4, 2, decay=0.5, dead_threshold=0.1)
    quantizer.set_codes(torch.tensor([[0.0, 0], [50, 50], [60, 60], [70, 70]]))
    z_e = 0.1 * torch.randn(1, 2, 4, 4, generator=gen())
    for _ in range(5):  # codes 1..3 unused: counts 1 -> 0.03 < 0.1 after 5 steps
        quantizer(z_e, update=True)
    assert float(quantizer.codebook[1:].abs().max()) < 1.0  # moved onto the data


def test_the_prior_is_autoregressive_over_the_code_grid():
    k, h, w = 5, 4, 5
    torch.manual_seed(0)
    prior = CodePrior(k, (h, w), channels=8, n_layers=4, first_kernel_size=5)
    x = torch.randn(2, k, h, w, requires_grad=True)  # any real input in place of one-hots
    logits = prior(x)
    deps = torch.zeros(h, w, h, w, dtype=torch.bool)
    for r, c in itertools.product(range(h), range(w)):
        cotangent = torch.zeros_like(logits)
        cotangent[:, :, r, c] = torch.randn(2, k, generator=gen(r * w + c))
        (grad,) = torch.autograd.grad(logits, x, cotangent, retain_graph=True)
        deps[r, c] = (grad != 0).any(0).any(0)
    order = torch.arange(h * w).view(h, w)
    before = order[None, None] < order[:, :, None, None]  # [r,c,r',c']: (r',c') before (r,c)
    assert torch.equal(deps, before)  # exactly the earlier codes: none later, no blind spot


def test_the_prior_is_a_normalised_distribution():
    k, h, w = 3, 2, 2
    torch.manual_seed(0)
    prior = CodePrior(k, (h, w), channels=8, n_layers=2, first_kernel_size=3)
    grids = torch.tensor(list(itertools.product(range(k), repeat=h * w))).view(-1, h, w)
    with torch.no_grad():
        total = torch.logsumexp(prior.log_prob(grids), 0)
    assert abs(float(total)) < 1e-5
    codes = prior.sample(20_000, 1.0, gen())
    assert codes.shape == (20_000, h, w) and codes.min() >= 0 and codes.max() < k
    # ancestral samples follow log_prob: frequency of each grid vs its probability
    index = (codes.flatten(1) * k ** torch.arange(h * w - 1, -1, -1)).sum(1)
    freq = torch.bincount(index, minlength=k ** (h * w)).float() / 20_000
    probs = prior.log_prob(grids).exp().detach()
    assert float((freq - probs).abs().sum()) < 0.08  # sampling noise alone: about 0.05


def test_vqvae_nll_is_reconstruction_plus_prior_and_bounds_the_exact_nll():
    # a 1x1 code grid (4x4 images) of 4 codes: p(x) = sum_k p(x|e_k) p(k) exactly
    torch.manual_seed(0)
    model = VQVAE(
        4, 2, width=4, res_blocks=0, prior_channels=4, prior_layers=1, image_shape=(1, 4, 4)
    )
    model.eval()
    x = (torch.rand(16, 1, 4, 4, generator=gen()) < 0.5).float()
    t = model.terms(x)
    nll = model.nll(x)
    torch.testing.assert_close(nll, (t["reconstruction"] + t["prior"]).detach())
    with torch.no_grad():
        codes = torch.arange(4).view(4, 1, 1)
        log_prior = model.prior.log_prob(codes)  # [4]
        logits = model.decoder(model.quantizer.lookup(codes))  # [4,1,4,4]
        log_px = torch.logsumexp(
            bernoulli_log_prob(logits[:, None], x[None]) + log_prior[:, None], 0
        )
    assert (nll >= -log_px - 1e-5).all()


# --- all three ---------------------------------------------------------------------------------


def train(model, digits, steps: int, batch: int = 32, lr: float = 3e-3, start: bool = True):
    if start:
        model.on_train_start(digits[:batch])
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    for step in range(steps):
        x = digits[(step * batch) % len(digits) :][:batch]
        loss, _ = model.loss(x)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()


def held_loss(model, digits) -> float:
    torch.manual_seed(5)
    model.eval()
    with torch.no_grad():
        return float(model.loss(digits[-64:])[0])


@pytest.mark.parametrize("name", ["vae", "beta-vae", "vqvae"])
def test_a_few_steps_lower_the_loss(name, digits):
    model = tiny(name)
    model.on_train_start(digits[:32])
    before = held_loss(model, digits)
    train(model, digits[:-64], 25, start=False)
    after = held_loss(model, digits)
    assert after < before - 1.0, (before, after)


@pytest.mark.parametrize("name", ["vae", "beta-vae", "vqvae"])
def test_samples_are_binary_images(name):
    model = tiny(name).eval()
    for temperature in (1.0, 0.5):
        x = model.sample(5, temperature, gen())
        assert x.shape == (5, 1, 28, 28) and x.dtype == torch.float32
        assert set(x.unique().tolist()) <= {0.0, 1.0}
    torch.testing.assert_close(model.sample(3, 1.0, gen(7)), model.sample(3, 1.0, gen(7)))
    assert model.nll_kind == "bound" and model.view == "binarised"


def test_specs_are_registered_and_train_through_the_shared_trainer():
    assert [spec.name for spec in SPECS] == ["vae", "beta-vae", "vqvae"]
    rng = np.random.default_rng(0)
    images = (rng.random((40, 28, 28)) < 0.2).astype(np.uint8) * 255
    data = MNIST(images[:32], np.zeros(32, np.uint8), images[32:], np.zeros(8, np.uint8), "noise")
    for name in ("vae", "vqvae"):
        config = GenerativeConfig(model=name, steps=2, batch_size=16, log_every=1)
        model = train_generative(data, config, progress=False, options=TINY[name])
        assert model.train_stats["steps"] == 2 and math.isfinite(model.train_stats["last_loss"])


@pytest.mark.parametrize(
    ("make", "kwargs", "name"),
    [
        (VAE, {"latent_dim": 0}, "latent_dim"),
        (VAE, {"arch": "resnet"}, "arch"),
        (VAE, {"hidden": (32, 0)}, "hidden"),
        (VAE, {"beta": -1.0}, "beta"),
        (VAE, {"nll_samples": 0}, "nll_samples"),
        (VAE, {"nll_chunk": 0}, "nll_chunk"),
        (VAE, {"arch": "conv", "image_shape": (1, 30, 30)}, "image_shape"),
        (VQVAE, {"codebook_size": 1}, "codebook_size"),
        (VQVAE, {"code_dim": 0}, "code_dim"),
        (VQVAE, {"commitment": -0.1}, "commitment"),
        (VQVAE, {"decay": 1.0}, "decay"),
        (VQVAE, {"width": 0}, "width"),
        (VQVAE, {"prior_layers": 0}, "prior_layers"),
        (VQVAE, {"prior_channels": 0}, "prior_channels"),
        (VQVAE, {"image_shape": (1, 28, 27)}, "image_shape"),
    ],
)
def test_bad_arguments_are_refused_by_name(make, kwargs, name):
    with pytest.raises(ValueError, match=name):
        make(**kwargs)


def test_bad_calls_are_refused_by_name(digits):
    vae, vq = tiny("vae"), tiny("vqvae")
    for model in (vae, vq):
        with pytest.raises(ValueError, match="x must have shape"):
            model.nll(digits[:2, :, :14])
        with pytest.raises(ValueError, match="temperature"):
            model.sample(2, 0.0)
        with pytest.raises(ValueError, match="n must be"):
            model.sample(-1)
    with pytest.raises(ValueError, match="k must be"):
        vae.nll(digits[:2], k=0)

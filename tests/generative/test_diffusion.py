"""mp3d.generative.diffusion: the forward process against its iterated steps (in closed form
and by Monte Carlo), the posterior against Bayes' rule for Gaussians, the schedules'
alpha_bar, training that lowers the loss, DDPM and DDIM on a 1D mixture with its exact
noise predictor (both reproduce the data; DDIM with every step and eta = 1 is DDPM),
DDIM's determinism, classifier-free guidance and its null label, samples, resume, and
refused options."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image

from mp3d.data.mnist import MNIST
from mp3d.generative import (
    GenerativeConfig,
    evaluate_model,
    load_generative,
    model_spec,
    models,
    sample_grid,
    train_generative,
)
from mp3d.generative.diffusion import (
    DDPM,
    SPECS,
    LatentDiffusion,
    NoiseSchedule,
    cosine_betas,
    ddim_sample,
    ddim_timesteps,
    ddpm_sample,
    linear_betas,
)

TINY = {
    "timesteps": 20,
    "base_channels": 8,
    "channel_mults": [1, 2],
    "emb_dim": 16,
    "patch": 2,
    "ema_decay": 0.0,
}
TINY_LATENT = {
    "latent_channels": 2,
    "ae_width": 8,
    "ae_steps": 5,
    "timesteps": 20,
    "base_channels": 8,
    "channel_mults": [1, 2],
    "emb_dim": 16,
    "ema_decay": 0.0,
}


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def digits() -> MNIST:
    """Synthetic 'digits': a bright bar in one of two places (the label), 28x28 uint8."""
    rng = np.random.default_rng(0)
    images = np.zeros((120, 28, 28), dtype=np.uint8)
    for i, image in enumerate(images):
        column = 6 if i % 2 else 18
        image[4:24, column : column + 4] = 255
        image[rng.random((28, 28)) < 0.02] = 128
    labels = (np.arange(120) % 2).astype(np.uint8)
    return MNIST(images[:100], labels[:100], images[100:], labels[100:], "synthetic bars")


def bars(n: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    labels = torch.arange(n) % 2
    x = torch.zeros(n, 1, 28, 28)
    for i, label in enumerate(labels):
        column = 6 if label else 18
        x[i, 0, 4:24, column : column + 4] = 1.0
    return x, labels


# ----------------------------------------------------------------------------- the process


@pytest.mark.parametrize("kind", ["linear", "cosine"])
def test_q_of_xt_given_x0_is_the_iterated_one_step_kernel(kind):
    schedule = NoiseSchedule.make(kind, 1000)
    x0 = torch.tensor([[-1.0], [0.3], [1.0]], dtype=torch.float64)
    mean, var = x0.clone(), torch.zeros_like(x0)
    for step in range(schedule.timesteps):
        t = torch.full((3,), step)
        # x_t = sqrt(alpha_t) x_{t-1} + sqrt(beta_t) e: its mean and variance, propagated
        mean, beta = schedule.q_step_mean_variance(mean, t)
        var = schedule.at(schedule.alphas, t, var) * var + beta
        if step in (0, 1, 10, 250, 999):
            closed_mean, closed_var = schedule.q_mean_variance(x0, t)
            assert torch.allclose(mean, closed_mean, rtol=1e-9, atol=1e-12)
            assert torch.allclose(var.expand_as(closed_var), closed_var, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("kind", ["linear", "cosine"])
def test_q_of_xt_given_x0_by_monte_carlo(kind):
    schedule = NoiseSchedule.make(kind, 100)
    generator = torch.Generator().manual_seed(0)
    n = 20_000
    x0 = torch.full((n, 1), 0.7, dtype=torch.float64)
    x = x0.clone()
    for step in range(schedule.timesteps):
        t = torch.full((n,), step)
        mean, var = schedule.q_step_mean_variance(x, t)
        x = mean + var.sqrt() * torch.randn(x.shape, generator=generator, dtype=x.dtype)
        if step in (3, 30, 99):
            closed_mean, closed_var = schedule.q_mean_variance(x0[:1], t[:1])
            m, v = float(closed_mean), float(closed_var)
            assert abs(float(x.mean()) - m) < 5 * math.sqrt(v / n)
            assert abs(float(x.var()) - v) < 5 * v * math.sqrt(2 / n)
    # one jump of q_sample lands on the same distribution
    t = torch.full((n,), 30)
    jump = schedule.q_sample(x0, t, torch.randn(x0.shape, generator=generator, dtype=x0.dtype))
    closed_mean, closed_var = schedule.q_mean_variance(x0[:1], t[:1])
    assert abs(float(jump.mean()) - float(closed_mean)) < 5 * math.sqrt(float(closed_var) / n)


@pytest.mark.parametrize("kind", ["linear", "cosine"])
def test_the_posterior_is_bayes_rule_for_the_two_gaussians(kind):
    schedule = NoiseSchedule.make(kind, 1000)
    generator = torch.Generator().manual_seed(1)
    t = torch.tensor([0, 1, 5, 200, 500, 999])
    x0 = torch.randn(6, 1, generator=generator, dtype=torch.float64)
    xt = torch.randn(6, 1, generator=generator, dtype=torch.float64)
    mean, var = schedule.posterior_mean_variance(x0, xt, t)
    # prior q(x_{t-1} | x_0) = N(sqrt(abar_{t-1}) x0, 1 - abar_{t-1}),
    # likelihood q(x_t | x_{t-1}) = N(sqrt(alpha_t) x_{t-1}, beta_t)
    abar_prev = schedule.alpha_bar_prev[t][:, None]
    alpha, beta = schedule.alphas[t][:, None], schedule.betas[t][:, None]
    prior_mean, prior_var = abar_prev.sqrt() * x0, 1 - abar_prev
    precision = alpha / beta + torch.where(prior_var > 0, 1 / prior_var, torch.inf)
    bayes_var = 1 / precision
    bayes_mean = torch.where(
        prior_var > 0,
        bayes_var * (prior_mean / prior_var + alpha.sqrt() * xt / beta),
        x0,  # t = 0: x_{t-1} is x_0 itself
    )
    assert torch.allclose(var, bayes_var, rtol=1e-9, atol=1e-15)
    assert torch.allclose(mean, bayes_mean, rtol=1e-9, atol=1e-12)
    # and by numerical integration of prior x likelihood on a grid, at t = 200
    i = 3
    grid = torch.linspace(-8, 8, 400_001, dtype=torch.float64)
    log_density = -((grid - prior_mean[i]) ** 2) / (2 * prior_var[i]) - (
        xt[i] - alpha[i].sqrt() * grid
    ) ** 2 / (2 * beta[i])
    weights = torch.softmax(log_density, 0)
    grid_mean = (weights * grid).sum()
    grid_var = (weights * (grid - grid_mean) ** 2).sum()
    assert abs(float(grid_mean - mean[i])) < 1e-6
    assert abs(float(grid_var / var[i]) - 1) < 1e-4


def test_the_posterior_mean_at_the_predicted_x0_is_ddpms_eps_form():
    schedule = NoiseSchedule.make("linear", 1000)
    generator = torch.Generator().manual_seed(2)
    t = torch.tensor([0, 10, 500, 999])
    xt = torch.randn(4, 3, generator=generator, dtype=torch.float64)
    eps = torch.randn(4, 3, generator=generator, dtype=torch.float64)
    mean, _ = schedule.posterior_mean_variance(schedule.predict_x0(xt, t, eps), xt, t)
    alpha, beta = schedule.alphas[t][:, None], schedule.betas[t][:, None]
    abar = schedule.alpha_bar[t][:, None]
    eps_form = (xt - beta / (1 - abar).sqrt() * eps) / alpha.sqrt()
    assert torch.allclose(mean, eps_form, rtol=1e-9, atol=1e-10)
    assert torch.allclose(schedule.eps_from_x0(xt, t, schedule.predict_x0(xt, t, eps)), eps)


def test_schedules_alpha_bar_is_monotone_with_the_published_endpoints():
    linear = NoiseSchedule(linear_betas(1000))
    assert float(linear.betas[0]) == pytest.approx(1e-4)
    assert float(linear.betas[-1]) == pytest.approx(0.02)
    cosine = NoiseSchedule(cosine_betas(1000))
    for schedule in (linear, cosine, NoiseSchedule.make("linear", 100)):
        abar = schedule.alpha_bar
        assert (abar[1:] < abar[:-1]).all() and (abar > 0).all()
        assert float(abar[0]) == pytest.approx(1 - float(schedule.betas[0]))
        assert float(abar[0]) > 0.998 and float(abar[-1]) < 1e-4
    assert float(linear.alpha_bar[-1]) == pytest.approx(4.04e-5, rel=0.01)
    # cosine: alpha_bar(t) = f(t+1) / f(0) wherever the 0.999 cap did not bite (all but the last)
    u = (torch.arange(1, 1001, dtype=torch.float64) / 1000 + 0.008) / 1.008
    f0 = math.cos(0.008 / 1.008 * math.pi / 2) ** 2
    assert (cosine.betas[:-1] < 0.999).all() and float(cosine.betas[-1]) == 0.999
    assert torch.allclose(cosine.alpha_bar[:-1], (torch.cos(u * math.pi / 2) ** 2 / f0)[:-1])
    # cosine keeps more signal halfway than linear does (its point)
    assert float(cosine.alpha_bar[500]) > 4 * float(linear.alpha_bar[500])


def test_ddim_timesteps_are_a_subsequence_ending_at_T_minus_1():
    assert ddim_timesteps(1000, 1000) == list(range(-1, 1000))
    times = ddim_timesteps(1000, 50)
    assert len(times) == 51 and times[0] == -1 and times[-1] == 999
    assert all(b > a for a, b in zip(times, times[1:]))
    assert ddim_timesteps(10, 3) == [-1, 2, 5, 9]


# ----------------------------------------------------------------------------- samplers


MIX_W = torch.tensor([0.3, 0.7], dtype=torch.float64)
MIX_MU = torch.tensor([-1.0, 0.8], dtype=torch.float64)
MIX_SD = torch.tensor([0.2, 0.3], dtype=torch.float64)


def exact_eps(schedule: NoiseSchedule):
    """The optimal noise predictor of the 1D mixture: -sqrt(1 - abar) d/dx log p_t(x), with
    p_t = sum_k w_k N(sqrt(abar) mu_k, abar sd_k^2 + 1 - abar)."""

    def eps_fn(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        abar = schedule.at(schedule.alpha_bar, t, x)  # [B,1]
        mean, var = abar.sqrt() * MIX_MU, abar * MIX_SD**2 + 1 - abar  # [B,2]
        log_r = MIX_W.log() - 0.5 * var.log() - (x - mean) ** 2 / (2 * var)
        r = torch.softmax(log_r, dim=1)
        score = (r * (mean - x) / var).sum(1, keepdim=True)
        return -(1 - abar).sqrt() * score

    return eps_fn


def mixture_quantiles(q: torch.Tensor) -> torch.Tensor:
    grid = torch.linspace(-3, 3, 60_001, dtype=torch.float64)
    cdf = (MIX_W * 0.5 * (1 + torch.erf((grid[:, None] - MIX_MU) / (MIX_SD * math.sqrt(2))))).sum(1)
    return grid[torch.searchsorted(cdf, q)]


def test_ddpm_and_ddim_with_every_step_and_eta_1_reproduce_the_1d_mixture():
    # T = 200 keeps the samplers' discretisation bias (variance ~3% low for DDPM's posterior
    # variance at T = 200, 6% at T = 100) inside the tolerances; n = 4000 draws.
    schedule = NoiseSchedule.make("linear", 200)
    eps_fn = exact_eps(schedule)
    n = 4_000
    noise = torch.randn(n, 1, generator=torch.Generator().manual_seed(3), dtype=torch.float64)

    def draws(seed: int) -> torch.Generator:
        return torch.Generator().manual_seed(seed)

    runs = {
        "ddpm": ddpm_sample(schedule, eps_fn, (n, 1), noise=noise, generator=draws(4)),
        "ddpm_beta": ddpm_sample(
            schedule, eps_fn, (n, 1), variance="beta", noise=noise, generator=draws(5)
        ),
        "ddim_eta1": ddim_sample(
            schedule, eps_fn, (n, 1), 200, eta=1.0, noise=noise, generator=draws(6)
        ),
        "ddim_eta0_50_steps": ddim_sample(schedule, eps_fn, (n, 1), 50, eta=0.0, noise=noise),
    }
    true_mean = float((MIX_W * MIX_MU).sum())
    true_var = float((MIX_W * (MIX_SD**2 + MIX_MU**2)).sum()) - true_mean**2
    q = torch.tensor([0.05, 0.15, 0.25, 0.4, 0.6, 0.8, 0.95], dtype=torch.float64)  # 0.3: a gap
    true_q = mixture_quantiles(q)
    for name, x in runs.items():
        x = x[:, 0]
        assert abs(float(x.mean()) - true_mean) < 0.04, name
        assert abs(float(x.var()) / true_var - 1) < 0.08, name
        assert torch.allclose(torch.quantile(x, q), true_q, atol=0.07), name
        assert abs(float((x < 0).double().mean()) - 0.3) < 0.025, name  # the left mode's weight
    ddpm, ddim = runs["ddpm"][:, 0], runs["ddim_eta1"][:, 0]
    assert torch.allclose(torch.quantile(ddpm, q), torch.quantile(ddim, q), atol=0.06)
    assert abs(float(ddpm.var()) / float(ddim.var()) - 1) < 0.08
    # with the same draws, DDIM (eta = 1, every step) is DDPM's update exactly
    same = ddim_sample(schedule, eps_fn, (n, 1), 200, eta=1.0, noise=noise, generator=draws(4))
    assert torch.allclose(same, runs["ddpm"], atol=1e-9)


def test_ddim_with_eta_0_is_deterministic_given_the_initial_noise():
    torch.manual_seed(0)
    model = DDPM(**TINY).eval()
    noise = torch.randn(3, 1, 28, 28)
    a = model.sample(3, generator=torch.Generator().manual_seed(1), steps=5, noise=noise)
    b = model.sample(3, generator=torch.Generator().manual_seed(2), steps=5, eta=0.0, noise=noise)
    assert torch.equal(a, b)
    c = model.sample(3, generator=torch.Generator().manual_seed(1), steps=5, eta=1.0, noise=noise)
    d = model.sample(3, generator=torch.Generator().manual_seed(2), steps=5, eta=1.0, noise=noise)
    assert not torch.equal(c, d)
    e = model.sample(3, generator=torch.Generator().manual_seed(1), steps=5, eta=1.0, noise=noise)
    assert torch.equal(c, e)


# ----------------------------------------------------------------------------- models


@pytest.mark.parametrize(("prediction", "min_snr"), [("eps", 0.0), ("eps", 5.0), ("v", 0.0)])
def test_a_few_training_steps_lower_the_loss(prediction, min_snr):
    torch.manual_seed(0)
    x, _ = bars(16)
    model = DDPM(**TINY, min_snr=min_snr, prediction=prediction)
    (optimizer,) = model.configure_optimizers(3e-3)

    def fixed_loss() -> float:
        with torch.no_grad():
            return float(model.loss(x, generator=torch.Generator().manual_seed(9))[0])

    before = fixed_loss()
    for _ in range(15):
        scalars = model.training_step(x, torch.zeros(16, dtype=torch.int64), [optimizer], 1.0)
    assert set(scalars) == {"loss", "mse"} and int(model.steps_done) == 15
    assert fixed_loss() < 0.8 * before


def test_min_snr_weights_each_timestep_by_min_snr_gamma_over_snr():
    model = DDPM(**{**TINY, "timesteps": 200}, min_snr=5.0)
    t = torch.arange(200)
    alpha_bar = model.schedule.alpha_bar
    snr = alpha_bar / (1 - alpha_bar)
    weights = model.loss_weights(t).double()
    torch.testing.assert_close(weights, torch.minimum(snr, torch.tensor(5.0)) / snr)
    assert weights[0] < 0.01 and weights[-1] == 1.0  # nearly clean t count least
    assert torch.all(weights[snr <= 5.0] == 1.0) and torch.all(weights[snr > 5.0] < 1.0)
    assert torch.equal(DDPM(**TINY).loss_weights(t), torch.ones(200))
    # the loss is the weighted mean of the per-image squared errors at the drawn t
    x, _ = bars(8)
    x0 = model.to_space(x)
    with torch.no_grad():
        loss = model.diffusion_loss(x0, generator=torch.Generator().manual_seed(3))
        g = torch.Generator().manual_seed(3)
        t = torch.randint(0, 200, (8,), generator=g)
        noise = torch.randn(x0.shape, generator=g)
        eps = model.net(model.schedule.q_sample(x0, t, noise), t, None)
        per_image = (eps - noise).pow(2).flatten(1).mean(1)
    torch.testing.assert_close(loss, (model.loss_weights(t) * per_image).mean())


@pytest.mark.parametrize("kind", ["linear", "cosine"])
def test_the_velocity_gives_back_the_noise_and_a_bounded_x0(kind):
    schedule = NoiseSchedule.make(kind, 100)
    g = torch.Generator().manual_seed(0)
    x0 = torch.rand(6, 1, 4, 4, generator=g, dtype=torch.float64) * 2 - 1
    eps = torch.randn(6, 1, 4, 4, generator=g, dtype=torch.float64)
    t = torch.tensor([0, 1, 30, 60, 98, 99])
    xt = schedule.q_sample(x0, t, eps)
    v = schedule.v_target(x0, t, eps)
    torch.testing.assert_close(schedule.eps_from_v(xt, t, v), eps)
    torch.testing.assert_close(schedule.predict_x0(xt, t, schedule.eps_from_v(xt, t, v)), x0)
    # v is about eps near t = 0 (abar ~ 1) and about -x0 near t = T (abar ~ 0)
    assert torch.allclose(v[0], eps[0], atol=0.1) and torch.allclose(v[-1], -x0[-1], atol=0.1)


def test_v_prediction_guides_eps_and_weights_min_snr_over_snr_plus_one():
    torch.manual_seed(0)
    model = DDPM(**TINY, num_classes=10, prediction="v", min_snr=5.0).eval()
    torch.nn.init.normal_(model.net.conv_out.weight, std=0.1)
    x = torch.randn(4, 1, 28, 28)
    t = torch.tensor([0, 3, 10, 19])
    labels, null = torch.tensor([1, 2, 3, 9]), torch.full((4,), 10)
    net = model.sampling_net
    torch.testing.assert_close(
        model.guided_eps(x, t, labels, 0.0), model.schedule.eps_from_v(x, t, net(x, t, labels))
    )
    cond, uncond = model.guided_eps(x, t, labels, 0.0), model.guided_eps(x, t, null, 0.0)
    torch.testing.assert_close(
        model.guided_eps(x, t, labels, 3.0), 4 * cond - 3 * uncond, atol=1e-5, rtol=1e-5
    )
    alpha_bar = model.schedule.alpha_bar[t]
    snr = alpha_bar / (1 - alpha_bar)
    expected = torch.minimum(snr, torch.tensor(5.0)) / (snr + 1)
    torch.testing.assert_close(model.loss_weights(t).double(), expected)


def test_latent_diffusion_trains_the_autoencoder_then_diffuses_its_latents():
    torch.manual_seed(0)
    x, _ = bars(16)
    model = LatentDiffusion(**{**TINY_LATENT, "ae_steps": 15})
    optimizers = model.configure_optimizers(3e-3)
    labels = torch.zeros(16, dtype=torch.int64)
    ae_losses = [model.training_step(x, labels, optimizers, 1.0)["loss"] for _ in range(15)]
    assert model.phase == "diffusion" and float(model.latent_scale) == 0
    assert ae_losses[-1] < 0.75 * ae_losses[0]
    frozen = [p.clone() for p in model.autoencoder.parameters()]
    first = model.training_step(x, labels, optimizers, 1.0)
    assert "mse" in first and first["latent_scale"] > 0
    z = model.to_space(x, torch.Generator().manual_seed(0))
    assert z.shape == (16, 2, 7, 7) and float(z.std()) == pytest.approx(1.0, rel=0.2)

    def fixed_loss() -> float:
        with torch.no_grad():
            return float(model.loss(x, generator=torch.Generator().manual_seed(9))[0])

    before = fixed_loss()
    for _ in range(20):
        model.training_step(x, labels, optimizers, 1.0)
    assert fixed_loss() < 0.8 * before
    assert all(torch.equal(a, b) for a, b in zip(frozen, model.autoencoder.parameters()))
    samples = model.eval().sample(4, generator=torch.Generator().manual_seed(0), steps=3)
    assert (
        samples.shape == (4, 1, 28, 28) and 0 <= float(samples.min()) <= float(samples.max()) <= 1
    )


def test_guidance_weight_0_is_the_conditional_model_and_w_mixes_in_the_null_label():
    torch.manual_seed(0)
    model = DDPM(**TINY, num_classes=10).eval()
    torch.nn.init.normal_(model.net.conv_out.weight, std=0.1)  # a non-zero predictor
    net = model.sampling_net
    x = torch.randn(4, 1, 28, 28)
    t = torch.tensor([0, 3, 10, 19])
    labels = torch.tensor([1, 2, 3, 9])
    null = torch.full((4,), 10)
    cond, uncond = net(x, t, labels), net(x, t, null)
    assert not torch.allclose(cond, uncond)
    assert torch.equal(model.guided_eps(x, t, labels, 0.0), cond)
    assert torch.allclose(model.guided_eps(x, t, labels, 3.0), 4 * cond - 3 * uncond, atol=1e-5)
    assert torch.allclose(model.guided_eps(x, t, null, 3.0), uncond, atol=1e-5)
    # sample(guidance=0) is the plain conditional sampler
    noise = torch.randn(4, 1, 28, 28)
    ours = model.sample(4, labels=labels, guidance=0.0, steps=4, noise=noise)
    plain = ddim_sample(model.schedule, lambda x, t: net(x, t, labels), (4, 1, 28, 28), 4,
                        clip=(-1.0, 1.0), noise=noise)  # fmt: skip
    assert torch.allclose(ours, ((plain + 1) / 2).clamp(0, 1), atol=1e-6)
    # label -1 is the null label: an unconditional draw, the same at any weight
    a = model.sample(2, labels=-1, guidance=0.0, steps=4, noise=noise[:2])
    b = model.sample(2, labels=-1, guidance=5.0, steps=4, noise=noise[:2])
    assert torch.allclose(a, b, atol=1e-3)  # (6 u - 5 u) is u up to rounding


@pytest.mark.parametrize("drop", [0.0, 0.5, 1.0])
def test_conditioning_dropout_uses_the_null_label(drop):
    torch.manual_seed(0)
    model = DDPM(**TINY, num_classes=10, cond_drop=drop)
    torch.nn.init.normal_(model.net.conv_out.weight, std=0.1)  # else no gradient flows back
    seen = []
    model.net.label.register_forward_hook(lambda module, args, out: seen.append(args[0].clone()))
    x = torch.rand(400, 1, 28, 28)
    labels = torch.arange(400) % 10
    loss, _ = model.loss(x, labels, torch.Generator().manual_seed(0))
    loss.backward()
    (used,) = seen
    is_null = used == 10
    assert torch.equal(used[~is_null], labels[~is_null])  # kept labels are the true ones
    assert abs(float(is_null.double().mean()) - drop) < 0.07
    null_grad = model.net.label.weight.grad[10].abs().sum()
    class_grad = model.net.label.weight.grad[:10].abs().sum()
    assert (null_grad > 0) == (drop > 0) and (class_grad > 0) == (drop < 1)


@pytest.mark.parametrize("spec", SPECS, ids=lambda spec: spec.name)
def test_every_spec_samples_digits_in_0_1(spec):
    torch.manual_seed(0)
    model = spec.make(**spec.options).eval()
    assert model.view == spec.view == "grey" and model.nll_kind is None
    assert model.conditional == ("cfg" in spec.name) and model.timesteps == 1000
    if isinstance(model, LatentDiffusion):
        model.latent_scale.fill_(1.0)
    labels = {"labels": [3, 7]} if model.conditional else {}
    samples = model.sample(2, 1.0, torch.Generator().manual_seed(0), steps=2, **labels)
    assert samples.shape == (2, 1, 28, 28) and samples.dtype == torch.float32
    assert 0 <= float(samples.min()) and float(samples.max()) <= 1


def test_ddpm_sampling_over_every_step_and_the_empty_sample():
    torch.manual_seed(0)
    model = DDPM(**TINY, num_classes=10).eval()
    samples = model.sample(5, 0.8, torch.Generator().manual_seed(0), labels=4, guidance=2.0)
    assert (
        samples.shape == (5, 1, 28, 28) and 0 <= float(samples.min()) <= float(samples.max()) <= 1
    )
    assert model.sample(0).shape == (0, 1, 28, 28)
    again = model.sample(5, 0.8, torch.Generator().manual_seed(0), labels=4, guidance=2.0)
    assert torch.equal(samples, again)


def test_registry_lists_the_diffusion_models():
    names = set(models())
    assert {"ddpm", "ddpm-cfg", "ldm", "ldm-cfg"} <= names
    assert model_spec("ddpm-cfg").options["num_classes"] == 10


def test_training_resumes_exactly_and_loads_from_its_checkpoint(digits, tmp_path, monkeypatch):
    monkeypatch.setenv("MP3D_CACHE", str(tmp_path / "no-classifier"))  # FD: a note, quickly

    def config(steps: int) -> GenerativeConfig:
        return GenerativeConfig(model="ddpm-cfg", steps=steps, batch_size=20, lr_final_factor=1.0)

    options = {**TINY, "ema_decay": 0.9}
    straight = train_generative(digits, config(7), progress=False, options=options)
    run = tmp_path / "run"
    train_generative(digits, config(3), run, progress=False, options=options)  # mid-epoch
    resumed = train_generative(digits, config(7), run, progress=False, options=options)
    assert resumed.train_stats["start_step"] == 3
    for (name, a), b in zip(straight.state_dict().items(), resumed.state_dict().values()):
        assert torch.allclose(a.float(), b.float(), atol=1e-6), name
    loaded = load_generative(run)
    generator = torch.Generator().manual_seed(0)
    a = loaded.sample(3, 1.0, generator, labels=[0, 1, 1], steps=3)
    b = resumed.sample(3, 1.0, torch.Generator().manual_seed(0), labels=[0, 1, 1], steps=3)
    assert torch.equal(a, b)
    assert sample_grid(loaded, tmp_path / "grid.png", 4, labels=1, guidance=3.0, steps=2).is_file()


def test_evaluation_samples_with_ddim_on_eval_steps_where_the_model_has_more(digits, monkeypatch):
    import mp3d.generative.evaluation as evaluation

    drawn = []

    def fake_scores(model, data, **conditions):
        drawn.append(conditions)
        return {"fd": 1.0}

    monkeypatch.setattr(evaluation, "sample_scores", fake_scores)
    model = model_spec("ddpm").make(**TINY)  # 20 timesteps
    assert evaluate_model(model, digits, steps=5) == {"fd": 1.0, "sampling_steps": 5}
    assert evaluate_model(model, digits, steps=20) == {"fd": 1.0}  # no fewer: ancestral
    assert evaluate_model(model, digits) == {"fd": 1.0}
    assert evaluate_model(model, digits, steps=5, eta=1.0) == {"fd": 1.0, "sampling_steps": 5}
    assert evaluate_model(model, digits, steps=20, eta=1.0) == {"fd": 1.0}  # ancestral: no eta
    assert drawn == [{"steps": 5}, {}, {}, {"steps": 5, "eta": 1.0}, {}]
    assert model.sampler_takes("steps") and not model_spec("gan").make().sampler_takes("steps")
    assert model_spec("ddpm-cfg").make(**TINY).sampler_takes("guidance")


def test_gen_sample_draws_ddim_at_the_eta_given(digits, tmp_path, monkeypatch, capsys):
    from mp3d.cli import main

    monkeypatch.setenv("MP3D_CACHE", str(tmp_path / "no-classifier"))
    config = GenerativeConfig(model="ddpm", steps=2, batch_size=20)
    train_generative(digits, config, tmp_path / "run", progress=False, options=TINY)
    grids = {}
    for eta in ("0", "1"):
        out = tmp_path / f"eta{eta}.png"
        argv = ["gen", "sample", str(tmp_path / "run"), "--out", str(out), "--n", "4"]
        assert main([*argv, "--steps", "3", "--eta", eta]) == 0
        assert f"--eta {eta}" in capsys.readouterr().out
        grids[eta] = np.asarray(Image.open(out))
    assert grids["0"].shape == grids["1"].shape
    assert not np.array_equal(grids["0"], grids["1"])  # eta 1 adds fresh noise each step


def test_latent_diffusion_trains_through_train_generative(digits):
    config = GenerativeConfig(model="ldm", steps=8, batch_size=20)
    model = train_generative(digits, config, progress=False, options=TINY_LATENT)
    assert model.phase == "diffusion" and float(model.latent_scale) > 0
    assert "last_mse" in model.train_stats


# ----------------------------------------------------------------------------- refusals


@pytest.mark.parametrize(
    ("options", "name"),
    [
        ({"steps": 0}, "steps"),
        ({"steps": 21}, "steps"),
        ({"steps": 2.5}, "steps"),
        ({"eta": 0.5}, "eta"),
        ({"steps": 5, "eta": 1.5}, "eta"),
        ({"guidance": 1.0}, "guidance"),
        ({"labels": 3}, "labels"),
        ({"temperature": -1.0}, "temperature"),
    ],
)
def test_bad_sampling_options_of_an_unconditional_model_are_refused(options, name):
    model = DDPM(**TINY).eval()
    with pytest.raises(ValueError, match=name):
        model.sample(2, **options)


@pytest.mark.parametrize(
    ("options", "name"),
    [
        ({"labels": 10}, "labels"),
        ({"labels": -2}, "labels"),
        ({"labels": [1, 2, 3]}, "labels"),
        ({"labels": [0.5, 1.0]}, "labels"),
        ({"guidance": -1.0}, "guidance"),
        ({"guidance": float("nan")}, "guidance"),
    ],
)
def test_bad_sampling_options_of_a_guided_model_are_refused(options, name):
    model = DDPM(**TINY, num_classes=10).eval()
    with pytest.raises(ValueError, match=name):
        model.sample(2, **options)


@pytest.mark.parametrize(
    ("options", "name"),
    [
        ({"schedule": "quadratic"}, "schedule"),
        ({"timesteps": 1}, "timesteps"),
        ({"variance": "learned"}, "variance"),
        ({"cond_drop": 1.5}, "cond_drop"),
        ({"ema_decay": 1.0}, "ema_decay"),
        ({"clip": [1.0, -1.0]}, "clip"),
        ({"patch": 0}, "patch"),
        ({"num_classes": -1}, "num_classes"),
        ({"min_snr": -1.0}, "min_snr"),
        ({"prediction": "x0"}, "prediction"),
    ],
)
def test_bad_model_options_are_refused(options, name):
    with pytest.raises(ValueError, match=name):
        DDPM(**{**TINY, **options})


def test_bad_inputs_to_the_losses_and_latent_model_are_refused():
    with pytest.raises(ValueError, match="ae_steps"):
        LatentDiffusion(**{**TINY_LATENT, "ae_steps": 0})
    with pytest.raises(ValueError, match="latent_channels"):
        LatentDiffusion(**{**TINY_LATENT, "latent_channels": 0})
    model = DDPM(**TINY, num_classes=10)
    with pytest.raises(ValueError, match="labels"):
        model.loss(torch.rand(2, 1, 28, 28))
    with pytest.raises(ValueError, match="labels"):
        model.loss(torch.rand(2, 1, 28, 28), torch.tensor([0, 10]))
    with pytest.raises(ValueError, match="x must be"):
        model.loss(torch.rand(2, 28, 28), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="noise"):
        model.sample(2, steps=2, noise=torch.randn(3, 1, 28, 28))
    schedule = NoiseSchedule.make("linear", 10)
    with pytest.raises(ValueError, match="t must"):
        schedule.q_sample(torch.zeros(2, 1), torch.tensor([0, 10]), torch.zeros(2, 1))
    with pytest.raises(ValueError, match="betas"):
        NoiseSchedule(torch.tensor([0.1, 1.0]))

"""mp3d.generative.adversarial on tiny networks: training steps move G and D with finite
losses, the D/G update counts, samples' shape and range, WGAN-GP's penalty against its
closed form, the unrolled GAN's unrolled Adam steps (exactly D's next steps, never applied
to D; G's gradient equal to the plain GAN's at k = 0 only), conditioning, refused options,
exact resume through train_generative, and the 2D ring trainer."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mp3d.data.mnist import MNIST
from mp3d.generative import GenerativeConfig, load_generative, models, train_generative
from mp3d.generative.adversarial import (
    CGAN,
    DCGAN,
    GAN,
    WGANGP,
    UnrolledGAN,
    gradient_penalty,
    train_ring_gan,
)

TINY = {
    "gan": lambda: GAN(latent_dim=8, hidden_g=(32,), hidden_d=(32,)),
    "minimax": lambda: GAN(latent_dim=8, hidden_g=(32,), hidden_d=(32,), generator_loss="minimax"),
    "dcgan": lambda: DCGAN(latent_dim=8, width=4),
    "wgan-gp": lambda: WGANGP(latent_dim=8, width=4, n_critic=2),
    "cgan": lambda: CGAN(latent_dim=8, hidden_g=(32,), hidden_d=(32,), embed_dim=4),
    "cgan-concat": lambda: CGAN(
        latent_dim=8, hidden_g=(32,), hidden_d=(32,), embed_dim=4, discriminator="concat"
    ),
    "unrolled": lambda: UnrolledGAN(latent_dim=8, hidden_g=(32,), hidden_d=(32,), unrolled_steps=2),
}


pytestmark = pytest.mark.usefixtures("one_thread")


def batch(n: int = 16, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(n, 1, 28, 28, generator=generator), torch.arange(n) % 10


def flat(module: torch.nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().flatten().clone() for p in module.parameters()])


@pytest.mark.parametrize("name", list(TINY))
def test_training_steps_move_both_networks_with_finite_losses(name):
    torch.manual_seed(0)
    model = TINY[name]()
    optimizers = model.configure_optimizers(1e-3)
    g0, d0 = flat(model.generator), flat(model.discriminator)
    x, labels = batch()
    scalars = [model.training_step(x, labels, optimizers, grad_clip=10.0) for _ in range(4)]
    assert all(np.isfinite(v) for v in scalars[-1].values()), scalars  # G stepped by now
    assert all(np.isfinite(s["d_loss"]) for s in scalars), scalars
    assert scalars[-1]["loss"] == scalars[-1]["d_loss"]
    assert not torch.equal(flat(model.generator), g0)
    assert not torch.equal(flat(model.discriminator), d0)
    assert int(model.d_updates) == 4
    model.eval()
    extra = {"labels": torch.arange(6) % 10} if model.conditional else {}
    samples = model.sample(6, 1.0, torch.Generator().manual_seed(0), **extra)
    assert samples.shape == (6, 1, 28, 28) and 0 <= samples.min() and samples.max() <= 1
    again = model.sample(6, 1.0, torch.Generator().manual_seed(0), **extra)
    assert torch.equal(samples, again)


def test_the_papers_betas_and_one_optimizer_each():
    g, d = TINY["gan"]().configure_optimizers(2e-4)
    assert g.param_groups[0]["betas"] == (0.5, 0.999) and g.param_groups[0]["lr"] == 2e-4
    model = TINY["wgan-gp"]()
    g, d = model.configure_optimizers(1e-4)
    assert d.param_groups[0]["betas"] == (0.0, 0.9)
    assert {id(p) for p in d.param_groups[0]["params"]} == {
        id(p) for p in model.discriminator.parameters()
    }
    cgan = TINY["cgan"]()
    g, _ = cgan.configure_optimizers(1e-3)
    assert len(g.param_groups[0]["params"]) == len(list(cgan.generator.parameters()))
    assert any(p.shape == (10, 4) for p in g.param_groups[0]["params"])  # G's label embedding


def test_discriminator_steps_alone_lower_its_loss():
    torch.manual_seed(0)
    model = GAN(latent_dim=8, hidden_g=(32,), hidden_d=(32,), d_steps=100)  # G never steps
    optimizers = model.configure_optimizers(1e-3)
    x, labels = batch(32)
    g0 = flat(model.generator)
    losses = [model.training_step(x, labels, optimizers)["d_loss"] for _ in range(20)]
    assert losses[-1] < losses[0] - 0.3, losses
    assert torch.equal(flat(model.generator), g0)
    assert np.isnan(model.training_step(x, labels, optimizers)["g_loss"])  # no G step yet


def test_wgan_gp_updates_the_generator_every_n_critic_steps():
    torch.manual_seed(0)
    model = WGANGP(latent_dim=8, width=4, n_critic=3)
    optimizers = model.configure_optimizers(1e-3)
    x, labels = batch()
    changed = []
    for _ in range(6):
        g0, d0 = flat(model.generator), flat(model.discriminator)
        scalars = model.training_step(x, labels, optimizers)
        changed.append(not torch.equal(flat(model.generator), g0))
        assert not torch.equal(flat(model.discriminator), d0)
        assert scalars["gradient_penalty"] >= 0
    assert changed == [False, False, True, False, False, True]


def test_gradient_penalty_of_a_linear_critic_is_its_closed_form():
    torch.manual_seed(0)
    w = torch.randn(5, dtype=torch.float64, requires_grad=True)
    real, fake = torch.randn(7, 5, dtype=torch.float64), torch.randn(7, 5, dtype=torch.float64)
    penalty = gradient_penalty(lambda x: x @ w + 3.0, real, fake, weight=10.0)
    norm = w.detach().norm()
    assert float(penalty.detach()) == pytest.approx(10 * (float(norm) - 1) ** 2, rel=1e-12)
    (grad,) = torch.autograd.grad(penalty, w)  # it trains the critic: d/dw 10 (|w| - 1)^2
    assert torch.allclose(grad, 20 * (norm - 1) * w.detach() / norm)
    # images: the gradient is w everywhere, whichever interpolates
    conv_w = torch.randn(1, 1, 28, 28, dtype=torch.float64)
    images = torch.rand(2, 3, 1, 28, 28, dtype=torch.float64)
    value = gradient_penalty(
        lambda x: (x * conv_w).flatten(1).sum(1), *images, alpha=torch.tensor([0.0, 0.5, 1.0])
    )
    assert float(value) == pytest.approx(10 * (float(conv_w.norm()) - 1) ** 2, rel=1e-12)
    with pytest.raises(ValueError, match="real and fake"):
        gradient_penalty(lambda x: x.sum(1), torch.zeros(2, 3), torch.zeros(3, 3))


def test_unrolled_steps_are_d_s_next_adam_steps_and_never_change_d():
    torch.manual_seed(0)
    model = TINY["unrolled"]()
    optimizers = model.configure_optimizers(1e-3)
    x, labels = batch()
    model.training_step(x, labels, optimizers)  # D's Adam has moments now
    _, d_optimizer = optimizers
    real = model.to_model_space(x)
    fake = model.generate(model.noise(len(x)))
    d_before = copy.deepcopy(model.discriminator.state_dict())
    state_before = copy.deepcopy(d_optimizer.state_dict())
    unrolled = model.unrolled_parameters(real, fake, d_optimizer, steps=2)
    loss = model.generator_loss(model.noise(len(x)), real, None, d_optimizer)
    torch.autograd.grad(loss, list(model.generator.parameters()))
    for name, value in model.discriminator.state_dict().items():
        assert torch.equal(value, d_before[name]), name
    after = d_optimizer.state_dict()["state"]
    for key, state in state_before["state"].items():
        for field, value in state.items():
            assert torch.equal(after[key][field], value)
    # the same two steps taken for real by a copy of D and its optimizer
    twin = copy.deepcopy(model)
    twin_optimizer = torch.optim.Adam(twin.discriminator.parameters(), lr=1e-3, betas=(0.5, 0.999))
    twin_optimizer.load_state_dict(d_optimizer.state_dict())
    for _ in range(2):
        loss, _ = twin.discriminator_loss(real, fake.detach(), None)
        twin_optimizer.zero_grad()
        loss.backward()
        twin_optimizer.step()
    for name, p in twin.discriminator.named_parameters():
        assert torch.allclose(unrolled[name], p, atol=1e-6), name


def test_the_unrolled_generator_gradient_is_the_plain_one_at_k_0_and_differs_at_k_3():
    torch.manual_seed(0)
    plain = GAN(latent_dim=8, hidden_g=(32,), hidden_d=(32,))
    x, labels = batch()
    optimizers = plain.configure_optimizers(1e-3)
    plain.training_step(x, labels, optimizers)
    z, real = plain.noise(len(x)), plain.to_model_space(x)

    def generator_grad(model, k=None):
        if k is not None:
            model.unrolled_steps = k
        loss = model.generator_loss(z, real, None, optimizers[1])
        return torch.cat(
            [g.flatten() for g in torch.autograd.grad(loss, list(model.generator.parameters()))]
        )

    unrolled = UnrolledGAN(latent_dim=8, hidden_g=(32,), hidden_d=(32,))
    unrolled.load_state_dict(plain.state_dict())
    # the unrolled model reads D's optimizer state by parameter: share the parameters
    unrolled.discriminator = plain.discriminator
    reference = generator_grad(plain)
    assert torch.allclose(generator_grad(unrolled, 0), reference, atol=1e-7)
    other = generator_grad(unrolled, 3)
    assert torch.isfinite(other).all()
    assert (other - reference).norm() > 1e-3 * reference.norm()


@pytest.mark.parametrize("loss_kind", ["non_saturating", "minimax"])
def test_the_unrolled_generator_gradient_is_that_of_the_surrogate_with_its_real_term(loss_kind):
    # G's loss is f(theta_G, theta_D^k(theta_G)): D's objective after k real Adam steps of a
    # copy of D, real term included (it depends on G through the k steps); checked by central
    # differences of that surrogate along a random direction of G's parameters.
    torch.manual_seed(0)
    model = UnrolledGAN(latent_dim=4, hidden_g=(16,), hidden_d=(16,), unrolled_steps=2,
                        activation="tanh", data_shape=(2,), generator_loss=loss_kind)  # fmt: skip
    model.double()
    _, d_optimizer = model.configure_optimizers(1e-2)
    real, z = torch.randn(32, 2, dtype=torch.float64), torch.randn(32, 4, dtype=torch.float64)
    for _ in range(3):  # D's Adam has moments
        loss, _ = model.discriminator_loss(real, model.generate(z).detach(), None)
        d_optimizer.zero_grad()
        loss.backward()
        d_optimizer.step()
    params = list(model.generator.parameters())
    grads = torch.autograd.grad(model.generator_loss(z, real, None, d_optimizer), params)
    direction = [torch.randn_like(p) for p in params]
    analytic = sum(float((g * d).sum()) for g, d in zip(grads, direction))

    def surrogate(h, real_term=True):
        twin = copy.deepcopy(model)
        with torch.no_grad():
            for p, d in zip(twin.generator.parameters(), direction):
                p += h * d
        fake = twin.generate(z).detach()
        optimizer = torch.optim.Adam(twin.discriminator.parameters(), lr=1e-2, betas=(0.5, 0.999))
        optimizer.load_state_dict(copy.deepcopy(d_optimizer.state_dict()))  # not shared
        for _ in range(2):
            loss, _ = twin.discriminator_loss(real, fake, None)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        with torch.no_grad():
            real_logits, fake_logits = twin.discriminate(real), twin.discriminate(fake)
        value = -F.softplus(-real_logits).mean() if real_term else 0.0
        if loss_kind == "minimax":
            return float(value - F.softplus(fake_logits).mean())
        return float(value + F.softplus(-fake_logits).mean())

    h = 1e-5
    numeric = (surrogate(h) - surrogate(-h)) / (2 * h)
    assert analytic == pytest.approx(numeric, rel=1e-4, abs=1e-8)
    without_real = (surrogate(h, False) - surrogate(-h, False)) / (2 * h)
    assert abs(without_real - numeric) > 1e-2 * abs(numeric)  # the real term matters


def test_cgan_samples_follow_their_labels():
    torch.manual_seed(0)
    model = TINY["cgan"]().eval()
    zeros = model.sample(
        4, 1.0, torch.Generator().manual_seed(0), labels=torch.zeros(4, dtype=torch.int64)
    )
    ones = model.sample(4, 1.0, torch.Generator().manual_seed(0), labels=1)
    assert not torch.allclose(zeros, ones)
    assert model.sample(5, 1.0, torch.Generator().manual_seed(0)).shape == (5, 1, 28, 28)
    x = torch.rand(3, 1, 28, 28)
    for critic in (model, TINY["cgan-concat"]()):  # D reads the label: projection and concat
        a, b = (
            critic.discriminate(x, torch.zeros(3, dtype=torch.int64)),
            critic.discriminate(x, torch.ones(3, dtype=torch.int64)),
        )
        assert not torch.allclose(a, b)
    with pytest.raises(ValueError, match="labels must be"):
        model.sample(3, labels=torch.tensor([0, 1, 10]))
    with pytest.raises(ValueError, match="labels must be"):
        model.sample(3, labels=torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="labels are required"):
        model.generate(torch.zeros(2, 8))


def test_bad_options_are_refused_naming_the_argument():
    cases = [
        (lambda: GAN(generator_loss="wasserstein"), "generator_loss"),
        (lambda: GAN(d_steps=0), "d_steps"),
        (lambda: GAN(hidden_g=()), "hidden_g"),
        (lambda: GAN(activation="gelu"), "activation"),
        (lambda: GAN(data_shape=(3, 28, 28)), "data_shape"),
        (lambda: GAN(latent_dim=0), "latent_dim"),
        (lambda: DCGAN(width=0), "width"),
        (lambda: WGANGP(n_critic=0), "n_critic"),
        (lambda: WGANGP(gp_weight=-1.0), "gp_weight"),
        (lambda: UnrolledGAN(unrolled_steps=-1), "unrolled_steps"),
        (lambda: CGAN(embed_dim=0), "embed_dim"),
        (lambda: CGAN(discriminator="hinge"), "discriminator"),
        (lambda: train_ring_gan("wgan-gp", steps=1), "kind"),
    ]
    for make, name in cases:
        with pytest.raises(ValueError, match=name):
            make()
    model = TINY["gan"]()
    with pytest.raises(ValueError, match=r"x must have shape \[B, 1, 28, 28\]"):
        model.training_step(
            torch.zeros(2, 28, 28), torch.zeros(2), model.configure_optimizers(1e-3)
        )


def test_registered_and_resumed_exactly_through_the_trainer(tmp_path, monkeypatch):
    monkeypatch.setenv("MP3D_CACHE", str(tmp_path / "no-classifier"))
    assert {"gan", "dcgan", "wgan-gp", "cgan", "unrolled"} <= set(models())
    assert models()["cgan"].make().conditional and models()["gan"].view == "grey"
    rng = np.random.default_rng(0)
    images = (rng.random((60, 28, 28)) < 0.2).astype(np.uint8) * 255
    data = MNIST(images[:40], np.arange(40) % 10, images[40:], np.arange(20) % 10, "noise")
    options = {"latent_dim": 8, "hidden_g": [16], "hidden_d": [16]}
    common = {"model": "cgan", "batch_size": 8, "lr_final_factor": 1.0, "samples": 4}
    straight = train_generative(
        data, GenerativeConfig(steps=8, **common), progress=False, options=options
    )
    train_generative(
        data, GenerativeConfig(steps=3, **common), tmp_path, progress=False, options=options
    )
    resumed = train_generative(
        data, GenerativeConfig(steps=8, **common), tmp_path, progress=False, options=options
    )
    assert resumed.train_stats["start_step"] == 3
    resumed_state = resumed.state_dict()
    for name, value in straight.state_dict().items():
        if name.endswith("_extra_state"):  # the training noise generator
            value, other = value["noise_generator"], resumed_state[name]["noise_generator"]
        else:
            other = resumed_state[name]
        assert torch.equal(value, other), name
    assert (
        resumed.test_scores["fd"] is None
        and "train_digit_classifier" in resumed.test_scores["note"]
    )
    loaded = load_generative(tmp_path)
    generator = torch.Generator().manual_seed(0)
    assert torch.equal(
        loaded.sample(3, 1.0, generator, labels=2),
        resumed.sample(3, 1.0, torch.Generator().manual_seed(0), labels=2),
    )
    assert (tmp_path / "samples.png").is_file() and (tmp_path / "metrics.json").is_file()


def test_the_ring_trainer_returns_2d_samples():
    samples, model = train_ring_gan("unrolled", steps=3, batch_size=32, n_samples=50,
                                    unrolled_steps=1, hidden_g=(16,), hidden_d=(16,),
                                    return_model=True)  # fmt: skip
    assert samples.shape == (50, 2) and torch.isfinite(samples).all()
    assert model.data_shape == (2,) and model.latent_dim == 256 and model.unrolled_steps == 1
    assert model.train_stats["steps"] == 3
    again = train_ring_gan("unrolled", steps=3, batch_size=32, n_samples=50,
                           unrolled_steps=1, hidden_g=(16,), hidden_d=(16,))  # fmt: skip
    assert torch.equal(samples, again)

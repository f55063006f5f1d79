"""Generative adversarial networks on the grey digits (pixel / 255 in [0,1]) and on 2D points:
the original GAN, DCGAN, WGAN-GP, a class-conditional GAN and the unrolled GAN.

Every model is a GenerativeModel with a generator G (noise z ~ N(0, I) -> data) and a
discriminator or critic D (data -> one logit or score each). Generators of digits end in
tanh and work in [-1, 1]; ``sample`` returns (G(z) + 1) / 2 in [0, 1], and real digits go
to D as 2 x - 1. With ``data_shape=(2,)`` the same classes model 2D points (linear output,
no rescaling): the ring experiment (``train_ring_gan``).

Training: ``configure_optimizers(lr)`` gives [Adam over G, Adam over D] with the papers'
betas; each ``training_step`` is one D update on the batch, and every ``d_steps``-th (GAN,
default 1: Goodfellow et al.'s k) or ``n_critic``-th (WGAN-GP, 5) step is also one G
update on fresh noise of the batch's size. The count of D updates and the noise generator
are part of the state dict, so a resumed run draws the same noise as an uninterrupted one.
The scalars returned: "loss" (the D / critic loss of this step), "d_loss", "g_loss" (of the
latest G update; NaN before the first), and D's mean outputs on real and fake data.

- "gan" (Goodfellow et al. 2014): MLPs, D by binary cross-entropy, G by the non-saturating
  loss -log D(G(z)) or the minimax loss log(1 - D(G(z))) (``generator_loss``); Adam
  (0.5, 0.999).
- "dcgan" (Radford et al. 2016): G projects z to 7x7 and upsamples by two stride-2
  transposed convolutions to 28x28, batch norm and ReLU in G except its output; D strided
  convolutions with LeakyReLU(0.2), batch norm except on its input layer; weights drawn
  from N(0, 0.02); Adam 2e-4, (0.5, 0.999).
- "wgan-gp" (Gulrajani et al. 2017): DCGAN's G, a critic without batch norm, loss
  E[D(fake)] - E[D(real)] + 10 E[(|grad D(x_hat)| - 1)^2] at random interpolates x_hat,
  5 critic updates per G update, Adam 1e-4, (0, 0.9).
- "cgan" (Mirza & Osindero 2014): MLPs, a learned label embedding concatenated to z in G;
  D a projection discriminator (Miyato & Koyama 2018) or, with discriminator="concat",
  Mirza & Osindero's embedding concatenated to the image; ``sample(n, labels=...)``.
- "unrolled" (Metz et al. 2017): G minimises D's objective f(theta_G, theta_D^k) after k
  unrolled updates, D's own update unchanged: with the real term log D_k(x), which depends
  on G through the k updates (dropping it, as this module once did, left the unrolled
  gradient wrong: 5 of 8 ring modes where the plain GAN had 6), and the fake term
  non-saturating, -log D_k(G(z)), or the paper's minimax log(1 - D_k(G(z)))
  (``generator_loss``; at k = 0 both are the plain GAN's). The unrolled updates are Adam steps (the
  paper's code unrolls through its optimizer) from D's current Adam moments and learning
  rate, on the same real batch and the fake batch G(z), taken on a copy of D's parameters
  with torch.func.functional_call and create_graph=True, so G's gradient includes how D
  would react; the real D parameters and optimizer state are never changed by them.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from mp3d.generative.base import GenerativeModel, ModelSpec
from mp3d.nn import MLP
from mp3d.training import check_choice, check_float, check_int

__all__ = [
    "CGAN",
    "DCGAN",
    "GAN",
    "SPECS",
    "WGANGP",
    "UnrolledGAN",
    "gradient_penalty",
    "train_ring_gan",
]

ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "leaky_relu": lambda: nn.LeakyReLU(0.2),
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
}
GENERATOR_LOSSES = ("non_saturating", "minimax")
DIGITS = (1, 28, 28)


def _check_shape(data_shape: Sequence[int]) -> tuple[int, ...]:
    shape = tuple(int(s) for s in data_shape)
    if shape != DIGITS and not (len(shape) == 1 and shape[0] >= 1):
        raise ValueError(f"data_shape must be (1, 28, 28) or (d,) for points, got {data_shape}")
    return shape


def _check_widths(name: str, widths: Sequence[int]) -> tuple[int, ...]:
    widths = tuple(widths)
    if not widths or any(isinstance(w, bool) or not isinstance(w, int) or w < 1 for w in widths):
        raise ValueError(f"{name} must be a non-empty list of widths >= 1, got {list(widths)}")
    return widths


def _check_labels(labels, n: int, device) -> torch.Tensor:
    labels = torch.as_tensor(labels, dtype=torch.int64)
    if labels.dim() == 0:
        labels = labels.expand(n)
    if labels.shape != (n,) or (n and (labels.min() < 0 or labels.max() > 9)):
        raise ValueError(f"labels must be [{n}] digit classes 0..9, got {labels.tolist()}")
    return labels.to(device)


def gradient_penalty(
    critic: Callable[[torch.Tensor], torch.Tensor],
    real: torch.Tensor,
    fake: torch.Tensor,
    weight: float = 10.0,
    alpha: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """WGAN-GP's penalty weight * mean_i (|grad_x critic(x_hat_i)|_2 - 1)^2 at
    x_hat = alpha real + (1 - alpha) fake, alpha [B] ~ U[0,1] per example unless given;
    differentiable (create_graph) so it trains the critic."""
    if real.shape != fake.shape:
        raise ValueError(f"real and fake must have one shape, got {list(real.shape)} and "
                         f"{list(fake.shape)}")  # fmt: skip
    if alpha is None:
        alpha = torch.rand(len(real), generator=generator).to(real)
    alpha = alpha.view(-1, *([1] * (real.dim() - 1)))
    x_hat = (alpha * real.detach() + (1 - alpha) * fake.detach()).requires_grad_(True)
    scores = critic(x_hat)
    (grad,) = torch.autograd.grad(scores.sum(), x_hat, create_graph=True)
    norm = grad.flatten(1).norm(dim=1)
    return weight * ((norm - 1) ** 2).mean()


def _dcgan_init(module: nn.Module) -> None:
    """DCGAN's initialisation: conv and linear weights N(0, 0.02), batch norm N(1, 0.02)."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
        nn.init.normal_(module.weight, 0.0, 0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


class ConvGenerator(nn.Module):
    """z [B,latent] -> [B,1,28,28] in [-1,1]: linear to 2w x 7 x 7, then two stride-2
    4x4 transposed convolutions (7 -> 14 -> 28), batch norm and ReLU between, tanh out."""

    def __init__(self, latent_dim: int, width: int) -> None:
        super().__init__()
        self.width = width
        self.project = nn.Sequential(
            nn.Linear(latent_dim, 2 * width * 49, bias=False),
            nn.Unflatten(1, (2 * width, 7, 7)),
            nn.BatchNorm2d(2 * width),
            nn.ReLU(),
        )
        self.up = nn.Sequential(
            nn.ConvTranspose2d(2 * width, width, 4, 2, 1, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(),
            nn.ConvTranspose2d(width, 1, 4, 2, 1),
            nn.Tanh(),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.up(self.project(z))


class ConvDiscriminator(nn.Module):
    """[B,1,28,28] in [-1,1] -> logits [B]: two stride-2 4x4 convolutions (28 -> 14 -> 7)
    with LeakyReLU(0.2), batch norm on the second unless ``batch_norm=False`` (a WGAN-GP
    critic), then a linear layer."""

    def __init__(self, width: int, batch_norm: bool = True) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(1, width, 4, 2, 1),
            nn.LeakyReLU(0.2),
            nn.Conv2d(width, 2 * width, 4, 2, 1, bias=not batch_norm),
            nn.BatchNorm2d(2 * width) if batch_norm else nn.Identity(),
            nn.LeakyReLU(0.2),
            nn.Flatten(),
            nn.Linear(2 * width * 49, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).squeeze(1)


class _Adversarial(GenerativeModel):
    """What every GAN here shares (see the module docstring): rescaling, noise, the step
    with its D/G update counts, optimizers, sampling. Subclasses build ``self.generator``
    and ``self.discriminator`` and may override the losses."""

    view = "grey"
    nll_kind = None
    betas = (0.5, 0.999)

    def __init__(self, data_shape: Sequence[int], latent_dim: int, d_steps: int) -> None:
        super().__init__()
        self.data_shape = _check_shape(data_shape)
        self.image_shape = self.data_shape if self.images else (1, 1, self.data_shape[0])
        self.latent_dim = check_int("latent_dim", latent_dim, 1, 1 << 14)
        self.d_steps = d_steps
        self.register_buffer("d_updates", torch.zeros((), dtype=torch.int64))
        # Noise of the training steps: its own generator, saved with the state dict.
        self.noise_generator = torch.Generator().manual_seed(
            int(torch.randint(1 << 62, (), dtype=torch.int64))
        )
        self.last_g_loss = float("nan")

    @property
    def images(self) -> bool:
        return self.data_shape == DIGITS

    # -- state: the noise generator travels with the weights

    def get_extra_state(self) -> dict:
        return {"noise_generator": self.noise_generator.get_state()}

    def set_extra_state(self, state: dict) -> None:
        self.noise_generator.set_state(state["noise_generator"])

    # -- the networks

    def noise(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """z [n,latent_dim] ~ N(0, I) on the model's device (drawn from `generator`, or
        the training noise generator)."""
        generator = generator if generator is not None else self.noise_generator
        z = torch.randn(n, self.latent_dim, generator=generator, device=generator.device)
        return z.to(self.d_updates.device)

    def generate(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """G(z) [B,*data_shape] in G's space ([-1,1] for digits)."""
        out = self.generator(z)
        return out.view(len(z), *self.data_shape)

    def discriminate(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """D's logits or critic scores [B] of x [B,*data_shape] in G's space."""
        return self.discriminator(x).view(len(x))

    def to_model_space(self, x: torch.Tensor) -> torch.Tensor:
        """Data (digits in [0,1]) -> G's space (2 x - 1); points unchanged."""
        return x * 2 - 1 if self.images else x

    def to_data_space(self, x: torch.Tensor) -> torch.Tensor:
        """G's space -> data: (x + 1) / 2 in [0,1] for digits; points unchanged."""
        return ((x + 1) / 2).clamp(0, 1) if self.images else x

    @torch.no_grad()
    def sample(
        self, n: int, temperature: float = 1.0, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """n samples [n,*data_shape] (digits in [0,1]) of G(temperature * z)."""
        check_int("n", n, 0)
        z = self._sample_noise(n, generator) * temperature
        return self.to_data_space(self.generate(z))

    def _sample_noise(self, n: int, generator: torch.Generator | None) -> torch.Tensor:
        if generator is None:  # torch's global generator, as other samplers
            return torch.randn(n, self.latent_dim, device=self.d_updates.device)
        return self.noise(n, generator)

    def configure_optimizers(self, lr: float) -> list[torch.optim.Optimizer]:
        """[Adam over G, Adam over D] at lr with the model's betas."""
        return [
            torch.optim.Adam(self.generator.parameters(), lr=lr, betas=self.betas),
            torch.optim.Adam(self.discriminator.parameters(), lr=lr, betas=self.betas),
        ]

    # -- losses (logits; subclasses override)

    def discriminator_loss(
        self, real: torch.Tensor, fake: torch.Tensor, labels: torch.Tensor | None
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """-log D(real) - log(1 - D(fake)), batch means; and D's mean probabilities."""
        real_logits = self.discriminate(real, labels)
        fake_logits = self.discriminate(fake, labels)
        loss = F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()
        return loss, {
            "d_real": float(torch.sigmoid(real_logits.detach()).mean()),
            "d_fake": float(torch.sigmoid(fake_logits.detach()).mean()),
        }

    def generator_loss(
        self,
        z: torch.Tensor,
        real: torch.Tensor,
        labels: torch.Tensor | None,
        d_optimizer: torch.optim.Optimizer | None = None,
    ) -> torch.Tensor:
        """The G objective of noise z (real data and D's optimizer for the unrolled GAN)."""
        return F.softplus(-self.discriminate(self.generate(z, labels), labels)).mean()

    # -- one step

    def _check_batch(self, x: torch.Tensor) -> None:
        if x.dim() != 1 + len(self.data_shape) or tuple(x.shape[1:]) != self.data_shape:
            raise ValueError(
                f"x must have shape [B, {', '.join(map(str, self.data_shape))}], "
                f"got {list(x.shape)}"
            )

    def _step(self, loss: torch.Tensor, module: nn.Module, optimizer, grad_clip: float) -> None:
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if grad_clip > 0:
            nn.utils.clip_grad_norm_(module.parameters(), grad_clip)
        optimizer.step()

    def training_step(
        self,
        x: torch.Tensor,
        labels: torch.Tensor,
        optimizers: list[torch.optim.Optimizer],
        grad_clip: float = 0.0,
    ) -> dict[str, float]:
        """One D update on the batch x [B,*data_shape]; with every d_steps-th also one G
        update (see the module docstring). Returns the scalars to log."""
        self._check_batch(x)
        if len(optimizers) != 2:
            raise ValueError(f"optimizers must be [G's, D's], got {len(optimizers)}")
        g_optimizer, d_optimizer = optimizers
        labels = labels if self.conditional else None
        real = self.to_model_space(x)
        with torch.no_grad():
            fake = self.generate(self.noise(len(x)), labels)
        d_loss, parts = self.discriminator_loss(real, fake, labels)
        self._step(d_loss, self.discriminator, d_optimizer, grad_clip)
        self.d_updates += 1
        if int(self.d_updates) % self.d_steps == 0:
            self.generator.zero_grad(set_to_none=True)
            g_loss = self.generator_loss(self.noise(len(x)), real, labels, d_optimizer)
            params = [p for p in self.generator.parameters() if p.requires_grad]
            grads = torch.autograd.grad(g_loss, params)
            for p, g in zip(params, grads):
                p.grad = g
            if grad_clip > 0:
                nn.utils.clip_grad_norm_(params, grad_clip)
            g_optimizer.step()
            self.last_g_loss = float(g_loss.detach())
        return {
            "loss": float(d_loss.detach()),
            "d_loss": float(d_loss.detach()),
            "g_loss": self.last_g_loss,
            **parts,
        }


class GAN(_Adversarial):
    """The original GAN with MLPs (see the module docstring); generator_loss
    "non_saturating" (-log D(G(z))) or "minimax" (log(1 - D(G(z))))."""

    def __init__(
        self,
        latent_dim: int = 100,
        hidden_g: Sequence[int] = (256, 512, 1024),
        hidden_d: Sequence[int] = (512, 256),
        generator_loss: str = "non_saturating",
        d_steps: int = 1,
        activation: str = "leaky_relu",
        data_shape: Sequence[int] = DIGITS,
    ) -> None:
        super().__init__(data_shape, latent_dim, check_int("d_steps", d_steps, 1, 100))
        self.loss_kind = check_choice("generator_loss", generator_loss, GENERATOR_LOSSES)
        act = ACTIVATIONS[check_choice("activation", activation, tuple(ACTIVATIONS))]
        hidden_g = _check_widths("hidden_g", hidden_g)
        hidden_d = _check_widths("hidden_d", hidden_d)
        dim, extra = math.prod(self.data_shape), self._label_dim()
        final = nn.Tanh if self.images else None
        self.generator = MLP(latent_dim + extra, hidden_g, dim, act, final)
        self.discriminator = MLP(dim + extra, hidden_d, 1, act)

    def _label_dim(self) -> int:
        return 0

    def generate(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return self.generator(z).view(len(z), *self.data_shape)

    def discriminate(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return self.discriminator(x.flatten(1)).squeeze(1)

    def generator_loss(self, z, real, labels, d_optimizer=None) -> torch.Tensor:
        logits = self.discriminate(self.generate(z, labels), labels)
        if self.loss_kind == "minimax":
            return -F.softplus(logits).mean()  # log(1 - sigmoid(l)) = -softplus(l)
        return F.softplus(-logits).mean()


CGAN_DISCRIMINATORS = ("projection", "concat")


class CGAN(GAN):
    """A class-conditional GAN with MLPs: G takes a learned embedding of the label
    concatenated to z (Mirza & Osindero); D either concatenates its own label embedding to
    the flattened image ("concat", Mirza & Osindero) or, by default, is a projection
    discriminator (Miyato & Koyama 2018: logit = w . h(x) + b + embed(y) . h(x), h the
    last hidden layer): in 4 minutes on a busy 2-core CPU, "concat" drew digits of
    arbitrary classes (8% conditional accuracy after 2,855 steps, FD 810), projection 33%
    (2,339 steps, FD 758). sample(n, labels=...) draws the given digits."""

    conditional = True

    def __init__(
        self,
        latent_dim: int = 100,
        hidden_g: Sequence[int] = (256, 512, 1024),
        hidden_d: Sequence[int] = (512, 256),
        embed_dim: int = 16,
        discriminator: str = "projection",
        generator_loss: str = "non_saturating",
        d_steps: int = 1,
        activation: str = "leaky_relu",
    ) -> None:
        self.embed_dim = check_int("embed_dim", embed_dim, 1, 1024)
        self.d_kind = check_choice("discriminator", discriminator, CGAN_DISCRIMINATORS)
        super().__init__(
            latent_dim, hidden_g, hidden_d, generator_loss, d_steps, activation, DIGITS
        )
        # G and D each own their label embedding (configure_optimizers takes theirs)
        self.generator = _Conditioned(self.generator, nn.Embedding(10, embed_dim))
        if self.d_kind == "concat":
            self.discriminator = _Conditioned(self.discriminator, nn.Embedding(10, embed_dim))
        else:
            act = ACTIVATIONS[activation]
            hidden_d = tuple(hidden_d)
            body = MLP(math.prod(DIGITS), hidden_d[:-1], hidden_d[-1], act, act)
            self.discriminator = _Projection(body, hidden_d[-1])

    def _label_dim(self) -> int:
        return self.embed_dim

    def generate(self, z, labels=None):
        if labels is None:
            raise ValueError("labels are required: a CGAN is class-conditional")
        return self.generator(z, labels).view(len(z), *self.data_shape)

    def discriminate(self, x, labels=None):
        if labels is None:
            raise ValueError("labels are required: a CGAN is class-conditional")
        return self.discriminator(x.flatten(1), labels).squeeze(1)

    @torch.no_grad()
    def sample(
        self,
        n: int,
        temperature: float = 1.0,
        generator: torch.Generator | None = None,
        labels: torch.Tensor | int | None = None,
    ) -> torch.Tensor:
        """n digits [n,1,28,28] in [0,1] of the classes labels [n] (an int: all one
        class; None: uniformly random classes)."""
        check_int("n", n, 0)
        if labels is None:
            device = generator.device if generator is not None else "cpu"
            labels = torch.randint(10, (n,), generator=generator, device=device)
        labels = _check_labels(labels, n, self.d_updates.device)
        z = self._sample_noise(n, generator) * temperature
        return self.to_data_space(self.generate(z, labels))


class _Conditioned(nn.Module):
    """net(cat(input, embedding(labels))): G's or D's MLP with the label embedding."""

    def __init__(self, net: nn.Module, embedding: nn.Embedding) -> None:
        super().__init__()
        self.net, self.embedding = net, embedding

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([x, self.embedding(labels)], 1))


class _Projection(nn.Module):
    """A projection discriminator's head: logit = w . h + b + embed(labels) . h, with
    h = body(x) [B,width] (Miyato & Koyama 2018)."""

    def __init__(self, body: nn.Module, width: int) -> None:
        super().__init__()
        self.body, self.head = body, nn.Linear(width, 1)
        self.embedding = nn.Embedding(10, width)
        nn.init.normal_(self.embedding.weight, 0.0, 0.02)

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        h = self.body(x)
        return self.head(h) + (self.embedding(labels) * h).sum(1, keepdim=True)


class DCGAN(_Adversarial):
    """DCGAN on 28x28 digits (see the module docstring); ``width`` channels after G's
    first upsampling and D's first convolution (2 x width at 7x7)."""

    def __init__(self, latent_dim: int = 100, width: int = 32, d_steps: int = 1) -> None:
        super().__init__(DIGITS, latent_dim, check_int("d_steps", d_steps, 1, 100))
        check_int("width", width, 1, 1024)
        self.generator = ConvGenerator(latent_dim, width)
        self.discriminator = ConvDiscriminator(width, batch_norm=self._critic_batch_norm)
        self.generator.apply(_dcgan_init)
        if self._critic_batch_norm:  # DCGAN's; WGAN-GP's critic keeps PyTorch's default
            self.discriminator.apply(_dcgan_init)

    _critic_batch_norm = True


class WGANGP(DCGAN):
    """WGAN with gradient penalty (see the module docstring): DCGAN's G, a critic without
    batch norm, penalty weight ``gp_weight`` (10), ``n_critic`` (5) critic updates per G
    update, Adam (0, 0.9)."""

    betas = (0.0, 0.9)
    _critic_batch_norm = False

    def __init__(
        self, latent_dim: int = 100, width: int = 32, n_critic: int = 5, gp_weight: float = 10.0
    ) -> None:
        super().__init__(latent_dim, width, check_int("n_critic", n_critic, 1, 100))
        self.gp_weight = check_float("gp_weight", gp_weight, 0.0)

    def discriminator_loss(self, real, fake, labels):
        """E[D(fake)] - E[D(real)] + the gradient penalty."""
        real_scores, fake_scores = self.discriminate(real), self.discriminate(fake)
        wasserstein = real_scores.mean() - fake_scores.mean()
        alpha = torch.rand(len(real), generator=self.noise_generator).to(real)
        penalty = gradient_penalty(self.discriminate, real, fake, self.gp_weight, alpha)
        return -wasserstein + penalty, {
            "wasserstein": float(wasserstein.detach()),
            "gradient_penalty": float(penalty.detach()),
        }

    def generator_loss(self, z, real, labels, d_optimizer=None):
        """-E[D(G(z))]."""
        return -self.discriminate(self.generate(z)).mean()


class UnrolledGAN(GAN):
    """The unrolled GAN (see the module docstring): MLPs as GAN's, G trained through
    ``unrolled_steps`` (k) unrolled Adam updates of D on D's objective with its real term;
    ``generator_loss`` "non_saturating" or "minimax" for the fake term; k = 0 is the plain
    GAN."""

    def __init__(
        self,
        latent_dim: int = 100,
        hidden_g: Sequence[int] = (256, 512, 1024),
        hidden_d: Sequence[int] = (512, 256),
        unrolled_steps: int = 5,
        activation: str = "leaky_relu",
        data_shape: Sequence[int] = DIGITS,
        generator_loss: str = "non_saturating",
    ) -> None:
        super().__init__(latent_dim, hidden_g, hidden_d, generator_loss, 1, activation, data_shape)
        self.unrolled_steps = check_int("unrolled_steps", unrolled_steps, 0, 100)

    def unrolled_parameters(
        self,
        real: torch.Tensor,
        fake: torch.Tensor,
        d_optimizer: torch.optim.Optimizer | None,
        steps: int | None = None,
    ) -> dict[str, torch.Tensor]:
        """D's parameters after `steps` (default k) Adam updates on (real, fake), as
        tensors differentiable with respect to fake (and D's parameters): D's own
        parameters and optimizer state are read, never written."""
        steps = self.unrolled_steps if steps is None else steps
        params = dict(self.discriminator.named_parameters())
        if steps == 0:
            return params
        group = d_optimizer.param_groups[0] if d_optimizer is not None else {}
        lr = group.get("lr", 2e-4)
        beta1, beta2 = group.get("betas", self.betas)
        eps = group.get("eps", 1e-8)
        moments = {}
        for name, p in params.items():
            state = d_optimizer.state.get(p, {}) if d_optimizer is not None else {}
            moments[name] = (
                state.get("exp_avg", torch.zeros_like(p)).detach(),
                state.get("exp_avg_sq", torch.zeros_like(p)).detach(),
                float(state.get("step", 0)),
            )
        for _ in range(steps):
            real_logits = functional_call(self.discriminator, params, (real.flatten(1),))
            fake_logits = functional_call(self.discriminator, params, (fake.flatten(1),))
            loss = F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()
            grads = torch.autograd.grad(loss, list(params.values()), create_graph=True)
            updated = {}
            for (name, p), g in zip(params.items(), grads):
                m, v, t = moments[name]
                m, v, t = beta1 * m + (1 - beta1) * g, beta2 * v + (1 - beta2) * g * g, t + 1
                moments[name] = (m, v, t)
                m_hat, v_hat = m / (1 - beta1**t), v / (1 - beta2**t)
                # + 1e-16 under the root: a finite derivative where g and v are exactly 0
                updated[name] = p - lr * m_hat / (torch.sqrt(v_hat + 1e-16) + eps)
            params = updated
        return params

    def generator_loss(self, z, real, labels, d_optimizer=None) -> torch.Tensor:
        """log D_k(real) - log D_k(G(z)) (non-saturating) or log D_k(real) +
        log(1 - D_k(G(z))) (minimax, the paper's f(theta_G, theta_D^k)), D_k the k-step
        unrolled discriminator."""
        fake = self.generate(z)
        params = self.unrolled_parameters(real, fake, d_optimizer)
        fake_logits = functional_call(self.discriminator, params, (fake.flatten(1),)).squeeze(1)
        real_logits = functional_call(self.discriminator, params, (real.flatten(1),)).squeeze(1)
        real_term = -F.softplus(-real_logits).mean()
        if self.loss_kind == "minimax":
            return real_term - F.softplus(fake_logits).mean()
        return real_term + F.softplus(-fake_logits).mean()


# ----------------------------------------------------------------------------- the ring


RING_KINDS = {"gan": GAN, "unrolled": UnrolledGAN}


def train_ring_gan(
    kind: str = "gan",
    steps: int = 3000,
    seed: int = 0,
    batch_size: int = 512,
    lr: float = 1e-3,
    n_samples: int = 2500,
    modes: int = 8,
    radius: float = 2.0,
    std: float = 0.02,
    progress: bool = False,
    minutes: float | None = None,
    return_model: bool = False,
    **options,
) -> torch.Tensor | tuple[torch.Tensor, GAN]:
    """Trains a 2D GAN ("gan") or unrolled GAN ("unrolled") on fresh batches of
    mp3d.generative.evaluation.ring_of_gaussians for `steps` steps and returns n_samples of
    its samples [n_samples,2] (stopping early after `minutes` of wall time). Defaults as
    in the unrolled GAN paper's ring experiment (MLPs of two 128-unit ReLU layers, 256-d
    noise, batch 512, Adam (0.5, 0.999), 5 unrolled steps) except the learning rate: 1e-3,
    not 1e-4, to get somewhere in the few thousand steps a CPU affords (at 1e-4 neither
    model had high-quality samples after 3,000 steps); options (unrolled_steps, hidden_g,
    ...) go to the model; with return_model, returns (samples, the model with
    .train_stats)."""
    from tqdm import tqdm

    from mp3d.generative.evaluation import ring_of_gaussians

    cls = RING_KINDS[check_choice("kind", kind, tuple(RING_KINDS))]
    check_int("steps", steps, 1)
    check_int("batch_size", batch_size, 1)
    check_float("lr", lr, 0.0, 1.0, exclusive_minimum=True)
    check_int("n_samples", n_samples, 1)
    settings = {"latent_dim": 256, "hidden_g": (128, 128), "hidden_d": (128, 128)}
    settings.update(activation="relu", data_shape=(2,))
    settings.update(options)
    torch.manual_seed(seed)
    model = cls(**settings)
    data = torch.Generator().manual_seed(seed + 1)
    optimizers = model.configure_optimizers(lr)
    labels = torch.zeros(batch_size, dtype=torch.int64)
    if minutes is not None:
        check_float("minutes", minutes, 0.0, exclusive_minimum=True)
    start = time.perf_counter()
    model.train()
    done = 0
    for _ in tqdm(range(steps), desc=f"ring {kind}", disable=not progress):
        batch = ring_of_gaussians(batch_size, modes, radius, std, generator=data)
        model.training_step(batch, labels, optimizers)
        done += 1
        if minutes is not None and time.perf_counter() - start > 60 * minutes:
            break
    model.eval()
    model.train_stats = {"steps": done, "seconds": time.perf_counter() - start}
    samples = model.sample(n_samples, generator=torch.Generator().manual_seed(seed + 2))
    return (samples, model) if return_model else samples


SPECS = [
    ModelSpec(
        "gan",
        GAN,
        "grey",
        "the original GAN: MLPs, non-saturating (or minimax) generator loss",
        {"generator_loss": "non_saturating"},
        batch_size=64,
        lr=2e-4,
    ),
    ModelSpec(
        "dcgan",
        DCGAN,
        "grey",
        "DCGAN: transposed-convolution generator, strided-convolution discriminator",
        {"width": 32},
        batch_size=64,
        lr=2e-4,
    ),
    ModelSpec(
        "wgan-gp",
        WGANGP,
        "grey",
        "WGAN-GP: critic with gradient penalty 10, 5 critic steps per generator step",
        {"width": 32, "n_critic": 5, "gp_weight": 10.0},
        batch_size=64,
        lr=1e-4,
    ),
    ModelSpec(
        "cgan",
        CGAN,
        "grey",
        "class-conditional GAN (label embeddings into G and D); sample --label",
        {},
        batch_size=64,
        lr=2e-4,
    ),
    ModelSpec(
        "unrolled",
        UnrolledGAN,
        "grey",
        "unrolled GAN: the generator trained through 5 unrolled discriminator steps",
        {"unrolled_steps": 5},
        batch_size=64,
        lr=2e-4,
    ),
]

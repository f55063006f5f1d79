"""Latent-variable models of binarised digits: the VAE (Kingma & Welling 2014) and the
beta-VAE (Higgins et al. 2017) here, the VQ-VAE with a PixelCNN prior in
mp3d.generative.vqvae; SPECS lists all three.

VAE: a diagonal-Gaussian encoder q(z|x) = N(mu(x), diag sigma(x)^2), the prior
p(z) = N(0, I) and a Bernoulli decoder p(x|z) (independent pixels with logits f(z)). It
trains on the negative ELBO per image in nats,

    -ELBO(x) = E_q[-log p(x|z)] + KL(q(z|x) || p(z)),

the expectation by one reparameterised draw z = mu + sigma * eps, the KL in closed form;
beta-VAE weights the KL term by beta in training only (loss = reconstruction + beta KL).

Test NLL by importance sampling with q as the proposal (the IWAE bound, Burda et al. 2016):

    -log p(x) ~= -log (1/k) sum_i p(x|z_i) p(z_i) / q(z_i|x),   z_i ~ q(z|x).

The average inside the log is an unbiased estimate of p(x), so by Jensen the estimate is
an upper bound on -log p(x) in expectation (not for every draw); its expectation falls
monotonically with k, equals -ELBO at k = 1 and tends to -log p(x) as k grows. The k draws
go through the decoder in chunks of at most ``nll_chunk`` decoder evaluations, with a running
log-sum-exp, so memory stays bounded whatever k is.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from mp3d.generative.base import (
    ImageModel,
    ModelSpec,
    bernoulli_log_prob,
    bernoulli_sample,
    check_image_shape,
    check_images,
)
from mp3d.nn import MLP, ResBlock2d
from mp3d.training import check_float, check_int

__all__ = [
    "SPECS",
    "VAE",
    "ConvDecoder",
    "ConvEncoder",
    "gaussian_kl",
]

ARCHS = ("mlp", "conv")
LOG_2PI = math.log(2.0 * math.pi)


def gaussian_kl(mean: torch.Tensor, log_std: torch.Tensor) -> torch.Tensor:
    """KL(N(mean, diag exp(log_std)^2) || N(0, I)) summed over the last dimension, in nats:
    0.5 sum(mean^2 + sigma^2 - 1) - sum(log sigma)."""
    return (0.5 * (mean.square() + torch.exp(2.0 * log_std) - 1.0) - log_std).sum(-1)


def _gaussian_log_prob(z: torch.Tensor, mean: torch.Tensor, log_std: torch.Tensor) -> torch.Tensor:
    """log N(z; mean, diag exp(log_std)^2) summed over the last dimension."""
    eps = (z - mean) * torch.exp(-log_std)
    return (-0.5 * eps.square() - log_std - 0.5 * LOG_2PI).sum(-1)


class ConvEncoder(nn.Module):
    """[B,C,H,W] -> [B,out,H/4,W/4]: two 4x4 stride-2 convolutions (width, 2 width) with
    ReLU, ``res_blocks`` ResBlock2d at the quarter resolution, a 1x1 convolution out."""

    def __init__(self, in_channels: int, width: int, out_channels: int, res_blocks: int = 1):
        super().__init__()
        layers: list[nn.Module] = [
            nn.Conv2d(in_channels, width, 4, 2, 1),
            nn.ReLU(),
            nn.Conv2d(width, 2 * width, 4, 2, 1),
        ]
        layers += [ResBlock2d(2 * width, 2 * width) for _ in range(res_blocks)]
        layers += [nn.ReLU(), nn.Conv2d(2 * width, out_channels, 1)]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class ConvDecoder(nn.Module):
    """[B,in,h,w] -> [B,out,4h,4w] logits: a 3x3 convolution to 2 width, ``res_blocks``
    ResBlock2d, two 4x4 stride-2 transposed convolutions (width, out) with ReLU between."""

    def __init__(self, in_channels: int, width: int, out_channels: int, res_blocks: int = 1):
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(in_channels, 2 * width, 3, padding=1)]
        layers += [ResBlock2d(2 * width, 2 * width) for _ in range(res_blocks)]
        layers += [
            nn.ReLU(),
            nn.ConvTranspose2d(2 * width, width, 4, 2, 1),
            nn.ReLU(),
            nn.ConvTranspose2d(width, out_channels, 4, 2, 1),
        ]
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)

    @property
    def output_bias(self) -> torch.Tensor:
        return self.net[-1].bias


class VAE(ImageModel):
    """Gaussian-encoder, Bernoulli-decoder VAE (module docstring) on binarised images.

    ``arch="mlp"``: encoder MLP(D -> hidden -> 2 latent), decoder MLP(latent -> reversed
    hidden -> D); ``arch="conv"``: ConvEncoder/ConvDecoder of ``width`` to a
    (H/4, W/4) grid, with a linear layer to and from the latent vector. ``beta`` weights
    the KL term of the training loss only; ``nll_samples`` is the k of the
    importance-sampled NLL, drawn ``nll_chunk`` decoder evaluations at a time.
    """

    view = "binarised"
    nll_kind = "bound"

    def __init__(
        self,
        latent_dim: int = 32,
        hidden: Sequence[int] = (512, 256),
        arch: str = "mlp",
        width: int = 32,
        beta: float = 1.0,
        nll_samples: int = 1000,
        nll_chunk: int = 16384,
        image_shape: Sequence[int] = (1, 28, 28),
    ) -> None:
        super().__init__()
        check_int("latent_dim", latent_dim, 1, 4096)
        if arch not in ARCHS:
            raise ValueError(f"arch must be one of {ARCHS}, got {arch!r}")
        hidden = tuple(hidden)
        if not all(isinstance(h, int) and not isinstance(h, bool) and h >= 1 for h in hidden):
            raise ValueError(f"hidden must be a sequence of ints >= 1, got {hidden!r}")
        check_int("width", width, 1, 4096)
        check_float("beta", beta, 0.0, 1e6)
        check_int("nll_samples", nll_samples, 1)
        check_int("nll_chunk", nll_chunk, 1)
        self.image_shape = check_image_shape(image_shape, 4 if arch == "conv" else 1)
        self.latent_dim, self.arch, self.beta = latent_dim, arch, float(beta)
        self.nll_samples, self.nll_chunk = nll_samples, nll_chunk
        channels, height, width_px = self.image_shape
        if arch == "mlp":
            self.encoder = MLP(self.n_dims, hidden, 2 * latent_dim)
            self.decoder = MLP(latent_dim, hidden[::-1], self.n_dims)
        else:
            grid = (2 * width, height // 4, width_px // 4)
            self.encoder = nn.Sequential(
                ConvEncoder(channels, width, 2 * width),
                nn.Flatten(),
                nn.ReLU(),
                nn.Linear(math.prod(grid), 2 * latent_dim),
            )
            self.decoder = nn.Sequential(
                nn.Linear(latent_dim, math.prod(grid)),
                nn.ReLU(),
                nn.Unflatten(1, grid),
                ConvDecoder(2 * width, width, channels),
            )

    def _output_bias(self) -> torch.Tensor:
        if self.arch == "mlp":
            return self.decoder.net[-1].bias
        return self.decoder[-1].output_bias

    @torch.no_grad()
    def on_train_start(self, batch: torch.Tensor) -> None:
        """Starts the decoder's output bias at the logits of the batch's pixel means."""
        mean = batch.float().mean(0).clamp(1e-3, 1 - 1e-3)
        bias = self._output_bias()
        bias.copy_(torch.logit(mean).flatten() if self.arch == "mlp" else torch.logit(mean.mean()))

    # --- the two networks ----------------------------------------------------------------

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x [B,C,H,W] -> q(z|x)'s mean and log standard deviation, each [B, latent_dim]."""
        check_images(x, self.image_shape)
        h = self.encoder(x.flatten(1) if self.arch == "mlp" else x)
        mean, log_std = h.chunk(2, dim=-1)
        return mean, log_std

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """z [..., latent_dim] -> Bernoulli logits [..., C,H,W]."""
        lead = z.shape[:-1]
        logits = self.decoder(z.reshape(-1, self.latent_dim))
        return logits.reshape(*lead, *self.image_shape)

    @staticmethod
    def reparameterise(
        mean: torch.Tensor,
        log_std: torch.Tensor,
        k: int | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """z = mean + exp(log_std) * eps, eps ~ N(0, I): [B, L] (or [k, B, L] with k draws),
        differentiable in mean and log_std."""
        shape = mean.shape if k is None else (k, *mean.shape)
        eps = torch.randn(shape, generator=generator, dtype=mean.dtype, device=mean.device)
        return mean + torch.exp(log_std) * eps

    # --- objectives ----------------------------------------------------------------------

    def elbo_parts(
        self, x: torch.Tensor, k: int = 1, generator: torch.Generator | None = None
    ) -> dict[str, torch.Tensor]:
        """ "reconstruction" E_q[-log p(x|z)] (an average over k reparameterised draws) and the
        closed-form "kl" KL(q(z|x) || p(z)), each [B] in nats."""
        check_int("k", k, 1)
        mean, log_std = self.encode(x)
        z = self.reparameterise(mean, log_std, k, generator)  # [k, B, L]
        reconstruction = -bernoulli_log_prob(self.decode(z), x).mean(0)
        return {"reconstruction": reconstruction, "kl": gaussian_kl(mean, log_std)}

    def elbo(
        self, x: torch.Tensor, k: int = 1, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """The evidence lower bound [B] in nats (reconstruction by k draws, KL exact):
        at most log p(x) in expectation, whatever beta."""
        parts = self.elbo_parts(x, k, generator)
        return -(parts["reconstruction"] + parts["kl"])

    def loss(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        """Mean over the batch of reconstruction + beta KL (the negative ELBO at beta = 1),
        with the parts and the negative ELBO logged, in nats per image."""
        parts = self.elbo_parts(x)
        reconstruction, kl = parts["reconstruction"].mean(), parts["kl"].mean()
        loss = reconstruction + self.beta * kl
        logged = {"reconstruction": float(reconstruction.detach()), "kl": float(kl.detach())}
        logged["neg_elbo"] = logged["reconstruction"] + logged["kl"]
        return loss, logged

    def log_weights(
        self, x: torch.Tensor, k: int, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """log p(x|z_i) + log p(z_i) - log q(z_i|x) for z_i ~ q(z|x): [k, B] (k draws at once;
        nll() chunks them)."""
        mean, log_std = self.encode(x)
        return self._log_weights(x, mean, log_std, k, generator)

    def _log_weights(self, x, mean, log_std, k, generator) -> torch.Tensor:
        z = self.reparameterise(mean, log_std, k, generator)
        log_pz = (-0.5 * z.square() - 0.5 * LOG_2PI).sum(-1)
        return bernoulli_log_prob(self.decode(z), x) + log_pz - _gaussian_log_prob(z, mean, log_std)

    @torch.no_grad()
    def nll(
        self, x: torch.Tensor, k: int | None = None, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Importance-sampled -log p(x) [B] in nats with k draws (default nll_samples):
        -logsumexp_i(log w_i) + log k, an upper bound of -log p(x) in expectation."""
        k = self.nll_samples if k is None else check_int("k", k, 1)
        mean, log_std = self.encode(x)
        per_chunk = max(1, self.nll_chunk // max(1, len(x)))
        total = torch.full((len(x),), -math.inf, dtype=torch.float64, device=x.device)
        done = 0
        while done < k:
            m = min(per_chunk, k - done)
            log_w = self._log_weights(x, mean, log_std, m, generator).double()
            total = torch.logaddexp(total, torch.logsumexp(log_w, 0))
            done += m
        return (math.log(k) - total).float()

    @torch.no_grad()
    def sample(
        self, n: int, temperature: float = 1.0, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """n images [n,C,H,W] in {0,1}: z ~ N(0, temperature^2 I), decoded to Bernoulli
        means, then sampled."""
        check_int("n", n, 0)
        check_float("temperature", temperature, 0.0, exclusive_minimum=True)
        device = generator.device if generator is not None else self._output_bias().device
        z = temperature * torch.randn(n, self.latent_dim, generator=generator, device=device)
        probs = torch.sigmoid(self.decode(z.to(self._output_bias().device)))
        return bernoulli_sample(probs, generator)


def _vqvae(**options) -> ImageModel:
    from mp3d.generative.vqvae import VQVAE

    return VQVAE(**options)


SPECS = [
    ModelSpec(
        "vae",
        VAE,
        "binarised",
        "VAE: Gaussian MLP encoder, Bernoulli decoder, ELBO; importance-sampled NLL (k=1000)",
        {"latent_dim": 32, "hidden": (512, 256), "arch": "mlp", "beta": 1.0},
        batch_size=128,
        lr=1e-3,
    ),
    ModelSpec(
        "beta-vae",
        VAE,
        "binarised",
        "beta-VAE (beta=4 on the KL in training); importance-sampled NLL (k=1000)",
        {"latent_dim": 32, "hidden": (512, 256), "arch": "mlp", "beta": 4.0},
        batch_size=128,
        lr=1e-3,
    ),
    ModelSpec(
        "vqvae",
        _vqvae,
        "binarised",
        "VQ-VAE (7x7 grid of 32 codes, EMA codebook) with a jointly trained gated PixelCNN prior",
        {},
        batch_size=64,
        lr=1e-3,
    ),
]

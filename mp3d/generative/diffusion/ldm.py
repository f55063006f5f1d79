"""Latent diffusion (Rombach et al. 2022) on digits: a KL-regularised convolutional
autoencoder maps grey digits [B,1,28,28] to latents [B,C,7,7] (C = latent_channels, 4 by
default: 196 numbers for 784 pixels), and a small U-Net diffuses the latents.

Training is in two phases, both inside the trainer's one training_step:

1. the first ``ae_steps`` steps train the autoencoder alone: the Bernoulli cross-entropy of
   the grey pixels (summed per image, the decoder giving logits) plus kl_weight times the KL
   of its diagonal-Gaussian posterior to N(0, I), by one reparameterised draw;
2. then the autoencoder is frozen, the latent scale is set to 1 / std of the first
   diffusion batch's latents (LDM's rescaling, so the diffused latents have unit variance),
   and every later step trains the diffusion model on scale * z, z ~ q(z | x) drawn without
   gradient to the autoencoder.

Sampling draws scaled latents by DDPM or DDIM (unclipped) and decodes sigmoid(decoder(z /
scale)). This autoencoder is this module's own: mp3d.generative.latent's VAE has a vector
latent and a binarised decoder, not the spatial latent and grey decoder latent diffusion
wants.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from mp3d.generative.diffusion.models import DiffusionModel
from mp3d.generative.diffusion.schedule import _randn
from mp3d.nn import ResBlock2d
from mp3d.nn.conv import group_norm
from mp3d.training import check_float, check_int

__all__ = ["LatentAutoencoder", "LatentDiffusion"]


class LatentAutoencoder(nn.Module):
    """Grey digits [B,1,28,28] in [0,1] <-> latents [B,C,7,7]: encode gives the posterior's
    mean and log-std, decode the pixel logits. Encoder: a 3x3 conv (width channels) at 28
    pixels, stride-2 convs to 14 (width) and 7 pixels (2 width channels) each followed by a
    ResBlock2d, GroupNorm-SiLU and a 1x1 conv to mean and log-std; the decoder mirrors it
    with nearest upsampling and a conv in place of each stride-2 conv. No residual block
    runs at 28 pixels: encoding every batch is part of each diffusion step's cost."""

    def __init__(self, latent_channels: int = 4, width: int = 32, kl_weight: float = 3e-2):
        super().__init__()
        self.latent_channels = check_int("latent_channels", latent_channels, 1, 64)
        check_int("width", width, 1, 1024)
        self.kl_weight = check_float("kl_weight", kl_weight, 0.0, 100.0)
        w, w2 = width, 2 * width
        self.encoder = nn.Sequential(
            nn.Conv2d(1, w, 3, padding=1),
            nn.SiLU(),
            nn.Conv2d(w, w, 3, stride=2, padding=1),  # 14
            ResBlock2d(w, w),
            nn.Conv2d(w, w2, 3, stride=2, padding=1),  # 7
            ResBlock2d(w2, w2),
            group_norm(w2),
            nn.SiLU(),
            nn.Conv2d(w2, 2 * latent_channels, 1),
        )
        self.decoder = nn.Sequential(
            nn.Conv2d(latent_channels, w2, 3, padding=1),
            ResBlock2d(w2, w2),
            nn.Upsample(scale_factor=2, mode="nearest"),  # 14
            nn.Conv2d(w2, w, 3, padding=1),
            ResBlock2d(w, w),
            nn.Upsample(scale_factor=2, mode="nearest"),  # 28
            nn.Conv2d(w, w, 3, padding=1),
            group_norm(w),
            nn.SiLU(),
            nn.Conv2d(w, 1, 3, padding=1),
        )

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x [B,1,28,28] -> mean, log-std [B,C,7,7] of q(z | x)."""
        if x.dim() != 4 or tuple(x.shape[1:]) != (1, 28, 28):
            raise ValueError(f"x must be [B, 1, 28, 28] grey images in [0,1], got {list(x.shape)}")
        mean, log_std = self.encoder(x).chunk(2, dim=1)
        return mean, log_std.clamp(-10.0, 5.0)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Latents [B,C,7,7] -> pixel logits [B,1,28,28]."""
        return self.decoder(z)

    def draw(
        self, x: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """z ~ q(z | x) by reparameterisation, with the posterior's mean and log-std."""
        mean, log_std = self.encode(x)
        return mean + log_std.exp() * _randn(mean.shape, generator, mean), mean, log_std

    def loss(
        self, x: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """Per image mean of cross-entropy (nats, summed over pixels) + kl_weight * KL."""
        z, mean, log_std = self.draw(x, generator)
        logits = self.decode(z)
        recon = F.binary_cross_entropy_with_logits(logits, x, reduction="none").flatten(1).sum(1)
        kl = 0.5 * (mean**2 + (2 * log_std).exp() - 1 - 2 * log_std).flatten(1).sum(1)
        loss = (recon + self.kl_weight * kl).mean()
        with torch.no_grad():
            mse = F.mse_loss(torch.sigmoid(logits), x)
        return loss, {
            "recon": float(recon.detach().mean()),
            "kl": float(kl.detach().mean()),
            "ae_mse": float(mse),
        }


class LatentDiffusion(DiffusionModel):
    """Diffusion in the latent of a LatentAutoencoder (see the module docstring): the
    autoencoder's options (latent_channels, ae_width, kl_weight, ae_steps), then
    DiffusionModel's for the latent U-Net (no clipping of the predicted latent)."""

    def __init__(
        self,
        latent_channels: int = 4,
        ae_width: int = 32,
        kl_weight: float = 3e-2,
        ae_steps: int = 400,
        base_channels: int = 32,
        channel_mults: Sequence[int] = (1, 2),
        **options,
    ):
        ae_steps = check_int("ae_steps", ae_steps, 1)
        check_int("latent_channels", latent_channels, 1, 64)
        super().__init__(
            space=(latent_channels, 7, 7),
            base_channels=base_channels,
            channel_mults=channel_mults,
            **options,
        )
        self.ae_steps = ae_steps
        self.autoencoder = LatentAutoencoder(latent_channels, ae_width, kl_weight)
        self.register_buffer("latent_scale", torch.zeros(()))  # 0: not set yet

    @property
    def phase(self) -> str:
        """The training phase: "autoencoder" for the first ae_steps steps, then "diffusion"."""
        return "autoencoder" if int(self.steps_done) < self.ae_steps else "diffusion"

    def diffusion_steps(self) -> int:
        return max(int(self.steps_done) - self.ae_steps, 0)

    def configure_optimizers(self, lr: float) -> list[torch.optim.Optimizer]:
        """[Adam over the autoencoder, Adam over the latent U-Net]."""
        return [
            torch.optim.Adam(self.autoencoder.parameters(), lr=lr),
            torch.optim.Adam(self.net.parameters(), lr=lr),
        ]

    @torch.no_grad()
    def to_space(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Scaled latent draws scale * z, z ~ q(z | x) (no gradient to the autoencoder)."""
        if float(self.latent_scale) == 0:
            raise RuntimeError("the latent scale is not set: train the autoencoder phase first")
        z, _, _ = self.autoencoder.draw(x, generator)
        return z * self.latent_scale

    @torch.no_grad()
    def from_space(self, z: torch.Tensor) -> torch.Tensor:
        scale = float(self.latent_scale) or 1.0
        return torch.sigmoid(self.autoencoder.decode(z / scale))

    @torch.no_grad()
    def set_latent_scale(self, x: torch.Tensor, generator: torch.Generator | None = None) -> float:
        """latent_scale <- 1 / std of the latent draws of the images x."""
        z, _, _ = self.autoencoder.draw(x, generator)
        self.latent_scale.fill_(1.0 / float(z.std().clamp_min(1e-6)))
        return float(self.latent_scale)

    def loss(
        self,
        x: torch.Tensor,
        labels: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """The autoencoder's loss in its phase, then the simple loss on scaled latents."""
        if self.phase == "autoencoder":
            return self.autoencoder.loss(x, generator)
        mse = self.diffusion_loss(self.to_space(x, generator), labels, generator)
        return mse, {"mse": float(mse.detach())}

    def training_step(
        self,
        x: torch.Tensor,
        labels: torch.Tensor,
        optimizers: list[torch.optim.Optimizer],
        grad_clip: float = 0.0,
    ) -> dict[str, float]:
        """One step of the current phase (the latent scale is set on the first diffusion step)."""
        generator = self.step_generator()
        diffusing = self.phase == "diffusion"
        if not diffusing:
            loss, parts = self.autoencoder.loss(x, generator)
            self._optimise(loss, optimizers[0], self.autoencoder.parameters(), grad_clip)
        else:
            if float(self.latent_scale) == 0:
                self.set_latent_scale(x, generator)
            loss, parts = self.loss(x, labels if self.conditional else None, generator)
            self._optimise(loss, optimizers[1], self.net.parameters(), grad_clip)
            parts["latent_scale"] = float(self.latent_scale)
        self.steps_done += 1
        if diffusing:
            self.update_ema()
        return {"loss": float(loss.detach()), **parts}

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """The autoencoder's reconstruction sigmoid(decode(mean(x))) [B,1,28,28]."""
        mean, _ = self.autoencoder.encode(x)
        return torch.sigmoid(self.autoencoder.decode(mean))

"""Denoising diffusion models of grey digits: DDPM (Ho et al. 2020) with linear or cosine
schedules, DDIM sampling (Song et al. 2021), classifier-free guidance (Ho & Salimans 2022)
and latent diffusion (Rombach et al. 2022).

- ``schedule``: the beta schedules, NoiseSchedule (q(x_t | x_0), the posterior
  q(x_{t-1} | x_t, x_0), x_0 <-> eps), and ddpm_sample / ddim_sample over any
  epsilon-predictor ``eps_fn(x_t, t)``; t = 0..T-1 is DDPM's t = 1..T.
- ``models``: EpsilonNet (mp3d.nn.UNet on TimestepEmbedding + a label embedding with a null
  row), DiffusionModel (simple loss, guidance, EMA, the samplers) and DDPM on the pixels
  (x_0 = 2 x - 1 in [-1, 1]; sampled x_0 clipped to [-1, 1]).
- ``ldm``: LatentAutoencoder (4x7x7 latents) and LatentDiffusion, trained in two phases
  (autoencoder for ae_steps, then diffusion on its frozen, rescaled latents).

Sampling convention, for every model here: ``sample(n, temperature, generator,
labels=None, guidance=None, steps=None, eta=None)`` returns [n,1,28,28] in [0,1];
steps=None is ancestral DDPM over all T steps, steps=k is DDIM on k of the T timesteps
(eta=None means 0, deterministic given x_T; eta=1 with k=T is DDPM's sampler); temperature
scales x_T and every step's fresh noise. Guidance weight w: eps = (1+w) eps(x,c) - w
eps(x,null), w = 0 the plain conditional model; the guided specs default to w = 1. Labels:
one int or [n] ints in 0..9, -1 for the null label; None gives arange(n) % 10.

SPECS (T = 1000 steps and the linear schedule for all; the U-Nets are sized for CPU
budgets of minutes, see each spec's options):

- ``ddpm``: unconditional pixel DDPM;
- ``ddpm-cfg``: class-conditional pixel DDPM with classifier-free guidance (cond_drop 0.1);
- ``ldm``: unconditional latent diffusion;
- ``ldm-cfg``: class-conditional latent diffusion with classifier-free guidance.
"""

from mp3d.generative.base import ModelSpec
from mp3d.generative.diffusion.ldm import LatentAutoencoder, LatentDiffusion
from mp3d.generative.diffusion.models import DDPM, DiffusionModel, EpsilonNet
from mp3d.generative.diffusion.schedule import (
    SCHEDULES,
    VARIANCES,
    NoiseSchedule,
    cosine_betas,
    ddim_sample,
    ddim_timesteps,
    ddpm_sample,
    linear_betas,
)

__all__ = [
    "DDPM",
    "SCHEDULES",
    "SPECS",
    "VARIANCES",
    "DiffusionModel",
    "EpsilonNet",
    "LatentAutoencoder",
    "LatentDiffusion",
    "NoiseSchedule",
    "cosine_betas",
    "ddim_sample",
    "ddim_timesteps",
    "ddpm_sample",
    "linear_betas",
]

PIXEL_OPTIONS = {
    "timesteps": 1000,
    "schedule": "linear",
    "base_channels": 32,
    "channel_mults": [1, 2, 2],
    "n_res_blocks": 1,
    "patch": 2,
    "ema_decay": 0.995,
}
LATENT_OPTIONS = {
    "latent_channels": 4,
    "ae_width": 32,
    "kl_weight": 1e-3,
    "ae_steps": 1000,
    "timesteps": 1000,
    "schedule": "linear",
    "base_channels": 64,
    "channel_mults": [1, 2],
    "n_res_blocks": 1,
    "ema_decay": 0.995,
}
GUIDED = {"num_classes": 10, "cond_drop": 0.1, "guidance": 1.0}

SPECS = [
    ModelSpec("ddpm", DDPM, "grey", "DDPM on the pixels (DDIM with steps=k)", PIXEL_OPTIONS),
    ModelSpec(
        "ddpm-cfg",
        DDPM,
        "grey",
        "class-conditional DDPM with classifier-free guidance",
        {**PIXEL_OPTIONS, **GUIDED},
    ),
    ModelSpec(
        "ldm",
        LatentDiffusion,
        "grey",
        "latent diffusion in a 4x7x7 autoencoder latent",
        LATENT_OPTIONS,
    ),
    ModelSpec(
        "ldm-cfg",
        LatentDiffusion,
        "grey",
        "class-conditional latent diffusion with classifier-free guidance",
        {**LATENT_OPTIONS, **GUIDED},
    ),
]

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

SPECS (T = 1000 steps and the linear schedule for all, EMA decay 0.995; sized for CPU
budgets of minutes on 2 cores; the measurements behind each choice are in the README):

- ``ddpm``: unconditional pixel DDPM; U-Net base 32, mults 1-2-2, one res block a level,
  run on 2x2 pixel-unshuffled images (4x14x14) with a full-resolution two-conv head
  (1.08M parameters; 3x the steps per second of the same U-Net at full resolution,
  ``patch=1``), predicting the velocity v (``prediction="v"``: an eps-predictor's x_0,
  (x_t - sqrt(1 - abar) eps) / sqrt(abar), magnifies its errors ~150x at high noise, and
  a third of its samples ended on grey, noise-filled backgrounds), the loss weighted by
  Min-SNR (``min_snr=5``, Hang et al.'s gamma: takes weight off the nearly clean
  timesteps), batches of 32 (in a 10-minute CPU budget more steps beat bigger batches);
  sample it with DDIM at eta 1 (``steps=50, eta=1``), its best FD per second;
- ``ddpm-cfg``: the same, class-conditional with classifier-free guidance (cond_drop 0.1,
  default weight 1);
- ``ldm``: unconditional latent diffusion: a 4x7x7 KL autoencoder (width 32, KL weight
  0.03) trained for the first 400 steps, then a latent U-Net of base 32, mults 1-2 (0.65M
  parameters), a few times cheaper a step than the pixel U-Net, predicting v;
- ``ldm-cfg``: the same, class-conditional with classifier-free guidance; an
  eps-predictor.

Short CPU runs (one thread each; figures of one session):

- ddpm, 5 minutes on a quiet machine: the full-resolution U-Net (patch=1) took 239 steps
  (0.79/s) and drew digit-like blobs on uneven grey backgrounds; patch=2 with the U-Net's
  output shuffled back took 858 steps (2.86/s) and drew digits under a striped texture;
  patch=2 with the full-resolution head (the default) took 725 steps (2.41/s) and drew
  recognisable 7, 5, 9, 3, 1, 4 and 2 in about half the grid, without stripes, some on
  speckled grey backgrounds.
- ddpm-cfg, 12 minutes on a busy machine (321 steps, before the head): guidance w = 3 drew
  class-specific digits, row by row.
- ldm: the autoencoder reconstructs digits well from 150 steps on; on cached latents a
  latent U-Net drew some clean digits among blobs after ~1,100 steps at lr 1e-3, and only
  blobs after 900 diffusion steps of a 10-minute busy run (the trainer's lr had decayed by
  then): latent diffusion needs thousands of steps. KL weight 0.03 rather than 0.001 cost
  2.5 nats of reconstruction (51.5 vs 49.1 per image) for a smoother latent (KL 159 vs 522
  nats), and drew slightly more digit-like samples after 560 steps.
"""

from mp3d.generative.base import ModelSpec
from mp3d.generative.diffusion.ldm import LatentAutoencoder, LatentDiffusion
from mp3d.generative.diffusion.models import DDPM, DiffusionModel, EpsilonNet
from mp3d.generative.diffusion.schedule import (
    PREDICTIONS,
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
    "PREDICTIONS",
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
    "prediction": "v",
    "min_snr": 5.0,
}
LATENT_OPTIONS = {
    "latent_channels": 4,
    "ae_width": 32,
    "kl_weight": 3e-2,
    "ae_steps": 400,
    "timesteps": 1000,
    "schedule": "linear",
    "base_channels": 32,
    "channel_mults": [1, 2],
    "n_res_blocks": 1,
    "ema_decay": 0.995,
}
GUIDED = {"num_classes": 10, "cond_drop": 0.1, "guidance": 1.0}

SPECS = [
    ModelSpec(
        "ddpm",
        DDPM,
        "grey",
        "DDPM on the pixels (DDIM with steps=k)",
        PIXEL_OPTIONS,
        batch_size=32,
    ),
    ModelSpec(
        "ddpm-cfg",
        DDPM,
        "grey",
        "class-conditional DDPM with classifier-free guidance",
        {**PIXEL_OPTIONS, **GUIDED},
        batch_size=32,
    ),
    ModelSpec(
        "ldm",
        LatentDiffusion,
        "grey",
        "latent diffusion in a 4x7x7 autoencoder latent",
        {**LATENT_OPTIONS, "prediction": "v"},
    ),
    ModelSpec(
        "ldm-cfg",
        LatentDiffusion,
        "grey",
        "class-conditional latent diffusion with classifier-free guidance",
        {**LATENT_OPTIONS, **GUIDED},
    ),
]

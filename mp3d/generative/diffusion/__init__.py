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
budgets of minutes on 2 cores):

- ``ddpm``: unconditional pixel DDPM; U-Net base 32, mults 1-2-2, one res block a level,
  run on 2x2 pixel-unshuffled images (4x14x14) with a full-resolution two-conv head
  (1.08M parameters; 3x the steps per second of the same U-Net at full resolution,
  ``patch=1``), predicting the velocity v (``prediction="v"``): the eps-predictor's x_0,
  (x_t - sqrt(1 - abar) eps) / sqrt(abar), magnifies its errors ~150x at high noise, the
  sampler clips it, and a third of its samples ended on grey, noise-filled backgrounds;
  10 minutes on 1 thread, two side by side (about 840 steps each), FD with 50 DDIM steps:
  eps 1753.7, v 364.8, with clean black backgrounds; and with Min-SNR weighting
  (``min_snr=5``, the paper's gamma), which down-weights the nearly clean timesteps: two
  runs side by side under the same load, FD with 50 DDIM steps at eta 1 (eta 0): v 341.7
  (398.6) in 876 steps, v with min_snr 202.0 (252.1) in 943; 150.2 (191.0) in 1,445 steps
  beside a lighter job;
- ``ddpm-cfg``: the same, class-conditional with classifier-free guidance (cond_drop 0.1,
  default weight 1); with v, 10 minutes on 1 thread (725 steps) and 50 DDIM steps: FD 79.1
  and 99.8% conditional accuracy at weight 3 (the eps-predictor: about 1020 and 45%); with
  v and min_snr (1,470 steps, 50 DDIM steps at eta 1): FD 71.8 and 100% at weight 3, 59.6
  and 93.0% at weight 0;
- ``ldm``: unconditional latent diffusion: a 4x7x7 KL autoencoder (width 32, KL weight
  0.03) trained for the first 400 steps, then a latent U-Net of base 32, mults 1-2 (0.65M
  parameters), a few times cheaper a step than the pixel U-Net, predicting v: 10 minutes
  on 1 thread (2,674 steps, beside another job), FD 133.4 with 50 DDIM steps and 113.5
  with 50 DDIM steps at eta 1 (the eps-predictor, 4,510 steps on a faster machine: 306.0
  and, with all 1,000 ancestral steps on 500 samples, 134.3);
- ``ldm-cfg``: the same, class-conditional with classifier-free guidance; still an
  eps-predictor (v is not yet measured on it).

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

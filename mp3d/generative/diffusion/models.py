"""Denoising diffusion models of digits: the epsilon-predicting U-Net, the training and
sampling machinery every diffusion model here shares (with classifier-free guidance and
an EMA of the weights), and the pixel-space DDPM.

Conventions (the package docstring has the whole list):

- Images are grey digits in [0, 1]; the pixel model diffuses x_0 = 2 x - 1 in [-1, 1] and
  clips its predicted x_0 to [-1, 1] while sampling.
- ``loss`` is the simple loss: E_{t, eps} |eps - eps_theta(x_t, t)|^2 (mean over pixels),
  t uniform in 0..T-1; with ``min_snr`` = gamma > 0 each t's term is weighted by
  min(SNR_t, gamma) / SNR_t, SNR_t = alpha_bar_t / (1 - alpha_bar_t) (Hang et al. 2023's
  Min-SNR weighting for an epsilon-predictor: the nearly clean timesteps, whose noise is
  hard to tell and matters little, count less; gamma = 5 in the paper).
- ``prediction``: "eps" (the network predicts the noise) or "v" (it predicts Salimans &
  Ho's velocity v = sqrt(abar_t) eps - sqrt(1 - abar_t) x_0, the loss is on v, and the
  samplers get eps from it: NoiseSchedule.eps_from_v). With min_snr, v's weight is
  min(SNR_t, gamma) / (SNR_t + 1), the same per-t weight on x_0's error as eps's.
- Classifier-free guidance (Ho & Salimans 2022): a model with ``num_classes > 0`` adds a
  learned label embedding to the timestep embedding; row ``num_classes`` of the table is
  the null label, put in place of the true one with probability ``cond_drop`` in training.
  Guided noise: eps = (1 + w) eps(x, c) - w eps(x, null); w = 0 is the plain conditional
  model, larger w pushes samples towards their class. Label -1 asks for the null label (an
  unconditional sample of a guided model).
- ``sample(n, temperature, generator, labels=None, guidance=None, steps=None, eta=None)``:
  steps=None is DDPM's ancestral sampler over all T steps; steps=k is DDIM on k timesteps
  with eta (default 0: deterministic given x_T; eta needs steps). labels=None on a
  conditional model draws labels arange(n) % num_classes; guidance=None is the model's
  ``guidance`` option.
- Training draws t, eps and the dropped labels from a generator keyed by (the model's noise
  seed, steps taken), both saved in the state dict, so a resumed run repeats its draws.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from mp3d.data.mnist import epoch_generator
from mp3d.generative.base import GenerativeModel
from mp3d.generative.diffusion.schedule import (
    PREDICTIONS,
    SCHEDULES,
    VARIANCES,
    NoiseSchedule,
    _randn,
    ddim_sample,
    ddpm_sample,
)
from mp3d.nn import TimestepEmbedding, UNet
from mp3d.nn.conv import group_norm
from mp3d.training import check_choice, check_float, check_int

__all__ = ["DDPM", "DiffusionModel", "EpsilonNet"]


class EpsilonNet(nn.Module):
    """eps_theta(x_t, t[, labels]): [B,C,H,W] -> [B,C,H,W], a U-Net (mp3d.nn.UNet) conditioned
    on TimestepEmbedding(t) plus, when num_classes > 0, a label embedding (num_classes + 1
    rows; the last is the null label). ``patch`` > 1 runs the U-Net on
    pixel_unshuffle(x, patch) (patch^2 C channels at H/patch x W/patch: about patch^2 times
    cheaper) to base_channels features, then a full-resolution head: nearest upsampling,
    joined with x, a 3x3 conv, GroupNorm-SiLU and a 3x3 conv to C channels. (Shuffling the
    U-Net's output back instead gave each of the patch^2 pixel phases its own output
    weights, and early samples a striped texture.) The last conv starts at zero
    (eps_theta = 0)."""

    def __init__(
        self,
        channels: int,
        base_channels: int = 32,
        channel_mults: Sequence[int] = (1, 2, 2),
        n_res_blocks: int = 1,
        attention_levels: Sequence[int] = (),
        emb_dim: int = 128,
        dropout: float = 0.0,
        num_classes: int = 0,
        patch: int = 1,
    ):
        super().__init__()
        check_int("channels", channels, 1)
        check_int("emb_dim", emb_dim, 1)
        check_int("num_classes", num_classes, 0)
        self.patch = check_int("patch", patch, 1, 8)
        self.num_classes = num_classes
        self.time = TimestepEmbedding(emb_dim)
        self.label = nn.Embedding(num_classes + 1, emb_dim) if num_classes else None
        self.unet = UNet(
            channels * patch * patch,
            channels if patch == 1 else base_channels,
            base_channels,
            tuple(channel_mults),
            n_res_blocks,
            emb_dim=emb_dim,
            attention_levels=tuple(attention_levels),
            dropout=dropout,
        )
        self.head = None
        if patch > 1:
            self.head = nn.ModuleDict(
                {
                    "conv": nn.Conv2d(base_channels + channels, base_channels, 3, padding=1),
                    "norm": group_norm(base_channels),
                    "out": nn.Conv2d(base_channels, channels, 3, padding=1),
                }
            )
        last = self.unet.conv_out if self.head is None else self.head["out"]
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)

    @property
    def conv_out(self) -> nn.Conv2d:
        """The last conv (zero at the start)."""
        return self.unet.conv_out if self.head is None else self.head["out"]

    @property
    def null_label(self) -> int:
        return self.num_classes

    def forward(
        self, x: torch.Tensor, t: torch.Tensor, labels: torch.Tensor | None = None
    ) -> torch.Tensor:
        emb = self.time(t)
        if self.label is not None:
            if labels is None:
                raise ValueError("labels are required: this network is class-conditional")
            emb = emb + self.label(labels)
        elif labels is not None:
            raise ValueError("labels given to an unconditional network")
        if self.patch > 1:
            if x.shape[-1] % self.patch or x.shape[-2] % self.patch:
                raise ValueError(
                    f"x's height and width must be multiples of patch={self.patch}, "
                    f"got {list(x.shape)}"
                )
            h = self.unet(F.pixel_unshuffle(x, self.patch), emb)
            h = F.interpolate(h, scale_factor=self.patch, mode="nearest")
            h = self.head["conv"](torch.cat([h, x], dim=1))
            return self.head["out"](F.silu(self.head["norm"](h)))
        return self.unet(x, emb)


class DiffusionModel(GenerativeModel):
    """What every diffusion model here shares: a NoiseSchedule, an EpsilonNet on tensors of
    ``space`` = (C,H,W), the simple loss, guidance, an EMA copy of the network (sampled
    from when ema_decay > 0) and the two samplers. Subclasses map images to the diffused
    space (``to_space``) and back (``from_space``)."""

    view = "grey"
    nll_kind = None

    def __init__(
        self,
        space: Sequence[int],
        timesteps: int = 1000,
        schedule: str = "linear",
        base_channels: int = 32,
        channel_mults: Sequence[int] = (1, 2, 2),
        n_res_blocks: int = 1,
        attention_levels: Sequence[int] = (),
        emb_dim: int = 128,
        dropout: float = 0.0,
        patch: int = 1,
        num_classes: int = 0,
        cond_drop: float = 0.1,
        guidance: float = 1.0,
        variance: str = "posterior",
        clip: Sequence[float] | None = None,
        ema_decay: float = 0.995,
        min_snr: float = 0.0,
        prediction: str = "eps",
    ):
        super().__init__()
        check_int("timesteps", timesteps, 2, 100_000)
        self.min_snr = check_float("min_snr", min_snr, 0.0, 1e6)
        self.prediction = check_choice("prediction", prediction, PREDICTIONS)
        check_choice("schedule", schedule, SCHEDULES)
        check_choice("variance", variance, VARIANCES)
        self.cond_drop = check_float("cond_drop", cond_drop, 0.0, 1.0)
        self.guidance = check_float("guidance", guidance, 0.0, 100.0)
        self.ema_decay = check_float("ema_decay", ema_decay, 0.0, 1.0)
        if self.ema_decay == 1.0:
            raise ValueError("ema_decay must be < 1 (0 turns the EMA off), got 1.0")
        if clip is not None:
            if len(clip) != 2 or not float(clip[0]) < float(clip[1]):
                raise ValueError(f"clip must be None or [low, high] with low < high, got {clip}")
            clip = (float(clip[0]), float(clip[1]))
        self.clip = clip
        self.space = tuple(int(s) for s in space)
        self.schedule = NoiseSchedule.make(schedule, timesteps)
        self.variance = variance
        self.num_classes = num_classes
        self.conditional = num_classes > 0
        self.net = EpsilonNet(
            self.space[0],
            base_channels,
            channel_mults,
            n_res_blocks,
            attention_levels,
            emb_dim,
            dropout,
            num_classes,
            patch,
        )
        self.ema = None
        if self.ema_decay > 0:
            self.ema = copy.deepcopy(self.net).requires_grad_(False)
        self.register_buffer("steps_done", torch.zeros((), dtype=torch.int64))
        self.register_buffer("noise_seed", torch.randint(0, 2**62, (), dtype=torch.int64))

    # ------------------------------------------------------------------ training

    @property
    def timesteps(self) -> int:
        return self.schedule.timesteps

    def step_generator(self) -> torch.Generator:
        """The CPU generator of this training step's draws, fixed by (noise_seed, steps_done)."""
        return epoch_generator(int(self.noise_seed), int(self.steps_done))

    def _check_labels(self, labels: torch.Tensor | None, batch: int) -> torch.Tensor | None:
        if not self.conditional:
            return None
        if labels is None:
            raise ValueError("labels are required: this model is class-conditional")
        labels = torch.as_tensor(labels)
        if labels.shape != (batch,) or labels.dtype not in (torch.int32, torch.int64):
            raise ValueError(
                f"labels must be int64 [B={batch}], got {labels.dtype} {list(labels.shape)}"
            )
        if batch and (int(labels.min()) < 0 or int(labels.max()) >= self.num_classes):
            raise ValueError(f"labels must lie in 0..{self.num_classes - 1}")
        return labels.long()

    def diffusion_loss(
        self,
        x0: torch.Tensor,
        labels: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """The simple loss of a batch x0 [B,*space] in the diffused space: mean squared error
        of the predicted noise at t ~ U{0..T-1}; labels dropped to the null label with
        probability cond_drop."""
        if tuple(x0.shape[1:]) != self.space or x0.dim() != len(self.space) + 1:
            raise ValueError(
                f"x0 must be [B, {', '.join(map(str, self.space))}], got {list(x0.shape)}"
            )
        batch = x0.shape[0]
        labels = self._check_labels(labels, batch)
        device = generator.device if generator is not None else x0.device
        t = torch.randint(0, self.timesteps, (batch,), generator=generator, device=device)
        noise = _randn(x0.shape, generator, x0)
        if labels is not None:
            drop = torch.rand(batch, generator=generator, device=device) < self.cond_drop
            labels = torch.where(drop.to(labels.device), self.net.null_label, labels)
        t = t.to(x0.device)
        out = self.net(self.schedule.q_sample(x0, t, noise), t, labels)
        target = noise if self.prediction == "eps" else self.schedule.v_target(x0, t, noise)
        if not self.min_snr:
            return F.mse_loss(out, target)
        per_item = (out - target).pow(2).flatten(1).mean(1)
        return (self.loss_weights(t) * per_item).mean()

    def loss_weights(self, t: torch.Tensor) -> torch.Tensor:
        """The weight of each timestep's term in the loss [B] at t [B] (see the module
        docstring): min(SNR_t, min_snr) / SNR_t (eps) or / (SNR_t + 1) (v), or 1 with
        min_snr = 0."""
        if not self.min_snr:
            return torch.ones(t.shape, dtype=torch.float32, device=t.device)
        alpha_bar = self.schedule.alpha_bar.to(t.device)[t]
        snr = alpha_bar / (1.0 - alpha_bar)
        scale = snr if self.prediction == "eps" else snr + 1.0
        return (snr.clamp_max(self.min_snr) / scale).float()

    def to_space(self, x: torch.Tensor) -> torch.Tensor:
        """Images [B,1,28,28] in [0,1] -> the diffused tensors [B,*space]."""
        raise NotImplementedError

    def from_space(self, z: torch.Tensor) -> torch.Tensor:
        """Diffused tensors [B,*space] -> images [B,1,28,28] in [0,1]."""
        raise NotImplementedError

    def loss(
        self,
        x: torch.Tensor,
        labels: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """The simple loss of images x [B,1,28,28] in [0,1] (labels [B] when conditional)."""
        mse = self.diffusion_loss(self.to_space(x), labels, generator)
        return mse, {"mse": float(mse.detach())}

    def diffusion_steps(self) -> int:
        """Training steps the diffusion network has taken (its EMA's warm-up clock)."""
        return int(self.steps_done)

    def update_ema(self) -> None:
        """ema <- d ema + (1 - d) net, d = min(ema_decay, (1 + n) / (10 + n)) after n steps
        (the warm-up lets the average follow the fast early changes)."""
        if self.ema is None:
            return
        n = self.diffusion_steps()
        decay = min(self.ema_decay, (1 + n) / (10 + n))
        with torch.no_grad():
            for ema, live in zip(self.ema.parameters(), self.net.parameters(), strict=True):
                ema.lerp_(live, 1.0 - decay)
            for ema, live in zip(self.ema.buffers(), self.net.buffers(), strict=True):
                ema.copy_(live)

    def configure_optimizers(self, lr: float) -> list[torch.optim.Optimizer]:
        return [torch.optim.Adam(self.net.parameters(), lr=lr)]

    def _optimise(
        self,
        loss: torch.Tensor,
        optimizer: torch.optim.Optimizer,
        parameters,
        grad_clip: float,
    ) -> None:
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if grad_clip > 0:
            nn.utils.clip_grad_norm_(parameters, grad_clip)
        optimizer.step()

    def training_step(
        self,
        x: torch.Tensor,
        labels: torch.Tensor,
        optimizers: list[torch.optim.Optimizer],
        grad_clip: float = 0.0,
    ) -> dict[str, float]:
        """One Adam step on the simple loss (draws from step_generator), then the EMA."""
        loss, parts = self.loss(x, labels if self.conditional else None, self.step_generator())
        self._optimise(loss, optimizers[0], self.net.parameters(), grad_clip)
        self.steps_done += 1
        self.update_ema()
        return {"loss": float(loss.detach()), **parts}

    # ------------------------------------------------------------------ sampling

    @property
    def sampling_net(self) -> EpsilonNet:
        """The network samplers use: the EMA copy when there is one."""
        return self.ema if self.ema is not None else self.net

    def guided_eps(
        self,
        x: torch.Tensor,
        t: torch.Tensor,
        labels: torch.Tensor | None = None,
        guidance: float = 0.0,
        net: EpsilonNet | None = None,
    ) -> torch.Tensor:
        """eps_theta(x, t) of an unconditional model; of a conditional one, labels [B] (the
        null label as num_classes) guided with weight w: (1 + w) eps(x, c) - w eps(x, null),
        both evaluated in one batch."""
        net = net if net is not None else self.sampling_net
        if not self.conditional:
            out = net(x, t)
        elif guidance == 0:
            out = net(x, t, labels)
        else:
            null = torch.full_like(labels, net.null_label)
            both = net(torch.cat([x, x]), torch.cat([t, t]), torch.cat([labels, null]))
            cond, uncond = both.chunk(2)
            out = (1.0 + guidance) * cond - guidance * uncond
        # eps is affine in v: guiding v and converting is guiding eps
        return out if self.prediction == "eps" else self.schedule.eps_from_v(x, t, out)

    def _sampling_labels(self, labels, n: int, device: torch.device) -> torch.Tensor | None:
        if not self.conditional:
            if labels is not None:
                raise ValueError("labels given to an unconditional model (it has no classes)")
            return None
        if labels is None:
            return torch.arange(n, device=device) % self.num_classes
        labels = torch.as_tensor(labels)
        if labels.is_floating_point() or labels.dtype == torch.bool or labels.is_complex():
            raise ValueError(f"labels must be ints, got {labels.dtype}")
        if labels.dim() == 0:
            labels = labels.expand(n)
        if labels.shape != (n,):
            raise ValueError(
                f"labels must be one int or [n={n}] ints, got shape {list(labels.shape)}"
            )
        if n and (int(labels.min()) < -1 or int(labels.max()) >= self.num_classes):
            raise ValueError(
                f"labels must lie in 0..{self.num_classes - 1} (or -1: the null label), "
                f"got {labels.min().item()}..{labels.max().item()}"
            )
        labels = labels.long().to(device)
        return torch.where(labels < 0, self.net.null_label, labels)

    @torch.no_grad()
    def sample_space(
        self,
        n: int,
        temperature: float = 1.0,
        generator: torch.Generator | None = None,
        labels=None,
        guidance: float | None = None,
        steps: int | None = None,
        eta: float | None = None,
        noise: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """n draws [n,*space] in the diffused space (see the module docstring for the
        options); ``noise`` [n,*space] is x_T (before the temperature) instead of a draw."""
        check_int("n", n, 0, 1 << 20)
        check_float("temperature", temperature, 0.0, 100.0)
        device = self.steps_done.device
        labels = self._sampling_labels(labels, n, device)
        if guidance is not None:
            if not self.conditional:
                raise ValueError("guidance given to an unconditional model (it has no classes)")
            check_float("guidance", guidance, 0.0, 100.0)
        w = self.guidance if guidance is None else float(guidance)
        if steps is not None:
            check_int("steps", steps, 1, self.timesteps)
        if eta is not None:
            if steps is None:
                raise ValueError("eta is DDIM's: give steps (steps=None samples by DDPM)")
            check_float("eta", eta, 0.0, 1.0)
        shape = (n, *self.space)
        if n == 0:
            return torch.zeros(shape, device=device)
        net = self.sampling_net

        def eps_fn(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            return self.guided_eps(x, t, labels, w, net)

        common = dict(generator=generator, temperature=temperature, clip=self.clip, noise=noise)
        if steps is None:
            return ddpm_sample(
                self.schedule, eps_fn, shape, variance=self.variance, device=device, **common
            )
        return ddim_sample(
            self.schedule,
            eps_fn,
            shape,
            steps,
            0.0 if eta is None else eta,
            device=device,
            **common,
        )

    @torch.no_grad()
    def sample(
        self,
        n: int,
        temperature: float = 1.0,
        generator: torch.Generator | None = None,
        labels=None,
        guidance: float | None = None,
        steps: int | None = None,
        eta: float | None = None,
        noise: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """n digits [n,1,28,28] in [0,1] (see the module docstring for the options)."""
        z = self.sample_space(n, temperature, generator, labels, guidance, steps, eta, noise)
        return self.from_space(z)


class DDPM(DiffusionModel):
    """Diffusion on the pixels (Ho et al. 2020): x_0 = 2 x - 1 [B,1,28,28], sampled x_0
    clipped to [-1, 1]; class-conditional with classifier-free guidance when num_classes > 0.
    Options are DiffusionModel's (schedule, U-Net size, guidance, EMA)."""

    def __init__(self, image_shape: Sequence[int] = (1, 28, 28), **options):
        options.setdefault("clip", (-1.0, 1.0))
        super().__init__(space=tuple(image_shape), **options)
        self.image_shape = tuple(int(s) for s in image_shape)

    def to_space(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or tuple(x.shape[1:]) != self.image_shape:
            raise ValueError(
                f"x must be [B, {', '.join(map(str, self.image_shape))}] grey images in [0,1], "
                f"got {list(x.shape)}"
            )
        return 2.0 * x - 1.0

    def from_space(self, z: torch.Tensor) -> torch.Tensor:
        return ((z + 1.0) / 2.0).clamp(0.0, 1.0)

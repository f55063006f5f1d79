"""NICE, RealNVP and Glow on dequantised images, as ImageModels.

Every model is an ``ImageFlow``: x in [0,1]^D (dequantised pixels) -> y = logit(alpha +
(1 - 2 alpha) x) (mp3d.data.mnist.logit_transform) -> z = flow(y), with a standard normal
z. Its NLL in nats per image is that of the density on x,

    -log p(x) = -log N(z; 0, I) - log|det dz/dy| - log|det dy/dx|,

which mp3d.generative.train.evaluate_nll turns into bits/dim of the 8-bit pixels.
Sampling draws z ~ N(0, T^2 I) at temperature T, inverts the flow and the logit, and clamps
to [0,1].
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from mp3d.data.mnist import DEFAULT_ALPHA, logit_inverse, logit_transform
from mp3d.generative.base import ImageModel, check_image_shape
from mp3d.generative.flows.layers import (
    ActNorm,
    BatchNormFlow,
    Coupling,
    DataInitialisedFlow,
    Flatten,
    Flow,
    FlowSequence,
    InvConv1x1,
    MixtureLogisticCDF,
    Scaling,
    Split,
    Squeeze,
    Unsqueeze,
    alternating_mask,
    checkerboard_mask,
    data_dependent_init,
    half_mask,
)
from mp3d.nn import MLP, ResBlock2d, group_norm
from mp3d.training import check_choice, check_float, check_int

__all__ = [
    "NICE",
    "Glow",
    "ImageFlow",
    "RealNVP",
    "ResNetCouplingNet",
    "GlowCouplingNet",
    "ZeroConv2d",
]

LOG_2PI = math.log(2.0 * math.pi)
MAX_REDRAWS = 10  # of samples whose inverse overflows (see ImageFlow.sample)


def _check_halvings(
    name: str, value: int, image_shape: tuple[int, int, int], halvings: int
) -> None:
    _, height, width = image_shape
    factor = 2**halvings
    if height % factor or width % factor:
        raise ValueError(
            f"{name}={value} halves the image {halvings} times: H and W must be divisible by "
            f"{factor}, got image_shape {image_shape}"
        )


def _check_bool(name: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be a bool, got {value!r}")
    return value


class ZeroConv2d(nn.Module):
    """Glow's Conv2dZeros: a zero-initialised conv (so a fresh coupling is the identity)
    whose outputs are scaled by exp(factor * g) per channel, g learned from 0, so that
    large log-scales and shifts are reached in fewer steps (Glow's factor 3; 0: a plain
    zero-initialised conv)."""

    def __init__(
        self, in_channels: int, out_channels: int, kernel: int = 3, factor: float = 3.0
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel, padding=kernel // 2)
        nn.init.zeros_(self.conv.weight)
        nn.init.zeros_(self.conv.bias)
        self.factor = check_float("factor", factor, 0.0)
        self.gain = nn.Parameter(torch.zeros(out_channels)) if factor else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv(x)
        if self.gain is None:
            return out
        return out * torch.exp(self.factor * self.gain).view(1, -1, 1, 1)


class ImageFlow(ImageModel):
    """A flow on logit-transformed dequantised images with a standard normal latent; with
    ``elementwise`` > 0 (every model's option, mp3d's addition after Flow++) the flow starts
    with a MixtureLogisticCDF of that many components on each pixel, which can reshape the
    uniform noise within a pixel's quantisation bin that affine couplings cannot (see that
    layer)."""

    view = "dequantised"
    nll_kind = "exact"

    def __init__(
        self,
        flow: Flow,
        image_shape: Sequence[int] = (1, 28, 28),
        alpha: float = DEFAULT_ALPHA,
        latent_shape: Sequence[int] | None = None,
        elementwise: int = 0,
    ) -> None:
        super().__init__()
        self.image_shape = check_image_shape(image_shape)
        self.alpha = check_float("alpha", alpha, 0.0, 0.5, exclusive_minimum=True)
        if self.alpha >= 0.5:
            raise ValueError(f"alpha must be in (0, 0.5), got {alpha!r}")
        check_int("elementwise", elementwise, 0, 256)
        if elementwise:
            flow = FlowSequence(MixtureLogisticCDF(self.image_shape, elementwise), flow)
        self.flow = flow
        self.latent_shape = tuple(latent_shape or self.image_shape)

    def _check(self, x: torch.Tensor) -> None:
        if x.dim() != 4 or tuple(x.shape[1:]) != self.image_shape:
            raise ValueError(
                f"x must have shape [B, {', '.join(map(str, self.image_shape))}], "
                f"got {list(x.shape)}"
            )

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x in [0,1] [B,C,H,W] -> (z [B,*latent_shape], log|det dz/dx| [B], logit included)."""
        self._check(x)
        y, logdet_logit = logit_transform(x, self.alpha)
        z, logdet = self.flow(y)
        return z, logdet + logdet_logit

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """z [B,*latent_shape] -> x [B,C,H,W] (the exact inverse of encode, not clamped)."""
        return logit_inverse(self.flow.inverse(z), self.alpha)

    @staticmethod
    def log_prior(z: torch.Tensor) -> torch.Tensor:
        """log N(z; 0, I) [B] of z [B,...]."""
        return -0.5 * (z.flatten(1).pow(2).sum(1) + math.prod(z.shape[1:]) * LOG_2PI)

    def nll(self, x: torch.Tensor) -> torch.Tensor:
        z, logdet = self.encode(x)
        return -(self.log_prior(z) + logdet)

    @torch.no_grad()
    def sample(self, n, temperature=1.0, generator=None, **conditions):
        if conditions:
            raise ValueError(f"{type(self).__name__} is unconditional, got {sorted(conditions)}")
        check_int("n", n, 0)
        check_float("temperature", temperature, 0.0, exclusive_minimum=True)
        reference = next(self.parameters())
        x = torch.empty((n, *self.image_shape), dtype=reference.dtype, device=reference.device)
        pending = torch.arange(n, device=reference.device)
        # A draw from the prior's far tail can overflow the inverse of an under-trained flow
        # (each affine coupling multiplies by exp(-log_scale), unbounded): such rare draws
        # (about 1% at temperature 1 after a 5-minute Glow run) are drawn again.
        for _ in range(MAX_REDRAWS + 1):
            z = torch.randn(
                (len(pending), *self.latent_shape), generator=generator, dtype=reference.dtype
            )
            decoded = self.decode((temperature * z).to(reference.device))
            finite = torch.isfinite(decoded).flatten(1).all(1)
            x[pending[finite]] = decoded[finite]
            pending = pending[~finite]
            if len(pending) == 0:
                return x.clamp(0.0, 1.0)
        raise ValueError(
            f"{type(self).__name__}: {len(pending)} of {n} samples still decode to non-finite "
            f"values after {MAX_REDRAWS} redraws: the flow is not invertible in floating point "
            f"there; sample at a lower temperature"
        )

    @torch.no_grad()
    def on_train_start(self, batch: torch.Tensor) -> None:
        """Initialises every ActNorm, Scaling and MixtureLogisticCDF from this batch
        (data-dependent init)."""
        if any(isinstance(m, DataInitialisedFlow) for m in self.modules()):
            with data_dependent_init(self):
                self.encode(batch)


# --- NICE ------------------------------------------------------------------------------------


class NICE(ImageFlow):
    """NICE (Dinh et al. 2014): additive couplings on the flattened pixels, alternating
    between the odd and the even ones, each shift an MLP of ``depth`` hidden layers of
    ``hidden`` ReLU units (the last layer zero-initialised), then a diagonal scaling; with
    ``shift`` (mp3d's addition) the scaling also shifts each pixel. on_train_start sets the
    scaling (and shift) from the first batch, so that each pixel starts at zero mean and unit
    standard deviation (no standard deviation taken below 0.3 in logit units: the pixels that
    are background in every image of that batch would otherwise be scaled up ~50x and punish
    any stroke there)."""

    def __init__(
        self,
        couplings: int = 4,
        hidden: int = 1000,
        depth: int = 3,
        shift: bool = True,
        elementwise: int = 0,
        image_shape: Sequence[int] = (1, 28, 28),
        alpha: float = DEFAULT_ALPHA,
    ) -> None:
        check_int("couplings", couplings, 1, 64)
        check_int("hidden", hidden, 1, 1 << 16)
        check_int("depth", depth, 1, 64)
        shape = check_image_shape(image_shape)
        dims = math.prod(shape)
        if dims < 2:
            raise ValueError(f"image_shape must have at least 2 pixels, got {image_shape!r}")
        layers: list[Flow] = [Flatten(shape)]
        for i in range(couplings):
            mask = alternating_mask(dims, i)
            n_a = int(mask.sum())
            net = MLP(n_a, [hidden] * depth, dims - n_a)
            nn.init.zeros_(net.net[-1].weight)
            nn.init.zeros_(net.net[-1].bias)
            layers.append(Coupling(mask, net, transform="additive"))
        layers.append(Scaling(dims, shift=_check_bool("shift", shift), min_std=0.3))
        super().__init__(
            FlowSequence(*layers), shape, alpha, latent_shape=(dims,), elementwise=elementwise
        )


# --- RealNVP ---------------------------------------------------------------------------------


class ResNetCouplingNet(nn.Module):
    """[B,in,H,W] -> [B,out,H,W]: 3x3 conv, ``blocks`` mp3d.nn.ResBlock2d, GroupNorm-SiLU and a
    zero-initialised 3x3 conv (so a fresh coupling is the identity)."""

    def __init__(self, in_channels: int, hidden: int, out_channels: int, blocks: int) -> None:
        super().__init__()
        self.conv_in = nn.Conv2d(in_channels, hidden, 3, padding=1)
        self.blocks = nn.Sequential(*(ResBlock2d(hidden, hidden) for _ in range(blocks)))
        self.norm = group_norm(hidden)
        self.conv_out = ZeroConv2d(hidden, out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.blocks(self.conv_in(x))
        return self.conv_out(torch.nn.functional.silu(self.norm(h)))


class RealNVP(ImageFlow):
    """RealNVP (Dinh et al. 2017): affine couplings with tanh-bounded log-scales and ResNet
    coupling networks, in ``scales`` scales: each but the last has ``couplings`` checkerboard
    couplings, a squeeze, ``couplings`` channel couplings, then factors out half the
    channels and hands the rest to the next scale; the last has couplings + 1 checkerboard
    couplings (28x28 with scales=3: 1x28x28 -> 2x14x14 -> 4x7x7). ``batch_norm`` adds
    RealNVP's batch normalisation after every coupling (batch statistics in training,
    running averages in eval mode and for sampling); on the shared digits it reached 1.9
    bits/dim in 300 steps, where the same flow without it was at 2.8."""

    def __init__(
        self,
        scales: int = 3,
        couplings: int = 3,
        hidden: int = 16,
        blocks: int = 1,
        batch_norm: bool = True,
        elementwise: int = 0,
        image_shape: Sequence[int] = (1, 28, 28),
        alpha: float = DEFAULT_ALPHA,
    ) -> None:
        check_int("scales", scales, 1, 16)
        check_int("couplings", couplings, 1, 64)
        check_int("hidden", hidden, 1, 1 << 14)
        check_int("blocks", blocks, 0, 64)
        _check_bool("batch_norm", batch_norm)
        shape = check_image_shape(image_shape)
        _check_halvings("scales", scales, shape, scales - 1)
        if scales > 1 and 2 * shape[0] < 2:
            raise ValueError(f"image_shape {image_shape} has too few channels to split")
        self.hidden, self.blocks_per_net, self.batch_norm = hidden, blocks, batch_norm
        flow = self._scale(shape, scales, couplings)
        super().__init__(flow, shape, alpha, elementwise=elementwise)

    def _coupling(self, mask: torch.Tensor, channels: int) -> list[Flow]:
        if mask.dim() == 1:  # channel coupling: the net sees the kept channels
            n_a = int(mask.sum())
            net = ResNetCouplingNet(n_a, self.hidden, 2 * (channels - n_a), self.blocks_per_net)
        else:
            net = ResNetCouplingNet(channels, self.hidden, 2 * channels, self.blocks_per_net)
        layers: list[Flow] = [Coupling(mask, net, "affine", "tanh")]
        if self.batch_norm:
            layers.append(BatchNormFlow(channels))
        return layers

    def _scale(self, shape: tuple[int, int, int], scales: int, couplings: int) -> Flow:
        c, h, w = shape
        layers: list[Flow] = []
        last = scales == 1
        for i in range(couplings + 1 if last else couplings):
            layers += self._coupling(checkerboard_mask(c, h, w, i % 2), c)
        if last:
            return FlowSequence(*layers)
        layers.append(Squeeze())
        for i in range(couplings):
            layers += self._coupling(half_mask(4 * c, i % 2), 4 * c)
        inner = self._scale((4 * c - 2 * c, h // 2, w // 2), scales - 1, couplings)
        layers += [Split(4 * c, inner), Unsqueeze()]
        return FlowSequence(*layers)


# --- Glow ------------------------------------------------------------------------------------


class GlowCouplingNet(nn.Module):
    """[B,in,H,W] -> [B,out,H,W]: Glow's coupling network, 3x3 conv, ReLU, 1x1 conv, ReLU and
    a zero-initialised 3x3 conv."""

    def __init__(self, in_channels: int, hidden: int, out_channels: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(in_channels, hidden, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(hidden, hidden, 1),
            nn.ReLU(),
            ZeroConv2d(hidden, out_channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class Glow(ImageFlow):
    """Glow (Kingma and Dhariwal 2018): ``levels`` levels, each a squeeze and ``steps`` steps of
    actnorm (data-dependent initialisation in on_train_start), an invertible 1x1 convolution
    (LU) and an affine (sigmoid scale) or additive coupling of half the channels; every level
    but the last then splits off half its channels under a learned conditional Gaussian
    (``learned_prior``; else a standard one). 28x28 with levels=2: 4x14x14 -> 8x7x7."""

    def __init__(
        self,
        levels: int = 2,
        steps: int = 8,
        hidden: int = 64,
        coupling: str = "affine",
        learned_prior: bool = True,
        elementwise: int = 0,
        image_shape: Sequence[int] = (1, 28, 28),
        alpha: float = DEFAULT_ALPHA,
    ) -> None:
        check_int("levels", levels, 1, 16)
        check_int("steps", steps, 1, 256)
        check_int("hidden", hidden, 1, 1 << 14)
        check_choice("coupling", coupling, ("affine", "additive"))
        _check_bool("learned_prior", learned_prior)
        shape = check_image_shape(image_shape)
        _check_halvings("levels", levels, shape, levels)
        self.hidden, self.coupling, self.learned_prior = hidden, coupling, learned_prior
        super().__init__(
            self._level(shape[0], levels, steps), shape, alpha, elementwise=elementwise
        )

    def _step(self, channels: int) -> list[Flow]:
        mask = half_mask(channels)
        n_a = int(mask.sum())
        k = 2 if self.coupling == "affine" else 1
        net = GlowCouplingNet(n_a, self.hidden, k * (channels - n_a))
        return [
            ActNorm(channels),
            InvConv1x1(channels),
            Coupling(mask, net, self.coupling, "sigmoid"),
        ]

    def _level(self, channels: int, levels: int, steps: int) -> Flow:
        c = 4 * channels
        layers: list[Flow] = [Squeeze()]
        for _ in range(steps):
            layers += self._step(c)
        if levels > 1:
            kept = c - c // 2
            prior = ZeroConv2d(kept, 2 * (c // 2)) if self.learned_prior else None
            layers.append(Split(c, self._level(kept, levels - 1, steps), prior))
        layers.append(Unsqueeze())
        return FlowSequence(*layers)

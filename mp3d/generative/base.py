"""What every likelihood-based image model in mp3d.generative provides, and the registry
that names them.

An ImageModel works on images [B,1,H,W] in one of mp3d.data.mnist's views: "grey"
(pixel / 255, for models without a likelihood), "binarised"
({0,1} pixels; likelihoods in nats per image) or "dequantised" (x = (pixel + u)/256 in
[0,1]; the model's density is on x, so its NLL converts to bits/dim of the 8-bit data by
mp3d.data.mnist.bits_per_dim). Each model gives:

- ``loss(x) -> (scalar, {name: float})``: the training objective of a batch (NLL per image
  for exact models, the negative ELBO for VAEs), with named parts to log;
- ``nll(x) -> [B]``: the negative log-likelihood in nats per image: exact where the model
  has one, else the tightest bound it offers (importance sampling for VAEs), as its
  ``nll_kind`` says ("exact", "bound");
- ``sample(n, temperature, generator) -> [n,1,H,W]`` in the model's view (binarised:
  {0,1}; dequantised: [0,1]).

GenerativeModel is the wider base of models without a likelihood (GANs, diffusion): they
sample and train by training_step, and are scored by a Fréchet distance instead.

A ModelSpec names a model, its view and its factory, with the options the factory takes
and the defaults it trains with; ``MODELS`` (see mp3d.generative.registry) lists them.
"""

from __future__ import annotations

import inspect
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

__all__ = [
    "GenerativeModel",
    "ImageModel",
    "ModelSpec",
    "bernoulli_log_prob",
    "bernoulli_sample",
    "check_image_shape",
    "check_images",
]


class GenerativeModel(nn.Module, ABC):
    """Base class of every image model: it samples, and trains by training_step.

    Models with one objective define ``loss(x)`` (``loss(x, labels)`` when
    ``conditional``); the default training_step
    minimises it with the first optimizer. Models with several (a GAN's generator and
    discriminator) give configure_optimizers and override training_step. ``labels`` [B]
    (int64 digit classes) are passed to every step; unconditional models ignore them.
    Samplers take keyword conditions (labels, guidance, steps) where they support them.
    """

    view: str = "binarised"
    nll_kind: str | None = None  # None: no likelihood (GANs, diffusion)
    image_shape: tuple[int, int, int] = (1, 28, 28)
    conditional: bool = False  # whether loss() takes the labels: loss(x, labels)

    @abstractmethod
    def sample(
        self,
        n: int,
        temperature: float = 1.0,
        generator: torch.Generator | None = None,
        **conditions,
    ) -> torch.Tensor:
        """n images [n,1,H,W] in the model's view."""

    def loss(
        self, x: torch.Tensor, labels: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """The training objective of images x [B,1,H,W] and its named parts to log."""
        raise NotImplementedError(
            f"{type(self).__name__} defines neither loss() nor its own training_step()"
        )

    def configure_optimizers(self, lr: float) -> list[torch.optim.Optimizer]:
        """The optimizers training_step gets (default: one Adam over every parameter)."""
        return [torch.optim.Adam(self.parameters(), lr=lr)]

    def training_step(
        self,
        x: torch.Tensor,
        labels: torch.Tensor,
        optimizers: list[torch.optim.Optimizer],
        grad_clip: float = 0.0,
    ) -> dict[str, float]:
        """One optimisation step on a batch; returns the scalars to log (with "loss")."""
        loss, parts = self.loss(x, labels) if self.conditional else self.loss(x)
        optimizer = optimizers[0]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if grad_clip > 0:
            nn.utils.clip_grad_norm_(self.parameters(), grad_clip)
        optimizer.step()
        return {"loss": float(loss.detach()), **parts}

    def sampler_takes(self, condition: str) -> bool:
        """Whether sample() takes the keyword condition ("labels", "guidance", "steps")."""
        return condition in inspect.signature(self.sample).parameters

    @property
    def n_dims(self) -> int:
        channels, height, width = self.image_shape
        return channels * height * width

    def epoch_batches(self, images, labels, batch_size: int, epoch: int, seed: int):
        """One epoch of training batches (x, labels) of uint8 digits images [N,H,W] with
        labels [N], fixed by (seed, epoch): mp3d.data.mnist.training_batches in the model's
        view ([B,1,H,W], [B]) unless a model trains on other batches (CycleGAN's two
        unpaired domains)."""
        from mp3d.data.mnist import training_batches

        return training_batches(
            images, batch_size, self.view, epoch=epoch, seed=seed, labels=labels
        )

    def batches_per_epoch(self, n_images: int, batch_size: int) -> int:
        """How many batches epoch_batches gives for n_images (the last partial one dropped)."""
        return n_images // batch_size

    def on_train_start(self, batch: torch.Tensor) -> None:
        """Called once with the first training batch before any step (e.g. Glow's
        data-dependent actnorm initialisation); nothing by default."""


class ImageModel(GenerativeModel):
    """Base class of the likelihood models (see the module docstring): loss is the mean
    NLL unless a model says otherwise (a VAE's negative ELBO)."""

    nll_kind: str = "exact"

    def loss(
        self, x: torch.Tensor, labels: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """The training objective of images x [B,1,H,W] (default: mean NLL per image)."""
        nll = self.nll(x).mean()
        return nll, {"nll": float(nll.detach())}

    @abstractmethod
    def nll(self, x: torch.Tensor) -> torch.Tensor:
        """-log p(x) in nats per image [B] (or its bound, as nll_kind says)."""


@dataclass(frozen=True)
class ModelSpec:
    """One registered model: `make(**options)` builds it for images of `view`."""

    name: str
    make: Callable[..., GenerativeModel]
    view: str
    summary: str  # one line for --help
    options: Mapping[str, Any] = field(default_factory=dict)  # the defaults make() gets
    batch_size: int = 64
    lr: float = 1e-3


# ----------------------------------------------------------------------------- pixels


def bernoulli_sample(probs: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """{0,1} draws of Bernoulli(probs), same shape; the uniforms are drawn on the
    generator's device (a CPU generator samples a CUDA model), then moved to probs'."""
    device = generator.device if generator is not None else probs.device
    u = torch.rand(probs.shape, generator=generator, device=device).to(probs.device)
    return (u < probs).to(probs.dtype)


def check_images(x: torch.Tensor, shape: tuple[int, int, int]) -> None:
    """ValueError unless x is a batch [B, *shape]."""
    if not isinstance(x, torch.Tensor) or x.dim() != 4 or tuple(x.shape[1:]) != tuple(shape):
        got = list(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"x must have shape [B, {', '.join(map(str, shape))}], got {got}")


def check_image_shape(
    image_shape: Sequence[int], multiple: int = 1, channels: int | None = None
) -> tuple[int, int, int]:
    """image_shape as (C, H, W) of positive ints, H and W multiples of `multiple`, C equal to
    `channels` when given."""
    try:
        shape = tuple(image_shape)
    except TypeError:
        shape = ()
    if (
        len(shape) != 3
        or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 1 for s in shape)
        or shape[1] % multiple
        or shape[2] % multiple
        or (channels is not None and shape[0] != channels)
    ):
        c = "C" if channels is None else str(channels)
        extra = f" with H and W multiples of {multiple}" if multiple > 1 else ""
        raise ValueError(
            f"image_shape must be ({c}, H, W) of positive ints{extra}, got {image_shape!r}"
        )
    return shape  # type: ignore[return-value]


def bernoulli_log_prob(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """log p(x) of independent Bernoulli pixels [..., C,H,W] with these logits (logits and x
    broadcast), summed over the last three dimensions: [...] in nats."""
    logits, x = torch.broadcast_tensors(logits, x)
    return -F.binary_cross_entropy_with_logits(logits, x, reduction="none").sum((-3, -2, -1))

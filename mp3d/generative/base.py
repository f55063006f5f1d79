"""What every likelihood-based image model in mp3d.generative provides, and the registry
that names them.

An ImageModel works on images [B,1,H,W] in one of mp3d.data.mnist's views: "binarised"
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

A ModelSpec names a model, its view and its factory, with the options the factory takes
and the defaults it trains with; ``MODELS`` (see mp3d.generative.registry) lists them.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

__all__ = ["ImageModel", "ModelSpec"]


class ImageModel(nn.Module, ABC):
    """Base class of the likelihood models (see the module docstring)."""

    view: str = "binarised"
    nll_kind: str = "exact"
    image_shape: tuple[int, int, int] = (1, 28, 28)

    def loss(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        """The training objective of images x [B,1,H,W] (default: mean NLL per image)."""
        nll = self.nll(x).mean()
        return nll, {"nll": float(nll.detach())}

    @abstractmethod
    def nll(self, x: torch.Tensor) -> torch.Tensor:
        """-log p(x) in nats per image [B] (or its bound, as nll_kind says)."""

    @abstractmethod
    def sample(
        self, n: int, temperature: float = 1.0, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """n images [n,1,H,W] in the model's view."""

    @property
    def n_dims(self) -> int:
        channels, height, width = self.image_shape
        return channels * height * width

    def on_train_start(self, batch: torch.Tensor) -> None:
        """Called once with the first training batch before any step (e.g. Glow's
        data-dependent actnorm initialisation); nothing by default."""


@dataclass(frozen=True)
class ModelSpec:
    """One registered model: `make(**options)` builds it for images of `view`."""

    name: str
    make: Callable[..., ImageModel]
    view: str
    summary: str  # one line for --help
    options: Mapping[str, Any] = field(default_factory=dict)  # the defaults make() gets
    batch_size: int = 64
    lr: float = 1e-3

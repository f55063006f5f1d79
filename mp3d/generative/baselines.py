"""Two baselines everyone understands, on binarised digits: every pixel an independent
Bernoulli, and a mixture of K such products (a mixture of Bernoullis), both with exact
likelihoods; trained by gradient on the NLL like the other models."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from mp3d.generative.base import ImageModel, ModelSpec, bernoulli_sample, check_images
from mp3d.training import check_int

__all__ = ["SPECS", "BernoulliMixture", "IndependentBernoulli"]


class BernoulliMixture(ImageModel):
    """p(x) = sum_k pi_k prod_d Bernoulli(x_d; sigmoid(l_kd)); K = 1 is the independent
    model. The logits start at the data mean plus noise once on_train_start sees a batch."""

    view = "binarised"

    def __init__(self, components: int = 20, image_shape=(1, 28, 28)) -> None:
        super().__init__()
        check_int("components", components, 1, 10_000)
        self.image_shape = tuple(image_shape)
        self.logits = nn.Parameter(torch.randn(components, self.n_dims) * 0.1)
        self.mixture_logits = nn.Parameter(torch.zeros(components))

    @torch.no_grad()
    def on_train_start(self, batch: torch.Tensor) -> None:
        mean = batch.flatten(1).float().mean(0).clamp(0.05, 0.95)
        self.logits.copy_(torch.logit(mean) + 0.5 * torch.randn_like(self.logits))

    def log_prob_components(self, x: torch.Tensor) -> torch.Tensor:
        """log pi_k + log p(x | k) [B,K]."""
        check_images(x, self.image_shape)
        flat = x.flatten(1)
        # log Bernoulli(x; sigmoid(l)) = x l - softplus(l)
        log_px = flat @ self.logits.T - F.softplus(self.logits).sum(1)
        return F.log_softmax(self.mixture_logits, 0) + log_px

    def nll(self, x: torch.Tensor) -> torch.Tensor:
        return -torch.logsumexp(self.log_prob_components(x), dim=1)

    @torch.no_grad()
    def sample(self, n, temperature=1.0, generator=None):
        k = torch.multinomial(F.softmax(self.mixture_logits, 0), n, True, generator=generator)
        probs = torch.sigmoid(self.logits[k] / temperature)
        x = bernoulli_sample(probs, generator)
        return x.view(n, *self.image_shape)


class IndependentBernoulli(BernoulliMixture):
    """Every pixel an independent Bernoulli (the one-component mixture)."""

    def __init__(self, image_shape=(1, 28, 28)) -> None:
        super().__init__(1, image_shape)

    @torch.no_grad()
    def on_train_start(self, batch: torch.Tensor) -> None:
        mean = batch.flatten(1).float().mean(0).clamp(1e-3, 1 - 1e-3)
        self.logits.copy_(torch.logit(mean)[None])


SPECS = [
    ModelSpec(
        "bernoulli",
        IndependentBernoulli,
        "binarised",
        "independent Bernoulli pixels (baseline)",
        lr=1e-2,
    ),
    ModelSpec(
        "bernoulli-mixture",
        BernoulliMixture,
        "binarised",
        "a mixture of 20 products of Bernoullis (baseline)",
        {"components": 20},
        lr=1e-2,
    ),
]

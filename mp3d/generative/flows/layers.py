"""Invertible layers of normalizing flows, each with its exact log-determinant.

A ``Flow`` maps x -> (y, log|det dy/dx|) in ``forward`` (the log-determinant per batch item,
[B]) and y -> x in ``inverse``. Inputs are vectors [B,D] or images [B,C,H,W]; every layer
keeps the number of dimensions (Squeeze trades space for channels, Flatten images for
vectors), so a sequence of them maps the data to a latent of the same size.

- ``Coupling``: affine (RealNVP, Glow) or additive (NICE) coupling; the unchanged part is
  picked by a mask: over dim 1 (``half_mask`` / ``alternating_mask``: channels of images,
  features of vectors; the network sees only that part) or over the whole event
  (``checkerboard_mask``; the network sees x * mask);
- ``MixtureLogisticCDF`` (Flow++'s elementwise logit of a mixture-of-logistics CDF);
- ``Scaling`` (NICE's diagonal scaling), ``ActNorm`` (Glow; data-dependent initialisation
  through ``data_dependent_init``), ``InvConv1x1`` (Glow's invertible 1x1 convolution in LU
  form; a linear layer on vectors), ``BatchNormFlow`` (RealNVP's batch normalisation with
  running statistics);
- ``Squeeze`` / ``Unsqueeze`` (2x2 space-to-depth), ``Flatten``, ``Split`` (multi-scale: half
  the channels factored out, optionally under Glow's learned conditional prior, the other
  half through an inner flow), ``FlowSequence``.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from mp3d.training import check_choice, check_float, check_int

__all__ = [
    "ActNorm",
    "BatchNormFlow",
    "Coupling",
    "DataInitialisedFlow",
    "Flatten",
    "Flow",
    "FlowSequence",
    "InvConv1x1",
    "MixtureLogisticCDF",
    "Scaling",
    "Split",
    "Squeeze",
    "Unsqueeze",
    "alternating_mask",
    "checkerboard_mask",
    "data_dependent_init",
    "half_mask",
]


def _event_sum(t: torch.Tensor) -> torch.Tensor:
    """Sum over every dimension but the first: [B,...] -> [B]."""
    return t.flatten(1).sum(1)


def _per_channel(p: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Parameter [C] viewed to broadcast over x [B,C,...] along dim 1."""
    return p.view(1, -1, *([1] * (x.dim() - 2)))


def _spatial(x: torch.Tensor) -> int:
    """Positions per channel of x [B,C,...] (1 for vectors)."""
    return math.prod(x.shape[2:])


def _event_shape(shape: int | Sequence[int]) -> tuple[int, ...]:
    """An int or a sequence of positive ints as a shape tuple."""
    shape = (shape,) if isinstance(shape, int) else tuple(shape)
    for size in shape:
        check_int("shape", size, 1)
    return shape


def _check_event(x: torch.Tensor, shape: Sequence[int], what: str) -> None:
    """x must be [B, *shape]."""
    if tuple(x.shape[1:]) != tuple(shape):
        raise ValueError(
            f"{what} expects x of shape [B, {', '.join(map(str, shape))}], got {list(x.shape)}"
        )


def _check_dim1(x: torch.Tensor, channels: int, what: str) -> None:
    if x.dim() < 2 or x.shape[1] != channels:
        raise ValueError(f"{what} expects x of shape [B, {channels}, ...], got {list(x.shape)}")


class Flow(nn.Module):
    """An invertible map: forward(x) -> (y, log|det dy/dx| [B]); inverse(y) -> x."""

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


class DataInitialisedFlow(Flow):
    """A flow that ``data_dependent_init`` sets up from the first batch through it: its
    forward calls ``_initialise_pending(x)`` first, which runs ``initialise(x)`` once when
    asked to."""

    def __init__(self) -> None:
        super().__init__()
        self.init_pending = False

    def initialise(self, x: torch.Tensor) -> None:
        raise NotImplementedError

    def _initialise_pending(self, x: torch.Tensor) -> None:
        if self.init_pending:
            self.initialise(x)
            self.init_pending = False


class FlowSequence(Flow):
    """Flows applied in order (inverted in reverse order); log-determinants add up."""

    def __init__(self, *flows: Flow) -> None:
        super().__init__()
        self.flows = nn.ModuleList(flows)

    def forward(self, x):
        logdet = x.new_zeros(x.shape[0])
        for flow in self.flows:
            x, step = flow(x)
            logdet = logdet + step
        return x, logdet

    def inverse(self, y):
        for flow in reversed(self.flows):
            y = flow.inverse(y)
        return y


# --- masks ---------------------------------------------------------------------------------


def checkerboard_mask(channels: int, height: int, width: int, parity: int = 0) -> torch.Tensor:
    """bool [C,H,W]: True where (row + column + parity) is even, the same in every channel."""
    rows = torch.arange(height)[:, None]
    cols = torch.arange(width)[None, :]
    board = (rows + cols + parity) % 2 == 0
    return board.expand(channels, height, width).clone()


def half_mask(n: int, parity: int = 0) -> torch.Tensor:
    """bool [n]: True on the first ceil(n/2) entries (parity 0) or on the others (parity 1)."""
    first = torch.arange(n) < (n + 1) // 2
    return first if parity % 2 == 0 else ~first


def alternating_mask(n: int, parity: int = 0) -> torch.Tensor:
    """bool [n]: True on the even indices (parity 0) or the odd ones (parity 1)."""
    return torch.arange(n) % 2 == parity % 2


# --- coupling --------------------------------------------------------------------------------

TRANSFORMS = ("affine", "additive")
SCALES = ("tanh", "sigmoid", "exp")


class Coupling(Flow):
    """y_a = x_a; y_b = x_b * exp(s(x_a)) + t(x_a) (affine) or x_b + t(x_a) (additive).

    ``mask`` (bool) marks the part a that passes unchanged and conditions the rest:
    - 1-D, [n] over dim 1 (channels of images, features of vectors): ``net`` gets x_a =
      x[:, mask] and returns [B, k * n_b, ...] for the n_b others;
    - the event's shape ([C,H,W], e.g. ``checkerboard_mask``): ``net`` gets x * mask
      ([B,C,H,W]) and returns [B, k * C, H, W], used where mask is False;
    with k = 2 (s then t, along dim 1) for affine and 1 (t) for additive. The log-scale s is
    ``scale``: "tanh" a * tanh(raw) with a learned factor a per channel (RealNVP's bounded
    scale), "sigmoid" log sigmoid(raw + 2) (Glow's), "exp" raw itself.
    """

    def __init__(
        self,
        mask: torch.Tensor,
        net: nn.Module,
        transform: str = "affine",
        scale: str = "tanh",
    ) -> None:
        super().__init__()
        check_choice("transform", transform, TRANSFORMS)
        check_choice("scale", scale, SCALES)
        mask = torch.as_tensor(mask, dtype=torch.bool)
        if mask.dim() == 0 or bool(mask.all()) or not bool(mask.any()):
            raise ValueError("mask must mark some but not all entries as unchanged")
        self.transform, self.scale = transform, scale
        self.net = net
        self.gather = mask.dim() == 1
        self.register_buffer("mask", mask, persistent=False)
        if self.gather:
            index_a, index_b = mask.nonzero()[:, 0], (~mask).nonzero()[:, 0]
            order = torch.cat([index_a, index_b])
            self.register_buffer("index_a", index_a, persistent=False)
            self.register_buffer("index_b", index_b, persistent=False)
            self.register_buffer("unorder", torch.argsort(order), persistent=False)
            scale_channels = len(index_b)
        else:
            scale_channels = mask.shape[0]
        self.scale_factor = (
            nn.Parameter(torch.ones(scale_channels))
            if transform == "affine" and scale == "tanh"
            else None
        )

    def _params(self, h: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor]:
        out = self.net(h)
        if self.transform == "additive":
            return None, out
        raw, shift = out.chunk(2, dim=1)
        if self.scale == "tanh":
            log_scale = _per_channel(self.scale_factor, raw) * torch.tanh(raw)
        elif self.scale == "sigmoid":
            log_scale = F.logsigmoid(raw + 2.0)
        else:
            log_scale = raw
        return log_scale, shift

    def _check(self, x: torch.Tensor) -> None:
        if self.gather:
            _check_dim1(x, len(self.mask), "Coupling")
        else:
            _check_event(x, self.mask.shape, "Coupling")

    def forward(self, x):
        self._check(x)
        if self.gather:
            x_a, x_b = x.index_select(1, self.index_a), x.index_select(1, self.index_b)
            log_scale, shift = self._params(x_a)
            y_b = x_b + shift if log_scale is None else x_b * torch.exp(log_scale) + shift
            y = torch.cat([x_a, y_b], 1).index_select(1, self.unorder)
        else:
            keep = self.mask.to(x.dtype)
            log_scale, shift = self._params(x * keep)
            shift = shift * (1 - keep)
            if log_scale is None:
                y = x + shift
            else:
                log_scale = log_scale * (1 - keep)
                y = x * torch.exp(log_scale) + shift
        logdet = x.new_zeros(x.shape[0]) if log_scale is None else _event_sum(log_scale)
        return y, logdet

    def inverse(self, y):
        self._check(y)
        if self.gather:
            y_a, y_b = y.index_select(1, self.index_a), y.index_select(1, self.index_b)
            log_scale, shift = self._params(y_a)
            x_b = y_b - shift if log_scale is None else (y_b - shift) * torch.exp(-log_scale)
            return torch.cat([y_a, x_b], 1).index_select(1, self.unorder)
        keep = self.mask.to(y.dtype)
        log_scale, shift = self._params(y * keep)
        shift = shift * (1 - keep)
        if log_scale is None:
            return y - shift
        return (y - shift) * torch.exp(-log_scale * (1 - keep))


# --- elementwise and channel-mixing layers -----------------------------------------------------


class Scaling(DataInitialisedFlow):
    """NICE's diagonal scaling y = x * exp(s), one learned s per entry of the event shape;
    with ``shift``, y = (x + b) * exp(s) (an elementwise affine map: a learned diagonal
    Gaussian base written as a flow layer, as Glow's learned top prior).

    Inside ``data_dependent_init`` the first forward sets b and s from that batch so that
    each entry has zero mean (with shift) and unit standard deviation (its RMS without
    shift), no standard deviation taken below ``min_std``.
    """

    def __init__(
        self, shape: int | Sequence[int], shift: bool = False, min_std: float = 1e-2
    ) -> None:
        super().__init__()
        shape = _event_shape(shape)
        self.min_std = check_float("min_std", min_std, 0.0, exclusive_minimum=True)
        self.log_scale = nn.Parameter(torch.zeros(shape))
        self.bias = nn.Parameter(torch.zeros(shape)) if shift else None

    @torch.no_grad()
    def initialise(self, x: torch.Tensor) -> None:
        """Sets b and s from x [B,*shape] (see the class docstring)."""
        if self.bias is not None:
            self.bias.copy_(-x.mean(0))
            std = x.std(0, correction=0)
        else:
            std = x.pow(2).mean(0).sqrt()
        self.log_scale.copy_(-torch.log(std.clamp_min(self.min_std)))

    def _check(self, x: torch.Tensor) -> None:
        _check_event(x, self.log_scale.shape, "Scaling")

    def forward(self, x):
        self._check(x)
        self._initialise_pending(x)
        logdet = self.log_scale.sum().expand(x.shape[0])
        shifted = x if self.bias is None else x + self.bias
        return shifted * torch.exp(self.log_scale), logdet

    def inverse(self, y):
        self._check(y)
        x = y * torch.exp(-self.log_scale)
        return x if self.bias is None else x - self.bias


class ActNorm(DataInitialisedFlow):
    """Glow's activation normalisation y = (x + b) * exp(s), one b and s per channel.

    Both start at identity; inside ``data_dependent_init(model)`` the first forward sets
    them so that the outputs on that batch have zero mean and unit variance per channel.
    """

    def __init__(self, channels: int, eps: float = 1e-6) -> None:
        super().__init__()
        check_int("channels", channels, 1)
        self.eps = check_float("eps", eps, 0.0, exclusive_minimum=True)
        self.bias = nn.Parameter(torch.zeros(channels))
        self.log_scale = nn.Parameter(torch.zeros(channels))

    @torch.no_grad()
    def initialise(self, x: torch.Tensor) -> None:
        """Sets b and s from x [B,C,...]: zero mean, unit variance per channel."""
        dims = [0, *range(2, x.dim())]
        mean = x.mean(dims)
        std = x.std(dims, correction=0)
        self.bias.copy_(-mean)
        self.log_scale.copy_(-torch.log(std + self.eps))

    def forward(self, x):
        _check_dim1(x, len(self.bias), "ActNorm")
        self._initialise_pending(x)
        y = (x + _per_channel(self.bias, x)) * torch.exp(_per_channel(self.log_scale, x))
        logdet = (self.log_scale.sum() * _spatial(x)).expand(x.shape[0])
        return y, logdet

    def inverse(self, y):
        _check_dim1(y, len(self.bias), "ActNorm")
        return y * torch.exp(-_per_channel(self.log_scale, y)) - _per_channel(self.bias, y)


class MixtureLogisticCDF(DataInitialisedFlow):
    """Flow++'s elementwise transform (Ho et al. 2019): y = logit(F(x)) with F the CDF of a
    mixture of ``components`` logistics, its own weights, means and scales for every entry
    of the event shape; a nonlinear monotone map of each entry.

    Affine couplings move each entry by an affine map given the others, so a density they
    shape stays as uniform within a pixel's quantisation bin as the dequantisation noise
    that made it: for the digits' background (about 80% of the pixels, every one in the
    bottom bin) a Gaussian latent then costs ln(2 pi e / 12) / 2 = 0.18 nats per entry.
    This layer, first in a flow, can map each bin's uniform to a logistic instead.

    Every component starts at mean 0, scale 1 and equal weight (with a little jitter in the
    means, to break their symmetry): about the identity. Inside ``data_dependent_init``
    the first forward instead places component k at the (k + 1/2)/K quantile of that batch's
    values of each entry, with a standard deviation of half the distance between its
    neighbouring quantiles (at least ``min_scale``), and keeps component 0 broad (the
    batch's mean and standard deviation over all entries, at least 1), so that no value is
    far out in every tail: the mixture starts as a smoothed empirical CDF of the batch. The
    inverse bisects the monotone F in float64.
    """

    def __init__(
        self, shape: int | Sequence[int], components: int = 8, min_scale: float = 1e-3
    ) -> None:
        super().__init__()
        shape = _event_shape(shape)
        check_int("components", components, 1, 256)
        self.min_scale = check_float("min_scale", min_scale, 0.0, exclusive_minimum=True)
        self.logits = nn.Parameter(torch.zeros(components, *shape))
        self.means = nn.Parameter(0.01 * torch.randn(components, *shape))
        self.log_scales = nn.Parameter(torch.zeros(components, *shape))

    @torch.no_grad()
    def initialise(self, x: torch.Tensor) -> None:
        """Sets the components from x [B,*shape] (see the class docstring)."""
        k = len(self.means)
        levels = (torch.arange(k + 2, dtype=x.dtype, device=x.device) - 0.5) / k
        quantiles = torch.quantile(x, levels.clamp(0.0, 1.0), dim=0)  # [K+2,*shape]
        self.means.copy_(quantiles[1:-1])
        spread = 0.5 * (quantiles[2:] - quantiles[:-2])
        self.log_scales.copy_(torch.log(spread.clamp_min(self.min_scale) * (3**0.5 / math.pi)))
        self.means[0] = x.mean()
        self.log_scales[0] = torch.log(x.std().clamp_min(1.0) * (3**0.5 / math.pi))
        self.logits.zero_()

    def _check(self, x: torch.Tensor) -> None:
        _check_event(x, self.means.shape[1:], "MixtureLogisticCDF")

    def forward(self, x):
        self._check(x)
        self._initialise_pending(x)
        log_cdf, log_sf, log_pdf = _mixture_log_cdfs(self.logits, self.means, self.log_scales, x)
        # y = logit(F) = log F - log(1 - F); dy/dx = F' / (F (1 - F))
        return log_cdf - log_sf, _event_sum(log_pdf - log_cdf - log_sf)

    @torch.no_grad()
    def inverse(self, y, iterations: int = 100):
        self._check(y)
        logits, means, log_scales = (p.double() for p in (self.logits, self.means, self.log_scales))
        target = y.double()
        # F_k(x) <= sigmoid(y) exactly where x <= mean_k + scale_k y, and F is a convex
        # combination of the F_k: the smallest and largest of these bracket the root.
        crossings = means + torch.exp(log_scales) * target.unsqueeze(1)
        low, high = crossings.amin(1), crossings.amax(1)
        for _ in range(iterations):
            middle = 0.5 * (low + high)
            log_cdf, log_sf, _ = _mixture_log_cdfs(logits, means, log_scales, middle)
            below = log_cdf - log_sf < target
            low = torch.where(below, middle, low)
            high = torch.where(below, high, middle)
        return (0.5 * (low + high)).to(y.dtype)


def _mixture_log_cdfs(
    logits: torch.Tensor, means: torch.Tensor, log_scales: torch.Tensor, x: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """log F(x), log(1 - F(x)) and log F'(x), each [B,*shape], of the logistic mixtures
    with parameters [K,*shape] at x [B,*shape]."""
    log_weights = torch.log_softmax(logits, 0)
    t = (x.unsqueeze(1) - means) * torch.exp(-log_scales)  # [B,K,*shape]
    log_below = F.logsigmoid(t)
    log_above = log_below - t  # log sigmoid(-t), without a second logsigmoid
    log_cdf = torch.logsumexp(log_weights + log_below, 1)
    log_sf = torch.logsumexp(log_weights + log_above, 1)
    log_pdf = torch.logsumexp(log_weights + log_below + log_above - log_scales, 1)
    return log_cdf, log_sf, log_pdf


@contextlib.contextmanager
def data_dependent_init(module: nn.Module) -> Iterator[None]:
    """Inside: the next forward through each DataInitialisedFlow of module (ActNorm,
    Scaling, MixtureLogisticCDF) initialises it from its input."""
    layers = [m for m in module.modules() if isinstance(m, DataInitialisedFlow)]
    for m in layers:
        m.init_pending = True
    try:
        yield
    finally:
        for m in layers:
            m.init_pending = False


class InvConv1x1(Flow):
    """Glow's invertible 1x1 convolution W = P L (U + diag(sign * exp(log_s))) (LU form:
    log|det W| = sum log_s), from a random rotation; on vectors [B,C] it is y = W x."""

    def __init__(self, channels: int, generator: torch.Generator | None = None) -> None:
        super().__init__()
        check_int("channels", channels, 1)
        q = torch.linalg.qr(
            torch.randn(channels, channels, generator=generator, dtype=torch.float64)
        )[0]
        p, lower, upper = torch.linalg.lu(q)
        diagonal = upper.diagonal()
        self.register_buffer("perm", p.float())
        self.register_buffer("sign", diagonal.sign().float())
        self.register_buffer(
            "lower_mask", torch.ones(channels, channels).tril(-1), persistent=False
        )
        self.register_buffer("eye", torch.eye(channels), persistent=False)
        self.lower = nn.Parameter(lower.tril(-1).float())
        self.upper = nn.Parameter(upper.triu(1).float())
        self.log_diag = nn.Parameter(diagonal.abs().log().float())

    def weight(self) -> torch.Tensor:
        """W [C,C]."""
        lower = self.lower * self.lower_mask + self.eye
        upper = self.upper * self.lower_mask.T + torch.diag(self.sign * torch.exp(self.log_diag))
        return self.perm @ lower @ upper

    @staticmethod
    def _mix(matrix: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 2:
            return x @ matrix.T
        return torch.einsum("ij,bj...->bi...", matrix, x)

    def forward(self, x):
        _check_dim1(x, len(self.log_diag), "InvConv1x1")
        logdet = (self.log_diag.sum() * _spatial(x)).expand(x.shape[0])
        return self._mix(self.weight(), x), logdet

    def inverse(self, y):
        _check_dim1(y, len(self.log_diag), "InvConv1x1")
        return self._mix(torch.linalg.inv(self.weight()), y)


class BatchNormFlow(Flow):
    """RealNVP's batch normalisation as a flow: y = (x - m) / sqrt(v + eps) * exp(g) + b
    per channel, with the batch's mean and variance in training mode (the running averages
    updated) and the running averages in eval mode and in ``inverse``.

    The default momentum 0.3 is high (RealNVP: 0.05) because the activations' statistics
    drift fast in short runs: after 75 steps on the digits a 0.05 average scored 3.66
    bits/dim in eval mode where the batch statistics gave 2.29, and 0.3 gave 2.22. A
    batch of images holds many values per channel, so a few batches average them well."""

    def __init__(self, channels: int, momentum: float = 0.3, eps: float = 1e-4) -> None:
        super().__init__()
        check_int("channels", channels, 1)
        self.momentum = check_float("momentum", momentum, 0.0, 1.0, exclusive_minimum=True)
        self.eps = check_float("eps", eps, 0.0, exclusive_minimum=True)
        self.log_gamma = nn.Parameter(torch.zeros(channels))
        self.beta = nn.Parameter(torch.zeros(channels))
        self.register_buffer("running_mean", torch.zeros(channels))
        self.register_buffer("running_var", torch.ones(channels))

    def forward(self, x):
        _check_dim1(x, len(self.beta), "BatchNormFlow")
        if self.training:
            dims = [0, *range(2, x.dim())]
            mean, var = x.mean(dims), x.var(dims, correction=0)
            with torch.no_grad():
                self.running_mean.lerp_(mean.detach(), self.momentum)
                self.running_var.lerp_(var.detach(), self.momentum)
        else:
            mean, var = self.running_mean, self.running_var
        log_scale = self.log_gamma - 0.5 * torch.log(var + self.eps)
        y = (x - _per_channel(mean, x)) * torch.exp(_per_channel(log_scale, x))
        y = y + _per_channel(self.beta, x)
        return y, (log_scale.sum() * _spatial(x)).expand(x.shape[0])

    def inverse(self, y):
        _check_dim1(y, len(self.beta), "BatchNormFlow")
        log_scale = self.log_gamma - 0.5 * torch.log(self.running_var + self.eps)
        x = (y - _per_channel(self.beta, y)) * torch.exp(-_per_channel(log_scale, y))
        return x + _per_channel(self.running_mean, y)


# --- reshaping and multi-scale ----------------------------------------------------------------


class Squeeze(Flow):
    """[B,C,H,W] -> [B,4C,H/2,W/2]: each 2x2 block of pixels becomes 4 channels (det 1),
    channel 4c + 2i + j holding pixel (i, j) of each block of channel c (as pixel_unshuffle,
    which mishandles an empty batch in torch 2.13)."""

    def forward(self, x):
        if x.dim() != 4 or x.shape[2] % 2 or x.shape[3] % 2:
            raise ValueError(f"Squeeze expects [B,C,H,W] with even H and W, got {list(x.shape)}")
        b, c, h, w = x.shape
        blocks = x.reshape(b, c, h // 2, 2, w // 2, 2).permute(0, 1, 3, 5, 2, 4)
        return blocks.reshape(b, 4 * c, h // 2, w // 2), x.new_zeros(b)

    def inverse(self, y):
        if y.dim() != 4 or y.shape[1] % 4:
            raise ValueError(f"Squeeze.inverse expects [B,4C,H,W], got {list(y.shape)}")
        b, c, h, w = y.shape
        blocks = y.reshape(b, c // 4, 2, 2, h, w).permute(0, 1, 4, 2, 5, 3)
        return blocks.reshape(b, c // 4, 2 * h, 2 * w)


class Unsqueeze(Flow):
    """The inverse of Squeeze: [B,4C,H,W] -> [B,C,2H,2W]."""

    def __init__(self) -> None:
        super().__init__()
        self.squeeze = Squeeze()

    def forward(self, x):
        return self.squeeze.inverse(x), x.new_zeros(x.shape[0])

    def inverse(self, y):
        return self.squeeze(y)[0]


class Flatten(Flow):
    """[B,*shape] -> [B, prod(shape)] (det 1)."""

    def __init__(self, shape: Sequence[int]) -> None:
        super().__init__()
        self.shape = tuple(shape)

    def forward(self, x):
        if tuple(x.shape[1:]) != self.shape:
            raise ValueError(
                f"Flatten expects [B, {', '.join(map(str, self.shape))}], got {list(x.shape)}"
            )
        return x.flatten(1), x.new_zeros(x.shape[0])

    def inverse(self, y):
        return y.view(y.shape[0], *self.shape)


class Split(Flow):
    """Multi-scale factoring out: x [B,C,...] = [x1 (the first C//2 channels), x2]; x1 leaves
    the flow here (z1 = x1, or with ``prior`` Glow's learned conditional Gaussian,
    z1 = (x1 - mu(x2)) * exp(-log_sigma(x2)) with (mu, log_sigma) = prior(x2) along dim 1),
    x2 goes on through ``inner`` (which must keep its shape); y = [z1, inner(x2)]."""

    def __init__(self, channels: int, inner: Flow, prior: nn.Module | None = None) -> None:
        super().__init__()
        check_int("channels", channels, 2)
        self.channels, self.out = channels, channels // 2
        self.inner = inner
        self.prior = prior

    def _standardise(self, x2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean, log_sigma = self.prior(x2).chunk(2, dim=1)
        return mean, log_sigma

    def forward(self, x):
        _check_dim1(x, self.channels, "Split")
        x1, x2 = x[:, : self.out], x[:, self.out :]
        z2, logdet = self.inner(x2)
        if self.prior is not None:
            mean, log_sigma = self._standardise(x2)
            x1 = (x1 - mean) * torch.exp(-log_sigma)
            logdet = logdet - _event_sum(log_sigma)
        return torch.cat([x1, z2], 1), logdet

    def inverse(self, y):
        _check_dim1(y, self.channels, "Split")
        z1, z2 = y[:, : self.out], y[:, self.out :]
        x2 = self.inner.inverse(z2)
        if self.prior is not None:
            mean, log_sigma = self._standardise(x2)
            z1 = z1 * torch.exp(log_sigma) + mean
        return torch.cat([z1, x2], 1)

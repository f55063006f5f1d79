"""Masked convolutions (PixelCNN, van den Oord et al. 2016a) and the gated PixelCNN layer
with vertical and horizontal stacks (van den Oord et al. 2016b), all [B,C,H,W] in raster order:
pixel (r, c) comes after every pixel of the rows above and after (r, c') for c' < c.

Mask types: "A" (the first layer) lets output (r, c) see only pixels strictly before (r, c);
"B" (every later layer) also lets it see (r, c) itself. With ``channel_groups`` G > 1 (colour:
G = 3 for R, G, B) input and output channels are split into G contiguous blocks and, at
(r, c) itself, output block g sees input blocks < g (A) or <= g (B); all blocks see every
channel of the earlier pixels.

A stack of masked convolutions has a blind spot: pixels above and to the right of (r, c)
that no path reaches. The gated layer removes it by splitting the receptive field:

- the vertical stack convolves with a (k//2 + 1) x k kernel over rows r-k//2 .. r (all
  columns c-k//2 .. c+k//2), so it sees everything above and including its row;
- its pre-activations, shifted down by one row, feed the horizontal stack through a 1x1
  convolution, so horizontal (r, c) gets rows < r only;
- the horizontal stack convolves along the row with a 1 x (k//2 + 1) kernel over columns
  c-k//2 .. c (type A: .. c-1) and carries a residual connection (not in type A, whose
  input is the image itself).

After L layers with P = sum of k//2 over the layers, horizontal output (r, c) depends on
exactly the rows r-1-P .. r-1 at columns c-P .. c+P and on row r at columns c-P .. c-1.
Gates are tanh(a) * sigmoid(b) over the two halves of 2C pre-activation channels, plus an
optional conditioning vector [B, cond_dim] projected into both halves of both stacks.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

MASK_TYPES = ("A", "B")


def _check_kernel_and_type(kernel_size: int, mask_type: str) -> None:
    if not isinstance(kernel_size, int) or kernel_size < 1 or kernel_size % 2 == 0:
        raise ValueError(f"kernel_size must be an odd integer >= 1, got {kernel_size!r}")
    if mask_type not in MASK_TYPES:
        raise ValueError(f"mask_type must be 'A' or 'B', got {mask_type!r}")


def _groups_of(channels: int, channel_groups: int, name: str) -> torch.Tensor:
    if channels % channel_groups:
        raise ValueError(f"{name}={channels} must be a multiple of channel_groups={channel_groups}")
    return torch.arange(channels) // (channels // channel_groups)


def raster_mask(
    in_channels: int,
    out_channels: int,
    kernel_size: int,
    mask_type: str,
    channel_groups: int = 1,
) -> torch.Tensor:
    """The 0/1 float mask [out, in, k, k] of a type A or B masked convolution."""
    _check_kernel_and_type(kernel_size, mask_type)
    if channel_groups < 1:
        raise ValueError(f"channel_groups must be >= 1, got {channel_groups}")
    group_in = _groups_of(in_channels, channel_groups, "in_channels")
    group_out = _groups_of(out_channels, channel_groups, "out_channels")
    k, centre = kernel_size, kernel_size // 2
    mask = torch.zeros(out_channels, in_channels, k, k)
    mask[:, :, :centre, :] = 1  # rows above
    mask[:, :, centre, :centre] = 1  # left in the same row
    if mask_type == "A":
        allowed = group_in[None, :] < group_out[:, None]
    else:
        allowed = group_in[None, :] <= group_out[:, None]
    mask[:, :, centre, centre] = allowed.float()
    return mask


class MaskedConv2d(nn.Conv2d):
    """[B,in,H,W] -> [B,out,H,W]: a k x k "same" convolution masked to raster order (A or B)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        mask_type: str,
        channel_groups: int = 1,
        bias: bool = True,
    ):
        mask = raster_mask(in_channels, out_channels, kernel_size, mask_type, channel_groups)
        super().__init__(
            in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=bias
        )
        self.mask_type, self.channel_groups = mask_type, channel_groups
        self.register_buffer("mask", mask)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(x, self.weight * self.mask, self.bias)


def _gate(x: torch.Tensor) -> torch.Tensor:
    a, b = x.chunk(2, dim=1)
    return torch.tanh(a) * torch.sigmoid(b)


class GatedPixelCNNLayer(nn.Module):
    """(v [B,in,H,W], h [B,in,H,W], cond [B,cond_dim]?) -> (v [B,C,H,W], h [B,C,H,W]).

    One gated layer with vertical and horizontal stacks (module docstring); single-channel
    raster order (no colour groups). Type A for the first layer (v = h = the image), B after.
    """

    def __init__(
        self,
        in_channels: int,
        channels: int,
        kernel_size: int,
        mask_type: str,
        cond_dim: int | None = None,
    ):
        super().__init__()
        _check_kernel_and_type(kernel_size, mask_type)
        for name, value in (("in_channels", in_channels), ("channels", channels)):
            if value < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")
        if mask_type == "B" and in_channels != channels:
            raise ValueError(
                f"a type B layer keeps its width (residual): in_channels={in_channels} must "
                f"equal channels={channels}"
            )
        self.mask_type, self.pad = mask_type, kernel_size // 2
        p = self.pad
        self.vertical = nn.Conv2d(in_channels, 2 * channels, (p + 1, kernel_size))
        self.horizontal = nn.Conv2d(in_channels, 2 * channels, (1, p + 1))
        mask = torch.ones(1, 1, 1, p + 1)
        if mask_type == "A":
            mask[..., -1] = 0  # the last tap is (r, c) itself
        self.register_buffer("horizontal_mask", mask)
        self.link = nn.Conv2d(2 * channels, 2 * channels, 1)
        self.out = nn.Conv2d(channels, channels, 1)
        self.cond = nn.Linear(cond_dim, 4 * channels, bias=False) if cond_dim else None

    def forward(
        self, v: torch.Tensor, h: torch.Tensor, cond: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        p = self.pad
        v_pre = self.vertical(F.pad(v, (p, p, p, 0)))  # rows r-p .. r
        weight = self.horizontal.weight * self.horizontal_mask
        h_pre = F.conv2d(F.pad(h, (p, 0, 0, 0)), weight, self.horizontal.bias)
        v_down = F.pad(v_pre, (0, 0, 1, 0))[:, :, :-1]  # row r holds row r-1: rows < r only
        h_pre = h_pre + self.link(v_down)
        if self.cond is not None:
            if cond is None:
                raise ValueError("cond is required: this layer was built with cond_dim")
            cv, ch = self.cond(cond)[:, :, None, None].chunk(2, dim=1)
            v_pre, h_pre = v_pre + cv, h_pre + ch
        h_out = self.out(_gate(h_pre))
        if self.mask_type == "B":
            h_out = h_out + h
        return _gate(v_pre), h_out


class GatedPixelCNNStack(nn.Module):
    """[B,in,H,W] (+ cond [B,cond_dim]) -> [B,C,H,W] features whose (r, c) sees only pixels
    before (r, c), with no blind spot: a type A layer of ``first_kernel_size`` then
    ``n_layers - 1`` type B layers of ``kernel_size``; returns the horizontal stack."""

    def __init__(
        self,
        in_channels: int,
        channels: int,
        n_layers: int,
        kernel_size: int = 3,
        first_kernel_size: int = 7,
        cond_dim: int | None = None,
    ):
        super().__init__()
        if n_layers < 1:
            raise ValueError(f"n_layers must be >= 1, got {n_layers}")
        _check_kernel_and_type(first_kernel_size, "A")
        _check_kernel_and_type(kernel_size, "B")
        layers = [GatedPixelCNNLayer(in_channels, channels, first_kernel_size, "A", cond_dim)]
        layers += [
            GatedPixelCNNLayer(channels, channels, kernel_size, "B", cond_dim)
            for _ in range(n_layers - 1)
        ]
        self.layers = nn.ModuleList(layers)
        self.receptive_radius = first_kernel_size // 2 + (n_layers - 1) * (kernel_size // 2)

    def forward(self, x: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        if x.dim() != 4:
            raise ValueError(f"x must be [B,C,H,W], got shape {tuple(x.shape)}")
        v = h = x
        for layer in self.layers:
            v, h = layer(v, h, cond)
        return h

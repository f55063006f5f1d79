"""Causal and dilated 1D convolutions and WaveNet's gated residual stack (van den Oord et al.
2016), all [B,C,T]: output t never sees inputs after t.

``CausalConv1d`` with ``include_current=True`` (the default, for hidden layers) makes output t
depend on inputs t-(k-1)d .. t; with ``include_current=False`` (the first layer of an
autoregressive model) on t-(k-1)d-1 .. t-1, so output t can predict input t.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn


class CausalConv1d(nn.Conv1d):
    """[B,in,T] -> [B,out,T]: a left-padded (causal) conv of ``kernel_size`` and ``dilation``."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        dilation: int = 1,
        include_current: bool = True,
        bias: bool = True,
    ):
        for name, value in (("kernel_size", kernel_size), ("dilation", dilation)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        super().__init__(in_channels, out_channels, kernel_size, dilation=dilation, bias=bias)
        self.include_current = include_current
        self.left = (kernel_size - 1) * dilation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 3:
            raise ValueError(f"x must be [B,C,T], got shape {tuple(x.shape)}")
        if self.include_current:
            x = F.pad(x, (self.left, 0))
        else:  # shift right by one: output t sees inputs up to t-1
            x = F.pad(x, (self.left + 1, 0))[..., : x.shape[-1] + self.left]
        return super().forward(x)


class WaveNetBlock(nn.Module):
    """x [B,R,T] (+ cond [B,cond_dim]) -> (x + residual [B,R,T], skip [B,S,T]).

    Dilated causal conv to 2R channels (+ a projection of a global conditioning vector),
    gate tanh(a) * sigmoid(b), then 1x1 convs to the residual and the skip outputs.
    """

    def __init__(
        self,
        residual_channels: int,
        skip_channels: int,
        kernel_size: int = 2,
        dilation: int = 1,
        cond_dim: int | None = None,
    ):
        super().__init__()
        for name, value in (
            ("residual_channels", residual_channels),
            ("skip_channels", skip_channels),
        ):
            if value < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")
        self.conv = CausalConv1d(residual_channels, 2 * residual_channels, kernel_size, dilation)
        self.cond = nn.Linear(cond_dim, 2 * residual_channels, bias=False) if cond_dim else None
        self.residual = nn.Conv1d(residual_channels, residual_channels, 1)
        self.skip = nn.Conv1d(residual_channels, skip_channels, 1)

    def forward(
        self, x: torch.Tensor, cond: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        return self._outputs(x, self.conv(x), cond)

    def step(
        self, x: torch.Tensor, taps: torch.Tensor, cond: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """forward's outputs at one time t, for fast generation: x [B,R,1] is the input at t,
        taps [B,R,kernel_size] the inputs its dilated kernel reads (t - dilation (k-1), ..,
        t - dilation, t; zeros before the start)."""
        pre = F.conv1d(taps, self.conv.weight, self.conv.bias)
        return self._outputs(x, pre, cond)

    def _outputs(self, x, pre, cond):
        if self.cond is not None:
            if cond is None:
                raise ValueError("cond is required: this block was built with cond_dim")
            pre = pre + self.cond(cond)[:, :, None]
        a, b = pre.chunk(2, dim=1)
        gated = torch.tanh(a) * torch.sigmoid(b)
        return x + self.residual(gated), self.skip(gated)


class WaveNetStack(nn.Module):
    """x [B,in,T] (+ cond [B,cond_dim]) -> [B,out,T] where output t sees inputs t-RF .. t-1.

    A strictly causal input conv (``include_current=False``), WaveNetBlocks of the given
    dilations, the sum of their skips through ReLU-1x1-ReLU-1x1. Output t thus predicts input
    t from the ``receptive_field`` samples before it, for any 1D sequence (audio, pixels).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        residual_channels: int = 32,
        skip_channels: int = 64,
        dilations: Sequence[int] = (1, 2, 4, 8, 16, 32),
        kernel_size: int = 2,
        cond_dim: int | None = None,
    ):
        super().__init__()
        if not dilations:
            raise ValueError("dilations must list at least one block")
        self.input = CausalConv1d(
            in_channels, residual_channels, kernel_size, include_current=False
        )
        self.blocks = nn.ModuleList(
            WaveNetBlock(residual_channels, skip_channels, kernel_size, d, cond_dim)
            for d in dilations
        )
        self.head = nn.Sequential(
            nn.ReLU(),
            nn.Conv1d(skip_channels, skip_channels, 1),
            nn.ReLU(),
            nn.Conv1d(skip_channels, out_channels, 1),
        )
        self.receptive_field = kernel_size + sum((kernel_size - 1) * d for d in dilations)

    def forward(self, x: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        h = self.input(x)
        skips = 0
        for block in self.blocks:
            h, skip = block(h, cond)
            skips = skips + skip
        return self.head(skips)

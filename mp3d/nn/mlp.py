"""A plain multilayer perceptron."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn


class MLP(nn.Module):
    """[..., in_features] -> [..., out_features] through Linear layers of ``hidden`` widths.

    ``activation`` (a module factory, default ReLU) follows every hidden layer; the output
    layer is linear unless ``final_activation`` is given.
    """

    def __init__(
        self,
        in_features: int,
        hidden: Sequence[int],
        out_features: int,
        activation: Callable[[], nn.Module] = nn.ReLU,
        final_activation: Callable[[], nn.Module] | None = None,
    ):
        super().__init__()
        widths = [in_features, *hidden, out_features]
        for name, value in (("in_features", in_features), ("out_features", out_features)):
            if value < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")
        if any(width < 1 for width in hidden):
            raise ValueError(f"hidden widths must be >= 1, got {list(hidden)}")
        layers: list[nn.Module] = []
        for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
            layers.append(nn.Linear(a, b))
            if i < len(widths) - 2:
                layers.append(activation())
        if final_activation is not None:
            layers.append(final_activation())
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

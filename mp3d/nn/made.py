"""Masked linear layers and MADE's masks (Germain et al. 2015).

Degrees: input variable ``ordering[k]`` gets degree k+1 (ordering[k] is the variable
generated k-th); each hidden unit gets a degree m in [min of the previous layer's degrees,
D-1]. A hidden unit of degree m sees previous units of degree <= m; an output of variable d
sees last-hidden units of degree < degree(d). So output d depends only on the variables
strictly before d in the ordering, and the first variable's outputs only on the biases.
``connectivity``: "random" draws hidden degrees uniformly (MADE's connectivity-agnostic
training draws them anew per mask); "sequential" cycles 1, 2, ..., D-1, 1, ...
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

CONNECTIVITIES = ("random", "sequential")


class MaskedLinear(nn.Linear):
    """[..., in] -> [..., out] with weight * mask; mask [out, in] of 0/1 (a buffer, saved)."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True):
        super().__init__(in_features, out_features, bias)
        self.register_buffer("mask", torch.ones(out_features, in_features))

    def set_mask(self, mask: torch.Tensor) -> None:
        """Replace the mask with a 0/1 tensor [out_features, in_features]."""
        if tuple(mask.shape) != tuple(self.mask.shape):
            raise ValueError(
                f"mask must be [out_features={self.out_features}, in_features="
                f"{self.in_features}], got shape {tuple(mask.shape)}"
            )
        self.mask.copy_(mask.to(self.mask.dtype))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight * self.mask, self.bias)


def _check_ordering(ordering: torch.Tensor, n_inputs: int) -> torch.Tensor:
    ordering = torch.as_tensor(ordering, dtype=torch.long).flatten()
    if ordering.numel() != n_inputs or not torch.equal(
        torch.sort(ordering).values, torch.arange(n_inputs)
    ):
        raise ValueError(f"ordering must be a permutation of 0..{n_inputs - 1}, got {ordering}")
    return ordering


def made_degrees(
    n_inputs: int,
    hidden_sizes: Sequence[int],
    ordering: torch.Tensor | None = None,
    connectivity: str = "random",
    generator: torch.Generator | None = None,
) -> list[torch.Tensor]:
    """Degrees (long tensors) of the inputs [D] (positions 1..D) and of each hidden layer."""
    if n_inputs < 1:
        raise ValueError(f"n_inputs must be >= 1, got {n_inputs}")
    if connectivity not in CONNECTIVITIES:
        raise ValueError(f"connectivity must be one of {CONNECTIVITIES}, got {connectivity!r}")
    if any(size < 1 for size in hidden_sizes):
        raise ValueError(f"hidden_sizes must be >= 1 each, got {list(hidden_sizes)}")
    ordering = torch.arange(n_inputs) if ordering is None else _check_ordering(ordering, n_inputs)
    input_degrees = torch.empty(n_inputs, dtype=torch.long)
    input_degrees[ordering] = torch.arange(1, n_inputs + 1)
    degrees = [input_degrees]
    top = n_inputs - 1  # a hidden unit of degree D would feed no output
    for size in hidden_sizes:
        if top == 0:  # one variable: nothing to condition on
            degrees.append(torch.zeros(size, dtype=torch.long))
        elif connectivity == "sequential":
            degrees.append(torch.arange(size) % top + 1)
        else:
            low = min(int(degrees[-1].min()), top)
            degrees.append(torch.randint(low, top + 1, (size,), generator=generator))
    return degrees


def made_masks(degrees: Sequence[torch.Tensor], n_outputs_per_input: int = 1) -> list[torch.Tensor]:
    """Masks float [out, in] for each layer from ``made_degrees``; the last has D*K rows.

    Output unit k*D + d is the k-th output of variable d (reshape outputs to [..., K, D]).
    """
    if n_outputs_per_input < 1:
        raise ValueError(f"n_outputs_per_input must be >= 1, got {n_outputs_per_input}")
    masks = [(out[:, None] >= inp[None, :]).float() for inp, out in zip(degrees[:-1], degrees[1:])]
    output_degrees = degrees[0].repeat(n_outputs_per_input)
    masks.append((output_degrees[:, None] > degrees[-1][None, :]).float())
    return masks


def _mask_generator(seed: int, index: int) -> torch.Generator:
    state = np.random.SeedSequence([int(seed), int(index)]).generate_state(1, dtype=np.uint64)
    return torch.Generator().manual_seed(int(state[0]) & ((1 << 63) - 1))


class MADENet(nn.Module):
    """x [B,D] -> [B,K,D]: a masked MLP whose outputs [:, :, d] see only inputs before d.

    ``n_masks`` mask sets, each fixed by (seed, index): mask 0 keeps the natural order
    0..D-1 unless ``order_agnostic``; with ``order_agnostic`` every mask draws a random
    ordering, and with connectivity "random" every mask draws its hidden degrees (MADE's
    connectivity-agnostic training). ``set_mask(i)`` / ``next_mask()`` switch between them;
    the current index, ordering and masks are buffers, so a checkpoint restores them.
    """

    def __init__(
        self,
        n_inputs: int,
        hidden_sizes: Sequence[int],
        n_outputs_per_input: int = 1,
        n_masks: int = 1,
        order_agnostic: bool = False,
        connectivity: str = "random",
        seed: int = 0,
        activation: Callable[[], nn.Module] = nn.ReLU,
    ):
        super().__init__()
        if n_masks < 1:
            raise ValueError(f"n_masks must be >= 1, got {n_masks}")
        if not hidden_sizes:
            raise ValueError("hidden_sizes must list at least one hidden layer")
        made_degrees(n_inputs, hidden_sizes, connectivity=connectivity)  # validates arguments
        self.n_inputs, self.hidden_sizes = n_inputs, list(hidden_sizes)
        self.n_outputs_per_input, self.n_masks = n_outputs_per_input, n_masks
        self.order_agnostic, self.connectivity, self.seed = order_agnostic, connectivity, seed
        widths = [n_inputs, *hidden_sizes, n_inputs * n_outputs_per_input]
        self.layers = nn.ModuleList(MaskedLinear(a, b) for a, b in zip(widths[:-1], widths[1:]))
        self.activations = nn.ModuleList(activation() for _ in hidden_sizes)
        self.register_buffer("mask_index", torch.tensor(0))
        self.register_buffer("ordering", torch.arange(n_inputs))
        self.set_mask(0)

    def mask_set(self, index: int) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Ordering [D] and layer masks of mask set ``index`` (deterministic in seed, index)."""
        if not 0 <= index < self.n_masks:
            raise ValueError(f"index must be in 0..{self.n_masks - 1}, got {index}")
        generator = _mask_generator(self.seed, index)
        if self.order_agnostic:
            ordering = torch.randperm(self.n_inputs, generator=generator)
        else:
            ordering = torch.arange(self.n_inputs)
        degrees = made_degrees(
            self.n_inputs, self.hidden_sizes, ordering, self.connectivity, generator
        )
        return ordering, made_masks(degrees, self.n_outputs_per_input)

    def set_mask(self, index: int) -> None:
        """Use mask set ``index`` from now on."""
        ordering, masks = self.mask_set(index)
        for layer, mask in zip(self.layers, masks):
            layer.set_mask(mask)
        self.ordering.copy_(ordering)
        self.mask_index.fill_(index)

    def next_mask(self) -> int:
        """Move to the next mask set (cyclically); returns its index."""
        index = (int(self.mask_index) + 1) % self.n_masks
        self.set_mask(index)
        return index

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 2 or x.shape[1] != self.n_inputs:
            raise ValueError(f"x must be [B, {self.n_inputs}], got shape {tuple(x.shape)}")
        h = x
        for layer, activation in zip(self.layers[:-1], self.activations):
            h = activation(layer(h))
        out = self.layers[-1](h)
        return out.reshape(x.shape[0], self.n_outputs_per_input, self.n_inputs)

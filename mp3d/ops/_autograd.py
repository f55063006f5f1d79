"""The one rule for double backward through the compiled kernels.

Each kernel family's autograd.Function runs its backward kernel through `backward_kernel`,
an autograd node of its own. With create_graph=True the gradients it returns are attached
to that node, and differentiating them again raises NotImplementedError naming the family,
instead of silently treating the first gradients as constants (which gives wrong second
derivatives, e.g. for an eikonal loss). The torch references (impl="torch") are plain
torch code and differentiate to any order.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

__all__ = ["backward_kernel"]


class _BackwardKernel(torch.autograd.Function):
    """Runs `op(*args)` (a backward kernel) as a node whose own backward refuses to run."""

    @staticmethod
    def forward(ctx, family: str, op: Callable[..., Any], *args):
        ctx.family = family
        return op(*args)

    @staticmethod
    def backward(ctx, *grads):
        raise NotImplementedError(
            f"mp3d.ops.{ctx.family}: the compiled kernels have no double backward "
            "(a gradient taken with create_graph=True cannot be differentiated again); "
            "pass impl='torch' to differentiate through the gradients"
        )


def backward_kernel(family: str, op: Callable[..., Any], *args):
    """`op(*args)`, the backward kernel of `family`; differentiating its outputs raises
    NotImplementedError (see the module docstring)."""
    return _BackwardKernel.apply(family, op, *args)

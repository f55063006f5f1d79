"""Backpropagation through time: full, truncated with the hidden state carried across
windows, and gradient clipping by global norm.

Truncated BPTT (Williams & Peng 1990; char-rnn's training) splits a sequence of length T into
windows of k steps. Each window starts from the previous window's final state, *detached*:
the forward pass sees the whole history, but gradients stop at the window's start, so the
cost of a step is O(k), not O(T). With k = T it is full BPTT.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

import torch

from mp3d.training import check_float, check_int


def detach_state(state):
    """The state (a tensor, a tuple/list of them, or None) cut from the autograd graph."""
    if state is None:
        return None
    if isinstance(state, torch.Tensor):
        return state.detach()
    if isinstance(state, (tuple, list)):
        return type(state)(detach_state(part) for part in state)
    raise ValueError(f"state must be a tensor, a tuple of tensors or None, got {type(state)}")


def global_grad_norm(parameters: Iterable[torch.Tensor]) -> float:
    """sqrt(sum over parameters of ||grad||^2): the L2 norm of all gradients as one vector."""
    grads = [p.grad for p in parameters if p.grad is not None]
    if not grads:
        return 0.0
    return float(torch.sqrt(sum(g.detach().double().square().sum() for g in grads)))


def clip_grad_norm(parameters: Iterable[torch.Tensor], max_norm: float) -> float:
    """Scales all gradients by max_norm / norm when their global norm exceeds max_norm
    (Pascanu et al. 2013), keeping their direction; returns the norm before clipping."""
    check_float("max_norm", max_norm, 0.0, exclusive_minimum=True)
    parameters = [p for p in parameters if p.grad is not None]
    norm = global_grad_norm(parameters)
    if math.isfinite(norm) and norm > max_norm:
        scale = max_norm / (norm + 1e-6)
        for p in parameters:
            p.grad.mul_(scale)
    return norm


def truncated_bptt(
    forward: Callable,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    inputs: torch.Tensor,
    targets: torch.Tensor,
    window: int,
    state=None,
    after_window: Callable[[], None] | None = None,
) -> tuple[float, object]:
    """Runs forward(inputs[:, a:b], state) -> (outputs, state) over windows of `window`
    steps of inputs [B,T,...], backpropagating loss_fn(outputs, targets[:, a:b]) (a mean over
    the window) weighted by (b - a) / T after each, then detaching the state.

    Without `after_window` the gradients add up to those of the mean loss over all T steps
    with paths cut at window starts (window >= T: exactly full BPTT); with it (e.g. clip and
    an optimizer step) each window is one update, as in char-rnn. Returns (the mean loss over
    the T steps, the final state, detached)."""
    if inputs.dim() < 2 or targets.shape[:2] != inputs.shape[:2]:
        raise ValueError(
            f"inputs and targets must be [B,T,...] with the same B and T, got "
            f"{tuple(inputs.shape)} and {tuple(targets.shape)}"
        )
    length = inputs.shape[1]
    check_int("window", window, 1)
    total = 0.0
    for start in range(0, length, window):
        stop = min(start + window, length)
        outputs, state = forward(inputs[:, start:stop], state)
        loss = loss_fn(outputs, targets[:, start:stop]) * ((stop - start) / length)
        loss.backward()
        total += float(loss.detach())
        state = detach_state(state)
        if after_window is not None:
            after_window()
    return total, state


def bptt(
    forward: Callable, loss_fn: Callable, inputs: torch.Tensor, targets: torch.Tensor, state=None
) -> tuple[float, object]:
    """Full backpropagation through time: truncated_bptt with one window of all T steps."""
    return truncated_bptt(forward, loss_fn, inputs, targets, max(inputs.shape[1], 1), state)

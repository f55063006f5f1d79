"""Recurrent cells written out from their equations, one time step each.

Shapes: x [B, I] (input), h and c [B, H] (hidden and cell state); weights follow torch's
layout so that the same tensors give the same numbers as torch.nn.RNN/LSTM/GRU:
w_ih [G*H, I], w_hh [G*H, H], b_ih and b_hh [G*H] with G gates stacked in torch's order.
Every cell also takes ``xw``, x @ w_ih^T + b_ih precomputed for all time steps at once
(one large matmul instead of T small ones), in which case x is not used.

    Elman:  h' = tanh(W_ih x + b_ih + W_hh h + b_hh)                  (or relu)
    leaky:  h' = (1 - a) h + a tanh(W_ih x + b_ih + W_hh h + b_hh),   a in (0, 1]
    LSTM:   [i, f, g, o] = W_ih x + b_ih + W_hh h + b_hh
            i, f, o = sigmoid(.), g = tanh(.)
            c' = f * c + i * g,  h' = o * tanh(c')
    GRU:    [r_x, z_x, n_x] = W_ih x + b_ih,  [r_h, z_h, n_h] = W_hh h + b_hh
            r = sigmoid(r_x + r_h), z = sigmoid(z_x + z_h)
            n = tanh(n_x + r * n_h),  h' = (1 - z) * n + z * h

The leaky-unit RNN (Jaeger et al. 2007; the "leaky units" of Goodfellow et al., ch. 10.9)
keeps a fraction 1 - a of its old state, so small a gives slowly changing, long-memory units;
a = 1 is the Elman RNN.
"""

from __future__ import annotations

import torch

GATES = {"rnn_tanh": 1, "rnn_relu": 1, "leaky": 1, "lstm": 4, "gru": 3}


def _linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    out = x @ weight.t()
    return out if bias is None else out + bias


def rnn_cell(
    x: torch.Tensor | None,
    h: torch.Tensor,
    w_ih: torch.Tensor,
    w_hh: torch.Tensor,
    b_ih: torch.Tensor | None = None,
    b_hh: torch.Tensor | None = None,
    nonlinearity: str = "tanh",
    xw: torch.Tensor | None = None,
) -> torch.Tensor:
    """One Elman step: h [B,H] -> h' [B,H] = act(W_ih x + b_ih + W_hh h + b_hh)."""
    pre = (_linear(x, w_ih, b_ih) if xw is None else xw) + _linear(h, w_hh, b_hh)
    if nonlinearity == "tanh":
        return torch.tanh(pre)
    if nonlinearity == "relu":
        return torch.relu(pre)
    raise ValueError(f"nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")


def leaky_rnn_cell(
    x: torch.Tensor | None,
    h: torch.Tensor,
    w_ih: torch.Tensor,
    w_hh: torch.Tensor,
    b_ih: torch.Tensor | None = None,
    b_hh: torch.Tensor | None = None,
    alpha: float = 1.0,
    xw: torch.Tensor | None = None,
) -> torch.Tensor:
    """One leaky-unit step: h [B,H] -> (1 - alpha) h + alpha tanh(W_ih x + b_ih + W_hh h + b_hh)."""
    return (1.0 - alpha) * h + alpha * rnn_cell(x, h, w_ih, w_hh, b_ih, b_hh, "tanh", xw)


def lstm_cell(
    x: torch.Tensor | None,
    state: tuple[torch.Tensor, torch.Tensor],
    w_ih: torch.Tensor,
    w_hh: torch.Tensor,
    b_ih: torch.Tensor | None = None,
    b_hh: torch.Tensor | None = None,
    xw: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One LSTM step: (h, c) [B,H] each -> (h', c'), gates input, forget, cell, output."""
    h, c = state
    gates = (_linear(x, w_ih, b_ih) if xw is None else xw) + _linear(h, w_hh, b_hh)
    i, f, g, o = gates.chunk(4, dim=-1)
    c_next = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    return torch.sigmoid(o) * torch.tanh(c_next), c_next


def gru_cell(
    x: torch.Tensor | None,
    h: torch.Tensor,
    w_ih: torch.Tensor,
    w_hh: torch.Tensor,
    b_ih: torch.Tensor | None = None,
    b_hh: torch.Tensor | None = None,
    xw: torch.Tensor | None = None,
) -> torch.Tensor:
    """One GRU step: h [B,H] -> h' [B,H], gates reset r, update z, candidate n."""
    r_x, z_x, n_x = (_linear(x, w_ih, b_ih) if xw is None else xw).chunk(3, dim=-1)
    r_h, z_h, n_h = _linear(h, w_hh, b_hh).chunk(3, dim=-1)
    r = torch.sigmoid(r_x + r_h)
    z = torch.sigmoid(z_x + z_h)
    n = torch.tanh(n_x + r * n_h)
    return (1.0 - z) * n + z * h

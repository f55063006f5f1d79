"""The recurrent cells written from their equations equal torch.nn.RNN/LSTM/GRU given the
same weights (stacked and bidirectional too), and the leaky unit's defining properties."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from mp3d.sequence.cells import gru_cell, leaky_rnn_cell, lstm_cell, rnn_cell
from mp3d.sequence.recurrent import GRU, LSTM, RNN, LeakyRNN, make_recurrent

pytestmark = pytest.mark.usefixtures("one_thread")

TORCH = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}
OURS = {"rnn": RNN, "lstm": LSTM, "gru": GRU}


def _pair(kind, layers, bidirectional, extra=None):
    torch.manual_seed(layers * 10 + bidirectional)
    extra = extra or {}
    reference = TORCH[kind](5, 7, layers, batch_first=True, bidirectional=bidirectional, **extra)
    ours = OURS[kind](5, 7, layers, bidirectional=bidirectional, **extra)
    ours.load_state_dict(reference.state_dict())  # same names and shapes, strictly
    return reference.double(), ours.double()


@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("layers, bidirectional", [(1, False), (3, False), (2, True)])
def test_layers_equal_torch_outputs_states_and_gradients(kind, layers, bidirectional):
    reference, ours = _pair(kind, layers, bidirectional)
    x = torch.randn(4, 6, 5, dtype=torch.float64)
    h0 = torch.randn(layers * (1 + bidirectional), 4, 7, dtype=torch.float64)
    state = (h0, torch.randn_like(h0)) if kind == "lstm" else h0
    out_ref, state_ref = reference(x, state)
    out, state_ours = ours(x, state)
    assert out.shape == (4, 6, 7 * (1 + bidirectional))
    assert torch.allclose(out, out_ref, atol=1e-6, rtol=0)
    for a, b in zip(
        torch.utils._pytree.tree_leaves(state_ours), torch.utils._pytree.tree_leaves(state_ref)
    ):
        assert torch.allclose(a, b, atol=1e-6, rtol=0)
    (out_ref.square().sum()).backward()
    (out.square().sum()).backward()
    for (name, p_ref), (name_ours, p) in zip(reference.named_parameters(), ours.named_parameters()):
        assert name == name_ours
        assert torch.allclose(p.grad, p_ref.grad, atol=1e-6, rtol=0), name


def test_float32_defaults_equal_torch_to_1e_6():
    for kind in ("rnn", "lstm", "gru"):
        torch.manual_seed(0)
        reference = TORCH[kind](3, 8, 2, batch_first=True)
        ours = OURS[kind](3, 8, 2)
        ours.load_state_dict(reference.state_dict())
        x = torch.randn(2, 10, 3)
        assert torch.allclose(ours(x)[0], reference(x)[0], atol=1e-6, rtol=0), kind


def test_relu_rnn_and_no_bias_equal_torch():
    torch.manual_seed(1)
    reference = nn.RNN(4, 6, 2, nonlinearity="relu", bias=False, batch_first=True).double()
    ours = RNN(4, 6, 2, nonlinearity="relu", bias=False).double()
    ours.load_state_dict(reference.state_dict())
    x = torch.randn(3, 5, 4, dtype=torch.float64)
    assert torch.allclose(ours(x)[0], reference(x)[0], atol=1e-6, rtol=0)


def test_single_cells_equal_torch_cells():
    torch.manual_seed(2)
    x, h, c = torch.randn(3, 4), torch.randn(3, 5), torch.randn(3, 5)
    for torch_cell, ours in ((nn.RNNCell(4, 5), rnn_cell), (nn.GRUCell(4, 5), gru_cell)):
        w = (torch_cell.weight_ih, torch_cell.weight_hh, torch_cell.bias_ih, torch_cell.bias_hh)
        assert torch.allclose(ours(x, h, *w), torch_cell(x, h), atol=1e-6)
    cell = nn.LSTMCell(4, 5)
    w = (cell.weight_ih, cell.weight_hh, cell.bias_ih, cell.bias_hh)
    for a, b in zip(lstm_cell(x, (h, c), *w), cell(x, (h, c))):
        assert torch.allclose(a, b, atol=1e-6)


def test_leaky_unit_interpolates_between_memory_and_elman():
    torch.manual_seed(3)
    x, h = torch.randn(2, 4), torch.randn(2, 6)
    w_ih, w_hh, b = torch.randn(6, 4), torch.randn(6, 6), torch.randn(6)
    elman = rnn_cell(x, h, w_ih, w_hh, b, b)
    assert torch.allclose(leaky_rnn_cell(x, h, w_ih, w_hh, b, b, alpha=1.0), elman)
    half = leaky_rnn_cell(x, h, w_ih, w_hh, b, b, alpha=0.25)
    assert torch.allclose(half, 0.75 * h + 0.25 * elman)
    # The layer: alpha = 1 equals torch's Elman RNN; a small alpha changes h slowly.
    layer = LeakyRNN(4, 6, alpha=1.0)
    reference = nn.RNN(4, 6, batch_first=True)
    reference.load_state_dict(layer.state_dict())
    seq = torch.randn(2, 7, 4)
    assert torch.allclose(layer(seq)[0], reference(seq)[0], atol=1e-6)
    slow = LeakyRNN(4, 6, alpha=0.05)
    slow.load_state_dict(layer.state_dict())
    steps = slow(seq)[0].diff(dim=1).abs().max()
    assert steps < 0.05 + 1e-6 and steps < layer(seq)[0].diff(dim=1).abs().max()


def test_make_recurrent_both_impls_share_state_dicts_and_outputs():
    for kind in ("rnn", "lstm", "gru"):
        torch.manual_seed(4)
        fast = make_recurrent(kind, 3, 4, 2, impl="torch")
        slow = make_recurrent(kind, 3, 4, 2, impl="equations")
        slow.load_state_dict(fast.state_dict())
        x = torch.randn(2, 5, 3)
        assert torch.allclose(fast(x)[0], slow(x)[0], atol=1e-6), kind


def test_bad_input_is_refused_with_the_argument_named():
    layer = LSTM(3, 4)
    with pytest.raises(ValueError, match=r"x must be \[B, T, 3\]"):
        layer(torch.zeros(2, 5, 4))
    with pytest.raises(ValueError, match="state must be a pair"):
        layer(torch.zeros(2, 5, 3), torch.zeros(1, 2, 4))
    with pytest.raises(ValueError, match=r"state must be \[L\*D, B, H\]"):
        GRU(3, 4)(torch.zeros(2, 5, 3), torch.zeros(1, 3, 4))
    with pytest.raises(ValueError, match="hidden_size must be an int >= 1, got 0"):
        GRU(3, 0)
    with pytest.raises(ValueError, match="alpha must be"):
        LeakyRNN(3, 4, alpha=0.0)
    with pytest.raises(ValueError, match="kind must be one of"):
        make_recurrent("transformer", 3, 4)

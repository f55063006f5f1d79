"""BPTT: truncated with a window of the full length equals full BPTT, shorter windows carry
the state forward (same loss) but cut the gradient paths; clipping by global norm."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mp3d.sequence.bptt import (
    bptt,
    clip_grad_norm,
    detach_state,
    global_grad_norm,
    truncated_bptt,
)
from mp3d.sequence.recurrent import LSTM

pytestmark = pytest.mark.usefixtures("one_thread")


class Tagger(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.rnn = LSTM(3, 8)
        self.head = nn.Linear(8, 2)

    def forward(self, x, state):
        out, state = self.rnn(x, state)
        return self.head(out), state


def _loss(outputs, targets):
    return F.cross_entropy(outputs.reshape(-1, 2), targets.reshape(-1))


def _grads(model):
    return [p.grad.clone() for p in model.parameters()]


@pytest.fixture
def sequence():
    torch.manual_seed(1)
    return torch.randn(4, 12, 3), torch.randint(0, 2, (4, 12))


def test_truncated_with_a_full_window_equals_full_bptt(sequence):
    x, y = sequence
    model = Tagger()
    out, _ = model(x, None)
    _loss(out, y).backward()
    reference = _grads(model)
    for window in (12, 50):
        model.zero_grad()
        loss, _ = truncated_bptt(model, _loss, x, y, window)
        with torch.no_grad():
            assert loss == pytest.approx(float(_loss(model(x, None)[0], y)), abs=1e-6)
        for a, b in zip(_grads(model), reference):
            assert torch.allclose(a, b, atol=1e-7)
    model.zero_grad()
    bptt(model, _loss, x, y)
    assert all(torch.allclose(a, b, atol=1e-7) for a, b in zip(_grads(model), reference))


def test_shorter_windows_carry_the_state_but_cut_the_gradient(sequence):
    x, y = sequence
    model = Tagger()
    bptt(model, _loss, x, y)
    full = _grads(model)
    model.zero_grad()
    loss, state = truncated_bptt(model, _loss, x, y, window=3)
    # The forward pass saw the whole history: the same loss and final state as full BPTT.
    with torch.no_grad():
        out, full_state = model(x, None)
    assert loss == pytest.approx(float(_loss(out, y)), abs=1e-6)
    assert torch.allclose(state[0], full_state[0], atol=1e-6)
    assert not state[0].requires_grad
    # The gradient is not the full one (paths longer than 3 steps are cut).
    assert max((a - b).abs().max() for a, b in zip(_grads(model), full)) > 1e-4


def test_after_window_runs_once_per_window(sequence):
    x, y = sequence
    model = Tagger()
    calls = []
    truncated_bptt(model, _loss, x, y, window=5, after_window=lambda: calls.append(1))
    assert len(calls) == 3  # windows of 5, 5, 2
    with pytest.raises(ValueError, match="window must be an int >= 1, got 0"):
        truncated_bptt(model, _loss, x, y, window=0)
    with pytest.raises(ValueError, match="same B and T"):
        truncated_bptt(model, _loss, x, y[:, :5], window=2)


def test_clip_grad_norm_scales_to_the_global_norm_like_torch():
    torch.manual_seed(2)
    a, b = nn.Parameter(torch.randn(5)), nn.Parameter(torch.randn(3, 3))
    a.grad, b.grad = torch.full((5,), 3.0), torch.full((3, 3), 4.0)
    expected_norm = (5 * 9 + 9 * 16) ** 0.5
    copies = [nn.Parameter(p.detach().clone()) for p in (a, b)]
    for copy, p in zip(copies, (a, b)):
        copy.grad = p.grad.clone()
    norm = clip_grad_norm([a, b], 1.0)
    assert norm == pytest.approx(expected_norm)
    assert global_grad_norm([a, b]) == pytest.approx(1.0, abs=1e-5)
    torch.nn.utils.clip_grad_norm_(copies, 1.0)
    assert torch.allclose(a.grad, copies[0].grad, atol=1e-6)
    assert torch.allclose(b.grad, copies[1].grad, atol=1e-6)
    # The direction is kept; below the threshold nothing changes.
    assert torch.allclose(b.grad / a.grad[0], torch.full((3, 3), 4 / 3))
    before = a.grad.clone()
    assert clip_grad_norm([a, b], 10.0) == pytest.approx(1.0, abs=1e-5)
    assert torch.equal(a.grad, before)
    with pytest.raises(ValueError, match="max_norm must be a finite number > 0"):
        clip_grad_norm([a], 0.0)


def test_detach_state_keeps_structure():
    h = torch.ones(2, requires_grad=True) * 2
    out = detach_state((h, [h]))
    assert isinstance(out, tuple) and isinstance(out[1], list)
    assert not out[0].requires_grad and detach_state(None) is None
    with pytest.raises(ValueError, match="state must be a tensor"):
        detach_state("h")

"""What every character-level model shares, and the recurrent one (char-RNN: embedding,
stacked RNN/LSTM/GRU, linear read-out).

A ``CharModel`` maps ids x [B,T] to next-character logits and exposes:

- ``loss(x, y, state)``: (mean cross-entropy in nats per character (a bound for latent
  models), the state after x for truncated BPTT (None for models without one), scalars);
- ``start(prompt, generator)`` / ``next_logits(state)`` [B,V] / ``extend(state, ids, generator)``:
  the three steps of generation (mp3d.sequence.sampling), whatever the model's context is.

``recurrent`` says whether the state after one window is the right start for the next (the
stream batches of truncated BPTT) or whether each window stands alone (random windows).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from mp3d.sequence.bptt import detach_state
from mp3d.sequence.recurrent import make_recurrent
from mp3d.training import check_float, check_int


def check_ids(x: torch.Tensor, vocab_size: int, name: str = "x") -> None:
    """ValueError naming `name` unless x is int64 [B,T] with ids in 0..vocab_size-1."""
    if x.dim() != 2 or x.dtype != torch.int64:
        raise ValueError(f"{name} must be int64 ids [B,T], got {x.dtype} {tuple(x.shape)}")
    if x.numel() and (int(x.min()) < 0 or int(x.max()) >= vocab_size):
        raise ValueError(f"{name} ids must be in 0..{vocab_size - 1}, got {int(x.max())}")


class CharModel(nn.Module):
    """Base of the character-level models (see the module docstring)."""

    recurrent: bool = False

    def __init__(self, vocab_size: int):
        super().__init__()
        self.vocab_size = check_int("vocab_size", vocab_size, 1)

    def loss(self, x: torch.Tensor, y: torch.Tensor, state=None):
        """(cross-entropy of y given x, nats/char [scalar], state after x, scalars)."""
        logits, state = self(x, state)
        check_ids(y, self.vocab_size, "y")
        nll = F.cross_entropy(logits.reshape(-1, self.vocab_size), y.reshape(-1))
        return nll, state, {}

    def start(self, prompt: torch.Tensor, generator: torch.Generator | None = None):
        """The generation state after reading prompt ids [B,T>=1]."""
        raise NotImplementedError

    def next_logits(self, state) -> torch.Tensor:
        """Logits [B,V] of the next character."""
        raise NotImplementedError

    def extend(self, state, ids: torch.Tensor, generator: torch.Generator | None = None):
        """The state after appending ids [B]."""
        raise NotImplementedError


class CharRNN(CharModel):
    """ids [B,T] -> logits [B,T,V]: embedding [V,H] -> `layers` of rnn/leaky/lstm/gru
    (`impl` torch or equations, same weights) -> dropout -> linear [H,V]."""

    recurrent = True

    def __init__(
        self,
        vocab_size: int,
        kind: str = "lstm",
        hidden: int = 256,
        layers: int = 2,
        dropout: float = 0.0,
        impl: str = "torch",
    ):
        super().__init__(vocab_size)
        check_int("hidden", hidden, 1)
        check_int("layers", layers, 1)
        check_float("dropout", dropout, 0.0, 1.0)
        self.kind = kind
        self.embed = nn.Embedding(vocab_size, hidden)
        self.rnn = make_recurrent(kind, hidden, hidden, layers, dropout, impl)
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(hidden, vocab_size)

    def forward(self, x: torch.Tensor, state=None):
        """(logits [B,T,V], final recurrent state) of ids x [B,T] from `state` (None: zeros)."""
        check_ids(x, self.vocab_size)
        out, state = self.rnn(self.embed(x), state)
        return self.head(self.drop(out)), state

    def start(self, prompt, generator=None):
        logits, state = self(prompt)
        return logits[:, -1], detach_state(state)

    def next_logits(self, state):
        return state[0]

    def extend(self, state, ids, generator=None):
        logits, hidden = self(ids[:, None], state[1])
        return logits[:, -1], hidden

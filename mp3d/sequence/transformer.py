"""A character-level causal transformer (GPT's shape, nanoGPT's size range): token
embedding + learned positions, pre-norm blocks of causal self-attention and MLP
(mp3d.nn.TransformerBlock), a final LayerNorm, and a read-out tied to the token embedding.

Logit t depends on characters 0..t only (the causal mask), so one forward pass over a
window of T characters trains T next-character predictions at once.
"""

from __future__ import annotations

import torch
from torch import nn

from mp3d.nn import PositionalEmbedding, TransformerBlock
from mp3d.sequence.language import CharModel, check_ids
from mp3d.training import check_float, check_int


class CharTransformer(CharModel):
    """ids [B,T<=block] -> logits [B,T,V]; `layers` blocks of width `dim`, `heads` heads."""

    def __init__(
        self,
        vocab_size: int,
        dim: int = 128,
        layers: int = 4,
        heads: int = 4,
        block: int = 128,
        dropout: float = 0.0,
    ):
        super().__init__(vocab_size)
        check_int("dim", dim, 1)
        check_int("layers", layers, 1)
        check_int("heads", heads, 1)
        check_int("block", block, 1)
        check_float("dropout", dropout, 0.0, 1.0)
        if dim % heads:
            raise ValueError(f"heads must divide dim: got dim={dim}, heads={heads}")
        self.block = block
        self.embed = nn.Embedding(vocab_size, dim)
        self.positions = PositionalEmbedding(block, dim, "learned")
        self.drop = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(TransformerBlock(dim, heads, 4, dropout) for _ in range(layers))
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, vocab_size, bias=False)
        self.apply(self._init)
        self.head.weight = self.embed.weight  # weight tying (Press & Wolf 2017)

    @staticmethod
    def _init(module: nn.Module) -> None:
        # GPT-2's initialisation: small normal weights, zero biases.
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, 0.0, 0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor, state=None):
        """(logits [B,T,V], None): each window stands alone (no state between windows)."""
        check_ids(x, self.vocab_size)
        if x.shape[1] > self.block:
            raise ValueError(f"x has {x.shape[1]} characters, more than block={self.block}")
        h = self.drop(self.embed(x) + self.positions(x.shape[1]))
        for block in self.blocks:
            h = block(h)
        return self.head(self.norm(h)), None

    def start(self, prompt, generator=None):
        check_ids(prompt, self.vocab_size, "prompt")
        return prompt

    def next_logits(self, state):
        return self(state[:, -self.block :])[0][:, -1]

    def extend(self, state, ids, generator=None):
        return torch.cat([state, ids[:, None]], dim=1)

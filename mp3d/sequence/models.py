"""The character models by name, each with the defaults it trains well with.

Defaults are sized for about 10 minutes on one thread of a 2-core CPU (bench/
quality_sequence.py): the transformer is nanoGPT's CPU-sized character model (4 blocks of
128, 4 heads) with a context of 128 and 16 x 128 = 2,048 characters a step, more
characters than nanoGPT's 12 x 64 because a 10-minute budget affords them; the recurrent
models read 32 streams x 64 characters a step. ``options`` override the model's
constructor arguments.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mp3d.sequence.language import CharModel, CharRNN
from mp3d.sequence.transformer import CharTransformer
from mp3d.sequence.vrnn import VRNN


@dataclass(frozen=True)
class SequenceSpec:
    """A model's name, summary, constructor, options and training defaults."""

    name: str
    summary: str
    make: type
    options: dict = field(default_factory=dict)
    batch_size: int = 32
    block: int = 128  # characters per window (BPTT truncation length for recurrent models)
    lr: float = 2e-3


SPECS = {
    spec.name: spec
    for spec in (
        SequenceSpec(
            "lstm",
            "char-LSTM, 2 layers of 256, truncated BPTT over streams",
            CharRNN,
            {"kind": "lstm", "hidden": 256, "layers": 2, "dropout": 0.0},
            batch_size=32,
            block=64,
            lr=3e-3,
        ),
        SequenceSpec(
            "gru",
            "char-GRU, 2 layers of 256, truncated BPTT over streams",
            CharRNN,
            {"kind": "gru", "hidden": 256, "layers": 2, "dropout": 0.0},
            batch_size=32,
            block=64,
            lr=3e-3,
        ),
        SequenceSpec(
            "rnn",
            "Elman char-RNN (tanh), 1 layer of 256, truncated BPTT over streams",
            CharRNN,
            {"kind": "rnn", "hidden": 256, "layers": 1, "dropout": 0.0},
            batch_size=32,
            block=64,
            lr=1e-3,
        ),
        SequenceSpec(
            "transformer",
            "char-level causal transformer, 4 pre-norm blocks of 128, learned positions",
            CharTransformer,
            {"dim": 128, "layers": 4, "heads": 4, "block": 128, "dropout": 0.0},
            batch_size=16,
            block=128,
            lr=2e-3,
        ),
        SequenceSpec(
            "vrnn",
            "variational RNN (a VAE per step, GRU 256, latent 32); loss = -ELBO per char",
            VRNN,
            {"hidden": 256, "latent": 32, "features": 128},
            batch_size=32,
            block=64,
            lr=2e-3,
        ),
    )
}
MODEL_NAMES = tuple(SPECS)


def sequence_spec(name: str) -> SequenceSpec:
    """The spec registered as `name`; ValueError listing the names otherwise."""
    if name not in SPECS:
        raise ValueError(f"model must be one of {MODEL_NAMES}, got {name!r}")
    return SPECS[name]


def build_model(name: str, vocab_size: int, options: dict | None = None) -> CharModel:
    """A fresh model `name` over `vocab_size` characters; options override its defaults
    (ValueError naming an option it does not take)."""
    spec = sequence_spec(name)
    merged = {**spec.options, **(options or {})}
    try:
        return spec.make(vocab_size, **merged)
    except TypeError as error:
        raise ValueError(f"model {name!r}: bad options {sorted(merged)} ({error})") from error

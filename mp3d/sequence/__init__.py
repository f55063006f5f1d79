"""Sequence models on the tensors, training layer and command line of the rest of mp3d.

- cells written out from their equations (``cells``: Elman, leaky-unit, LSTM, GRU) and the
  stacked, bidirectional layers that loop them over time (``recurrent``), equal to
  torch.nn.RNN/LSTM/GRU given the same weights;
- backpropagation through time, truncated BPTT with the hidden state carried across windows,
  clipping by global norm (``bptt``);
- character-level language models (many-to-many): char-RNN/LSTM/GRU (``language``), a
  causal transformer (``transformer``), the variational RNN with its ELBO (``vrnn``);
  generation with temperature and top-k (one-to-many, ``sampling``); training on a text
  file (``train``, names in ``models``);
- sequence classification (many-to-one): sequential MNIST read row by row (``classify``).

Measured (one torch thread each on the shared 2-core CPU, the two runs side by side):

- ``python bench/quality_sequence.py --models transformer`` (10 minutes): validation 1.684
  nats/char after 2,254 steps of 16 x 128 characters (4 blocks of 128, 818k parameters),
  under the goal of 1.7; nanoGPT's CPU model reports about 1.88 after a few minutes.
- ``python bench/quality_sequence.py --models lstm`` (10 minutes): 1.506 nats/char after
  2,260 steps of 32 x 64 characters (2 x 256, 1.09M parameters).
- ``mp3d seq train lstm --data ../shared/data/mnist --minutes 1`` (load 9-11): sequential-MNIST
  test accuracy 0.972 (1,255 steps of 64 digits, LSTM of 128, 1,000 evaluation digits).
"""

from mp3d.sequence.bptt import bptt, clip_grad_norm, detach_state, global_grad_norm, truncated_bptt
from mp3d.sequence.language import CharModel, CharRNN
from mp3d.sequence.models import MODEL_NAMES, SequenceSpec, build_model, sequence_spec
from mp3d.sequence.recurrent import GRU, LSTM, RNN, LeakyRNN, Recurrent, make_recurrent
from mp3d.sequence.sampling import generate, sample_next, sample_text
from mp3d.sequence.train import (
    SequenceConfig,
    evaluate_loss,
    load_sequence_model,
    train_sequence_model,
)
from mp3d.sequence.transformer import CharTransformer
from mp3d.sequence.vrnn import VRNN, gaussian_kl

__all__ = [
    "GRU",
    "LSTM",
    "MODEL_NAMES",
    "RNN",
    "VRNN",
    "CharModel",
    "CharRNN",
    "CharTransformer",
    "LeakyRNN",
    "Recurrent",
    "SequenceConfig",
    "SequenceSpec",
    "bptt",
    "build_model",
    "clip_grad_norm",
    "detach_state",
    "evaluate_loss",
    "gaussian_kl",
    "generate",
    "global_grad_norm",
    "load_sequence_model",
    "make_recurrent",
    "sample_next",
    "sample_text",
    "sequence_spec",
    "train_sequence_model",
    "truncated_bptt",
]

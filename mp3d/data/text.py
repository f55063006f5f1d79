"""Plain-text corpora for character-level language models: reading, a character vocabulary,
the usual split (the first 90% of the characters for training, the last 10% for validation)
and batches of character ids.

Batches are int64 pairs (x [B,T], y [B,T]) with y the next character of x (y[:, t] =
text[start + t + 1]). Two orders:

- random windows (nanoGPT's): B windows at random offsets, drawn from a generator fixed by
  (seed, step), so a resumed run sees the batches an uninterrupted one would;
- streams (char-rnn's, for truncated BPTT): the text cut into B contiguous streams read T
  characters at a time, so window i+1 continues window i and a recurrent model can carry its
  hidden state from one to the next.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

TRAIN_FRACTION = 0.9


def read_text(path: str | Path) -> str:
    """The text of a UTF-8 file; FileNotFoundError or ValueError naming it if it is missing,
    a folder, not UTF-8, or empty."""
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{path}: is a folder; expected a UTF-8 text file")
    if not path.is_file():
        raise FileNotFoundError(f"text file not found: {path}")
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as error:
        raise ValueError(
            f"{path}: not UTF-8 text (byte {error.start}: {error.reason}); expected a UTF-8 "
            f"text file"
        ) from None
    if not text:
        raise ValueError(f"{path}: the text file is empty; expected at least a few characters")
    return text


class CharVocab:
    """The characters of a corpus, sorted by code point; id i is chars[i]."""

    def __init__(self, chars: str):
        if not chars or len(set(chars)) != len(chars):
            raise ValueError(f"chars must be distinct characters, at least one, got {chars!r}")
        self.chars = "".join(sorted(chars))
        self.index = {c: i for i, c in enumerate(self.chars)}

    @property
    def size(self) -> int:
        return len(self.chars)

    def encode(self, text: str, name: str = "text") -> torch.Tensor:
        """text -> int64 ids [len(text)]; ValueError naming `name` and any unknown character."""
        unknown = sorted(set(text) - self.index.keys())
        if unknown:
            raise ValueError(
                f"{name} holds characters the model never saw: {''.join(unknown)!r} "
                f"(its vocabulary: {self.chars!r})"
            )
        return torch.tensor([self.index[c] for c in text], dtype=torch.int64)

    def decode(self, ids) -> str:
        """ids [N] (ints in 0..size-1) -> text."""
        return "".join(self.chars[int(i)] for i in ids)


def encode_corpus(text: str) -> tuple[torch.Tensor, CharVocab]:
    """text -> (int64 ids [len(text)], its vocabulary), vectorised for large texts."""
    codes = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
    values, ids = np.unique(codes, return_inverse=True)
    vocab = CharVocab("".join(chr(v) for v in values))
    return torch.from_numpy(ids.astype(np.int64).reshape(-1)), vocab


@dataclass
class CharCorpus:
    """A text as character ids: train [N] and val [M] int64 in 0..vocab.size-1."""

    train: torch.Tensor
    val: torch.Tensor
    vocab: CharVocab
    source: str  # the file and the split, in words
    path: str = ""  # the file, for messages


def load_char_corpus(
    path: str | Path, train_fraction: float = TRAIN_FRACTION, min_chars: int = 2
) -> CharCorpus:
    """A UTF-8 text file -> its first `train_fraction` of characters for training and the
    rest for validation, over the vocabulary of the whole file. Each part needs `min_chars`
    characters (ValueError naming the file otherwise)."""
    if not 0.0 < train_fraction < 1.0:
        raise ValueError(f"train_fraction must be in (0, 1), got {train_fraction!r}")
    text = read_text(path)
    ids, vocab = encode_corpus(text)
    cut = int(len(ids) * train_fraction)
    if cut < min_chars or len(ids) - cut < min_chars:
        raise ValueError(
            f"{path}: {len(ids)} characters are too few: training and validation need "
            f"{min_chars} each after the {train_fraction:g} split"
        )
    source = (
        f"{path}: characters 0..{cut - 1} for training, {cut}..{len(ids) - 1} for "
        f"validation, {vocab.size} distinct"
    )
    return CharCorpus(ids[:cut], ids[cut:], vocab, source, str(path))


def _check_sizes(ids: torch.Tensor, batch_size: int, block: int, streams: int) -> None:
    if ids.dim() != 1:
        raise ValueError(f"ids must be [N], got shape {tuple(ids.shape)}")
    if batch_size < 1 or block < 1:
        raise ValueError(f"batch_size and block must be >= 1, got {batch_size}, {block}")
    if len(ids) < streams * block + 1:
        raise ValueError(
            f"the text has {len(ids)} characters; batches of {batch_size} x {block} need at "
            f"least {streams * block + 1}: use a smaller --block or --batch-size"
        )


def step_generator(seed: int, step: int) -> torch.Generator:
    """A CPU generator fixed by (seed, step): the draws of one training step."""
    state = np.random.SeedSequence([int(seed), int(step)]).generate_state(1, dtype=np.uint64)
    return torch.Generator().manual_seed(int(state[0]) & ((1 << 63) - 1))


def random_windows(
    ids: torch.Tensor, batch_size: int, block: int, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """B windows at random offsets: (x [B,block], y [B,block]), y one character ahead."""
    _check_sizes(ids, batch_size, block, 1)
    starts = torch.randint(0, len(ids) - block, (batch_size,), generator=generator)
    offsets = starts[:, None] + torch.arange(block + 1)
    chunk = ids[offsets]
    return chunk[:, :-1], chunk[:, 1:]


def windows_per_pass(n_chars: int, batch_size: int, block: int) -> int:
    """How many stream windows one pass over n_chars characters gives."""
    return ((n_chars - 1) // batch_size) // block


def stream_window(
    ids: torch.Tensor, batch_size: int, block: int, index: int
) -> tuple[torch.Tensor, torch.Tensor, bool]:
    """Window `index` of B contiguous streams: (x [B,block], y [B,block], starts_pass), where
    stream b reads ids[b L + w block + t] (L = (N-1) // B, w = index mod windows per pass),
    so window w+1 continues window w; starts_pass is True when w == 0 (reset the state)."""
    _check_sizes(ids, batch_size, block, batch_size)
    length = (len(ids) - 1) // batch_size
    w = index % windows_per_pass(len(ids), batch_size, block)
    starts = torch.arange(batch_size) * length + w * block
    offsets = starts[:, None] + torch.arange(block + 1)
    chunk = ids[offsets]
    return chunk[:, :-1], chunk[:, 1:], w == 0

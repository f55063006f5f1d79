"""The text reader (mp3d.data.text): clear errors for missing, empty and non-UTF-8 files,
the 90/10 split, the vocabulary round trip, and the two batch orders."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from mp3d.data.text import (
    CharVocab,
    encode_corpus,
    load_char_corpus,
    random_windows,
    read_text,
    step_generator,
    stream_window,
    windows_per_pass,
)

SHAKESPEARE = (
    Path(__file__).resolve().parents[2].parent
    / "shared"
    / "data"
    / "text"
    / ("tinyshakespeare.txt")
)


def test_bad_files_are_refused_naming_them(tmp_path):
    with pytest.raises(FileNotFoundError, match="text file not found: .*none.txt"):
        read_text(tmp_path / "none.txt")
    (tmp_path / "empty.txt").write_text("")
    with pytest.raises(ValueError, match="empty.txt: the text file is empty"):
        read_text(tmp_path / "empty.txt")
    (tmp_path / "latin1.txt").write_bytes("caf\xe9".encode("latin-1"))
    with pytest.raises(ValueError, match="latin1.txt: not UTF-8 text"):
        read_text(tmp_path / "latin1.txt")
    with pytest.raises(ValueError, match="is a folder"):
        read_text(tmp_path)
    (tmp_path / "short.txt").write_text("ab")
    with pytest.raises(ValueError, match="short.txt: 2 characters are too few"):
        load_char_corpus(tmp_path / "short.txt")


def test_split_vocab_and_round_trip(tmp_path):
    text = "hello, world! ünïcödé\n" * 10
    (tmp_path / "t.txt").write_text(text, encoding="utf-8")
    corpus = load_char_corpus(tmp_path / "t.txt")
    cut = int(len(text) * 0.9)
    assert len(corpus.train) == cut and len(corpus.val) == len(text) - cut
    assert corpus.vocab.chars == "".join(sorted(set(text)))
    assert corpus.vocab.decode(torch.cat([corpus.train, corpus.val])) == text
    ids, vocab = encode_corpus(text)
    assert torch.equal(ids, vocab.encode(text))
    with pytest.raises(ValueError, match="prompt holds characters the model never saw: 'Z'"):
        vocab.encode("Zebra"[:1] + "e", "prompt")
    with pytest.raises(ValueError, match="distinct"):
        CharVocab("aa")


def test_random_windows_are_shifted_pairs_fixed_by_seed_and_step():
    ids = torch.arange(100)
    x, y = random_windows(ids, 4, 10, step_generator(0, 3))
    assert x.shape == y.shape == (4, 10) and torch.equal(y, x + 1)
    again, _ = random_windows(ids, 4, 10, step_generator(0, 3))
    other, _ = random_windows(ids, 4, 10, step_generator(0, 4))
    assert torch.equal(x, again) and not torch.equal(x, other)
    with pytest.raises(ValueError, match="smaller --block"):
        random_windows(ids, 4, 100, step_generator(0, 0))


def test_stream_windows_continue_each_other():
    ids = torch.arange(101)
    assert windows_per_pass(101, 4, 5) == 5  # streams of 25 characters, 5 windows each
    x0, y0, first = stream_window(ids, 4, 5, 0)
    x1, _, second = stream_window(ids, 4, 5, 1)
    assert first and not second
    assert torch.equal(x1[:, 0], x0[:, -1] + 1) and torch.equal(y0, x0 + 1)
    assert torch.equal(x0[:, 0], torch.tensor([0, 25, 50, 75]))
    assert stream_window(ids, 4, 5, 5)[2]  # the sixth window starts a new pass


@pytest.mark.skipif(not SHAKESPEARE.is_file(), reason=f"shared data not found at {SHAKESPEARE}")
def test_tiny_shakespeare_split():
    corpus = load_char_corpus(SHAKESPEARE)
    assert corpus.vocab.size == 65
    assert len(corpus.train) == 1_003_854 and len(corpus.val) == 111_540
    assert corpus.vocab.decode(corpus.train[:14]) == "First Citizen:"

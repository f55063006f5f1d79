"""The text trainer on the shared layer: every model's loss falls, a resumed run ends where
an uninterrupted one does (the carried hidden state included), checkpoints load without
pickle and refuse other data; the sequential-MNIST classifier learns and resumes."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
import torch

from mp3d.data.mnist import MNIST
from mp3d.data.text import load_char_corpus
from mp3d.io import write_checkpoint
from mp3d.sequence import (
    MODEL_NAMES,
    SequenceConfig,
    evaluate_loss,
    load_sequence_model,
    sample_text,
    train_sequence_model,
)
from mp3d.sequence.classify import (
    ClassifierConfig,
    SequenceClassifier,
    load_classifier,
    train_sequence_classifier,
)
from mp3d.sequence.train import learning_rate

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = {
    "lstm": {"hidden": 32, "layers": 1},
    "gru": {"hidden": 32, "layers": 1},
    "rnn": {"hidden": 48},
    "transformer": {"dim": 32, "layers": 1, "heads": 2},
    "vrnn": {"hidden": 32, "latent": 4, "features": 16},
}
FAST = {"batch_size": 8, "block": 16, "warmup": 0, "eval_every": 10, "eval_chars": 512}


def write_text(path, n_lines=150, seed=0):
    rng = random.Random(seed)
    words = ["the cat", "a dog", "sat on", "ran to", "the mat", "a hat", "and then"]
    lines = [" ".join(rng.choice(words) for _ in range(4)) + "." for _ in range(n_lines)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return load_char_corpus(write_text(tmp_path_factory.mktemp("text") / "words.txt"))


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_training_lowers_the_validation_loss(corpus, name):
    torch.manual_seed(0)
    config = SequenceConfig(model=name, steps=1, sample_chars=0, **FAST)
    untrained = train_sequence_model(corpus, config, progress=False, options=TINY[name])
    config = SequenceConfig(model=name, steps=60, lr=1e-2, sample_chars=0, **FAST)
    model = train_sequence_model(corpus, config, progress=False, options=TINY[name])
    assert untrained.val_loss > 2.0  # near log(vocab) untrained
    assert model.val_loss < untrained.val_loss - 0.6, (untrained.val_loss, model.val_loss)
    assert model.history and model.history[-1][0] == 60
    assert model.train_stats["steps"] == 60 and not model.training


def test_learning_rate_warms_up_then_decays_along_a_cosine():
    config = SequenceConfig(warmup=10, lr_final_factor=0.1)
    assert learning_rate(config, 1.0, 0, 0.0) == pytest.approx(0.1)
    assert learning_rate(config, 1.0, 9, 0.0) == pytest.approx(1.0)
    assert learning_rate(config, 1.0, 50, 0.5) == pytest.approx(0.55)
    assert learning_rate(config, 1.0, 99, 1.0) == pytest.approx(0.1)


@pytest.mark.parametrize("name", ["lstm", "transformer"])
def test_a_resumed_run_ends_where_an_uninterrupted_one_does(corpus, tmp_path, name):
    fields = {**FAST, "model": name, "lr_final_factor": 1.0, "sample_chars": 0}
    straight = train_sequence_model(
        corpus, SequenceConfig(steps=12, **fields), progress=False, options=TINY[name]
    )
    run = tmp_path / name
    train_sequence_model(
        corpus, SequenceConfig(steps=5, **fields), run, progress=False, options=TINY[name]
    )
    resumed = train_sequence_model(
        corpus, SequenceConfig(steps=12, **fields), run, progress=False, options=TINY[name]
    )
    assert resumed.train_stats["start_step"] == 5
    for (key, a), b in zip(straight.state_dict().items(), resumed.state_dict().values()):
        assert torch.allclose(a, b, atol=1e-6), key
    assert resumed.history == straight.history
    loaded = load_sequence_model(run)
    assert loaded.vocab.chars == corpus.vocab.chars and loaded.block_size == 16
    assert evaluate_loss(loaded, corpus.val, 8, 16) == pytest.approx(resumed.val_loss, abs=1e-5)
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["val_loss_nats_per_char"] == pytest.approx(resumed.val_loss)


def test_outputs_sample_and_checkpoint_round_trip(corpus, tmp_path):
    config = SequenceConfig(model="gru", steps=30, lr=1e-2, sample_chars=80, **FAST)
    model = train_sequence_model(corpus, config, tmp_path, progress=False, options=TINY["gru"])
    sample = (tmp_path / "sample.txt").read_text(encoding="utf-8")
    assert len(sample) == 81 and set(sample) <= set(corpus.vocab.chars)
    loaded = load_sequence_model(tmp_path / "checkpoint.pt")
    for a, b in zip(model.state_dict().values(), loaded.state_dict().values()):
        assert torch.equal(a, b)
    text = sample_text(loaded, loaded.vocab, "the ", 30, 0.8, 5, seed=1)
    assert text.startswith("the ") and len(text) == 34
    assert text == sample_text(model, model.vocab, "the ", 30, 0.8, 5, seed=1)


def test_other_checkpoints_and_data_are_refused(corpus, tmp_path):
    other = write_checkpoint(tmp_path / "x.pt", "mp3d.onet", 1, {"step": 0})
    with pytest.raises(ValueError, match="x.pt: not an mp3d sequence-model checkpoint"):
        load_sequence_model(other)
    broken = write_checkpoint(tmp_path / "broken.pt", "mp3d.sequence", 1, {"name": "lstm"})
    with pytest.raises(ValueError, match="broken.pt: not a usable sequence-model checkpoint"):
        load_sequence_model(broken)
    config = SequenceConfig(model="rnn", steps=2, sample_chars=0, **FAST)
    train_sequence_model(corpus, config, tmp_path / "run", progress=False, options=TINY["rnn"])
    other_text = load_char_corpus(write_text(tmp_path / "other.txt", 120, seed=1))
    with pytest.raises(ValueError, match="was trained on other data"):
        train_sequence_model(
            other_text, config, tmp_path / "run", progress=False, options=TINY["rnn"]
        )
    with pytest.raises(
        ValueError,
        match=r"words.txt: the training text has \d+ characters; --batch-size 32 streams x "
        r"--block 4096 need at least",
    ):
        train_sequence_model(corpus, SequenceConfig(model="rnn", block=4096), progress=False)
    with pytest.raises(ValueError, match="model must be one of"):
        SequenceConfig(model="wavenet")


@pytest.fixture(scope="module")
def bars() -> MNIST:
    """Synthetic digits: a bright vertical bar on the left (class 0) or right (class 1)."""
    rng = np.random.default_rng(0)
    images = (rng.random((240, 28, 28)) < 0.05).astype(np.uint8) * 255
    labels = (np.arange(240) % 2).astype(np.uint8)
    for image, label in zip(images, labels):
        column = 20 if label else 4
        image[6:22, column : column + 3] = 255
    return MNIST(images[:200], labels[:200], images[200:], labels[200:], "synthetic bars")


def test_sequential_mnist_classifier_learns_and_resumes(bars, tmp_path):
    model = SequenceClassifier("gru", hidden=16)
    assert model(torch.rand(5, 1, 28, 28)).shape == (5, 10)
    with pytest.raises(ValueError, match=r"images must be \[B,H,28\]"):
        model(torch.rand(5, 28, 27))
    fields = {"model": "gru", "hidden": 16, "batch_size": 20, "lr": 3e-2}
    trained = train_sequence_classifier(
        bars, ClassifierConfig(steps=40, **fields), tmp_path, progress=False
    )
    assert trained.test_scores["accuracy"] >= 0.9, trained.test_scores
    resumed = train_sequence_classifier(
        bars, ClassifierConfig(steps=45, **fields), tmp_path, progress=False
    )
    assert resumed.train_stats["start_step"] == 40
    loaded = load_classifier(tmp_path)
    x = torch.rand(3, 28, 28)
    assert torch.equal(loaded(x), resumed(x))
    with pytest.raises(ValueError, match="model must be one of"):
        ClassifierConfig(model="transformer")


@pytest.mark.parametrize("kind", ["rnn", "leaky"])
def test_elman_and_leaky_classifiers_learn_bars_that_reach_the_last_row(bars, kind):
    images = bars.train_images.copy()
    images[:, 22:] = np.where(images[:, 21:22] == 255, 255, images[:, 22:])  # bars to the end
    test_images = bars.test_images.copy()
    test_images[:, 22:] = np.where(test_images[:, 21:22] == 255, 255, test_images[:, 22:])
    data = MNIST(images, bars.train_labels, test_images, bars.test_labels, "long bars")
    config = ClassifierConfig(model=kind, steps=40, hidden=16, batch_size=20, lr=3e-2)
    torch.manual_seed(0)
    untrained = SequenceClassifier(kind, hidden=16)
    model = train_sequence_classifier(data, config, progress=False)
    assert model.rnn.mode.lower() == ("leaky" if kind == "leaky" else "rnn_tanh")
    pixels = torch.as_tensor(test_images).float() / 255
    logits = model(pixels)
    assert logits.shape == (40, 10) and torch.isfinite(logits).all()
    assert model.test_scores["accuracy"] >= 0.9, model.test_scores
    with torch.no_grad():
        before = torch.nn.functional.cross_entropy(
            untrained(pixels), torch.as_tensor(bars.test_labels).long()
        )
    assert model.test_scores["nll"] < 0.5 * before.item()

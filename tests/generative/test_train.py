"""The shared generative layer: the registry, training with exact resume, test NLL in nats
and bits/dim, sample grids, checkpoints that load without pickle; and the two baselines'
closed forms."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from PIL import Image

from mp3d.data.mnist import MNIST, training_batches
from mp3d.generative import (
    GenerativeConfig,
    GenerativeModel,
    ImageModel,
    ModelSpec,
    evaluate_nll,
    load_generative,
    model_spec,
    models,
    sample_grid,
    train_generative,
)
from mp3d.generative.baselines import BernoulliMixture, IndependentBernoulli
from mp3d.io import write_checkpoint

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def digits() -> MNIST:
    """Synthetic 'digits': bright bars in one of two places, 28x28 uint8."""
    rng = np.random.default_rng(0)
    images = np.zeros((300, 28, 28), dtype=np.uint8)
    for i, image in enumerate(images):
        column = 6 if i % 2 else 18
        image[4:24, column : column + 4] = 255
        image[rng.random((28, 28)) < 0.02] = 255
    labels = (np.arange(300) % 2).astype(np.uint8)
    return MNIST(images[:200], labels[:200], images[200:], labels[200:], "synthetic bars")


def all_binary_images(shape) -> torch.Tensor:
    d = int(np.prod(shape))
    grid = torch.tensor(list(itertools.product([0.0, 1.0], repeat=d)))
    return grid.view(-1, *shape)


def test_registry_lists_the_baselines_and_refuses_unknown_names():
    assert {"bernoulli", "bernoulli-mixture"} <= set(models())
    assert model_spec("bernoulli").view == "binarised"
    with pytest.raises(ValueError, match="model must be one of.*got 'nope'"):
        model_spec("nope")
    with pytest.raises(ValueError, match="model must be one of"):
        GenerativeConfig(model="nope")


def test_bernoulli_models_are_normalised_and_match_their_closed_form():
    shape = (1, 2, 2)
    torch.manual_seed(0)
    mixture = BernoulliMixture(3, shape)
    images = all_binary_images(shape)
    assert torch.exp(-mixture.nll(images)).sum().item() == pytest.approx(1.0, abs=1e-6)
    single = IndependentBernoulli(shape)
    p = torch.sigmoid(single.logits[0])
    x = images.flatten(1)
    by_hand = -(x * torch.log(p) + (1 - x) * torch.log1p(-p)).sum(1)
    assert torch.allclose(single.nll(images), by_hand, atol=1e-6)
    with pytest.raises(ValueError, match="x must have shape"):
        single.nll(torch.zeros(2, 1, 3, 3))
    with pytest.raises(ValueError, match="components"):
        BernoulliMixture(0)


def test_training_lowers_the_nll_and_writes_scores_and_samples(digits, tmp_path):
    untrained = BernoulliMixture(4)
    before = evaluate_nll(untrained, digits.test_images)["nats"]
    config = GenerativeConfig(model="bernoulli-mixture", steps=40, batch_size=20, samples=9)
    model = train_generative(digits, config, tmp_path, progress=False)
    after = model.test_scores
    assert after["nats"] < before - 50, (before, after)
    assert after["nll_kind"] == "exact" and after["images"] == 100
    assert after["bits_per_dim"] == pytest.approx(after["nats"] / (784 * math.log(2)))
    grid = np.asarray(Image.open(tmp_path / "samples.png"))
    assert grid.shape == (3 * 30, 3 * 30)
    assert (tmp_path / "metrics.json").is_file() and (tmp_path / "checkpoint.pt").is_file()


def test_a_resumed_run_ends_where_an_uninterrupted_one_does(digits, tmp_path):
    # 200 images / 30 per batch = 6 steps an epoch: the break falls mid-epoch.
    options = {"model": "bernoulli", "batch_size": 30, "lr_final_factor": 1.0}
    straight = train_generative(digits, GenerativeConfig(steps=10, **options), progress=False)
    train_generative(digits, GenerativeConfig(steps=4, **options), tmp_path, progress=False)
    resumed = train_generative(
        digits, GenerativeConfig(steps=10, **options), tmp_path, progress=False
    )
    assert resumed.train_stats["start_step"] == 4
    assert torch.allclose(straight.logits, resumed.logits, atol=1e-6)
    loaded = load_generative(tmp_path)
    assert torch.equal(loaded.logits, resumed.logits)
    images = torch.bernoulli(torch.full((3, 1, 28, 28), 0.3))
    assert torch.equal(loaded.nll(images), resumed.nll(images))


def test_checkpoints_of_other_kinds_and_data_are_refused(digits, tmp_path):
    other = write_checkpoint(tmp_path / "x.pt", "mp3d.onet", 1, {"step": 0})
    with pytest.raises(ValueError, match="x.pt"):
        load_generative(other)
    broken = write_checkpoint(
        tmp_path / "broken.pt", "mp3d.generative", 1, {"name": "bernoulli", "options": {}}
    )
    with pytest.raises(ValueError, match="broken.pt"):
        load_generative(broken)
    config = GenerativeConfig(model="bernoulli", steps=2, batch_size=50)
    train_generative(digits, config, tmp_path / "run", progress=False)
    fewer = MNIST(
        digits.train_images[:100],
        digits.train_labels[:100],
        digits.test_images,
        digits.test_labels,
        "fewer",
    )
    config = GenerativeConfig(model="bernoulli", steps=4, batch_size=50)
    with pytest.raises(ValueError, match="other data"):
        train_generative(fewer, config, tmp_path / "run", progress=False)


class UniformDensity(ImageModel):
    """Density 1 on [0,1]^D: exactly 8 bits per dimension of the 8-bit pixels."""

    view = "dequantised"

    def __init__(self):
        super().__init__()
        self.unused = torch.nn.Parameter(torch.zeros(1))

    def nll(self, x):
        return torch.zeros(len(x))

    def sample(self, n, temperature=1.0, generator=None):
        return torch.rand(n, 1, 28, 28, generator=generator)


def test_dequantised_models_score_in_bits_per_dimension_of_the_pixels(digits, tmp_path):
    scores = evaluate_nll(UniformDensity(), digits.test_images)
    assert scores["bits_per_dim"] == pytest.approx(8.0)
    assert scores["nats"] == 0.0
    path = sample_grid(UniformDensity(), tmp_path / "grid.png", n=5)
    assert np.asarray(Image.open(path)).shape == (2 * 30, 3 * 30)
    with pytest.raises(ValueError, match="temperature"):
        sample_grid(UniformDensity(), tmp_path / "g.png", temperature=0)
    with pytest.raises(ValueError, match="batch_size 500 is more than the 200 images"):
        train_generative(digits, GenerativeConfig(model="bernoulli", batch_size=500))


class ClassMeans(GenerativeModel):
    """A conditional model without a likelihood: per-class mean images, fitted by MSE."""

    view = "grey"
    conditional = True

    def __init__(self):
        super().__init__()
        self.means = torch.nn.Parameter(torch.zeros(10, 1, 28, 28))
        self.seen: set[int] = set()

    def loss(self, x, labels):
        self.seen.update(labels.tolist())
        loss = ((self.means[labels] - x) ** 2).mean()
        return loss, {}

    def sample(self, n, temperature=1.0, generator=None, labels=None):
        labels = torch.zeros(n, dtype=torch.int64) if labels is None else labels
        return self.means[labels].detach()


def test_conditional_models_train_on_grey_images_with_their_labels(digits):
    from mp3d.generative.train import _build

    spec = ModelSpec("class-means", ClassMeans, "grey", "per-class means")
    model = _build(spec, {})
    optimizers = model.configure_optimizers(0.1)
    batches = training_batches(digits.train_images, 50, "grey", epoch=0, labels=digits.train_labels)
    for images, labels in batches:
        assert images.min() >= 0 and images.max() <= 1 and set(images.unique().tolist()) == {0, 1}
        model.training_step(images, labels, optimizers)
    assert model.seen == {0, 1}
    # Bars at column 6 are class 1, at 18 class 0: each class mean learned its own bar.
    assert model.sample(1, labels=torch.tensor([1]))[0, 0, 10, 7] > 0.3
    assert model.sample(1, labels=torch.tensor([0]))[0, 0, 10, 7] < 0.1
    with pytest.raises(ValueError, match="labels must have shape"):
        next(training_batches(digits.train_images, 50, "grey", epoch=0, labels=[1, 2]))


def test_gen_sample_passes_conditions_only_to_models_that_take_them(digits, tmp_path, capsys):
    from mp3d.cli import main

    config = GenerativeConfig(model="bernoulli", steps=2, batch_size=50)
    train_generative(digits, config, tmp_path / "run", progress=False)
    out = tmp_path / "grid.png"
    assert main(["gen", "sample", str(tmp_path / "run"), "--out", str(out), "--n", "4"]) == 0
    assert np.asarray(Image.open(out)).shape == (2 * 30, 2 * 30)
    argv = ["gen", "sample", str(tmp_path / "run"), "--out", str(tmp_path / "g.png")]
    assert main([*argv, "--label", "3"]) == 2
    assert "--label: IndependentBernoulli models do not take it" in capsys.readouterr().err


def test_gen_train_reports_models_without_a_likelihood(tmp_path, capsys, monkeypatch):
    """A GAN has no NLL: without the digit classifier its samples are left unscored, with
    the command that makes the classifier."""
    from mp3d.cli import main
    from mp3d.data.mnist import IMAGES_MAGIC, LABELS_MAGIC

    monkeypatch.setenv("MP3D_CACHE", str(tmp_path / "cache"))
    data = tmp_path / "digits"
    data.mkdir()
    rng = np.random.default_rng(0)
    images = (rng.random((1050, 28, 28)) < 0.2).astype(np.uint8) * 255
    header = np.array([IMAGES_MAGIC, 1050, 28, 28], dtype=">u4").tobytes()
    (data / "tiny-images-idx3-ubyte").write_bytes(header + images.tobytes())
    labels = (np.arange(1050) % 10).astype(np.uint8)
    header = np.array([LABELS_MAGIC, 1050], dtype=">u4").tobytes()
    (data / "tiny-labels-idx1-ubyte").write_bytes(header + labels.tobytes())
    argv = ["gen", "train", "gan", "--data", str(data), "--out", str(tmp_path / "run")]
    assert main([*argv, "--steps", "2", "--batch-size", "10", "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "not scored" in printed and "train_digit_classifier.py" in printed
    assert (tmp_path / "run" / "samples.png").is_file()

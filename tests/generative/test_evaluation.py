"""mp3d.generative.evaluation: the Fréchet distance against closed forms, FD and
conditional accuracy through a small classifier the tests train on synthetic digits,
classifier checkpoints (and the note when there is none), mode coverage on the ring.
One test uses the real classifier and digits and skips without them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from mp3d.data.mnist import MNIST
from mp3d.generative.base import GenerativeModel
from mp3d.generative.evaluation import (
    DigitClassifier,
    classifier_accuracy,
    classifier_features,
    default_classifier_path,
    frechet_distance,
    load_digit_classifier,
    mode_coverage,
    ring_centres,
    ring_of_gaussians,
    sample_scores,
    save_digit_classifier,
    train_digit_classifier,
)
from mp3d.io import write_checkpoint

MNIST_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "mnist"


pytestmark = pytest.mark.usefixtures("one_thread")


def synthetic_digits(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """'Digit' k: a bright horizontal bar at row 2 + 2.5 k, random extent, sparse noise."""
    rng = np.random.default_rng(seed)
    labels = (np.arange(n) % 10).astype(np.uint8)
    images = np.zeros((n, 28, 28), dtype=np.uint8)
    for image, label in zip(images, labels):
        row = int(2 + 2.5 * label)
        start = rng.integers(2, 8)
        image[row : row + 2, start : start + rng.integers(14, 20)] = 255
        image[rng.random((28, 28)) < 0.03] = 200
    return images, labels


@pytest.fixture(scope="module")
def digits() -> MNIST:
    train_images, train_labels = synthetic_digits(640, 0)
    test_images, test_labels = synthetic_digits(400, 1)
    return MNIST(train_images, train_labels, test_images, test_labels, "synthetic bars")


@pytest.fixture(scope="module")
def classifier(digits) -> DigitClassifier:
    return train_digit_classifier(
        digits,
        epochs=2,
        steps=40,
        width=4,
        feature_dim=16,
        lr=1e-2,
        augment=False,
        progress=False,
    )


def grey(images: np.ndarray) -> torch.Tensor:
    return torch.as_tensor(images).float().div(255).unsqueeze(1)


class RealDigits(GenerativeModel):
    """A 'perfect' model: real evaluation digits, of the asked class when conditional."""

    view = "grey"
    nll_kind = None

    def __init__(self, images: np.ndarray, labels: np.ndarray, conditional: bool) -> None:
        super().__init__()
        self.images, self.labels = grey(images), torch.as_tensor(labels, dtype=torch.int64)
        self.conditional = conditional

    def sample(self, n, temperature=1.0, generator=None, labels=None):
        if labels is None:
            return self.images[torch.randint(len(self.images), (n,), generator=generator)]
        picks = []
        for label in labels.tolist():
            (candidates,) = torch.nonzero(self.labels == label, as_tuple=True)
            picks.append(candidates[torch.randint(len(candidates), (), generator=generator)])
        return self.images[torch.stack(picks)]


def exact_moments(n: int, mean: np.ndarray, cov: np.ndarray, seed: int) -> np.ndarray:
    """n points whose sample mean and (unbiased) covariance are exactly mean and cov."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, len(mean)))
    x -= x.mean(0)
    x = x @ np.linalg.inv(np.linalg.cholesky(np.atleast_2d(np.cov(x, rowvar=False)))).T
    return x @ np.linalg.cholesky(cov).T + mean


def test_frechet_distance_matches_the_closed_form_of_two_gaussians():
    rng = np.random.default_rng(0)
    mean_a, mean_b = rng.normal(size=4), rng.normal(size=4)
    # diagonal covariances: |mu_a - mu_b|^2 + sum (sqrt(a_i) - sqrt(b_i))^2
    var_a, var_b = np.array([1.0, 2.0, 0.5, 3.0]), np.array([0.25, 2.0, 4.0, 1.0])
    a = exact_moments(300, mean_a, np.diag(var_a), 1)
    b = exact_moments(200, mean_b, np.diag(var_b), 2)
    expected = ((mean_a - mean_b) ** 2).sum() + ((np.sqrt(var_a) - np.sqrt(var_b)) ** 2).sum()
    assert frechet_distance(a, b) == pytest.approx(expected, rel=1e-8)
    assert frechet_distance(torch.from_numpy(b), a) == pytest.approx(expected, rel=1e-8)
    # full covariances: tr(S_a + S_b - 2 (S_a^1/2 S_b S_a^1/2)^1/2), by eigendecomposition
    m_a, m_b = rng.normal(size=(2, 4, 4))
    cov_a, cov_b = m_a @ m_a.T + 0.1 * np.eye(4), m_b @ m_b.T + 0.1 * np.eye(4)
    a = exact_moments(500, mean_a, cov_a, 3)
    b = exact_moments(500, mean_b, cov_b, 4)
    w, v = np.linalg.eigh(cov_a)
    root_a = v @ np.diag(np.sqrt(w)) @ v.T
    cross = np.sqrt(np.linalg.eigvalsh(root_a @ cov_b @ root_a)).sum()
    expected = ((mean_a - mean_b) ** 2).sum() + np.trace(cov_a + cov_b) - 2 * cross
    assert frechet_distance(a, b) == pytest.approx(expected, rel=1e-7)
    # one dimension: (m_a - m_b)^2 + (s_a - s_b)^2
    a1 = exact_moments(50, np.array([1.0]), np.array([[4.0]]), 5)
    b1 = exact_moments(80, np.array([-1.0]), np.array([[9.0]]), 6)
    assert frechet_distance(a1, b1) == pytest.approx(4.0 + 1.0, rel=1e-9)
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-9)


def test_frechet_distance_of_fewer_samples_than_dimensions_is_finite_and_bad_input_refused():
    rng = np.random.default_rng(0)
    value = frechet_distance(rng.normal(size=(5, 20)), rng.normal(size=(6, 20)) + 1)
    assert np.isfinite(value) and value > 10
    with pytest.raises(ValueError, match="same width"):
        frechet_distance(np.zeros((3, 2)), np.zeros((3, 4)))
    with pytest.raises(ValueError, match=r"features_a must be \[N, d\]"):
        frechet_distance(np.zeros(5), np.zeros((3, 4)))
    with pytest.raises(ValueError, match="features_b must be"):
        frechet_distance(np.zeros((3, 2)), np.zeros((1, 2)))
    with pytest.raises(ValueError, match="features_b holds non-finite"):
        frechet_distance(np.zeros((3, 2)), np.full((3, 2), np.nan))


def test_fd_of_the_evaluation_digits_with_themselves_is_zero_halves_small_noise_large(
    digits, classifier
):
    features = classifier_features(classifier, grey(digits.test_images))
    assert features.shape == (400, 16) and features.dtype == torch.float32
    assert frechet_distance(features, features) == pytest.approx(0.0, abs=1e-6)
    halves = frechet_distance(features[:200], features[200:])  # 20 of each class in each
    noise = classifier_features(classifier, torch.rand(400, 1, 28, 28))
    assert frechet_distance(features, noise) > 20 * halves, halves
    with pytest.raises(ValueError, match=r"images must have shape \[N, 1, 28, 28\]"):
        classifier_features(classifier, torch.zeros(3, 28, 28))
    with pytest.raises(ValueError, match="non-finite"):
        classifier_features(classifier, torch.full((2, 1, 28, 28), float("nan")))


def test_sample_scores_of_real_digits_fd_near_the_floor_and_conditional_accuracy(
    digits, classifier
):
    assert classifier.accuracy > 0.95  # bars at ten heights: easy even for this tiny net
    perfect = RealDigits(digits.test_images, digits.test_labels, conditional=True)
    scores = sample_scores(perfect, digits, n=200, classifier=classifier, batch_size=64)
    assert scores["fd_samples"] == 200 and scores["fd_reference_images"] == 400
    assert scores["conditional_accuracy"] >= 0.95
    assert len(scores["per_class_accuracy"]) == 10
    noise = RealDigits(np.random.default_rng(0).integers(0, 256, (50, 28, 28), np.uint8),
                       np.arange(50) % 10, conditional=True)  # fmt: skip
    bad = sample_scores(noise, digits, n=200, classifier=classifier)
    assert bad["fd"] > 10 * scores["fd"] and bad["conditional_accuracy"] < 0.5
    unconditional = sample_scores(
        RealDigits(digits.test_images, digits.test_labels, False), digits, 200, classifier
    )
    assert "conditional_accuracy" not in unconditional
    assert unconditional["fd"] < bad["fd"] / 10
    # the same samples: conditional accuracy is the classifier's accuracy on them
    same = RealDigits(digits.test_images[:200], digits.test_labels[:200], True)
    picked = same.sample(200, labels=torch.arange(200) % 10,
                         generator=torch.Generator().manual_seed(0))  # fmt: skip
    direct = classifier_accuracy(classifier, picked, torch.arange(200) % 10)
    assert sample_scores(same, digits, 200, classifier, batch_size=200)[
        "conditional_accuracy"
    ] == pytest.approx(direct)


def test_without_a_classifier_checkpoint_scores_carry_a_note_and_loading_says_what_to_run(
    digits, classifier, tmp_path, monkeypatch
):
    monkeypatch.setenv("MP3D_CACHE", str(tmp_path / "cache"))
    assert default_classifier_path() == tmp_path / "cache" / "digit_classifier.pt"
    with pytest.raises(FileNotFoundError, match="scripts/train_digit_classifier.py"):
        load_digit_classifier()
    model = RealDigits(digits.test_images, digits.test_labels, conditional=True)
    scores = sample_scores(model, digits, n=20)
    assert scores["fd"] is None and scores["conditional_accuracy"] is None
    assert "train_digit_classifier.py" in scores["note"]
    path = save_digit_classifier(classifier)
    assert path == default_classifier_path() and path.is_file()
    loaded = load_digit_classifier()
    assert loaded.accuracy == classifier.accuracy and not loaded.training
    x = grey(digits.test_images[:5])
    assert torch.equal(classifier_features(loaded, x), classifier_features(classifier, x))
    assert sample_scores(model, digits, n=20)["fd"] is not None
    other = write_checkpoint(tmp_path / "other.pt", "mp3d.onet", 1, {})
    with pytest.raises(ValueError, match="other.pt"):
        load_digit_classifier(other)


def test_classifier_arguments_are_checked(digits):
    with pytest.raises(ValueError, match="width"):
        DigitClassifier(width=0)
    with pytest.raises(ValueError, match="batch_size 1000 is more than"):
        train_digit_classifier(digits, batch_size=1000, progress=False)
    with pytest.raises(ValueError, match="labels must have shape"):
        classifier_accuracy(DigitClassifier(4, 8), digits.test_images, digits.test_labels[:3])


def test_mode_coverage_of_exact_ring_samples_a_single_mode_and_outliers():
    samples = ring_of_gaussians(4000, generator=torch.Generator().manual_seed(0))
    assert samples.shape == (4000, 2) and samples.dtype == torch.float32
    exact = mode_coverage(samples)
    assert exact["modes_hit"] == 8 and exact["samples"] == 4000
    # within 3 std in 2D: P(chi^2_2 <= 9) = 1 - exp(-4.5) = 0.989
    assert exact["high_quality_fraction"] == pytest.approx(0.989, abs=0.01)
    assert sum(exact["counts"]) == round(exact["high_quality_fraction"] * 4000)
    centres = ring_centres().float()
    assert torch.allclose(centres[2], torch.tensor([0.0, 2.0]), atol=1e-6)
    one = centres[3] + 0.02 * torch.randn(1000, 2, generator=torch.Generator().manual_seed(1))
    single = mode_coverage(one)
    assert single["modes_hit"] == 1 and single["counts"][3] == sum(single["counts"])
    # a few stray samples on other modes (under 1% of all) do not count as hits
    stray = torch.cat([one, centres[[0, 5]].repeat(4, 1)])
    assert mode_coverage(stray)["modes_hit"] == 1
    assert mode_coverage(stray, min_fraction=0.0)["modes_hit"] == 3
    middle = mode_coverage(torch.zeros(10, 2))
    assert middle["modes_hit"] == 0 and middle["high_quality_fraction"] == 0.0
    four = ring_of_gaussians(2000, modes=4, radius=1.0, std=0.05)
    assert mode_coverage(four, modes=4, radius=1.0, std=0.05)["modes_hit"] == 4
    with pytest.raises(ValueError, match=r"samples must have shape \[N, 2\]"):
        mode_coverage(torch.zeros(10, 3))
    with pytest.raises(ValueError, match="std"):
        ring_of_gaussians(10, std=0.0)


def test_the_trained_classifier_scores_real_digits(tmp_path):
    """With the real classifier (scripts/train_digit_classifier.py) and the shared digits."""
    path = default_classifier_path()
    if not path.is_file():
        pytest.skip(
            f"no digit classifier at {path}: make it with "
            f"`python scripts/train_digit_classifier.py` (a few CPU minutes)"
        )
    if not MNIST_DIR.is_dir():
        pytest.skip(f"MNIST not found at {MNIST_DIR} (see shared/data/README.md)")
    from mp3d.data.mnist import load_mnist

    data = load_mnist(MNIST_DIR)
    classifier = load_digit_classifier()
    assert classifier.accuracy >= 0.985
    perfect = RealDigits(data.test_images, data.test_labels, conditional=True)
    scores = sample_scores(perfect, data, n=500, classifier=classifier)
    assert scores["conditional_accuracy"] >= 0.98
    features = classifier_features(classifier, grey(data.test_images))
    noise = classifier_features(classifier, torch.rand(500, 1, 28, 28))
    assert frechet_distance(features, features) == pytest.approx(0.0, abs=1e-6)
    assert frechet_distance(features, noise) > 20 * frechet_distance(features[:500], features[500:])

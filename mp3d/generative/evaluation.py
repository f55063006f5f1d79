"""Scores for generative models without a likelihood: a Fréchet distance in the features of
a small digit classifier trained in this repo, conditional accuracy, and mode coverage on
a 2D ring of Gaussians.

The digit classifier (``DigitClassifier``, a small CNN) is trained by
``scripts/train_digit_classifier.py`` on the training split of the shared MNIST digits and
saved (never downloaded) to ``default_classifier_path()``: ``$MP3D_CACHE/digit_classifier.pt``
when MP3D_CACHE is set, else ``~/.cache/mp3d/digit_classifier.pt``.

Definitions:

- FD (``frechet_distance``): the Fréchet distance of two Gaussians fitted to two sets of
  features, ``|mu_a - mu_b|^2 + tr(S_a + S_b - 2 (S_a S_b)^(1/2))``, with unbiased
  covariances (N - 1), in float64; FID's formula, in the classifier's penultimate-layer
  features (128-d after ReLU) instead of Inception's. ``sample_scores`` compares
  ``n = 1000`` samples with all the evaluation images (1,000 for the shared digits). FD
  shrinks with more samples even between two sets of real digits, so compare figures only
  at equal counts: ``reference_fd`` gives the floor at those counts (1,000 real training
  digits against the evaluation images).
- Conditional accuracy: samples drawn with ``labels = arange(n) % 10`` (n/10 per class),
  the fraction the classifier assigns to the class that was asked for.
- Mode coverage (``mode_coverage``) on ``ring_of_gaussians``: a sample is high quality
  when it lies within 3 standard deviations (Euclidean distance <= 3 std) of its nearest
  mode, the rule of VEEGAN (Srivastava et al. 2017) that later papers report the unrolled
  GAN's ring experiment with (Metz et al. 2017 show the ring only as figures); a mode is
  hit when at least ``min_fraction`` (1%) of all samples are high-quality samples of it
  (one stray sample does not count as covering a mode).
"""

from __future__ import annotations

import math
import os
import time
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from mp3d.training import check_float, check_int

__all__ = [
    "CLASSIFIER_FORMAT",
    "DigitClassifier",
    "classifier_accuracy",
    "classifier_features",
    "default_classifier_path",
    "frechet_distance",
    "load_digit_classifier",
    "mode_coverage",
    "reference_fd",
    "ring_of_gaussians",
    "sample_scores",
    "save_digit_classifier",
    "train_digit_classifier",
]

CLASSIFIER_FORMAT, CLASSIFIER_VERSION = "mp3d.digit_classifier", 1
TRAIN_COMMAND = "python scripts/train_digit_classifier.py"
MNIST_MEAN, MNIST_STD = 0.1307, 0.3081  # of MNIST's pixels / 255


# ----------------------------------------------------------------------------- classifier


class DigitClassifier(nn.Module):
    """Digits [N,1,28,28] in [0,1] -> logits [N,10]; ``features`` gives the penultimate
    layer [N,feature_dim] (after its ReLU) that FD is measured in.

    Two blocks of two 3x3 convs (batch norm, ReLU) each followed by 2x2 max pooling
    (28 -> 14 -> 7), a linear layer to the features, dropout and the linear classifier.
    """

    def __init__(self, width: int = 16, feature_dim: int = 128, dropout: float = 0.3) -> None:
        super().__init__()
        check_int("width", width, 1, 1024)
        check_int("feature_dim", feature_dim, 1, 1 << 14)
        check_float("dropout", dropout, 0.0, 1.0)
        self.config = {"width": width, "feature_dim": feature_dim, "dropout": dropout}

        def block(a: int, b: int) -> list[nn.Module]:
            return [nn.Conv2d(a, b, 3, padding=1, bias=False), nn.BatchNorm2d(b), nn.ReLU()]

        self.body = nn.Sequential(
            *block(1, width),
            *block(width, width),
            nn.MaxPool2d(2),
            *block(width, 2 * width),
            *block(2 * width, 2 * width),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(2 * width * 7 * 7, feature_dim),
            nn.ReLU(),
        )
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(feature_dim, 10)
        self.accuracy: float | None = None  # on the evaluation images, once measured

    @property
    def feature_dim(self) -> int:
        return self.config["feature_dim"]

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate features [N,feature_dim] of digits x [N,1,28,28] in [0,1]."""
        return self.body((x - MNIST_MEAN) / MNIST_STD)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.dropout(self.features(x)))


def _check_digits(images: torch.Tensor, name: str = "images") -> torch.Tensor:
    images = torch.as_tensor(images)
    if images.dim() != 4 or tuple(images.shape[1:]) != (1, 28, 28):
        raise ValueError(f"{name} must have shape [N, 1, 28, 28], got {list(images.shape)}")
    if not images.is_floating_point():
        raise ValueError(f"{name} must be floats in [0, 1], got dtype {images.dtype}")
    if not torch.isfinite(images).all():
        raise ValueError(f"{name} holds non-finite values")
    return images


def _grey(images: np.ndarray | torch.Tensor) -> torch.Tensor:
    """uint8 digits [N,28,28] -> float32 [N,1,28,28] in [0,1] (the grey view)."""
    tensor = torch.as_tensor(np.asarray(images))
    if tensor.dtype != torch.uint8 or tensor.dim() != 3:
        raise ValueError(f"images must be uint8 [N,28,28], got {tensor.dtype} {list(tensor.shape)}")
    return tensor.float().div(255.0).unsqueeze(1)


@torch.no_grad()
def _apply(classifier: DigitClassifier, images: torch.Tensor, fn, batch_size: int):
    was_training = classifier.training
    classifier.eval()
    device = next(classifier.parameters()).device
    try:
        out = [fn(batch.to(device, torch.float32)).cpu() for batch in images.split(batch_size)]
    finally:
        classifier.train(was_training)
    return torch.cat(out) if out else torch.zeros(0)


def classifier_features(
    classifier: DigitClassifier, images: torch.Tensor, batch_size: int = 500
) -> torch.Tensor:
    """Penultimate-layer features [N,feature_dim] (float32, CPU) of digits [N,1,28,28] in
    [0,1], in eval mode."""
    images = _check_digits(images)
    check_int("batch_size", batch_size, 1)
    if len(images) == 0:
        return torch.zeros(0, classifier.feature_dim)
    return _apply(classifier, images, classifier.features, batch_size)


def classifier_logits(
    classifier: DigitClassifier, images: torch.Tensor, batch_size: int = 500
) -> torch.Tensor:
    """Class logits [N,10] (float32, CPU) of digits [N,1,28,28] in [0,1], in eval mode."""
    images = _check_digits(images)
    if len(images) == 0:
        return torch.zeros(0, 10)
    return _apply(classifier, images, classifier, batch_size)


def classifier_accuracy(classifier: DigitClassifier, images, labels) -> float:
    """Fraction of uint8 digits [N,28,28] (or floats [N,1,28,28] in [0,1]) classified as
    their labels [N]."""
    images = torch.as_tensor(images)
    if images.dtype == torch.uint8:
        images = _grey(images)
    labels = torch.as_tensor(np.asarray(labels), dtype=torch.int64)
    if labels.shape != (len(images),):
        raise ValueError(f"labels must have shape [{len(images)}], got {list(labels.shape)}")
    predicted = classifier_logits(classifier, images).argmax(1)
    return float((predicted == labels).double().mean())


def _augment(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Random small affine warps of digits [B,1,28,28]: rotation +-10 degrees, scale
    0.9..1.1, shift +-2 pixels (bilinear, zero outside)."""
    b = x.shape[0]
    angle = (torch.rand(b, generator=generator) * 2 - 1) * math.radians(10)
    scale = 0.9 + 0.2 * torch.rand(b, generator=generator)
    shift = (torch.rand(b, 2, generator=generator) * 2 - 1) * (2.0 / 14.0)  # 2 px of 28
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack(
        [torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1
    )
    grid = F.affine_grid(theta.to(x), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, align_corners=False, padding_mode="zeros")


def train_digit_classifier(
    data,
    epochs: int = 8,
    batch_size: int = 64,
    lr: float = 2e-3,
    seed: int = 0,
    augment: bool = True,
    steps: int | None = None,
    width: int = 16,
    feature_dim: int = 128,
    progress: bool = True,
) -> DigitClassifier:
    """A DigitClassifier trained on data.train_images / train_labels (an mp3d MNIST) with
    Adam and a one-cycle learning rate, on randomly warped digits (``_augment``); ``steps``
    stops early (tests). Returns it in eval mode with .accuracy on data.test_images and
    .train_seconds."""
    check_int("epochs", epochs, 1, 1000)
    check_int("batch_size", batch_size, 1, 1 << 16)
    check_float("lr", lr, 0.0, 1.0, exclusive_minimum=True)
    if steps is not None:
        check_int("steps", steps, 1)
    start = time.perf_counter()
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    images, labels = (
        _grey(data.train_images),
        torch.as_tensor(np.asarray(data.train_labels), dtype=torch.int64),
    )
    if len(images) < batch_size:
        raise ValueError(f"batch_size {batch_size} is more than the {len(images)} images")
    classifier = DigitClassifier(width, feature_dim)
    per_epoch = len(images) // batch_size
    total = per_epoch * epochs if steps is None else min(steps, per_epoch * epochs)
    optimizer = torch.optim.AdamW(classifier.parameters(), lr=lr, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, lr, total_steps=total)
    from tqdm import tqdm

    bar = tqdm(total=total, desc="training the digit classifier", disable=not progress)
    classifier.train()
    step = 0
    while step < total:
        order = torch.randperm(len(images), generator=generator)
        for index in order[: per_epoch * batch_size].split(batch_size):
            if step >= total:
                break
            x = images[index]
            if augment:
                x = _augment(x, generator)
            loss = F.cross_entropy(classifier(x), labels[index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            step += 1
            bar.update(1)
            if step % 50 == 0:
                bar.set_postfix(loss=f"{float(loss.detach()):.4f}")
    bar.close()
    classifier.eval()
    classifier.accuracy = classifier_accuracy(classifier, data.test_images, data.test_labels)
    classifier.train_seconds = time.perf_counter() - start
    classifier.source = getattr(data, "source", "")
    return classifier


def default_classifier_path() -> Path:
    """Where the digit classifier is saved and looked for: $MP3D_CACHE/digit_classifier.pt
    when MP3D_CACHE is set, else ~/.cache/mp3d/digit_classifier.pt."""
    cache = os.environ.get("MP3D_CACHE")
    root = Path(cache) if cache else Path.home() / ".cache" / "mp3d"
    return root / "digit_classifier.pt"


def save_digit_classifier(classifier: DigitClassifier, path: str | Path | None = None) -> Path:
    """Writes the classifier (weights, sizes, accuracy) atomically as an
    "mp3d.digit_classifier" checkpoint (default: default_classifier_path())."""
    from mp3d.io import write_checkpoint

    path = Path(path) if path is not None else default_classifier_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_checkpoint(
        path,
        CLASSIFIER_FORMAT,
        CLASSIFIER_VERSION,
        {
            "model": classifier.state_dict(),
            "config": dict(classifier.config),
            "accuracy": classifier.accuracy,
            "source": getattr(classifier, "source", ""),
        },
    )


def load_digit_classifier(path: str | Path | None = None, device=None) -> DigitClassifier:
    """The saved digit classifier (default: default_classifier_path()) in eval mode, with
    .accuracy; FileNotFoundError that says how to make it when it is missing."""
    from mp3d.io import read_checkpoint

    path = Path(path) if path is not None else default_classifier_path()
    if not path.is_file():
        raise FileNotFoundError(
            f"digit classifier not found at {path}: train it once with `{TRAIN_COMMAND}` "
            f"(a few CPU minutes; it saves to $MP3D_CACHE/digit_classifier.pt, or "
            f"~/.cache/mp3d/digit_classifier.pt without MP3D_CACHE, or to --out)"
        )
    payload = read_checkpoint(path, CLASSIFIER_FORMAT, CLASSIFIER_VERSION, "digit-classifier")
    try:
        classifier = DigitClassifier(**payload["config"])
        classifier.load_state_dict(payload["model"])
    except (KeyError, TypeError, RuntimeError, ValueError) as error:
        raise ValueError(f"{path}: not a usable digit-classifier checkpoint ({error})") from error
    classifier.accuracy = payload.get("accuracy")
    classifier.source = payload.get("source", "")
    return classifier.to(device or "cpu").eval()


# ----------------------------------------------------------------------------- FD


def _as_features(features, name: str) -> np.ndarray:
    if isinstance(features, torch.Tensor):
        features = features.detach().cpu().double().numpy()
    array = np.asarray(features, dtype=np.float64)
    if array.ndim != 2 or array.shape[0] < 2 or array.shape[1] < 1:
        raise ValueError(f"{name} must be [N, d] with N >= 2, got shape {list(array.shape)}")
    if not np.isfinite(array).all():
        raise ValueError(f"{name} holds non-finite values")
    return array


def frechet_distance(features_a, features_b) -> float:
    """Fréchet distance of the Gaussians fitted to features_a [N,d] and features_b [M,d]:
    |mu_a - mu_b|^2 + tr(S_a + S_b - 2 sqrtm(S_a S_b)) (unbiased covariances, float64).

    sqrtm is scipy.linalg.sqrtm of the product, as FID's reference code computes it; when
    the product is near singular (fewer samples than dimensions) and sqrtm comes back
    non-finite, 1e-6 is added to both diagonals, and imaginary parts (round-off of a
    matrix with real square root) are dropped, refused when not tiny.
    """
    from scipy import linalg

    a, b = _as_features(features_a, "features_a"), _as_features(features_b, "features_b")
    if a.shape[1] != b.shape[1]:
        raise ValueError(
            f"features_a and features_b must have the same width, got {a.shape[1]} and {b.shape[1]}"
        )
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a = np.atleast_2d(np.cov(a, rowvar=False))
    cov_b = np.atleast_2d(np.cov(b, rowvar=False))
    with warnings.catch_warnings():  # singular products (dead features) are expected
        warnings.simplefilter("ignore", linalg.LinAlgWarning)
        covmean = linalg.sqrtm(cov_a @ cov_b)
        if not np.isfinite(covmean).all():
            offset = np.eye(len(cov_a)) * 1e-6
            covmean = linalg.sqrtm((cov_a + offset) @ (cov_b + offset))
    if np.iscomplexobj(covmean):
        scale = max(1.0, float(np.abs(np.diagonal(covmean)).max()))
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3 * scale):
            worst = float(np.abs(covmean.imag).max())
            raise ValueError(f"sqrtm(S_a S_b) has an imaginary part of {worst:.3g}")
        covmean = covmean.real
    diff = mu_a - mu_b
    value = diff @ diff + np.trace(cov_a) + np.trace(cov_b) - 2.0 * np.trace(covmean)
    return float(max(value, 0.0))


def reference_fd(data, classifier: DigitClassifier | None = None, n: int = 1000) -> float:
    """FD of the first n real training digits against the evaluation images: what a model
    that reproduced the data would score at those counts (FD's floor at this n)."""
    classifier = classifier if classifier is not None else load_digit_classifier()
    check_int("n", n, 2, len(data.train_images))
    real = classifier_features(classifier, _grey(data.train_images[:n]))
    return frechet_distance(real, classifier_features(classifier, _grey(data.test_images)))


# ----------------------------------------------------------------------------- sample scores


@torch.no_grad()
def _draw(model, n: int, batch_size: int, seed: int, labels, conditions) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    out = []
    for start in range(0, n, batch_size):
        count = min(batch_size, n - start)
        extra = dict(conditions)
        if labels is not None:
            extra["labels"] = labels[start : start + count]
        out.append(model.sample(count, 1.0, generator, **extra).float().cpu())
    return torch.cat(out).clamp(0, 1)


def sample_scores(
    model,
    data,
    n: int = 1000,
    classifier: DigitClassifier | None = None,
    seed: int = 0,
    batch_size: int = 250,
    **conditions,
) -> dict:
    """Scores of n samples of a GenerativeModel (images in [0,1], clamped) against
    data.test_images: "fd" (n samples vs all evaluation images, in the digit classifier's
    features), and for conditional models "conditional_accuracy" (samples asked for
    labels arange(n) % 10; the same samples give the FD) with "per_class_accuracy".
    conditions (guidance, steps) go to model.sample. Without a classifier checkpoint it
    returns {"fd": None, "note": how to make one} instead of failing (training calls this
    after training)."""
    check_int("n", n, 2, 100_000)
    check_int("batch_size", batch_size, 1)
    if classifier is None:
        try:
            classifier = load_digit_classifier()
        except FileNotFoundError as error:
            scores = {"fd": None, "note": str(error)}
            if getattr(model, "conditional", False):
                scores["conditional_accuracy"] = None
            return scores
    was_training = model.training
    model.eval()
    start = time.perf_counter()
    labels = None
    if getattr(model, "conditional", False):
        labels = torch.arange(n, dtype=torch.int64) % 10
    try:
        samples = _draw(model, n, batch_size, seed, labels, conditions)
    finally:
        model.train(was_training)
    seconds = time.perf_counter() - start
    _check_digits(samples, "the model's samples")
    features = classifier_features(classifier, samples)
    reference = classifier_features(classifier, _grey(data.test_images))
    scores: dict = {
        "fd": frechet_distance(features, reference),
        "fd_samples": n,
        "fd_reference_images": len(reference),
        "fd_features": int(features.shape[1]),
        "sample_seconds": seconds,
        "classifier_accuracy": classifier.accuracy,
        **{k: v for k, v in conditions.items() if isinstance(v, (int, float, str))},
    }
    if labels is not None:
        predicted = classifier_logits(classifier, samples).argmax(1)
        hits = (predicted == labels).double()
        scores["conditional_accuracy"] = float(hits.mean())
        scores["per_class_accuracy"] = [float(hits[labels == k].mean()) for k in range(10)]
    return scores


# ----------------------------------------------------------------------------- 2D ring


def _check_ring(modes: int, radius: float, std: float) -> None:
    check_int("modes", modes, 1, 10_000)
    check_float("radius", radius, 0.0, exclusive_minimum=True)
    check_float("std", std, 0.0, exclusive_minimum=True)


def ring_centres(modes: int = 8, radius: float = 2.0) -> torch.Tensor:
    """The modes' centres [modes,2] at angles 2 pi k / modes on a circle of radius."""
    angle = torch.arange(modes, dtype=torch.float64) * (2 * math.pi / modes)
    return torch.stack([torch.cos(angle), torch.sin(angle)], 1) * radius


def ring_of_gaussians(
    n: int,
    modes: int = 8,
    radius: float = 2.0,
    std: float = 0.02,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """n points [n,2] (float32) of an equal mixture of isotropic Gaussians (std per axis)
    centred on a ring (ring_centres): the unrolled GAN paper's 2D data."""
    check_int("n", n, 0)
    _check_ring(modes, radius, std)
    which = torch.randint(modes, (n,), generator=generator)
    noise = torch.randn(n, 2, generator=generator, dtype=torch.float64) * std
    return (ring_centres(modes, radius)[which] + noise).float()


def mode_coverage(
    samples,
    modes: int = 8,
    radius: float = 2.0,
    std: float = 0.02,
    min_fraction: float = 0.01,
) -> dict:
    """Mode coverage of 2D samples [N,2] of a ring_of_gaussians model (see the module
    docstring): modes_hit (modes holding >= min_fraction of all samples as high-quality
    samples), high_quality_fraction (within 3 std of the nearest mode) and counts [modes]
    (high-quality samples per mode)."""
    _check_ring(modes, radius, std)
    check_float("min_fraction", min_fraction, 0.0, 1.0)
    points = torch.as_tensor(samples).detach().cpu().double()
    if points.dim() != 2 or points.shape[1] != 2 or len(points) == 0:
        raise ValueError(f"samples must have shape [N, 2] with N >= 1, got {list(points.shape)}")
    if not torch.isfinite(points).all():
        raise ValueError("samples hold non-finite values")
    distance, nearest = torch.cdist(points, ring_centres(modes, radius)).min(1)
    good = distance <= 3 * std
    counts = torch.bincount(nearest[good], minlength=modes)
    hit = counts >= max(1, math.ceil(min_fraction * len(points)))
    return {
        "modes_hit": int(hit.sum()),
        "high_quality_fraction": float(good.double().mean()),
        "counts": counts.tolist(),
        "samples": len(points),
    }

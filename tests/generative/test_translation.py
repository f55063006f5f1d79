"""mp3d.generative.translation and mp3d.data.digit_pairs on tiny networks: the digit tasks,
the unpaired split (no source image in both domains), a few steps of pix2pix and CycleGAN
lowering their losses, pix2pix's discriminator seeing (input, output) pairs, CycleGAN's
cycle loss of exact inverses, the PatchGAN's patches, the scores of an exact translator,
exact resume through train_generative, and bad input named."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from mp3d.data.digit_pairs import (
    as_digits,
    domain_images,
    edge_map,
    invert,
    thicken,
    top_half,
    unpaired_batches,
    unpaired_split,
)
from mp3d.data.mnist import MNIST
from mp3d.generative import (
    GenerativeConfig,
    evaluate_model,
    load_generative,
    models,
    sample_grid,
    train_generative,
)
from mp3d.generative.evaluation import DigitClassifier
from mp3d.generative.translation import (
    CycleGAN,
    ImagePool,
    PatchDiscriminator,
    Pix2Pix,
    translation_scores,
)

pytestmark = pytest.mark.usefixtures("one_thread")

TINY_G = {"base_channels": 4, "channel_mults": (1, 2), "d_width": 4}


def synthetic_digits(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """'Digits': a bright bar whose row says the class, 28x28 uint8, with labels."""
    rng = np.random.default_rng(seed)
    labels = (np.arange(n) % 10).astype(np.uint8)
    images = np.zeros((n, 28, 28), dtype=np.uint8)
    for image, label in zip(images, labels):
        row, start = int(2 + 2.4 * label), int(rng.integers(2, 8))
        image[row : row + 3, start : start + int(rng.integers(12, 18))] = 255
    return images, labels


@pytest.fixture(scope="module")
def digits() -> MNIST:
    train_images, train_labels = synthetic_digits(40, 0)
    test_images, test_labels = synthetic_digits(20, 1)
    return MNIST(train_images, train_labels, test_images, test_labels, "synthetic bars")


def grey(images: np.ndarray) -> torch.Tensor:
    return torch.as_tensor(images).float().div(255).unsqueeze(1)


def flat(module: nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().flatten().clone() for p in module.parameters()])


class Negate(nn.Module):
    """x -> -x in [-1,1]: in [0,1] the inversion 1 - x, its own exact inverse."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return -x


def test_the_tasks_make_their_known_pairs():
    x = torch.zeros(1, 1, 28, 28)
    x[..., 8:20, 10:16] = 1.0
    edges = edge_map(x)
    assert edges.shape == x.shape and 0 <= edges.min() and edges.max() <= 1
    assert edges[0, 0, 14, 13] == 0 and edges[0, 0, 0, 0] == 0  # inside and far outside
    assert edges[0, 0, 14, 10] == 1 and edges[0, 0, 14, 9] == 1  # a step reads 1 each side
    half = top_half(x)
    assert torch.equal(half[..., :14, :], x[..., :14, :]) and half[..., 14:, :].sum() == 0
    thick = thicken(x)
    assert (thick >= x).all() and thick[0, 0, 7, 9] == 1 and thick[0, 0, 6, 9] == 0
    assert torch.equal(invert(invert(x)), x) and torch.equal(as_digits("invert", invert(x)), x)
    assert torch.equal(domain_images("digit", x), x) and torch.equal(as_digits("thicken", x), x)
    with pytest.raises(ValueError, match="domain must be one of"):
        domain_images("colour", x)
    with pytest.raises(ValueError, match=r"x must be grey images \[B, 1, H, W\]"):
        edge_map(torch.zeros(28, 28))


def test_the_unpaired_split_shows_no_source_image_in_both_domains():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (41, 28, 28), dtype=np.uint8)  # 41 distinct images
    labels = np.arange(41) % 10
    index_a, index_b = unpaired_split(41)
    assert set(index_a.tolist()).isdisjoint(index_b.tolist())
    assert len(index_a) == len(index_b) == 20
    key = {images[i].tobytes(): i for i in range(41)}
    seen_a, seen_b = set(), set()
    for epoch in range(3):
        batches = list(unpaired_batches(images, 4, "invert", epoch=epoch, labels=labels))
        assert len(batches) == 5
        for x, y in batches:
            assert x.shape == (4, 2, 28, 28) and y.shape == (4, 2)
            for k in range(4):
                a = key[(x[k, 0] * 255).round().to(torch.uint8).numpy().tobytes()]
                b = key[((1 - x[k, 1]) * 255).round().to(torch.uint8).numpy().tobytes()]
                assert y[k].tolist() == [labels[a], labels[b]]
                seen_a.add(a)
                seen_b.add(b)
    assert seen_a == set(range(20)) and seen_b == set(range(20, 40))  # 40: the odd one out
    first = next(unpaired_batches(images, 4, "invert", epoch=1))[0]
    assert torch.equal(first, next(unpaired_batches(images, 4, "invert", epoch=1))[0])
    assert not torch.equal(first, next(unpaired_batches(images, 4, "invert", epoch=2))[0])


def test_pix2pix_steps_lower_its_losses(digits):
    torch.manual_seed(0)
    model = Pix2Pix("edges", **TINY_G)
    optimizers = model.configure_optimizers(2e-3)
    x, labels = grey(digits.train_images[:16]), torch.as_tensor(digits.train_labels[:16])
    g0, d0 = flat(model.generator), flat(model.discriminator)
    steps = [model.training_step(x, labels, optimizers, grad_clip=10.0) for _ in range(12)]
    assert all(np.isfinite(v) for s in steps for v in s.values()), steps
    assert steps[-1]["g_l1"] < 0.8 * steps[0]["g_l1"], [s["g_l1"] for s in steps]
    assert steps[-1]["loss"] < steps[0]["loss"]
    assert steps[-1]["d_loss"] < steps[0]["d_loss"], [s["d_loss"] for s in steps]
    assert not torch.equal(flat(model.generator), g0)
    assert not torch.equal(flat(model.discriminator), d0)


def test_the_pix2pix_discriminator_sees_the_input_paired_with_the_output(digits):
    torch.manual_seed(0)
    model = Pix2Pix("half", **TINY_G)
    optimizers = model.configure_optimizers(1e-3)
    x = grey(digits.train_images[:8])
    inputs = top_half(x) * 2 - 1
    with torch.no_grad():
        output = model.generator(inputs)  # what G makes before this step updates it
    seen = []
    model.discriminator.register_forward_pre_hook(lambda m, args: seen.append(args[0].detach()))
    model.training_step(x, torch.zeros(8, dtype=torch.int64), optimizers)
    assert model.discriminator.in_channels == 2 and len(seen) == 3
    real, fake_for_d, fake_for_g = seen
    for pair in seen:
        assert pair.shape == (8, 2, 28, 28) and torch.allclose(pair[:, :1], inputs)
    assert torch.allclose(real[:, 1:], x * 2 - 1)
    assert torch.allclose(fake_for_d[:, 1:], output, atol=1e-6)
    assert torch.allclose(fake_for_g[:, 1:], output, atol=1e-6)
    model.eval()  # and D reads the input: the same image scores differently beside another
    image = x * 2 - 1
    assert not torch.allclose(model.discriminate(inputs, image), model.discriminate(-inputs, image))


def test_cyclegan_steps_lower_its_losses(digits):
    torch.manual_seed(0)
    model = CycleGAN("thicken", **TINY_G, pool_size=4)
    optimizers = model.configure_optimizers(2e-3)
    x, labels = next(unpaired_batches(digits.train_images, 8, "thicken", epoch=0))
    g0, d0 = flat(model.g_ab), flat(model.d_b)
    steps = [model.training_step(x, labels, optimizers, grad_clip=10.0) for _ in range(10)]
    assert all(np.isfinite(v) for s in steps for v in s.values()), steps
    assert steps[-1]["cycle"] < 0.8 * steps[0]["cycle"], [s["cycle"] for s in steps]
    assert steps[-1]["identity"] < steps[0]["identity"]
    assert steps[-1]["loss"] < steps[0]["loss"]
    assert steps[-1]["d_loss"] < steps[0]["d_loss"], [s["d_loss"] for s in steps]
    assert not torch.equal(flat(model.g_ab), g0) and not torch.equal(flat(model.d_b), d0)
    assert len(model.pool_a.images) == 4  # the history is full, at its size


def test_the_cycle_loss_of_exact_inverses_is_zero_and_they_score_perfectly(digits):
    torch.manual_seed(0)
    model = CycleGAN("invert", **TINY_G)
    a = grey(digits.test_images) * 2 - 1
    b = invert(grey(digits.test_images[::-1].copy())) * 2 - 1
    with torch.no_grad():
        assert float(model.cycle_loss(a, b)) > 0.05  # untrained U-Nets invert nothing
        model.g_ab, model.g_ba = Negate(), Negate()
        assert float(model.cycle_loss(a, b)) == 0.0
    classifier = DigitClassifier(width=2, feature_dim=8).eval()
    classifier.accuracy = None
    scores = translation_scores(model, digits, classifier)
    assert scores["direction"] == "digit->invert" and set(scores["directions"]) == {
        "digit->invert",
        "invert->digit",
    }
    for row in scores["directions"].values():
        assert row["l1"] == 0.0 and row["copy_l1"] > 0.5
        assert row["accuracy"] == row["target_accuracy"] == row["source_accuracy"]


def test_outputs_have_their_shapes_and_ranges_and_patches_are_local():
    torch.manual_seed(0)
    sources = torch.rand(3, 1, 28, 28)
    for model in (Pix2Pix("edges", **TINY_G), CycleGAN("thicken", **TINY_G)):
        model.eval()
        for direction in model.directions:
            out = model.sample(3, sources=sources, direction=direction.name)
            assert out.shape == (3, 1, 28, 28) and 0 <= out.min() and out.max() <= 1
        with pytest.raises(ValueError, match="sources is required"):
            model.sample(3)
        with pytest.raises(ValueError, match="direction must be one of"):
            model.translate(sources, "digit->colour")
    patch = PatchDiscriminator(1, width=4).eval()
    assert patch.receptive_field == 16 and patch(torch.rand(2, 1, 28, 28)).shape == (2, 1, 12, 12)
    assert PatchDiscriminator(1, 4, n_layers=2).receptive_field == 34
    x = torch.rand(1, 1, 28, 28)
    base = patch(x)[0, 0, 0, 0]
    outside, inside = x.clone(), x.clone()
    outside[..., 20, 20] += 1  # logit (0, 0) sees pixels -5..10 (padding 1 per layer)
    inside[..., 5, 5] += 1
    assert patch(outside)[0, 0, 0, 0] == base and patch(inside)[0, 0, 0, 0] != base


def test_bad_input_is_refused_naming_the_argument(digits, tmp_path, capsys):
    cases = [
        (lambda: Pix2Pix(task="colour"), r"task must be one of \('edges', 'half'\)"),
        (lambda: CycleGAN(task="edges"), r"task must be one of \('thicken', 'invert'\)"),
        (lambda: Pix2Pix(l1_weight=-1.0), "l1_weight"),
        (lambda: CycleGAN(cycle_weight=float("nan")), "cycle_weight"),
        (lambda: CycleGAN(pool_size=-1), "pool_size"),
        (lambda: Pix2Pix(channel_mults=()), "channel_mults"),
        (lambda: PatchDiscriminator(1, norm="layer"), "norm"),
        (lambda: Pix2Pix(d_layers=4), "d_layers"),
        (lambda: CycleGAN(d_width=0), "d_width"),
        (lambda: unpaired_split(1), "n must be"),
        (
            lambda: next(unpaired_batches(digits.train_images, 21, "thicken", epoch=0)),
            "batch_size 21 is more than the 20 images of each domain",
        ),  # fmt: skip
    ]
    for make, message in cases:
        with pytest.raises(ValueError, match=message):
            make()
    pix2pix, cyclegan = Pix2Pix(**TINY_G), CycleGAN(**TINY_G)
    with pytest.raises(ValueError, match=r"sources must be float images \[B, 1, 28, 28\]"):
        pix2pix.translate(torch.rand(2, 1, 32, 32))
    with pytest.raises(ValueError, match=r"x must be float images \[B, 1, 28, 28\]"):
        pix2pix.training_step(torch.rand(2, 28, 28), None, pix2pix.configure_optimizers(1e-3))
    with pytest.raises(ValueError, match=r"x must be float images \[B, 2, 28, 28\]"):
        cyclegan.training_step(torch.rand(2, 1, 28, 28), None, cyclegan.configure_optimizers(1e-3))
    with pytest.raises(ValueError, match="data is required"):
        sample_grid(pix2pix, tmp_path / "grid.png", 4)
    from mp3d.cli import main

    data_dir = str(tmp_path / "no-data")
    out = str(tmp_path / "out")
    assert main(["gen", "train", "pix2pix", "--task", "colour", "--data", data_dir,
                 "--out", out]) == 2  # fmt: skip
    assert "--task" in capsys.readouterr().err
    assert main(["gen", "train", "gan", "--task", "edges", "--data", data_dir, "--out", out]) == 2
    assert "--task: gan takes no task" in capsys.readouterr().err
    with pytest.raises(ValueError, match="no full batch"):
        train_generative(digits, GenerativeConfig(model="cyclegan", steps=1, batch_size=30),
                         progress=False, options=TINY_G)  # fmt: skip


def test_registered_and_resumed_exactly_through_the_trainer(digits, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MP3D_CACHE", str(tmp_path / "no-classifier"))
    assert {"pix2pix", "cyclegan"} <= set(models())
    assert models()["pix2pix"].view == models()["cyclegan"].view == "grey"
    options = {**TINY_G, "pool_size": 3}
    common = {"model": "cyclegan", "batch_size": 4, "lr_final_factor": 1.0, "samples": 4}
    straight = train_generative(
        digits, GenerativeConfig(steps=7, **common), progress=False, options=options
    )
    out = tmp_path / "run"
    train_generative(digits, GenerativeConfig(steps=3, **common), out, progress=False,
                     options=options)  # fmt: skip
    resumed = train_generative(digits, GenerativeConfig(steps=7, **common), out, progress=False,
                               options=options)  # fmt: skip
    assert resumed.train_stats["start_step"] == 3 and resumed.train_stats["steps"] == 7
    resumed_state = resumed.state_dict()
    for name, value in straight.state_dict().items():
        other = resumed_state[name]
        if name == "_extra_state":
            value, other = value["noise_generator"], other["noise_generator"]
        elif name.endswith("_extra_state"):  # the image pools
            value, other = value["images"], other["images"]
        assert torch.equal(value, other), name
    scores = resumed.test_scores
    assert scores["accuracy"] is None and "train_digit_classifier" in scores["note"]
    assert 0 <= scores["l1"] <= 1 and scores["images"] == 20
    assert (out / "samples.png").is_file() and (out / "metrics.json").is_file()
    loaded = load_generative(out)
    sources = grey(digits.test_images[:3])
    assert torch.equal(loaded.sample(3, sources=sources), resumed.sample(3, sources=sources))
    assert evaluate_model(loaded, digits)["l1"] == pytest.approx(scores["l1"], abs=1e-6)
    grid = sample_grid(loaded, tmp_path / "grid.png", 5, data=digits)
    from PIL import Image

    width, height = Image.open(grid).size
    # 5 digits of 6 panels each (two directions of source, translation, target): one a row
    assert (width, height) == (6 * 30, 5 * 30)
    from mp3d.cli import main

    argv = ["gen", "sample", str(out), "--out", str(tmp_path / "t.png"), "--temperature", "0.5"]
    assert main(argv) == 2  # a translation has no temperature to sample at
    assert "--temperature: CycleGAN models do not take it" in capsys.readouterr().err
    pix2pix = train_generative(digits, GenerativeConfig(model="pix2pix", steps=2, batch_size=4),
                               progress=False, options={**TINY_G, "task": "half"})  # fmt: skip
    assert pix2pix.task == "half" and pix2pix.train_stats["steps"] == 2


def test_the_image_pool_keeps_a_history_and_travels_with_the_state_dict():
    pool, generator = ImagePool(3), torch.Generator().manual_seed(0)
    first = torch.arange(2.0).view(2, 1, 1, 1)
    assert torch.equal(pool.query(first, generator), first)  # not yet full: passed through
    second = torch.arange(2.0, 12.0).view(10, 1, 1, 1)
    shown = pool.query(second, generator)
    assert torch.equal(shown[0], second[0]) and len(pool.images) == 3  # the third fills it
    assert not torch.equal(shown, second)  # some came from the history (p = 1/2 each)

    def values(*tensors):
        return sorted(float(v) for t in tensors for v in t.flatten())

    twin = ImagePool(3)
    twin.load_state_dict(pool.state_dict())
    assert torch.equal(twin.images, pool.images)
    before, later = pool.images.clone(), torch.arange(20.0, 26.0).view(6, 1, 1, 1)
    state = generator.get_state()
    shown = pool.query(later, generator)
    # a fake shown from the full history takes its place there: nothing lost, nothing doubled
    assert values(pool.images, shown) == values(before, later)
    again = twin.query(later, torch.Generator().set_state(state))
    assert torch.equal(again, shown) and torch.equal(twin.images, pool.images)
    assert torch.equal(ImagePool(0).query(later, generator), later)

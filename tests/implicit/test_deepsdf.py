"""DeepSDF: the clamped L1 against its closed form, a tiny auto-decoder whose loss falls on
three procedural shapes, code inference that leaves the decoder untouched and recovers a
training shape's quality, normals estimated on a sphere, checkpoints that resume and load
exactly, and inputs refused with messages naming the argument or file."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mp3d.implicit.deepsdf import (
    DEEPSDF_INSIDE,
    DEEPSDF_LEVEL,
    DeepSDFConfig,
    DeepSDFDecoder,
    DeepSDFModel,
    clamped_l1,
    estimate_normals,
    infer_code,
    infer_code_from_cloud,
    load_deepsdf,
    train_deepsdf,
)
from mp3d.implicit.shape_set import sample_shape
from mp3d.implicit.shapes import procedural_shape

TINY = dict(
    latent_size=16,
    hidden=64,
    layers=4,
    skip=2,
    shapes_per_batch=3,
    samples_per_shape=512,
    lr=3e-3,
    lr_codes=1e-2,
    infer_iterations=100,
    infer_samples=1024,
    log_every=10,
)


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def shapes():
    # The procedural family meshed at 64^3 instead of build_shape_set's 128^3: the same kind
    # of shapes in a quarter of the time.
    return [
        sample_shape(
            procedural_shape(seed, resolution=64), f"procedural-{seed}", 1000, 1500, 2500, seed
        )
        for seed in range(3)
    ]


@pytest.fixture(scope="module")
def model(shapes):
    return train_deepsdf(shapes, DeepSDFConfig(steps=300, **TINY), progress=False)


def sdf_error(model: DeepSDFModel, code: torch.Tensor, shape) -> float:
    """Mean clamped L1 of a code on all of a shape's samples."""
    with torch.no_grad():
        prediction = model.decoder(torch.as_tensor(shape.points), code)
    return float(clamped_l1(prediction, torch.as_tensor(shape.sdf), model.config.clamp))


def test_clamped_l1_is_its_closed_form():
    prediction = torch.tensor([0.05, 0.3, -0.2, 0.0, 0.02])
    target = torch.tensor([0.0, 0.5, 0.05, -0.15, -0.3])
    # clamped to +-0.1: [0.05, 0.1, -0.1, 0, 0.02] and [0, 0.1, 0.05, -0.1, -0.1]
    expected = (0.05 + 0.0 + 0.15 + 0.1 + 0.12) / 5
    assert float(clamped_l1(prediction, target, 0.1)) == pytest.approx(expected, abs=1e-7)
    assert float(clamped_l1(target, target, 0.1)) == 0.0


def test_training_lowers_the_loss_and_gives_finite_sdfs(shapes, model):
    losses = model.losses
    assert len(losses) == model.train_stats["steps"] == 300
    assert np.mean(losses[-20:]) < 0.5 * np.mean(losses[:20])
    assert model.codes.weight.shape == (3, 16) and not model.training
    points = torch.rand(257, 3) - 0.5
    sdf = model.decoder(points, model.codes.weight[torch.zeros(257, dtype=torch.long)])
    assert sdf.shape == (257,) and torch.isfinite(sdf).all() and sdf.abs().max() < 1
    field = model.field("procedural-1")
    assert torch.equal(field(points), model.decoder(points, model.code(1)))
    assert torch.equal(field(points), model(points, torch.ones(257, dtype=torch.long)))
    # The trained field's signs match the ground truth at the shape's uniform points.
    shape = shapes[1]
    with torch.no_grad():
        values = field(torch.as_tensor(shape.points[shape.uniform])).numpy()
    inside = values < DEEPSDF_LEVEL if DEEPSDF_INSIDE == "below" else values > DEEPSDF_LEVEL
    assert (inside == shape.occupancy[shape.uniform]).mean() > 0.9


def test_decoder_shapes_and_dropout():
    torch.manual_seed(0)
    decoder = DeepSDFDecoder(latent_size=8, hidden=32, layers=3, skip=1, dropout=0.5)
    points, codes = torch.rand(10, 3), torch.randn(10, 8)
    decoder.eval()
    assert decoder(points, codes).shape == (10,)
    assert torch.equal(decoder(points, codes), decoder(points, codes))  # no dropout in eval
    assert decoder(torch.zeros(0, 3), torch.zeros(0, 8)).shape == (0,)
    field = decoder.field(codes[0])
    assert torch.equal(field(points), decoder(points, codes[0].expand(10, -1)))
    with pytest.raises(ValueError, match=r"codes must have shape \[N=10, 8\]"):
        decoder(points, torch.zeros(10, 7))
    with pytest.raises(ValueError, match=r"points must have shape \[N, 3\]"):
        decoder(torch.zeros(10, 2), codes)
    with pytest.raises(ValueError, match=r"code must have shape \[8\]"):
        decoder.field(torch.zeros(3))


def test_a_fresh_decoder_starts_inside_the_clamp():
    # Beyond +-clamp the clamped L1 has no gradient: a decoder starting there never learns.
    points = torch.rand(2000, 3) - 0.5
    for seed, (hidden, layers) in enumerate([(64, 4), (64, 6), (256, 6), (32, 8)]):
        torch.manual_seed(seed)
        decoder = DeepSDFDecoder(latent_size=16, hidden=hidden, layers=layers, skip=2)
        codes = 0.01 * torch.randn(len(points), 16)
        with torch.no_grad():
            assert decoder(points, codes).abs().max() < DeepSDFConfig().clamp


def test_inference_changes_only_the_code(shapes, model):
    before = {name: value.clone() for name, value in model.state_dict().items()}
    model.decoder.train()  # inference must run the decoder in eval mode and restore this
    for p in model.decoder.parameters():
        p.grad = None
    shape = shapes[0]
    start = torch.zeros(16)
    code = infer_code(model, shape.points, shape.sdf, seed=0, init=start)
    assert code.shape == (16,) and not code.requires_grad and not torch.equal(code, start)
    after = model.state_dict()
    assert all(torch.equal(before[name], after[name]) for name in before)
    params = list(model.decoder.parameters())
    assert all(p.grad is None for p in params)  # no gradient reached the decoder
    assert all(p.requires_grad for p in params) and model.decoder.training
    model.eval()


def test_inference_recovers_a_training_shapes_quality(shapes, model):
    mean_code = model.codes.weight.mean(0).detach()
    for i in (0, 2):
        shape = shapes[i]
        code = infer_code(model, shape.points, shape.sdf, seed=1)
        trained, inferred = sdf_error(model, model.code(i), shape), sdf_error(model, code, shape)
        baseline = min(sdf_error(model, torch.zeros(16), shape), sdf_error(model, mean_code, shape))
        assert inferred < 1.3 * trained + 0.002, (i, inferred, trained)
        assert inferred < 0.6 * baseline, (i, inferred, baseline)


def test_inference_from_a_cloud_with_and_without_normals(shapes, model):
    shape = shapes[2]
    zero = sdf_error(model, torch.zeros(16), shape)
    half = shape.surface[:, 0] > -0.1  # a partial view: most of one side missing
    with_normals = infer_code_from_cloud(model, shape.surface[half], shape.normals[half], seed=0)
    estimated = infer_code_from_cloud(model, shape.surface, seed=0)
    assert sdf_error(model, with_normals, shape) < 0.7 * zero
    assert sdf_error(model, estimated, shape) < 0.7 * zero


def test_estimated_normals_of_a_sphere_point_outward():
    rng = np.random.default_rng(0)
    directions = rng.normal(size=(2000, 3))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    points = 0.3 * directions + np.array([0.1, -0.05, 0.0])
    for keep in (slice(None), directions[:, 0] > 0):  # the whole sphere and a half of it
        normals = estimate_normals(points[keep], neighbours=16)
        assert np.allclose(np.linalg.norm(normals, axis=1), 1.0, atol=1e-5)
        assert np.quantile((normals * directions[keep]).sum(axis=1), 0.01) > 0.98


def test_checkpoints_resume_and_load_exactly(shapes, tmp_path):
    config = DeepSDFConfig(steps=20, checkpoint_every=10, **TINY)
    first = train_deepsdf(shapes, config, out_dir=tmp_path, progress=False)
    assert (tmp_path / "checkpoint.pt").is_file() and first.train_stats["steps"] == 20
    config.steps = 35
    resumed = train_deepsdf(shapes, config, out_dir=tmp_path, progress=False)
    assert resumed.train_stats["start_step"] == 20 and resumed.train_stats["steps"] == 35
    assert len(resumed.losses) == 35 and resumed.losses[:20] == first.losses
    loaded = load_deepsdf(tmp_path)
    assert loaded.names == resumed.names and loaded.train_stats["steps"] == 35
    points = torch.rand(100, 3) - 0.5
    for i in range(3):
        assert torch.equal(loaded.field(i)(points), resumed.field(i)(points))
    # The same folder with other shapes is refused.
    with pytest.raises(ValueError, match="was trained on other data"):
        train_deepsdf(shapes[:2], config, out_dir=tmp_path, progress=False)


def test_bad_inputs_are_refused(shapes, model, tmp_path):
    with pytest.raises(ValueError, match=r"cloud must have shape \[N>0, 3\]"):
        infer_code_from_cloud(model, np.zeros((0, 3)))
    with pytest.raises(ValueError, match="cloud must be finite"):
        infer_code_from_cloud(model, np.full((10, 3), np.nan))
    with pytest.raises(ValueError, match="normals must have the cloud's shape"):
        infer_code_from_cloud(model, np.zeros((10, 3)), np.ones((9, 3)))
    with pytest.raises(ValueError, match="sdf must have one value per point"):
        infer_code(model, np.zeros((10, 3)), np.zeros(9))
    with pytest.raises(ValueError, match=r"points must have shape \[N>0, 3\]"):
        infer_code(model, np.zeros((0, 3)), np.zeros(0))
    with pytest.raises(ValueError, match="sdf must be finite"):
        infer_code(model, np.zeros((4, 3)), np.array([0.0, np.inf, 0.0, 0.0]))
    with pytest.raises(ValueError, match="decoder must be a DeepSDFDecoder"):
        infer_code(torch.nn.Linear(3, 1), np.zeros((4, 3)), np.zeros(4))
    for field, value in (
        ("clamp", 0.0),
        ("latent_size", 0),
        ("skip", 4),
        ("lr_codes", -1.0),
        ("samples_per_shape", 1),
        ("uniform_fraction", 1.5),
        ("infer_iterations", 0),
        ("code_reg", float("nan")),
    ):
        with pytest.raises(ValueError, match=f"{field} must be"):
            DeepSDFConfig(**{**TINY, field: value})
    with pytest.raises(ValueError, match="shapes must be a non-empty sequence"):
        train_deepsdf([], progress=False)
    with pytest.raises(ValueError, match="shapes must have distinct names"):
        train_deepsdf([shapes[0], shapes[0]], DeepSDFConfig(steps=1, **TINY), progress=False)
    from mp3d.io import write_checkpoint

    other = write_checkpoint(tmp_path / "igr.pt", "mp3d.igr", 1, {"field": {}})
    with pytest.raises(ValueError, match=r"igr\.pt: not an mp3d DeepSDF checkpoint"):
        load_deepsdf(other)
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        load_deepsdf(tmp_path / "missing.pt")

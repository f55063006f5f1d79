"""Occupancy Networks: training lowers the loss, the PointNet encoder is invariant to the
order of its points, conditional batch norm conditions on the code and is per-point in eval
mode, checkpoints resume the same run and load back exactly, bad input is refused by name,
and a tiny model trained on one shape beats a trivial predictor's IoU by far."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from mp3d.implicit.evaluation import shape_metrics
from mp3d.implicit.onet import (
    ONET_INSIDE,
    ONET_LEVEL,
    ConditionalBatchNorm,
    OccupancyNetwork,
    ONetConfig,
    load_onet,
    reconstruct_onet,
    train_onet,
)
from mp3d.implicit.shape_set import sample_shape
from mp3d.implicit.shapes import procedural_shape
from mp3d.io import write_checkpoint
from mp3d.mesh.metrics import volumetric_iou

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = dict(
    latent=16,
    hidden=32,
    blocks=2,
    encoder_hidden=16,
    encoder_blocks=3,
    cloud_points=64,
    query_points=256,
    shapes_per_batch=3,
    lr=3e-3,
    log_every=10,
)


@pytest.fixture(scope="module")
def shapes():
    """Three small procedural shapes (coarse meshes, few samples: fast to build)."""
    return [
        sample_shape(procedural_shape(seed, 40), f"procedural-{seed}", 1500, 1500, 1500, seed)
        for seed in (1, 2, 3)
    ]


def randomised(model: nn.Module, seed: int = 0) -> nn.Module:
    """The model with every weight random (no zero-initialised block or code map), so
    properties are tested on a generic network rather than on its initial identity."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.3)
    return model


def test_training_lowers_the_loss(shapes):
    model = train_onet(shapes, ONetConfig(steps=100, **TINY), progress=False)
    losses = np.array(model.train_losses)
    assert len(losses) == 100 and np.isfinite(losses).all()
    assert model.train_stats["steps"] == 100 and not model.training
    first, last = losses[:10].mean(), losses[-20:].mean()  # about 0.55 and 0.40
    assert last < 0.85 * first, (first, last)
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm1d)]
    assert len(norms) == 2 * TINY["blocks"] + 1  # running statistics set afresh at the end
    assert all(int(m.num_batches_tracked) == 32 and m.momentum == 0.1 for m in norms)


def test_shapes_of_codes_logits_and_fields():
    torch.manual_seed(0)
    model = randomised(OccupancyNetwork(latent=8, hidden=16, blocks=2, encoder_hidden=8))
    cloud, points = torch.rand(2, 50, 3) - 0.5, torch.rand(2, 70, 3) - 0.5
    codes = model.encode(cloud)
    assert codes.shape == (2, 8)
    logits = model.decode(points, codes)
    assert logits.shape == (2, 70) and torch.isfinite(logits).all()
    assert model(points, cloud).shape == (2, 70)
    field = model.field(codes[0])
    assert not model.training and field(points[0]).shape == (70,)
    assert field(torch.zeros(0, 3)).shape == (0,)
    with pytest.raises(ValueError, match=r"codes must have shape \[B, 8\]"):
        model.decode(points, codes[:, :4])
    with pytest.raises(ValueError, match="points has 2 shapes but codes have 1"):
        model.decode(points, codes[:1])
    with pytest.raises(ValueError, match=r"cloud must have shape \[B, T>0, 3\]"):
        model.encode(torch.zeros(2, 0, 3))


def test_the_encoder_ignores_the_order_of_the_points():
    torch.manual_seed(0)
    model = randomised(OccupancyNetwork(latent=16, encoder_hidden=32, encoder_blocks=4))
    cloud = torch.rand(3, 200, 3) - 0.5
    shuffled = cloud[:, torch.randperm(200)]
    torch.testing.assert_close(model.encode(shuffled), model.encode(cloud), rtol=1e-6, atol=1e-6)
    # Max pooling also makes duplicated points change nothing (reconstruct_onet relies on it).
    doubled = torch.cat([cloud, cloud[:, :50]], dim=1)
    torch.testing.assert_close(model.encode(doubled), model.encode(cloud), rtol=1e-6, atol=1e-6)


def test_conditional_batch_norm_conditions_on_the_code():
    torch.manual_seed(0)
    norm = randomised(ConditionalBatchNorm(4, 6))
    x = torch.randn(2, 100, 6) * 3 + 1
    codes = torch.randn(2, 4)
    out = norm(x, codes)  # training mode: per-feature statistics over all 2*100 points
    flat = (x - x.mean(dim=(0, 1))) / torch.sqrt(x.var(dim=(0, 1), unbiased=False) + 1e-5)
    expected = norm.gamma(codes)[:, None] * flat + norm.beta(codes)[:, None]
    torch.testing.assert_close(out, expected, rtol=1e-4, atol=1e-4)
    norm.eval()  # eval mode: the running statistics, whatever else is in the batch
    alone = norm(x[:1, :10], codes[:1])
    torch.testing.assert_close(norm(x, codes)[:1, :10], alone)
    assert not torch.allclose(norm(x[:1], codes[1:]), norm(x[:1], codes[:1]))


def test_the_decoder_is_conditioned_and_per_point_in_eval_mode():
    torch.manual_seed(0)
    model = randomised(OccupancyNetwork(latent=8, hidden=16, blocks=2, encoder_hidden=8))
    model.train()
    model(torch.rand(4, 300, 3) - 0.5, torch.rand(4, 64, 3) - 0.5)  # running statistics
    points = torch.rand(1, 500, 3) - 0.5
    codes = torch.randn(2, 8)
    model.eval()
    a, b = model.decode(points, codes[:1]), model.decode(points, codes[1:])
    assert (a - b).abs().max() > 1e-2  # other codes, other fields
    both = model.decode(points.expand(2, -1, -1), codes)
    torch.testing.assert_close(both, torch.cat([a, b]))  # no dependence on the batch
    field = model.field(codes[0])
    torch.testing.assert_close(field(points[0, :7]), field(points[0])[:7])
    model.train()  # the field stays in eval mode even when its model is put back to train
    torch.testing.assert_close(field(points[0, :7]), a[0, :7])
    assert model.training


def test_resume_continues_the_same_run_and_load_round_trips(shapes, tmp_path):
    options = {**TINY, "lr_final_factor": 1.0, "checkpoint_every": 7}
    straight = train_onet(shapes, ONetConfig(steps=16, **options), progress=False)
    first = train_onet(shapes, ONetConfig(steps=9, **options), tmp_path, progress=False)
    assert first.train_stats["steps"] == 9
    resumed = train_onet(shapes, ONetConfig(steps=16, **options), tmp_path, progress=False)
    assert resumed.train_stats["start_step"] == 9 and resumed.train_stats["steps"] == 16
    assert len(resumed.train_losses) == 7
    for (name, a), b in zip(straight.state_dict().items(), resumed.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=name)  # the same 16 steps
    loaded = load_onet(tmp_path / "checkpoint.pt")
    assert loaded.train_stats["steps"] == 16 and not loaded.training
    cloud, points = torch.rand(2, 64, 3) - 0.5, torch.rand(2, 100, 3) - 0.5
    assert torch.equal(loaded(points, cloud), resumed(points, cloud))
    with pytest.raises(ValueError, match="was trained on other data.*shape_count"):
        train_onet(shapes[:2], ONetConfig(steps=20, **options), tmp_path, progress=False)


def test_bad_input_is_refused_by_name(shapes, tmp_path):
    torch.manual_seed(0)
    model = OccupancyNetwork(latent=8, hidden=16, blocks=1, encoder_hidden=8, cloud_points=32)
    with pytest.raises(ValueError, match="cloud is empty"):
        reconstruct_onet(model, np.zeros((0, 3)))
    with pytest.raises(ValueError, match="cloud must be finite"):
        reconstruct_onet(model, np.array([[0.0, np.nan, 0.0]] * 5))
    with pytest.raises(ValueError, match=r"cloud must have shape \[N, 3\], got \[5, 2\]"):
        reconstruct_onet(model, torch.zeros(5, 2))
    with pytest.raises(ValueError, match="model must be an OccupancyNetwork"):
        reconstruct_onet(nn.Linear(3, 1), np.zeros((5, 3)))
    for field, value in [
        ("latent", 0),
        ("hidden", 1.5),
        ("cloud_points", 0),
        ("cloud_noise", -0.1),
        ("query_points", 0),
        ("near_fraction", 1.5),
        ("shapes_per_batch", 0),
        ("lr", 0.0),
        ("lr_final_factor", 2.0),
        ("steps", 0),
    ]:
        with pytest.raises(ValueError, match=f"^{field} must be"):
            ONetConfig(**{field: value})
    with pytest.raises(ValueError, match="shapes must be a non-empty sequence"):
        train_onet([], ONetConfig(**TINY))
    with pytest.raises(ValueError, match=r"shapes\[1\] must be a ShapeSamples"):
        train_onet([shapes[0], "bunny"], ONetConfig(**TINY))
    with pytest.raises(ValueError, match="config must be an ONetConfig"):
        train_onet(shapes, {"steps": 3})
    other = write_checkpoint(tmp_path / "igr.pt", "mp3d.igr", 1, {"field": {}})
    with pytest.raises(ValueError, match=r"igr\.pt: not an mp3d ONet checkpoint"):
        load_onet(other)
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        load_onet(tmp_path / "missing.pt")
    broken = write_checkpoint(tmp_path / "broken.pt", "mp3d.onet", 1, {"step": 1})
    with pytest.raises(ValueError, match=r"broken\.pt: not a complete ONet checkpoint"):
        load_onet(broken)


def test_a_model_trained_on_one_shape_beats_a_trivial_predictor(shapes):
    shape = shapes[0]
    config = ONetConfig(steps=150, **{**TINY, "query_points": 512, "shapes_per_batch": 4})
    model = train_onet([shape], config, progress=False)
    field = reconstruct_onet(model, shape.surface)  # a cloud it has not seen: all points
    inside = shape.occupancy[shape.uniform]
    with torch.no_grad():
        values = field(torch.as_tensor(shape.points[shape.uniform])).numpy()
    iou = volumetric_iou(values > ONET_LEVEL, inside)
    everything = volumetric_iou(np.ones_like(inside), inside)  # all-outside scores 0
    assert iou > 0.6 and iou > 3 * everything, (iou, everything)
    metrics = shape_metrics(field, shape, ONET_LEVEL, ONET_INSIDE, upsampling_steps=1)
    assert metrics["iou"] == pytest.approx(iou) and metrics["chamfer_l1"] < 0.05

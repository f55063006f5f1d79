"""Gaussian-splatting training on a tiny scene of known Gaussians: the loss falls, the
schedule (densification, opacity resets, SH bands, learning-rate decay) runs as configured,
checkpoints round-trip and resume, failures keep the earlier checkpoint, bad input is named."""

from __future__ import annotations

import math

import pytest
import torch

from mp3d.splat import GaussianModel, SplatConfig, load_checkpoint, splat_loss, train
from mp3d.splat import checkpoint as checkpoint_module
from mp3d.splat.trainer import means_lr_factor, scene_extent

START_BOX = torch.tensor([[-0.9, -0.9, -0.9], [0.9, 0.9, 0.9]])
NO_DENSIFY = {"densify_from": 10_000}  # a run that only optimizes


def _start(n: int = 150, seed: int = 1, sh_degree: int = 3) -> GaussianModel:
    return GaussianModel.random_in_box(
        n, START_BOX, torch.Generator().manual_seed(seed), sh_degree=sh_degree
    )


@torch.no_grad()
def _mean_loss(model: GaussianModel, views) -> float:
    losses = [
        splat_loss(model.render(views.camera(i), views.background).rgb, views.images[i])
        for i in range(len(views))
    ]
    return float(torch.stack(losses).mean())


def _config(**overrides) -> SplatConfig:
    values = {"steps": 30, "log_every": 10, **NO_DENSIFY}
    values.update(overrides)
    return SplatConfig(**values)


# ----------------------------------------------------------------------------- learning


def test_training_lowers_the_loss_and_raises_sh_degree(gaussian_scene):
    views = gaussian_scene.views
    model = _start()
    before = _mean_loss(model, views)
    trained = train(views, model, _config(steps=40, sh_every=15), device="cpu", progress=False)
    assert trained is model
    after = _mean_loss(model, views)
    assert after < 0.75 * before, (before, after)
    stats = model.train_stats
    assert stats["steps"] == 40 and stats["start_step"] == 0 and stats["gaussians"] == 150
    assert model.active_sh_degree == 2  # raised after steps 15 and 30
    assert math.isfinite(stats["last_loss"]) and stats["densifications"] == 0
    with torch.no_grad():
        rgb, depth, alpha = model.render(views.camera(0), views.background)
    assert rgb.shape == (24, 24, 3) and alpha.shape == depth.shape == (24, 24)
    assert float(alpha.min()) >= 0.0 and float(alpha.max()) <= 1.0 + 1e-6
    for name in GaussianModel.PARAMETER_NAMES:
        assert bool(torch.isfinite(getattr(model, name)).all()), name


def test_densification_and_opacity_resets_run_on_schedule(gaussian_scene):
    views = gaussian_scene.views
    model = _start(n=60)
    # 30 steps, densification window = steps before min(40, half the run = 15):
    # densify after steps 5, 10 and 15, reset opacities after step 10.
    config = _config(
        densify_from=4,
        densify_every=5,
        densify_until=40,
        opacity_reset_every=10,
        grad_threshold=1e-6,
    )
    train(views, model, config, device="cpu", progress=False)
    stats = model.train_stats
    assert stats["densifications"] == 3 and stats["opacity_resets"] == 1
    assert stats["cloned"] + stats["split"] > 0
    assert len(model) == stats["gaussians"] != 60
    assert len(model) == 60 + stats["cloned"] + stats["split"] - stats["pruned"]
    # Without the half-way stop the window runs to step 39: densify after 5, 10, ..., 30.
    model = _start(n=60)
    train(
        views,
        model,
        _config(
            densify_from=4,
            densify_every=5,
            densify_until=40,
            opacity_reset_every=10,
            densify_until_fraction=1.0,
            grad_threshold=1.0,
        ),
        device="cpu",
        progress=False,
    )
    assert model.train_stats["densifications"] == 6 and model.train_stats["opacity_resets"] == 3


def test_means_learning_rate_decays_over_the_run(gaussian_scene, tmp_path):
    assert means_lr_factor(0.0, SplatConfig()) == 1.0
    assert means_lr_factor(0.5, SplatConfig()) == pytest.approx(0.1)
    assert means_lr_factor(1.0, SplatConfig()) == pytest.approx(0.01)
    assert means_lr_factor(2.0, SplatConfig()) == pytest.approx(0.01)
    views = gaussian_scene.views
    train(views, _start(n=30), _config(steps=10), out_dir=tmp_path, device="cpu", progress=False)
    _, payload = load_checkpoint(tmp_path / "checkpoint.pt")
    groups = {g["name"]: g["lr"] for g in payload["optimizer"]["param_groups"]}
    extent = scene_extent(views.c2ws)
    # The last step ran at progress 9/10.
    assert groups["means"] == pytest.approx(1.6e-4 * extent * 0.01**0.9)
    assert groups["sh_rest"] == pytest.approx(2.5e-3 / 20) and groups["quats"] == 1e-3
    assert groups["opacity_logits"] == 0.05 and groups["log_scales"] == 5e-3


def test_scene_extent_is_1_1_times_the_largest_camera_distance():
    c2ws = torch.eye(4).repeat(3, 1, 1)
    c2ws[:, :3, 3] = torch.tensor([[2.0, 0, 0], [-2.0, 0, 0], [0.0, 1.0, 0]])
    centre = c2ws[:, :3, 3].mean(dim=0)
    expected = 1.1 * float((c2ws[:, :3, 3] - centre).norm(dim=-1).max())
    assert scene_extent(c2ws) == pytest.approx(expected)
    assert scene_extent(c2ws[:1]) == 1.0
    with pytest.raises(ValueError, match="c2ws"):
        scene_extent(torch.eye(4))


def test_minutes_budget_stops_the_run(gaussian_scene):
    model = _start(n=30)
    train(
        gaussian_scene.views,
        model,
        SplatConfig(steps=None, minutes=0.01, **NO_DENSIFY),
        device="cpu",
        progress=False,
    )
    stats = model.train_stats
    assert stats["steps"] >= 1 and 0.6 <= stats["seconds"] < 20.0


# ----------------------------------------------------------------------------- checkpoints


def test_checkpoint_round_trip_and_resume(gaussian_scene, tmp_path):
    views = gaussian_scene.views
    config = _config(
        steps=20,
        sh_every=8,
        checkpoint_every=10,
        densify_from=2,
        densify_every=6,
        densify_until=100,
        densify_until_fraction=1.0,
        grad_threshold=1.0,
    )
    model = train(
        views,
        _start(n=40),
        config,
        out_dir=tmp_path,
        device="cpu",
        progress=False,
        meta={"note": "tiny"},
    )
    restored, payload = load_checkpoint(tmp_path / "checkpoint.pt")
    assert payload["step"] == 20 and payload["meta"] == {"note": "tiny"}
    assert payload["config"]["steps"] == 20 and payload["elapsed"] > 0
    assert restored.active_sh_degree == model.active_sh_degree == 2
    assert restored.max_sh_degree == 3
    for name in GaussianModel.PARAMETER_NAMES:
        torch.testing.assert_close(getattr(restored, name), getattr(model, name))
    assert payload["density"]["grad_sum"].shape == (len(model),)
    assert payload["density"]["count"].max() > 0  # gathered in steps 19 and 20, after the edit
    assert len(payload["optimizer"]["state"]) == len(GaussianModel.PARAMETER_NAMES)
    camera = views.camera(3)
    torch.testing.assert_close(restored.render(camera).rgb, model.render(camera).rgb)

    # Resuming with a longer run continues from step 20 in a fresh starting model.
    fresh = _start(n=40, seed=5)
    train(
        views,
        fresh,
        _config(**{**config.__dict__, "steps": 26}),
        out_dir=tmp_path,
        device="cpu",
        progress=False,
    )
    assert fresh.train_stats["start_step"] == 20 and fresh.train_stats["steps"] == 26
    assert load_checkpoint(tmp_path / "checkpoint.pt")[1]["step"] == 26
    # The restored statistics carry on: one more densification, after step 24.
    assert fresh.train_stats["densifications"] == 1


def test_failure_mid_run_keeps_the_earlier_checkpoint(gaussian_scene, tmp_path, monkeypatch):
    views = gaussian_scene.views
    config = _config(steps=30, checkpoint_every=10)
    calls = {"n": 0}
    real_render = GaussianModel.rasterize

    def failing_render(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 15:
            raise RuntimeError("simulated crash")
        return real_render(self, *args, **kwargs)

    monkeypatch.setattr(GaussianModel, "rasterize", failing_render)
    with pytest.raises(RuntimeError, match="simulated crash"):
        train(views, _start(n=30), config, out_dir=tmp_path, device="cpu", progress=False)
    saved, payload = load_checkpoint(tmp_path / "checkpoint.pt")
    assert payload["step"] == 10 and len(saved) == 30
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.pt"]  # no temporary left

    monkeypatch.setattr(GaussianModel, "render", real_render)
    model = train(views, _start(n=30), config, out_dir=tmp_path, device="cpu", progress=False)
    assert model.train_stats["start_step"] == 10 and model.train_stats["steps"] == 30


def test_interrupted_save_keeps_the_checkpoint(gaussian_scene, tmp_path, monkeypatch):
    model = train(
        gaussian_scene.views,
        _start(n=20),
        _config(steps=3),
        out_dir=tmp_path,
        device="cpu",
        progress=False,
    )
    path = tmp_path / "checkpoint.pt"
    before = path.read_bytes()

    def broken_save(obj, f):
        with open(f, "wb") as handle:
            handle.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(checkpoint_module.torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        checkpoint_module.save_checkpoint(path, model, None, None, 4, 1.0, None)
    assert path.read_bytes() == before
    monkeypatch.undo()
    with torch.no_grad():
        model.means[0, 0] = float("nan")
    with pytest.raises(ValueError, match="model.means holds non-finite"):
        checkpoint_module.save_checkpoint(path, model, None, None, 5, 1.0, None)
    assert path.read_bytes() == before


def test_checkpoint_errors_name_the_file(tmp_path, gaussian_scene):
    with pytest.raises(FileNotFoundError, match="none.pt"):
        load_checkpoint(tmp_path / "none.pt")
    nerf = tmp_path / "nerf.pt"
    torch.save({"format": "mp3d.nerf", "version": 1}, nerf)
    with pytest.raises(ValueError, match="not an mp3d splatting checkpoint"):
        load_checkpoint(nerf)
    # Resuming into Gaussians of another SH degree is refused, naming both.
    train(
        gaussian_scene.views,
        _start(n=20),
        _config(steps=2),
        out_dir=tmp_path,
        device="cpu",
        progress=False,
    )
    with pytest.raises(ValueError, match="SH degree 3.*max_sh_degree 1"):
        train(
            gaussian_scene.views,
            _start(n=20, sh_degree=1),
            _config(steps=4),
            out_dir=tmp_path,
            device="cpu",
            progress=False,
        )


# ----------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "overrides, match",
    [
        ({"steps": 0}, "steps must be an int >= 1"),
        ({"steps": None, "minutes": None}, "steps and minutes must not both be None"),
        ({"minutes": -1.0}, "minutes must be a finite number > 0"),
        ({"means_lr": 0.0}, "means_lr must be a finite number > 0"),
        ({"ssim_weight": 1.5}, "ssim_weight must be a finite number >= 0 and <= 1"),
        ({"densify_every": 0}, "densify_every must be an int >= 1"),
        ({"max_screen_size": -2.0}, "max_screen_size must be a finite number > 0"),
        ({"impl": "gpu"}, "impl must be one of"),
    ],
)
def test_bad_config_names_the_field(overrides, match):
    with pytest.raises(ValueError, match=match):
        SplatConfig(**overrides)


def test_bad_train_arguments_are_named(gaussian_scene):
    views = gaussian_scene.views
    with pytest.raises(ValueError, match="model must be a GaussianModel, got str"):
        train(views, "gaussians", _config(), device="cpu", progress=False)
    with pytest.raises(ValueError, match="config must be a SplatConfig, got dict"):
        train(views, _start(n=10), {"steps": 3}, device="cpu", progress=False)
    with pytest.raises(ValueError, match="dataset must have a tensor .images"):
        train(object(), _start(n=10), _config(), device="cpu", progress=False)
    small = views.subset([0, 1])
    small.images = small.images[:, :8, :8]
    with pytest.raises(ValueError, match="at least 11x11 pixels.*got 8x8"):
        train(small, _start(n=10), _config(), device="cpu", progress=False)
